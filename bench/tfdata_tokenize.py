"""tf.data tokenization throughput (texts/s) on SST-2 train read from a text file.

Three pipelines, each TextLineDataset -> batch -> parallel map -> prefetch,
producing int32 input_word_ids / input_mask / input_type_ids padded to
max_length:

  op          the KbfWordPieceEncode custom op (no Python in the loop)
  numpy_fn    tf.numpy_function around the pybind11 WordPieceTokenizer
  tf_text     tensorflow_text.FastBertTokenizer + combine_segments + pad_model_inputs

Usage: python bench/tfdata_tokenize.py [--batch-sizes 32,256] [--repeats 5] [--no-write]

Writes bench/results/tfdata_tokenize.md and .json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
from _common import minilm_dir, sst2_sentences, write_result  # noqa: E402

from keras_bert_ft import WordPieceTokenizer  # noqa: E402
from keras_bert_ft.tokenizers.op import op_options, wordpiece_encode  # noqa: E402


def sst2_text_file(out_dir: Path) -> tuple[Path, int]:
    """SST-2 train sentences, one a line (the TSV without header and label)."""
    sentences = sst2_sentences("train.tsv")
    path = out_dir / "sst2_train.txt"
    path.write_text("\n".join(sentences) + "\n", "utf-8")
    return path, len(sentences)


def op_pipeline(tokenizer: WordPieceTokenizer, max_length: int):
    options = op_options(tokenizer)

    def encode(texts):
        out = wordpiece_encode(texts, vocab_file=tokenizer.vocab_file, max_length=max_length,
                               padding="max_length", **options)
        return out["input_word_ids"], out["input_mask"], out["input_type_ids"]

    return encode


def numpy_function_pipeline(tokenizer: WordPieceTokenizer, max_length: int):
    def host(texts):
        out = tokenizer.encode_batch(list(texts), max_length=max_length, padding="max_length",
                                     num_threads=1)
        return out["input_word_ids"], out["input_mask"], out["input_type_ids"]

    def encode(texts):
        ids, mask, types = tf.numpy_function(host, [texts], [tf.int32] * 3, stateful=False)
        for t in (ids, mask, types):
            t.set_shape([None, max_length])
        return ids, mask, types

    return encode


def tf_text_pipeline(tokenizer: WordPieceTokenizer, max_length: int):
    import tensorflow_text as tft

    fast = tft.FastBertTokenizer(
        vocab=tokenizer.get_vocab(), suffix_indicator="##", unknown_token="[UNK]",
        lower_case_nfd_strip_accents=tokenizer.lowercase, token_out_type=tf.int64)

    def encode(texts):
        pieces = fast.tokenize(texts)[:, : max_length - 2]  # [batch, (pieces)]
        ids, types = tft.combine_segments([pieces], tokenizer.cls_id, tokenizer.sep_id)
        ids, mask = tft.pad_model_inputs(ids, max_length)
        types, _ = tft.pad_model_inputs(types, max_length)
        return tf.cast(ids, tf.int32), tf.cast(mask, tf.int32), tf.cast(types, tf.int32)

    return encode


def run_once(path: Path, encode, batch_size: int, parallel: int) -> tuple[float, float, int]:
    """Wall seconds, process CPU seconds and texts of one pass over the file."""
    ds = (tf.data.TextLineDataset(str(path)).batch(batch_size)
          .map(encode, num_parallel_calls=parallel, deterministic=False)
          .prefetch(tf.data.AUTOTUNE))
    count = 0
    start, cpu_start = time.perf_counter(), time.process_time()
    for ids, _, _ in ds:
        count += int(ids.shape[0])
    return time.perf_counter() - start, time.process_time() - cpu_start, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--vocab", type=Path, default=None)
    parser.add_argument("--batch-sizes", default="32,256",
                        help="comma-separated batch sizes to measure")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--parallel", type=int, default=tf.data.AUTOTUNE,
                        help="num_parallel_calls of the map (default AUTOTUNE)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-write", action="store_true", help="print, do not write results/")
    args = parser.parse_args()

    tokenizer = WordPieceTokenizer(args.vocab or minilm_dir() / "vocab.txt")
    pipelines = {
        "op": op_pipeline(tokenizer, args.max_length),
        "numpy_fn": numpy_function_pipeline(tokenizer, args.max_length),
        "tf_text": tf_text_pipeline(tokenizer, args.max_length),
    }
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        path, n = sst2_text_file(Path(tmp))
        for encode in pipelines.values():
            run_once(path, encode, batch_sizes[0], args.parallel)  # warm-up: tracing, vocab
        # Round robin, so that load from other processes hits every pipeline alike.
        wall = {(b, name): [] for b in batch_sizes for name in pipelines}
        cpu = {(b, name): [] for b in batch_sizes for name in pipelines}
        for _ in range(args.repeats):
            for b in batch_sizes:
                for name, encode in pipelines.items():
                    seconds, cpu_seconds, count = run_once(path, encode, b, args.parallel)
                    assert count == n, (name, count, n)
                    wall[b, name].append(count / seconds)
                    cpu[b, name].append(count / cpu_seconds)
                    print(f"batch {b} {name}: {count / seconds:,.0f} texts/s", file=sys.stderr)

    parallel = "AUTOTUNE" if args.parallel == tf.data.AUTOTUNE else args.parallel
    lines = [
        f"texts: {n}, max_length {args.max_length} (padded to it), num_parallel_calls "
        f"{parallel}, {args.repeats} runs each, round robin; TensorFlow {tf.__version__}",
        f"1-minute load average: {load_before:.1f} before, {os.getloadavg()[0]:.1f} after",
        "texts/s: wall clock, median of runs; texts/cpu-s: texts per second of this process's "
        "CPU time, median (steadier when other processes share the CPUs)",
        "",
        "```",
    ]
    rates = {}
    for b in batch_sizes:
        med = {name: statistics.median(wall[b, name]) for name in pipelines}
        med_cpu = {name: statistics.median(cpu[b, name]) for name in pipelines}
        rates[f"batch_{b}"] = {name: {"texts_per_s_median": med[name],
                                      "texts_per_cpu_s_median": med_cpu[name],
                                      "texts_per_s_runs": wall[b, name]}
                               for name in pipelines}  # fmt: skip
        lines += [f"batch {b}", f"{'pipeline':<10} {'texts/s':>10} {'texts/cpu-s':>12}  wall runs"]
        for name in pipelines:
            runs = ", ".join(f"{r:,.0f}" for r in wall[b, name])
            lines.append(f"{name:<10} {med[name]:>10,.0f} {med_cpu[name]:>12,.0f}  {runs}")
        for other in ("numpy_fn", "tf_text"):
            lines.append(f"op / {other}: {med['op'] / med[other]:.2f}x wall, "
                         f"{med_cpu['op'] / med_cpu[other]:.2f}x per CPU second")
        lines.append("")
    lines[-1] = "```"
    lines += ["", "(tf_text ids differ from BERT's on some text: NFKC case folding; speed only)"]
    report = "\n".join(lines)
    print(report)
    if not args.no_write:
        payload = {"texts": n, "max_length": args.max_length, "num_parallel_calls": parallel,
                   "repeats": args.repeats, "tensorflow": tf.__version__,
                   "load_average_1_min_before": load_before, "rates": rates}  # fmt: skip
        write_result("tfdata_tokenize", payload, report,
                     title="tf.data tokenization throughput, SST-2 train from a text file")

if __name__ == "__main__":
    main()
