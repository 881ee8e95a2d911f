"""Domain-adaptive MLM on IMDB: continue masked-LM pretraining of all-MiniLM-L6-v2 on
the unlabelled reviews, then fine-tune on 1,000 labelled train reviews; compare test
accuracy (a fixed 5,000-review sample of test.jsonl) with fine-tuning the unadapted
model the same way, over several seeds. Also the held-out MLM loss before and after.

    KBF_DATA_DIR=../shared/data python bench/mlm_imdb.py --steps 300 --seeds 0 1 2

Writes bench/results/mlm_imdb.json and .md. The budget (steps, documents, lengths,
epochs) is in the result. Nothing is chosen by its test score: the settings are
fixed before the run. With --select-on-validation the MLM step count is chosen
among the checkpoints (kept as snapshots) by the validation accuracy of a model
fine-tuned from each with the first seed; only the chosen one is tested. Finished
fine-tunings are kept in the work folder: the same command resumes after an interruption.
--head-warmup-steps trains the fresh MLM head alone first (encoder frozen).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from _common import atomic_write, data_dir, seed_summary, write_result


def imdb_dir() -> Path:
    return data_dir() / "imdb"


def labelled(path: Path, n: int, seed: int, exclude=()):
    """A fixed random sample of n labelled reviews (as a TextDataset)."""
    from keras_bert_ft.data.labels import LabelVocabulary
    from keras_bert_ft.data.readers import from_columns

    # Lines split at "\n" only: reviews hold U+2028 and the like, which str.splitlines
    # (and so read_jsonl) would take for line ends.
    with open(path, encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
    values = {"text": [r["text"] for r in records], "label": [str(r["label"]) for r in records]}
    ds = from_columns(values, list(range(1, len(records) + 1)),
                      {"text": "text", "pair": None, "label": "label"}, path=str(path),
                      label_vocab=LabelVocabulary(("0", "1")))
    order = [i for i in np.random.default_rng(seed).permutation(len(ds)) if i not in exclude]
    return ds.subset(np.asarray(order[:n])), set(order[:n])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--max-documents", type=int, default=20000)
    p.add_argument("--pretrain-batch-size", type=int, default=32)
    p.add_argument("--pretrain-max-length", type=int, default=128)
    p.add_argument("--pretrain-learning-rate", type=float, default=1e-4)
    p.add_argument("--train-examples", type=int, default=1000)
    p.add_argument("--test-examples", type=int, default=5000)
    p.add_argument("--validation-examples", type=int, default=500)
    p.add_argument("--steps-per-checkpoint", type=int, default=None)
    p.add_argument("--head-warmup-steps", type=int, default=0)
    p.add_argument("--head-warmup-learning-rate", type=float, default=1e-3)
    p.add_argument("--select-on-validation", action="store_true",
                   help="choose the MLM checkpoint by fine-tuned validation accuracy")
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--work-dir", default="/tmp/kbf_mlm_imdb")
    p.add_argument("--out-dir", default=None, help="where the result goes (bench/results)")
    args = p.parse_args()

    from keras_bert_ft.pretraining.run import PretrainSettings, pretrain
    from keras_bert_ft.training.finetune import FinetuneSettings, finetune

    work = Path(args.work_dir)
    started = time.time()
    settings = PretrainSettings(
        text_files=[str(imdb_dir() / "unsup.jsonl")], model="all-minilm-l6-v2",
        steps=args.steps, batch_size=args.pretrain_batch_size,
        max_length=args.pretrain_max_length, learning_rate=args.pretrain_learning_rate,
        max_documents=args.max_documents, validation_fraction=0.02,
        steps_per_checkpoint=args.steps_per_checkpoint or max(1, args.steps // 3),
        head_warmup_steps=args.head_warmup_steps,
        head_warmup_learning_rate=args.head_warmup_learning_rate,
        snapshots=args.select_on_validation, seed=0, output_dir=str(work / "adapted"),
        verbose=2)
    result = pretrain(settings)
    pretrain_seconds = time.time() - started

    train, used = labelled(imdb_dir() / "train.jsonl", args.train_examples, seed=0)
    validation, _ = labelled(imdb_dir() / "train.jsonl", args.validation_examples, seed=1,
                             exclude=used)
    test, _ = labelled(imdb_dir() / "test.jsonl", args.test_examples, seed=0)
    runs = {"unadapted": [], "adapted": []}

    def fine_tuned(model: str, seed: int, test_set):
        s = FinetuneSettings(model=model, epochs=args.epochs, max_length=args.max_length,
                             seed=seed, verbose=2)
        return finetune(train, validation, test_set, s).report.accuracy

    adapted_dir, selection = result.output_dir, {}
    if args.select_on_validation:
        # Validation accuracy (first seed) of the unadapted model and of every snapshot;
        # the test reviews play no part in the choice.
        candidates = {"unadapted": "all-minilm-l6-v2"}
        for snap in sorted((Path(result.output_dir) / "snapshots").glob("step-*")):
            candidates[snap.name] = str(snap)
        # Kept in the work folder, so that a rerun of the same command goes on after an
        # interruption; other settings start the choice over.
        key = {k: v for k, v in vars(args).items() if k not in ("out_dir", "seeds")}
        key["first_seed"] = args.seeds[0]
        done_file = work / "validation_by_snapshot.json"
        saved = json.loads(done_file.read_text()) if done_file.exists() else {}
        done = saved.get("accuracy", {}) if saved.get("settings") == key else {}
        for name, model in candidates.items():
            if name not in done:
                done[name] = fine_tuned(model, args.seeds[0], None)
                atomic_write(done_file, json.dumps({"settings": key, "accuracy": done}))
            selection[name] = done[name]
            print(f"validation accuracy, {name}: {selection[name]:.4f}", flush=True)
        chosen = max((n for n in selection if n != "unadapted"), key=selection.get)
        adapted_dir = candidates[chosen]

    def report(seeds_done):
        summary = {name: seed_summary(xs) for name, xs in runs.items()}
        gain = 100 * (summary["adapted"]["mean"] - summary["unadapted"]["mean"])
        payload = {
            "budget": {k: v for k, v in vars(args).items() if k != "work_dir"},
            "seeds_done": seeds_done,
            "pretrain_seconds": round(pretrain_seconds, 1),
            "heads_loaded_from_source": result.heads_loaded,
            "heldout_mlm_before": result.validation_before,
            "heldout_mlm_after": result.validation_after,
            "heldout_mlm_after_head_warmup": result.validation_after_head_warmup,
            "validation_accuracy_by_snapshot": selection,
            "adapted_model": adapted_dir,
            "test_accuracy": summary, "gain_points": gain, "target_points": 1.5,
            "met": gain >= 1.5,
        }
        rows = "\n".join(
            f"| {name} | {summary[name]['mean']:.4f} | {summary[name]['std']:.4f} | "
            f"{', '.join(f'{x:.4f}' for x in summary[name]['values'])} |" for name in runs)
        b, a = result.validation_before, result.validation_after
        md = (f"Budget: continued MLM for {args.steps} steps of {args.pretrain_batch_size} "
              f"sequences x {args.pretrain_max_length} tokens on the first "
              f"{args.max_documents} unlabelled reviews (2% of them held out), lr "
              f"{args.pretrain_learning_rate}"
              + (f" after {args.head_warmup_steps} steps training the fresh head alone "
                 f"(lr {args.head_warmup_learning_rate:g})" if args.head_warmup_steps else "")
              + f", {pretrain_seconds / 60:.1f} min on this "
              f"2-core CPU; then fine-tuning on {args.train_examples} train "
              f"reviews, max_length {args.max_length}, {args.epochs} epochs, default recipe; "
              f"test on a fixed {args.test_examples}-review sample of test.jsonl. Seeds done: "
              f"{seeds_done} of {args.seeds}. The MLM head of all-MiniLM-L6-v2 is absent: it "
              f"started fresh (projection tied to the word embeddings).\n\n"
              f"Held-out MLM: loss {b['mlm_loss']:.3f} -> {a['mlm_loss']:.3f}, accuracy "
              f"{b['mlm_accuracy']:.3f} -> {a['mlm_accuracy']:.3f}\n\n"
              + (f"Checkpoint chosen on the {args.validation_examples} validation reviews "
                 f"(fine-tuned with seed {args.seeds[0]}): {Path(adapted_dir).name}; "
                 "validation accuracy: " + ", ".join(f"{k} {v:.4f}" for k, v in
                                                     selection.items()) + "\n\n"
                 if selection else "")
              + f"| model | mean test accuracy | std | runs |\n|---|---|---|---|\n{rows}\n\n"
              f"Gain: {gain:+.2f} points (target +1.5: {'met' if gain >= 1.5 else 'NOT met'}).")
        write_result("mlm_imdb", payload, md, out_dir=args.out_dir)
        print(json.dumps(payload, indent=2), flush=True)

    # Each finished test run is kept in the work folder too (keyed by the settings and
    # the model chosen), so that a rerun of the same command does only what is left.
    test_key = {k: v for k, v in vars(args).items() if k != "out_dir"}
    test_key["adapted_model"] = adapted_dir
    test_file = work / "test_runs.json"
    saved = json.loads(test_file.read_text()) if test_file.exists() else {}
    finished = saved.get("accuracy", {}) if saved.get("settings") == test_key else {}
    for i, seed in enumerate(args.seeds):
        for name, model in (("unadapted", "all-minilm-l6-v2"), ("adapted", adapted_dir)):
            t0 = time.time()
            run = f"{name}/{seed}"
            if run not in finished:
                finished[run] = fine_tuned(model, seed, test)
                atomic_write(test_file, json.dumps({"settings": test_key, "accuracy": finished}))
            runs[name].append(finished[run])
            print(f"seed {seed} {name}: test accuracy {finished[run]:.4f} "
                  f"({time.time() - t0:.0f}s)", flush=True)
        report(args.seeds[:i + 1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
