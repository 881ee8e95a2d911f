"""End-to-end fine-tuning throughput, raw text to weight updates, batch 32, SST-2 rows.

    KBF_DATA_DIR=../shared/data python bench/finetune_throughput.py [--batches 40]

Runs side by side, on the same rows and the same all-MiniLM-L6-v2 size:
  keras_bert_ft      C++ tokenizer, tf.data with length bucketing + dynamic padding, model.fit;
                     the pooler head over [CLS], as HF's BertForSequenceClassification and
                     keras-hub's BertTextClassifier have
  keras_bert_ft_mean_pooling
                     the same with mean pooling, our fine-tuning recipe's default head (it
                     reads every position of the last block, so it runs all of that block)
  keras_bert_ft_unbucketed
                     the same without bucketing, on the plain loop's batches (rows in order);
                     keras_bert_ft_unbucketed / hf_torch is the same batching on both sides
  hf_torch           HF transformers + PyTorch (CPU), fast tokenizer per batch, dynamic padding,
                     batches in row order (a plain loop)
  hf_torch_grouped   the same model and optimizer with HF's best practice: tokenized once,
                     `group_by_length` batches (HF's LengthGroupedSampler), DataCollatorWithPadding;
                     keras_bert_ft / hf_torch_grouped compares best practice with best practice
  keras_hub          keras-hub BertTextClassifier with its own preprocessor, sequence length 128
Each first runs a few warm-up batches (graph tracing), then times `--batches` batches
including tokenization. Prints examples/s and the ratios; writes bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from _common import minilm_dir, timed, write_result

BATCH = 32


def bench_ours(texts, labels, warmup, bucket: bool = True, pooling: str = "pooled"):
    import numpy as np

    from keras_bert_ft.checkpoints import load_pretrained
    from keras_bert_ft.data import make_dataset
    from keras_bert_ft.models import BertClassifier
    from keras_bert_ft.training import compile_classifier

    encoder, tok, _ = load_pretrained("all-minilm-l6-v2")
    model = BertClassifier(encoder, 2, pooling=pooling, tokenizer=tok)
    compile_classifier(model, total_steps=1000)
    n_warm = warmup * BATCH
    warm = make_dataset(texts[:n_warm], np.array(labels[:n_warm]), tok, batch_size=BATCH,
                        shuffle=bucket, seed=0, bucket=bucket)  # fmt: skip
    model.fit(warm, epochs=1, verbose=0)
    start = time.perf_counter()
    ds = make_dataset(texts[n_warm:], np.array(labels[n_warm:]), tok, batch_size=BATCH,
                      shuffle=bucket, seed=0, bucket=bucket)  # fmt: skip
    model.fit(ds, epochs=1, verbose=0)
    return time.perf_counter() - start


def hf_setup():
    """Fast tokenizer, MiniLM classifier in training mode, AdamW, and one training step."""
    import torch
    from transformers import BertForSequenceClassification, BertTokenizerFast

    torch.set_num_threads(os.cpu_count() or 1)
    path = minilm_dir()
    tok = BertTokenizerFast(str(path / "vocab.txt"), do_lower_case=True)
    model = BertForSequenceClassification.from_pretrained(str(path), num_labels=2)
    model.train()
    # fused=True: HF Trainer's default optimizer (`adamw_torch_fused`) with torch >= 2.8.
    opt = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=0.01, fused=True)

    def train_step(enc, y):
        loss = model(**enc, labels=torch.tensor(y)).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad()

    return tok, train_step


def bench_hf(texts, labels, warmup):
    """Batches in row order, each tokenized and padded to its longest row when it is used."""
    tok, train_step = hf_setup()

    def step(i):
        enc = tok(texts[i * BATCH:(i + 1) * BATCH], padding="longest", truncation=True,
                  max_length=128, return_tensors="pt")  # fmt: skip
        train_step(enc, labels[i * BATCH:(i + 1) * BATCH])

    return timed(step, range(len(texts) // BATCH), warmup)


def bench_hf_grouped(texts, labels, warmup):
    """HF's own best practice: the texts tokenized once up front (as `datasets.map` does),
    batches ordered by `Trainer(group_by_length=True)`'s sampler (LengthGroupedSampler:
    random 50-batch windows, longest first within each), each padded by
    `DataCollatorWithPadding` to its longest row. Tokenizing is timed too."""
    import torch
    from transformers import DataCollatorWithPadding
    from transformers.trainer_pt_utils import LengthGroupedSampler

    tok, train_step = hf_setup()
    collate = DataCollatorWithPadding(tok, padding="longest", return_tensors="pt")

    def run(rows, ys):
        features = tok(rows, truncation=True, max_length=128)["input_ids"]
        sampler = LengthGroupedSampler(BATCH, lengths=[len(f) for f in features],
                                       generator=torch.Generator().manual_seed(0))
        order = list(sampler)
        for b in range(len(order) // BATCH):
            idx = order[b * BATCH:(b + 1) * BATCH]
            enc = collate([{"input_ids": features[i]} for i in idx])
            train_step(enc, [ys[i] for i in idx])

    n_warm = warmup * BATCH
    run(texts[:n_warm], labels[:n_warm])
    start = time.perf_counter()
    run(texts[n_warm:], labels[n_warm:])
    return time.perf_counter() - start


def bench_keras_hub(texts, labels, warmup):
    import keras_hub
    import numpy as np

    from keras_bert_ft.checkpoints import load_pretrained, to_keras_hub

    encoder, _, _ = load_pretrained("all-minilm-l6-v2")
    backbone = to_keras_hub(encoder)
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=str(minilm_dir() / "vocab.txt"),
                                               lowercase=True)  # fmt: skip
    pre = keras_hub.models.BertTextClassifierPreprocessor(tokenizer, sequence_length=128)
    clf = keras_hub.models.BertTextClassifier(backbone, 2, preprocessor=pre)
    clf.compile(optimizer=__import__("keras").optimizers.AdamW(5e-5))
    n_warm = warmup * BATCH
    clf.fit(x=np.array(texts[:n_warm]), y=np.array(labels[:n_warm]), batch_size=BATCH,
            epochs=1, verbose=0)  # fmt: skip
    start = time.perf_counter()
    clf.fit(x=np.array(texts[n_warm:]), y=np.array(labels[n_warm:]), batch_size=BATCH,
            epochs=1, verbose=0)  # fmt: skip
    return time.perf_counter() - start


def bench_ours_unbucketed(texts, labels, warmup):
    """Ours on the plain loop's batches (rows in order, each batch padded to its longest
    row): no bucketing; the transformer blocks skip the padding instead."""
    return bench_ours(texts, labels, warmup, bucket=False)


def bench_ours_mean_pooling(texts, labels, warmup):
    """Ours with mean pooling, the head `keras_bert_ft.training.finetune` defaults to."""
    return bench_ours(texts, labels, warmup, pooling="mean")


RUNNERS = {"keras_bert_ft": bench_ours, "keras_bert_ft_mean_pooling": bench_ours_mean_pooling,
           "keras_bert_ft_unbucketed": bench_ours_unbucketed,
           "hf_torch": bench_hf,
           "hf_torch_grouped": bench_hf_grouped, "keras_hub": bench_keras_hub}


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--batches", type=int, default=40, help="timed batches per framework")
    p.add_argument("--warmup", type=int, default=8, help="untimed batches first")
    p.add_argument("--only", choices=sorted(RUNNERS), action="append")
    p.add_argument("--rounds", type=int, default=1,
                   help="time every framework this many times (alternating); report medians")
    p.add_argument("--no-write", action="store_true", help="print, do not write results/")
    p.add_argument("--name", default="finetune_throughput", help="results file name")
    args = p.parse_args()

    from keras_bert_ft.data import load_dataset

    wall_start = time.perf_counter()
    train = load_dataset("sst2", "train")
    n = (args.warmup + args.batches) * BATCH
    texts, labels = list(train.texts[:n]), [int(y) for y in train.labels[:n]]
    results = {}
    if args.only and len(args.only) == 1:
        # Child mode: time one framework in this fresh process, print JSON.
        seconds = RUNNERS[args.only[0]](texts, labels, args.warmup)
        print("RESULT " + json.dumps({"seconds": seconds}), flush=True)
        return 0
    names = args.only or list(RUNNERS)
    by_round = {name: [] for name in names}
    for _ in range(args.rounds):
        for name in names:
            # One process per framework: TF's and PyTorch's thread pools in one
            # process slow each other down, which would distort the comparison.
            cmd = [sys.executable, __file__, "--only", name, "--batches", str(args.batches),
                   "--warmup", str(args.warmup)]  # fmt: skip
            proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
            line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")][-1]
            by_round[name].append(json.loads(line[7:])["seconds"])
            print(f"{name:>14}: {args.batches * BATCH / by_round[name][-1]:8.2f} examples/s "
                  f"({args.batches} batches of {BATCH} in {by_round[name][-1]:.1f} s)",
                  flush=True)  # fmt: skip
    for name, times in by_round.items():
        seconds = statistics.median(times)
        results[name] = {"seconds": round(seconds, 2),
                         "examples_per_second": round(args.batches * BATCH / seconds, 2),
                         "seconds_by_round": [round(t, 2) for t in times]}
    ratios = {}
    pairs = (("keras_bert_ft", "hf_torch", 1.5), ("keras_bert_ft", "hf_torch_grouped", 1.5),
             ("keras_bert_ft", "keras_hub", 5.0), ("keras_bert_ft_unbucketed", "hf_torch", None),
             ("keras_bert_ft_mean_pooling", "hf_torch_grouped", None))
    for mine, other, target in pairs:
        if mine in results and other in results:
            r = results[mine]["examples_per_second"] / results[other]["examples_per_second"]
            met = None if target is None else r >= target
            ratios[f"{mine}/{other}"] = {"ratio": round(r, 2), "target": target, "met": met}
            verdict = "" if target is None else (
                f" (target >= {target}x: {'met' if met else 'NOT met'})")
            print(f"{mine} / {other}: {r:.2f}x{verdict}")
    payload = {
        "rows": f"SST-2 train rows 0..{n - 1} (first {args.warmup} batches untimed)",
        "batch_size": BATCH,
        "rounds": args.rounds,
        "results": results,
        "ratios": ratios,
        "wall_seconds": round(time.perf_counter() - wall_start, 1),
    }
    labels_of = {"keras_bert_ft": "keras_bert_ft: C++ tokenizer, tf.data bucketing + dynamic "
                 "padding, `model.fit`, pooler head (as HF's and keras-hub's)",
                 "keras_bert_ft_mean_pooling": ("keras_bert_ft as above with mean pooling (our "
                                                "fine-tuning recipe's default head)"),
                 "keras_bert_ft_unbucketed": ("keras_bert_ft without bucketing: batches in row "
                                              "order padded to their longest row, as HF's plain "
                                              "loop"),
                 "hf_torch": ("HF transformers + PyTorch, plain loop: batches in row order, fast "
                              "tokenizer per batch, dynamic padding"),
                 "hf_torch_grouped": ("HF transformers + PyTorch, HF best practice: tokenized "
                                      "once, `group_by_length` batches (LengthGroupedSampler), "
                                      "DataCollatorWithPadding"),
                 "keras_hub": ("keras-hub BertTextClassifier + its preprocessor, "
                               "sequence length 128")}
    rows = [f"| {labels_of[k]} | {r['seconds']:.1f} | {r['examples_per_second']:.2f} |"
            for k, r in results.items()]  # fmt: skip
    md = "\n".join([
        f"End to end from raw SST-2 train rows to weight updates, batch {BATCH}, all-MiniLM-L6-v2 "
        f"size; each framework in its own process, {args.warmup} untimed warm-up batches, then "
        f"{args.batches} timed batches ({args.batches * BATCH} examples); {args.rounds} "
        "round(s) of every framework in turn, each figure the median over the rounds.", "",
        "| framework | timed s | examples/s |", "| --- | ---: | ---: |", *rows, "",
        *(f"- {k.replace('/', ' / ')}: {r['ratio']:.2f}x" + (
            "" if r["target"] is None else
            f" (target >= {r['target']}x: {'met' if r['met'] else 'NOT met'})")
          for k, r in ratios.items()),
        "- keras_bert_ft / hf_torch_grouped is best practice against best practice (both "
        "group rows by length); keras_bert_ft / hf_torch is against HF's plain loop; "
        "keras_bert_ft_unbucketed / hf_torch is the same batching policy on both sides "
        "(rows in order, each batch padded to its longest row). Every row but "
        "keras_bert_ft_mean_pooling has the same head: the pooler (dense + tanh over [CLS]), "
        "dropout, a dense layer.",
        f"- TF_ENABLE_ONEDNN_OPTS in every framework's process: "
        f"{os.environ.get('TF_ENABLE_ONEDNN_OPTS', 'unset')} (importing keras_bert_ft sets 1 "
        "where nobody chose; the keras-hub process inherits it)",
        f"- wall time of the whole run: {payload['wall_seconds']:.0f} s"])  # fmt: skip
    print(md)
    if not args.no_write:
        write_result(args.name, payload, md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
