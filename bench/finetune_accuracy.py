"""Fine-tuning accuracy of all-MiniLM-L6-v2 on the real data sets (CPU).

    KBF_DATA_DIR=../shared/data python bench/finetune_accuracy.py sms_spam
    ... sms_spam_frozen | snli | mrpc | sst2 [--epochs N] [--max-train-examples N]
    [--seeds 3]

Trains once per seed (--seed, --seed + 1, ...; default 3 seeds, the same training
rows each time) and writes bench/results/finetune_<task>.json and .md: the exact
command line, wall time, training examples/s, every target metric as mean ± sample
standard deviation over the seeds (and its range), whether the mean met the
target, and the full report of the first seed.

With --save-dir, a seed whose folder already holds checkpoints of this run resumes
from the newest one (the package's own resume), so an interrupted benchmark loses at
most an epoch; the result then says which seeds resumed from which epoch, and the
examples/s covers only the training done in this process.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from _common import RESULTS_DIR, mean_spread, seed_summary, write_result

# task: (dataset, train split, validation split, test split, settings, target metric, target)
TASKS = {
    "sms_spam": ("sms_spam", "train", "validation", "test",
                 dict(epochs=1), [("accuracy", 0.99), ("f1:spam", 0.95)]),
    "sms_spam_frozen": ("sms_spam", "train", "validation", "test",
                        dict(epochs=8, train_encoder_layers=0, learning_rate=5e-3,
                             hidden_units=(256,), warmup_ratio=0.0), [("accuracy", 0.97)]),
    "snli": ("snli", "validation", None, "test", dict(epochs=6, batch_size=16),
             [("accuracy", 0.80)]),
    "mrpc": ("mrpc", "train", "validation", None, dict(epochs=3), [("f1:equivalent", 0.85)]),
    "sst2": ("sst2", "train", "validation", None, dict(epochs=1), [("accuracy", 0.89)]),
}  # fmt: skip


def metric(report: dict, name: str) -> float:
    if name.startswith("f1:"):
        return report["per_class"][name[3:]]["f1"]
    return report[name]


def resumed_epoch(output_dir: str | None) -> int:
    """The epoch a run into `output_dir` resumes from (0 when it starts fresh)."""
    from keras_bert_ft.training.checkpointing import find_resume_checkpoint, read_state

    if not output_dir:
        return 0
    latest = find_resume_checkpoint(Path(output_dir) / "checkpoints")
    return int(read_state(latest)["epoch"]) if latest is not None else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("task", choices=sorted(TASKS))
    p.add_argument("--epochs", type=int)
    p.add_argument("--learning-rate", type=float)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--max-train-examples", type=int)
    p.add_argument("--seed", type=int, default=0, help="the first seed")
    p.add_argument("--seeds", type=int, default=3,
                   help="how many seeds to train with (--seed, --seed + 1, ...); default 3")
    p.add_argument("--accumulate-steps", type=int, help="batches per optimizer update")
    p.add_argument("--pooling", choices=["pooled", "cls", "mean"])
    p.add_argument("--max-length", type=int)
    p.add_argument("--hidden-units", type=int, nargs="*", help="an MLP between pooling and output")
    p.add_argument("--class-weight", choices=["balanced"])
    p.add_argument("--layer-decay", type=float, help="layer-wise learning-rate decay factor")
    p.add_argument("--save-dir", help="also keep the trained model (model.keras) here "
                   "(the first seed's; the others in DIR-seedN)")
    p.add_argument("--out", default=str(RESULTS_DIR))
    args = p.parse_args()

    from keras_bert_ft.data import load_dataset
    from keras_bert_ft.data.splits import split_indices
    from keras_bert_ft.training.finetune import FinetuneSettings, finetune

    name, tr, va, te, overrides, targets = TASKS[args.task]
    splits = load_dataset(name)
    train = splits[tr]
    if args.max_train_examples and args.max_train_examples < len(train):
        frac = args.max_train_examples / len(train)
        keep = split_indices(train.labels, len(train), {"k": frac, "r": 1 - frac}, args.seed)["k"]
        train = train.subset(keep)
    settings = FinetuneSettings(seed=args.seed, verbose=2, **overrides)
    flags = ("epochs", "learning_rate", "batch_size", "pooling", "max_length", "class_weight",
             "layer_decay", "accumulate_steps")
    for flag in flags:
        if getattr(args, flag):
            setattr(settings, flag, getattr(args, flag))
    if args.hidden_units is not None:
        settings.hidden_units = tuple(args.hidden_units)
    if args.seeds < 1:
        p.error(f"--seeds must be at least 1, got {args.seeds}")
    seeds = list(range(args.seed, args.seed + args.seeds))
    start = time.perf_counter()
    runs, resumed = [], {}
    for seed in seeds:
        settings.seed = seed
        if args.save_dir:
            # The first seed's model where --save-dir says (the compression benchmarks
            # load DIR/model.keras as their teacher); the others beside it.
            settings.output_dir = (args.save_dir if seed == seeds[0]
                                   else f"{args.save_dir.rstrip('/')}-seed{seed}")
            if epoch := resumed_epoch(settings.output_dir):
                resumed[seed] = epoch
        runs.append(finetune(train, splits.get(va) if va else None,
                             splits.get(te) if te else None, settings))  # fmt: skip
    wall = time.perf_counter() - start
    result = runs[0]
    report = result.report.to_dict()
    reports = [r.report.to_dict() for r in runs]
    summaries = {m: seed_summary([metric(r, m) for r in reports])
                 for m in dict.fromkeys([*(m for m, _ in targets), "accuracy", "macro_f1"])}
    checks = {m: {"value": summaries[m]["mean"], "target": t, "met": summaries[m]["mean"] >= t,
                  "over_seeds": summaries[m]}
              for m, t in targets}  # fmt: skip
    train_seconds = sum(r.train_seconds for r in runs)
    record = {
        "task": args.task,
        "wall_seconds": round(wall, 1),
        "train_seconds": round(train_seconds, 1),
        "train_examples": len(train),
        "train_examples_per_second": round(
            sum(r.train_examples_seen for r in runs) / train_seconds, 2),
        "seeds": seeds,
        "resumed_from_epoch": resumed,
        "over_seeds": summaries,
        "evaluated_on": f"{name}/{te or va}",
        "targets": checks,
        "settings": {**settings.to_dict(), "seed": seeds[0]},
        "report": report,  # of the first seed
    }
    lines = [f"- seeds: {', '.join(map(str, seeds))} (the same training rows for each)",
             f"- wall time: {wall:.0f} s (training {train_seconds:.0f} s, "
             f"{record['train_examples_per_second']} examples/s)",
             *(f"- seed {seed}: resumed from the epoch-{epoch} checkpoint an earlier process "
               f"wrote, {max(settings.epochs - epoch, 0)} epoch(s) trained in this one (the "
               f"wall time and examples/s cover only those)" for seed, epoch in resumed.items()),
             f"- train examples: {len(train):,}; evaluated on {record['evaluated_on']} "
             f"({report['num_examples']:,} examples)",
             *(f"- {m}: {mean_spread(c['over_seeds'])}, mean ± sample std over seeds "
               f"(target >= {c['target']}: {'met' if c['met'] else 'NOT met'} by the mean)"
               for m, c in checks.items()),
             *(f"- {m}: {mean_spread(summaries[m])}" for m in summaries if m not in checks),
             "",
             f"Report of the first seed ({seeds[0]}):", "", "```", result.report.to_text(),
             "```", ""]
    write_result(f"finetune_{args.task}", record, "\n".join(lines),
                 title=f"Fine-tuning benchmark: {args.task}", out_dir=args.out)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
