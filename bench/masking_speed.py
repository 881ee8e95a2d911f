"""Speed of MLM masking and of a pretraining step, on this CPU, in one run.

1. Masking inside `tf.data`: our `KbfMaskTokens` op against tensorflow-text's
   `mask_language_model` with `RandomItemSelector` + `MaskValuesChooser`, on the same
   packed IMDB batches (dense ids in, dense masked ids and padded predictions out).
2. One optimizer step of MLM pretraining of all-MiniLM-L6-v2: our `BertPretrainer`
   (logits at the masked positions only) against Hugging Face `BertForMaskedLM` +
   PyTorch on the same masked batches, interleaved.

    KBF_DATA_DIR=../shared/data python bench/masking_speed.py [--batches 200] [--steps 6]

Writes bench/results/masking_speed.json and .md. Other jobs share the machine: the
ratios are measured under that load, which the result records.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
from _common import data_dir, others_running, write_result


def packed_batches(tokenizer, n_batches: int, batch: int, max_length: int):
    from keras_bert_ft.pretraining.data import pack_sequences, read_documents

    docs = read_documents(data_dir() / "imdb" / "unsup.jsonl")[: n_batches * batch // 2 + 200]
    packed = pack_sequences(docs, tokenizer, max_length)
    rows = n_batches * batch
    reps = -(-rows // len(packed))
    ids = np.tile(packed.input_word_ids, (reps, 1))[:rows]
    mask = np.tile(packed.input_mask, (reps, 1))[:rows]
    return ids.reshape(n_batches, batch, max_length), mask.reshape(n_batches, batch, max_length)


def time_dataset(ds, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in ds:
            pass
        best = min(best, time.perf_counter() - start)
    return best


def masking_speed(tokenizer, ids, mask, max_predictions: int) -> dict:
    import tensorflow as tf
    import tensorflow_text as tf_text

    from keras_bert_ft.pretraining.masking import MaskingOptions, MaskingVocab, mask_tokens_op

    vocab = MaskingVocab.from_tokenizer(tokenizer)
    options = MaskingOptions(max_predictions=max_predictions)
    base = tf.data.Dataset.from_tensor_slices((ids, mask)).enumerate().cache()
    for _ in base:  # fill the cache
        pass

    def ours(step, batch):
        i, m = batch
        out = mask_tokens_op(i, m, vocab, step, options)
        return out["input_word_ids"], out["masked_lm_positions"], out["masked_lm_ids"]

    special = np.flatnonzero(vocab.kinds == 2).astype(np.int64)
    selector = tf_text.RandomItemSelector(
        max_selections_per_batch=max_predictions, selection_rate=0.15,
        unselectable_ids=special.tolist())
    chooser = tf_text.MaskValuesChooser(tokenizer.vocab_size, vocab.mask_id, 0.8, 0.1)
    seq = ids.shape[-1]

    def theirs(step, batch):
        i, m = batch
        ragged = tf.RaggedTensor.from_tensor(i, lengths=tf.reduce_sum(m, axis=1))
        masked, positions, labels = tf_text.mask_language_model(ragged, selector, chooser)
        return (masked.to_tensor(default_value=0, shape=[None, seq]),
                positions.to_tensor(default_value=0, shape=[None, max_predictions]),
                labels.to_tensor(default_value=0, shape=[None, max_predictions]))

    results = {}
    for name, fn in (("ours", ours), ("tensorflow_text", theirs), ("ours_again", ours)):
        ds = base.map(fn, num_parallel_calls=1)
        results[name] = time_dataset(ds)
    tokens = ids.size
    ours_s = min(results["ours"], results["ours_again"])
    return {"tokens": int(tokens), "batches": int(ids.shape[0]),
            "seconds": {"ours": ours_s, "tensorflow_text": results["tensorflow_text"]},
            "tokens_per_second": {"ours": tokens / ours_s,
                                  "tensorflow_text": tokens / results["tensorflow_text"]},
            "speedup": results["tensorflow_text"] / ours_s}


def step_speed(ids, mask, tokenizer, steps: int, max_predictions: int) -> dict:
    import keras
    import tensorflow as tf
    import torch
    import transformers

    from keras_bert_ft.checkpoints import load_pretrained, locate_pretrained
    from keras_bert_ft.pretraining.masking import MaskingOptions, MaskingVocab, mask_tokens
    from keras_bert_ft.pretraining.model import BertPretrainer

    vocab = MaskingVocab.from_tokenizer(tokenizer)
    batches = []
    for k in range(steps + 2):
        out = mask_tokens(ids[k], mask[k], vocab, seed=k,
                          options=MaskingOptions(max_predictions=max_predictions))
        batches.append((ids[k], mask[k], out))

    encoder, _, _ = load_pretrained("all-minilm-l6-v2")
    model = BertPretrainer(encoder)
    model.compile(optimizer=keras.optimizers.AdamW(5e-5))
    path = locate_pretrained("all-minilm-l6-v2")
    hf = transformers.BertForMaskedLM.from_pretrained(path)
    hf.train()
    opt = torch.optim.AdamW(hf.parameters(), lr=5e-5, fused=True)  # HF Trainer's default
    torch.set_num_threads(os.cpu_count())

    def ours_step(b):
        _, m, out = b
        x = {"input_word_ids": out["input_word_ids"], "input_mask": m,
             "input_type_ids": np.zeros_like(m), "masked_lm_positions": out["masked_lm_positions"]}
        y = {"masked_lm_ids": out["masked_lm_ids"], "masked_lm_weights": out["masked_lm_weights"],
             "next_sentence_labels": np.zeros(len(m), np.int32)}
        model.train_on_batch(x, y)

    def hf_step(b):
        _, m, out = b
        labels = np.full(m.shape, -100, np.int64)
        w = out["masked_lm_weights"] > 0
        rows = np.nonzero(w)[0]
        labels[rows, out["masked_lm_positions"][w]] = out["masked_lm_ids"][w]
        loss = hf(input_ids=torch.tensor(out["input_word_ids"], dtype=torch.long),
                  attention_mask=torch.tensor(m, dtype=torch.long),
                  labels=torch.tensor(labels)).loss
        opt.zero_grad()
        loss.backward()
        opt.step()

    for b in batches[:2]:  # warm-up: tracing, allocation
        ours_step(b)
        hf_step(b)
    times = {"ours": [], "hf_pytorch": []}
    for b in batches[2:]:  # interleaved, so load changes hit both alike
        t = time.perf_counter()
        ours_step(b)
        times["ours"].append(time.perf_counter() - t)
        t = time.perf_counter()
        hf_step(b)
        times["hf_pytorch"].append(time.perf_counter() - t)
    del tf
    med = {k: float(np.median(v)) for k, v in times.items()}
    return {"steps": steps, "batch": list(ids.shape[1:]), "median_seconds": med,
            "all_seconds": times, "speedup": med["hf_pytorch"] / med["ours"]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--max-predictions", type=int, default=20)
    p.add_argument("--steps", type=int, default=6)
    args = p.parse_args()
    busy = others_running(os.getloadavg()[0])

    from keras_bert_ft.checkpoints import load_pretrained

    _, tokenizer, _ = load_pretrained("all-minilm-l6-v2")
    ids, mask = packed_batches(tokenizer, max(args.batches, args.steps + 2), args.batch_size,
                               args.max_length)
    masking = masking_speed(tokenizer, ids[:args.batches], mask[:args.batches],
                            args.max_predictions)
    print(masking, flush=True)
    step = step_speed(ids, mask, tokenizer, args.steps, args.max_predictions) if args.steps \
        else None
    print(step, flush=True)
    md = (f"Masking in tf.data (`map`, one call at a time), {masking['batches']} packed IMDB "
          f"batches of {args.batch_size} x {args.max_length} ({masking['tokens']:,} tokens), "
          f"best of 3 passes:\n\n| | seconds | tokens/s |\n|---|---|---|\n"
          f"| ours (KbfMaskTokens) | {masking['seconds']['ours']:.3f} | "
          f"{masking['tokens_per_second']['ours']:,.0f} |\n"
          f"| tensorflow-text (RandomItemSelector + MaskValuesChooser) | "
          f"{masking['seconds']['tensorflow_text']:.3f} | "
          f"{masking['tokens_per_second']['tensorflow_text']:,.0f} |\n\n"
          f"Speed-up: {masking['speedup']:.1f}x (target 3x: "
          f"{'met' if masking['speedup'] >= 3 else 'NOT met'}).\n")
    if step is not None:
        md += (f"\nPretraining step of all-MiniLM-L6-v2 (batch {args.batch_size} x "
               f"{args.max_length}, {args.max_predictions} predictions a row), median of "
               f"{args.steps} interleaved steps: ours {step['median_seconds']['ours']:.2f} s, "
               f"HF BertForMaskedLM + PyTorch {step['median_seconds']['hf_pytorch']:.2f} s: "
               f"{step['speedup']:.2f}x (target >= 1: "
               f"{'met' if step['speedup'] >= 1 else 'NOT met'}). Ours computes vocabulary "
               f"logits at the masked positions only; HF at every position.\n")
    md += ("\nMeasured under load from other jobs on the same cores (see the load average).\n"
           if busy else "\nNothing else ran on the machine when the run started.\n")
    write_result("masking_speed", {"masking": masking, "pretraining_step": step,
                                   "settings": vars(args)}, md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
