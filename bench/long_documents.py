"""Long IMDB reviews at max_length 256: head-only vs head+tail vs windows with pooled scores.

    python bench/long_documents.py [--train-examples 1500] [--epochs 1] ...

all-MiniLM-L6-v2 (mean pooling head), fine-tuned once per variant with the
same budget: the same seeded sample of train reviews, the same epochs, batch
size and learning-rate schedule (the windowed variant trains on every window
of those reviews, each labelled with its review's label, so it sees more
rows). `head_tokens`, the inference stride and the window pooling are chosen
on a validation sample carved from train.jsonl (disjoint from the training
sample); the test set, a fixed seeded sample of test.jsonl, is scored once per
variant and seed. With --seeds N every variant trains N times (seeds --seed,
--seed + 1, ...) on the same reviews, and the table gives the mean ± sample
standard deviation of test accuracy and of its difference from head-only.
Writes bench/results/long_documents.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np
from _common import RESULTS_DIR, data_dir, mean_spread, seed_summary, write_result

BREAKS = re.compile(r"(?:\s*<br\s*/?>\s*)+", re.IGNORECASE)  # HTML line breaks read as a space


def read_reviews(path: Path) -> tuple[list[str], np.ndarray]:
    texts, labels = [], []
    with path.open(encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            texts.append(BREAKS.sub(" ", row["text"]))
            labels.append(int(row["label"]))
    return texts, np.asarray(labels, dtype=np.int64)


def take(texts, labels, idx):
    return [texts[i] for i in idx], labels[idx]


def build(args, truncation="longest_first", head_tokens=None, window_stride=None):
    import keras

    from keras_bert_ft.checkpoints import load_pretrained
    from keras_bert_ft.models import BertClassifier

    keras.utils.set_random_seed(args.run_seed)
    encoder, tokenizer, _ = load_pretrained("all-minilm-l6-v2")
    return BertClassifier(
        encoder, 2, pooling="mean", label_names=["neg", "pos"], tokenizer=tokenizer,
        max_length=args.max_length, truncation=truncation, head_tokens=head_tokens,
        window_stride=window_stride, pairs=False)


def train(model, texts, labels, args, windows: bool) -> dict:
    from keras_bert_ft.data.pipeline import make_dataset, make_window_dataset
    from keras_bert_ft.training.trainer import compile_classifier

    kw = dict(batch_size=args.batch_size, shuffle=True, seed=args.run_seed)
    if windows:
        ds, docs = make_window_dataset(texts, labels, model.tokenizer, max_length=model.max_length,
                                       stride=args.train_stride, **kw)
        rows = len(docs)
    else:
        ds = make_dataset(texts, labels, model.tokenizer, max_length=model.max_length,
                          truncation=model.truncation, head_tokens=model.head_tokens, **kw)
        rows = len(texts)
    steps = int(ds.cardinality()) * args.epochs
    compile_classifier(model, total_steps=steps, learning_rate=args.learning_rate)
    start = time.perf_counter()
    model.fit(ds, epochs=args.epochs, verbose=2)
    seconds = time.perf_counter() - start
    return {"rows": rows, "steps": steps, "seconds": round(seconds, 1),
            "reviews_per_second": round(len(texts) * args.epochs / seconds, 2),
            "rows_per_second": round(rows * args.epochs / seconds, 2)}


def accuracy(model, texts, labels, batch_size) -> tuple[float, float]:
    """Accuracy and reviews/s (tokenizing, windows and pooling included).

    The reviews go to `predict_texts` sorted by length, so that each batch is
    padded little (the scores are put back in order): the same for every variant.
    """
    start = time.perf_counter()
    order = np.argsort([len(t) for t in texts], kind="stable")
    sorted_scores = model.predict_texts([texts[i] for i in order], batch_size=batch_size)
    scores = np.empty_like(sorted_scores)
    scores[order] = sorted_scores
    seconds = time.perf_counter() - start
    return float((scores.argmax(axis=1) == labels).mean()), len(texts) / seconds


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=str(data_dir() / "imdb"))
    p.add_argument("--train-examples", type=int, default=1500)
    p.add_argument("--val-examples", type=int, default=400)
    p.add_argument("--test-examples", type=int, default=5000,
                   help="score the first N of the fixed 5,000-review test sample")
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--eval-batch-size", type=int, default=32)
    p.add_argument("--learning-rate", type=float, default=5e-5)
    p.add_argument("--train-stride", type=int, default=64,
                   help="stride of the training windows of the windowed variant")
    p.add_argument("--head-candidates", type=int, nargs="+", default=[0, 63, 127])
    p.add_argument("--stride-candidates", type=int, nargs="+", default=[0, 64, 127])
    p.add_argument("--seed", type=int, default=0,
                   help="draws the train/validation reviews and, with +1, the test sample; "
                        "also the first training seed")
    p.add_argument("--seeds", type=int, default=1, help="training seeds per variant")
    p.add_argument("--variants", nargs="+", default=["head", "windows", "head_tail"],
                   choices=["head", "windows", "head_tail"])
    p.add_argument("--name", default="long_documents", help="results file name")
    p.add_argument("--out", default=str(RESULTS_DIR))
    args = p.parse_args()
    if args.seeds < 1:
        p.error(f"--seeds must be at least 1, got {args.seeds}")

    data = Path(args.data)
    train_texts, train_labels = read_reviews(data / "train.jsonl")
    test_texts, test_labels = read_reviews(data / "test.jsonl")
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(train_texts))
    tr = take(train_texts, train_labels, order[: args.train_examples])
    va = take(train_texts, train_labels,
              order[args.train_examples : args.train_examples + args.val_examples])
    # The fixed sample: 5,000 seeded test reviews; a smaller run scores a prefix of it.
    sample = np.random.default_rng(args.seed + 1).permutation(len(test_texts))[:5000]
    te = take(test_texts, test_labels, sample[: args.test_examples])

    from keras_bert_ft.checkpoints import load_pretrained

    tokenizer = load_pretrained("all-minilm-l6-v2")[1]
    test_lengths = np.asarray([len(tokenizer.token_ids(t)) for t in te[0]])
    runs = {name: [] for name in args.variants}  # variant -> one result per seed
    for seed in range(args.seed, args.seed + args.seeds):
        args.run_seed = seed
        # 1. head only (the default: cut at the end)
        if "head" in args.variants:
            runs["head"].append(run_head(args, tr, te))
            write(args, runs, test_lengths)
        if "windows" in args.variants:
            runs["windows"].append(run_windows(args, tr, va, te, tokenizer))
            write(args, runs, test_lengths)
        if "head_tail" in args.variants:
            runs["head_tail"].append(run_head_tail(args, tr, va, te))
            write(args, runs, test_lengths)
    return 0


def run_head(args, tr, te) -> dict:
    model = build(args)
    fit = train(model, *tr, args, windows=False)
    acc, speed = accuracy(model, *te, args.eval_batch_size)
    return {"seed": args.run_seed, "name": "head only (cut at the end)", "choice": "-",
            "train": fit, "test_accuracy": acc, "test_reviews_per_s": speed}


def run_windows(args, tr, va, te, tokenizer) -> dict:
    from keras_bert_ft.data.pipeline import encode_windows, make_tf_dataset
    from keras_bert_ft.long_documents import pool_window_scores

    # 2. windows: train on every window, choose inference stride and pooling on validation
    model = build(args, window_stride=args.train_stride)
    fit = train(model, *tr, args, windows=True)
    val = {}
    for stride in args.stride_candidates:
        encoded, docs = encode_windows(tokenizer, va[0], max_length=args.max_length,
                                       stride=stride)
        scores = model.predict(make_tf_dataset(encoded, batch_size=args.eval_batch_size),
                               verbose=0)
        for pooling in ("mean", "max"):
            pooled = pool_window_scores(scores, docs, len(va[0]), pooling, softmax=True)
            val[f"{stride}/{pooling}"] = float((pooled.argmax(axis=1) == va[1]).mean())
    best = max(val, key=val.get)
    stride, pooling = best.split("/")
    model.window_stride, model.window_pooling = int(stride), pooling
    acc, speed = accuracy(model, *te, args.eval_batch_size)
    return {"seed": args.run_seed,
            "name": (f"windows, stride {stride}, {pooling} of probabilities "
                     f"(trained with stride {args.train_stride})"),
            "choice": f"stride/pooling: {val}", "train": fit, "validation": val,
            "stride": int(stride), "pooling": pooling, "test_accuracy": acc,
            "test_reviews_per_s": speed}  # fmt: skip


def run_head_tail(args, tr, va, te) -> dict:
    room = args.max_length - 2
    # 3. head + tail: train with the default head, choose head_tokens on validation
    model = build(args, truncation="head_tail")
    fit = train(model, *tr, args, windows=False)
    val = {}
    for h in args.head_candidates:
        model.head_tokens = h
        val[h] = accuracy(model, *va, args.eval_batch_size)[0]
    best_h = max(val, key=lambda h: (val[h], -abs(h - room // 4)))
    model.head_tokens = best_h
    acc, speed = accuracy(model, *te, args.eval_batch_size)
    return {"seed": args.run_seed,
            "name": f"head+tail, head_tokens={best_h} (trained with {room // 4})",
            "choice": f"head_tokens: {val}", "train": fit, "validation": val,
            "head_tokens": best_h, "test_accuracy": acc, "test_reviews_per_s": speed}


def write(args, runs: dict, test_lengths: np.ndarray) -> None:
    """Write the results so far (called after each variant of each seed).

    Accuracies are summarised over the seeds each variant has finished; the
    difference from head-only pairs runs of the same seed. Speeds: the first seed's.
    """
    room = args.max_length - 2
    seeds = list(range(args.seed, args.seed + args.seeds))
    head_by_seed = {r["seed"]: r["test_accuracy"] for r in runs.get("head", [])}
    record = {"args": {k: v for k, v in vars(args).items() if k != "run_seed"},
              "seeds": seeds, "variants": {}}
    lines = [
        f"all-MiniLM-L6-v2, mean pooling head, AdamW lr {args.learning_rate:g} with warm-up and "
        f"decay, batch {args.batch_size}, {args.epochs} epoch(s) on the same "
        f"{args.train_examples:,} train reviews for every variant (drawn with seed "
        f"{args.seed}; training seeds {', '.join(map(str, seeds))}); choices "
        f"made on {args.val_examples} other train reviews; test: the first "
        f"{args.test_examples:,} of a fixed seeded sample of 5,000 reviews of test.jsonl "
        f"(seed {args.seed + 1}). "
        f"{(test_lengths > room).mean():.1%} of these test reviews have more than {room} "
        f"wordpieces (median {int(np.median(test_lengths))}).", "",
        "| variant | test accuracy | vs head only | test reviews/s | train reviews/s "
        "(rows/s) | train rows |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for variant, done in runs.items():
        if not done:
            continue
        acc = seed_summary([r["test_accuracy"] for r in done])
        gains = [100 * (r["test_accuracy"] - head_by_seed[r["seed"]])
                 for r in done if r["seed"] in head_by_seed]
        gain = seed_summary(gains) if gains else None
        record["variants"][variant] = {"runs": done, "test_accuracy": acc,
                                       "vs_head_points": gain}  # fmt: skip
        first = done[0]
        lines.append(f"| {first['name']} | {mean_spread(acc)} | "
                     f"{mean_spread(gain, 2) + ' pt' if gain else '-'} | "
                     f"{first['test_reviews_per_s']:.1f} | {first['train']['reviews_per_second']} "
                     f"({first['train']['rows_per_second']}) | {first['train']['rows']} |")
    lines += ["", "Validation accuracies behind the choices (per seed; the name above is the "
              "first seed's choice):", ""]
    lines += [f"- seed {r['seed']}, {r['name']}: {r['choice']}"
              for done in runs.values() for r in done if r["choice"] != "-"]
    lines += ["", "Speeds measured under load from other jobs (see the load average above); "
              "compare them with care.", ""]
    write_result(args.name, record, "\n".join(lines), out_dir=args.out,
                 title=f"Long documents: IMDB at max_length {args.max_length}")
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    sys.exit(main())
