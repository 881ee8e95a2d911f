"""Serving latency on this CPU: raw-text signature vs id signature vs keras-hub.

Exports all-MiniLM-L6-v2 with a 2-class head (`export_for_serving`), loads it
with `tf.saved_model.load`, and measures on SST-2 dev sentences:

- `text_signature`: `serving_default` on raw strings (in-graph tokenization);
- `ids_signature`: the C++ tokenizer on the host, then `serve_ids`;
- `tokenize_only_*`: the tokenization alone, in-graph (`ServingTokenizer`) and C++;
- `keras_hub`: keras-hub's `BertTextClassifier` of the same size (random
  weights) with its own preprocessor, exported with `keras.export.ExportArchive`
  as one raw-string endpoint (its preprocessor pads to the fixed sequence length).

Batch 1: p50/p99 latency of single requests. Batch 64: texts per second.
These are in-process SavedModel calls; TF Serving itself (no Docker here) adds
its own RPC overhead on top.

Usage: python bench/serving_latency.py [--requests 200] [--batches 8]

`--cpu-tuning` measures instead what the docs' "CPU tuning" section needs, written
to results/serving_latency_cpu_tuning.md: the export loaded with
`tf.saved_model.load` alone (no Keras) in a fresh process per thread setting
(TensorFlow fixes its thread pools when it starts), `serving_default` on raw text
at batch 1, 8 and 32 after warm-up calls, p50/p90 latency per call and texts/s,
for a few inter-/intra-op thread counts.

Usage: python bench/serving_latency.py --cpu-tuning [--calls 60] [--threads 1x1,1x2,2x1,0x0]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import sst2_sentences, write_result

BATCH = 64
MAX_LENGTH = 128


def measure(call, texts: list[str], requests: int, batches: int) -> dict:
    """p50/p99 latency (ms) of batch-1 calls and texts/s of batch-64 calls."""
    for text in texts[:5]:
        call([text])
    call(texts[:BATCH])
    latencies = []
    for i in range(requests):
        start = time.perf_counter()
        call([texts[i % len(texts)]])
        latencies.append((time.perf_counter() - start) * 1000)
    start = time.perf_counter()
    for b in range(batches):
        offset = (b * BATCH) % (len(texts) - BATCH)
        call(texts[offset:offset + BATCH])
    elapsed = time.perf_counter() - start
    return {"p50_ms": float(np.percentile(latencies, 50)),
            "p99_ms": float(np.percentile(latencies, 99)),
            "batch64_texts_per_s": batches * BATCH / elapsed}


def ours(workdir: Path):
    import keras
    import tensorflow as tf

    from keras_bert_ft.checkpoints import load_pretrained
    from keras_bert_ft.models import BertClassifier
    from keras_bert_ft.serving.export import IDS_SIGNATURE, TEXT_SIGNATURE, export_for_serving

    encoder, tokenizer, _ = load_pretrained("all-minilm-l6-v2")
    keras.utils.set_random_seed(0)
    model = BertClassifier(encoder, 2, tokenizer=tokenizer, max_length=MAX_LENGTH,
                           pooling="mean")
    path = export_for_serving(model, tokenizer, workdir / "minilm")
    loaded = tf.saved_model.load(str(path))
    by_text, by_ids = loaded.signatures[TEXT_SIGNATURE], loaded.signatures[IDS_SIGNATURE]

    def text_call(texts):
        return by_text(text=tf.constant(texts))["probabilities"].numpy()

    def ids_call(texts):
        encoded = tokenizer.encode_batch(texts, max_length=MAX_LENGTH, num_threads=1)
        return by_ids(**{k: tf.constant(v) for k, v in encoded.items()})["probabilities"].numpy()

    from keras_bert_ft.tokenizers.graph import ServingTokenizer

    serving_tokenizer = ServingTokenizer(tokenizer, max_length=MAX_LENGTH)
    in_graph = tf.function(serving_tokenizer.__call__, autograph=False,
                           input_signature=[tf.TensorSpec([None], tf.string)])

    def graph_tokenize(texts):
        return in_graph(tf.constant(texts))["input_word_ids"].numpy()

    def host_tokenize(texts):
        return tokenizer.encode_batch(texts, max_length=MAX_LENGTH, num_threads=1)

    return {"text_signature": text_call, "ids_signature": ids_call,
            "tokenize_only_in_graph": graph_tokenize, "tokenize_only_cpp": host_tokenize,
            }, tokenizer.vocab_file


def keras_hub_export(workdir: Path, vocab_file: str):
    import keras
    import keras_hub
    import tensorflow as tf

    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=30522, num_layers=6, num_heads=12, hidden_dim=384,
        intermediate_dim=1536, max_sequence_length=512)
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=vocab_file, lowercase=True)
    preprocessor = keras_hub.models.BertTextClassifierPreprocessor(
        tokenizer, sequence_length=MAX_LENGTH)
    classifier = keras_hub.models.BertTextClassifier(
        backbone, num_classes=2, preprocessor=preprocessor, activation="softmax")
    archive = keras.export.ExportArchive()
    archive.track(classifier)

    def serve(text):
        return classifier(preprocessor(text), training=False)

    archive.add_endpoint("serve", serve, input_signature=[tf.TensorSpec([None], tf.string)])
    path = workdir / "keras_hub"
    archive.write_out(str(path), verbose=False)
    loaded = tf.saved_model.load(str(path))  # kept alive by the closure: it owns the variables

    def call(texts):
        return loaded.serve(tf.constant(texts)).numpy()

    return call


# --------------------------------------------------------------------------- CPU tuning

TUNING_BATCHES = (1, 8, 32)
CALL_DIVISOR = {1: 1, 8: 2, 32: 4}  # fewer timed calls for the slower, larger batches
WARMUP_CALLS = 3


def measure_export(path: str, inter: int, intra: int, calls: int) -> dict:
    """In this (fresh) process: thread pools first, then load the export and time
    `serving_default` on raw text at each batch size of TUNING_BATCHES."""
    import tensorflow as tf

    tf.config.threading.set_inter_op_parallelism_threads(inter)
    tf.config.threading.set_intra_op_parallelism_threads(intra)
    import tensorflow_text  # noqa: F401  (registers the WordPiece kernels the export uses)

    start = time.perf_counter()
    serve = tf.saved_model.load(path).signatures["serving_default"]
    load_s = time.perf_counter() - start
    texts = sst2_sentences("dev.tsv")
    out = {"load_s": load_s}
    for batch in TUNING_BATCHES:
        n = max(5, calls // CALL_DIVISOR[batch])
        offsets = [(i * batch) % (len(texts) - batch) for i in range(n + WARMUP_CALLS)]
        first = None
        for i, offset in enumerate(offsets[:WARMUP_CALLS]):
            t0 = time.perf_counter()
            serve(text=tf.constant(texts[offset:offset + batch]))
            if i == 0:
                first = (time.perf_counter() - t0) * 1000
        latencies = []
        for offset in offsets[WARMUP_CALLS:]:
            t0 = time.perf_counter()
            serve(text=tf.constant(texts[offset:offset + batch]))["probabilities"].numpy()
            latencies.append((time.perf_counter() - t0) * 1000)
        out[str(batch)] = {"calls": n, "first_call_ms": first,
                           "p50_ms": float(np.percentile(latencies, 50)),
                           "p90_ms": float(np.percentile(latencies, 90)),
                           "texts_per_s": batch * n / (sum(latencies) / 1000)}
    return out


def cpu_tuning(args) -> int:
    import json
    import subprocess

    from keras_bert_ft.serving.export import export_for_serving

    settings = [tuple(int(x) for x in item.split("x")) for item in args.threads.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        import keras

        from keras_bert_ft.checkpoints import load_pretrained
        from keras_bert_ft.models import BertClassifier

        encoder, tokenizer, _ = load_pretrained("all-minilm-l6-v2")
        keras.utils.set_random_seed(0)
        model = BertClassifier(encoder, 2, tokenizer=tokenizer, max_length=MAX_LENGTH,
                               pooling="mean")
        path = export_for_serving(model, tokenizer, Path(tmp) / "minilm", serving_config=False)
        results = {}
        for inter, intra in settings:
            cmd = [sys.executable, __file__, "--_measure", str(path), "--inter", str(inter),
                   "--intra", str(intra), "--calls", str(args.calls)]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=True,
                                  env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
            results[f"{inter}x{intra}"] = json.loads(proc.stdout.strip().splitlines()[-1])
            print(f"inter {inter} x intra {intra}: {results[f'{inter}x{intra}']}", flush=True)
    rows = []
    for key, r in results.items():
        inter, intra = key.split("x")
        for batch in TUNING_BATCHES:
            b = r[str(batch)]
            rows.append(f"| {inter} | {intra} | {batch} | {b['p50_ms']:.1f} | "
                        f"{b['p90_ms']:.1f} | {b['texts_per_s']:.0f} | {b['first_call_ms']:.0f} |")
    markdown = (
        "all-MiniLM-L6-v2 + 2-class head (random head: latency only), exported with "
        "`export_for_serving` (max length 128, float32), loaded with `tf.saved_model.load` "
        "(no Keras) in a fresh process per thread setting; `serving_default` on raw SST-2 "
        f"dev sentences; {WARMUP_CALLS} warm-up calls per batch size, then timed calls "
        f"(batch 1: {args.calls} calls, batch 8: half, batch 32: a quarter). 0 threads means "
        "TensorFlow's default (one per core). Other work on the machine slows every row "
        "(see the load average above): compare rows of the same run only.\n\n"
        "| inter-op | intra-op | batch | p50 ms / call | p90 ms / call | texts/s | "
        "first call ms |\n|---:|---:|---:|---:|---:|---:|---:|\n" + "\n".join(rows) + "\n")
    write_result("serving_latency_cpu_tuning", {"results": results, "calls": args.calls,
                                                "batches": list(TUNING_BATCHES),
                                                "warmup_calls": WARMUP_CALLS}, markdown)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--cpu-tuning", action="store_true",
                        help="thread settings x batch 1/8/32 table (see the module docstring)")
    parser.add_argument("--calls", type=int, default=60, help="--cpu-tuning: batch-1 calls")
    parser.add_argument("--threads", default="1x1,1x2,2x1,0x0",
                        help="--cpu-tuning: INTERxINTRA thread settings, comma-separated")
    parser.add_argument("--_measure", help=argparse.SUPPRESS)
    parser.add_argument("--inter", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--intra", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._measure:
        import json

        print(json.dumps(measure_export(args._measure, args.inter, args.intra, args.calls)))
        return 0
    if args.cpu_tuning:
        return cpu_tuning(args)
    texts = sst2_sentences("dev.tsv")
    results, notes = {}, []
    with tempfile.TemporaryDirectory() as tmp:
        calls, vocab_file = ours(Path(tmp))
        for name, call in calls.items():
            results[name] = measure(call, texts, args.requests, args.batches)
        try:
            hub_call = keras_hub_export(Path(tmp), vocab_file)
            results["keras_hub"] = measure(hub_call, texts, args.requests, args.batches)
        except Exception as err:  # report why it could not be exported, keep the rest
            notes.append(f"keras-hub export failed: {type(err).__name__}: {err}"[:500])
    for name, r in results.items():
        print(f"{name}: p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, "
              f"batch 64 {r['batch64_texts_per_s']:.0f} texts/s")
    rows = "\n".join(f"| {name} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
                     f"{r['batch64_texts_per_s']:.0f} |" for name, r in results.items())
    markdown = ("all-MiniLM-L6-v2 + 2-class head, SST-2 dev sentences, max length 128, "
                "in-process SavedModel calls on a shared 2-core CPU (other jobs running: "
                "expect noise, p99 especially). Ours pads each batch to its longest row; "
                "keras-hub's preprocessor pads every row to 128 tokens.\n\n"
                "| variant | p50 ms (batch 1) | p99 ms (batch 1) | texts/s (batch 64) |\n"
                "|---|---:|---:|---:|\n" + rows + "\n"
                + "".join(f"\nNote: {n}\n" for n in notes))
    write_result("serving_latency", {"results": results, "notes": notes,
                                     "requests": args.requests, "batches": args.batches},
                 markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
