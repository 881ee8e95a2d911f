"""Tokenizer speed on SST-2 train: this project vs HF tokenizers vs tensorflow-text.

All in one run on the same machine; prints texts/s and ratios, and writes
bench/results/tokenizer_speed.{json,md}.

- ours: `encode_batch` with packing ([CLS] a [SEP]) and padding, max_length 128,
  on the whole corpus and in batches of 1,024, on 1 and 2 threads;
- HF tokenizers: `BertWordPieceTokenizer.encode_batch` with truncation at 128
  and padding to the longest, RAYON_NUM_THREADS=1;
- tensorflow-text: `FastBertTokenizer.tokenize` (wordpieces only) in a
  tf.function, batches of 1,024, TF limited to one thread.

Usage: python bench/tokenizer_speed.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ["RAYON_NUM_THREADS"] = "1"  # before tokenizers is imported
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _common import minilm_dir, sst2_sentences, write_result  # noqa: E402

BATCH = 1024


def best_rate(fn, n_texts: int, repeats: int) -> dict:
    """Texts per second: the median and best of `repeats` timed runs after a warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return {"median_texts_per_s": n_texts / statistics.median(times),
            "best_texts_per_s": n_texts / min(times), "seconds": times}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    import tensorflow as tf
    import tensorflow_text as tft
    from tokenizers import BertWordPieceTokenizer

    from keras_bert_ft import WordPieceTokenizer

    texts = sst2_sentences("train.tsv")
    vocab = minilm_dir() / "vocab.txt"
    n = len(texts)
    batches = [texts[i:i + BATCH] for i in range(0, n, BATCH)]

    ours = WordPieceTokenizer(vocab)
    hf = BertWordPieceTokenizer(str(vocab), lowercase=True)
    hf.enable_truncation(128)
    hf.enable_padding()
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    fast = tft.FastBertTokenizer(vocab=vocab.read_text("utf-8").splitlines(),
                                 lower_case_nfd_strip_accents=True, token_out_type=tf.int32)
    tf_tokenize = tf.function(fast.tokenize, input_signature=[tf.TensorSpec([None], tf.string)])
    tf_batches = [tf.constant(b) for b in batches]

    def ours_batched(threads: int):
        return lambda: [ours.encode_batch(b, max_length=128, num_threads=threads) for b in batches]

    runs = {
        "ours_1_thread": lambda: ours.encode_batch(texts, max_length=128, num_threads=1),
        "ours_1_thread_batches_1024": ours_batched(1),
        "ours_2_threads": lambda: ours.encode_batch(texts, max_length=128, num_threads=2),
        "hf_tokenizers_1_thread": lambda: hf.encode_batch(texts),
        "tf_text_fast_bert_batches_1024": lambda: [tf_tokenize(b) for b in tf_batches],
    }
    rates = {}
    for name, fn in runs.items():
        rates[name] = best_rate(fn, n, args.repeats)
        print(f"{name:32s} {rates[name]['median_texts_per_s']:>12,.0f} texts/s (median)")

    def ratio(a: str, b: str) -> float:
        return rates[a]["median_texts_per_s"] / rates[b]["median_texts_per_s"]

    ratios = {
        "ours_1t_vs_hf_1t": ratio("ours_1_thread", "hf_tokenizers_1_thread"),
        "ours_1t_batches_vs_tf_text_fast_bert": ratio("ours_1_thread_batches_1024",
                                                       "tf_text_fast_bert_batches_1024"),
        "ours_2t_vs_ours_1t": ratio("ours_2_threads", "ours_1_thread"),
    }
    targets = {"ours_1t_vs_hf_1t": 20.0, "ours_1t_batches_vs_tf_text_fast_bert": 1.5,
               "ours_2t_vs_ours_1t": 1.7}
    lines = ["| run | texts/s (median) | best |", "|---|---:|---:|"]
    lines += [f"| {k} | {v['median_texts_per_s']:,.0f} | {v['best_texts_per_s']:,.0f} |"
              for k, v in rates.items()]
    lines += ["", "| ratio | measured | target |", "|---|---:|---:|"]
    lines += [f"| {k} | {v:.2f} | >= {targets[k]} |" for k, v in ratios.items()]
    print("\n".join(lines[-5:]))
    write_result("tokenizer_speed", {"texts": n, "repeats": args.repeats, "rates": rates,
                                     "ratios": ratios, "targets": targets}, "\n".join(lines))


if __name__ == "__main__":
    main()
