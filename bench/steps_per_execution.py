"""Batches per call of the compiled training step: `model.fit` with Keras' default of one
against `--many` (8), two copies of the classifier in one process, in turns.

    KBF_DATA_DIR=../shared/data python bench/steps_per_execution.py [--batches 40] [--rounds 4]

Each copy (all-MiniLM-L6-v2, pooler head, float32, our AdamW) trains on the same SST-2
train rows, bucketed and padded as `finetune()` does, after the same warm-up; the copies'
epochs alternate, their order flipping every round. The updates are the same either way
(tests/training/test_steps_per_execution.py); only Python's per-batch work differs.
Writes bench/results/steps_per_execution.{json,md}.
"""

from __future__ import annotations

import argparse
import statistics
import time

from _common import write_result

BATCH = 32


def classifier(steps_per_execution: int):
    from keras_bert_ft.checkpoints import load_pretrained
    from keras_bert_ft.models import BertClassifier
    from keras_bert_ft.training import compile_classifier

    encoder, tokenizer, _ = load_pretrained("all-minilm-l6-v2")
    model = BertClassifier(encoder, 2, pooling="pooled", tokenizer=tokenizer)
    compile_classifier(model, total_steps=1000, steps_per_execution=steps_per_execution)
    return model, tokenizer


def main() -> None:
    import numpy as np

    from keras_bert_ft.data import load_dataset, make_dataset

    p = argparse.ArgumentParser()
    p.add_argument("--batches", type=int, default=40, help="timed batches per epoch")
    p.add_argument("--warmup", type=int, default=8, help="untimed batches first")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--many", type=int, default=8, help="the other steps_per_execution")
    a = p.parse_args()

    train = load_dataset("sst2", "train")
    n_warm, n = a.warmup * BATCH, (a.warmup + a.batches) * BATCH
    texts, labels = list(train.texts[:n]), np.array(train.labels[:n])
    settings = (1, a.many)
    models = {}
    for spe in settings:
        model, tokenizer = classifier(spe)
        model.fit(make_dataset(texts[:n_warm], labels[:n_warm], tokenizer, batch_size=BATCH,
                               shuffle=True, seed=0), epochs=1, verbose=0)  # fmt: skip
        models[spe] = (model, tokenizer)
    seconds = {spe: [] for spe in settings}
    for r in range(a.rounds):
        for spe in (settings if r % 2 == 0 else settings[::-1]):
            model, tokenizer = models[spe]
            start = time.perf_counter()
            data = make_dataset(texts[n_warm:], labels[n_warm:], tokenizer, batch_size=BATCH,
                                shuffle=True, seed=r)  # fmt: skip
            model.fit(data, epochs=1, verbose=0)
            seconds[spe].append(time.perf_counter() - start)
            print(f"round {r}: steps_per_execution={spe}: {seconds[spe][-1]:.2f} s", flush=True)
    median = {spe: statistics.median(t) for spe, t in seconds.items()}
    per_round = [one / many for one, many in zip(seconds[1], seconds[a.many], strict=True)]
    rows = [f"| {spe} | {median[spe]:.2f} | {a.batches * BATCH / median[spe]:.1f} | "
            f"{' / '.join(f'{t:.2f}' for t in seconds[spe])} |" for spe in settings]
    md = "\n".join([
        f"`model.fit` over {a.batches} SST-2 batches of {BATCH} (bucketed, as `finetune()` "
        f"makes them; tokenizing included), two copies of the all-MiniLM-L6-v2 classifier "
        f"in one process, {a.rounds} rounds in turns after {a.warmup} warm-up batches each.",
        "", "| steps_per_execution | median s | examples/s | s by round |",
        "| ---: | ---: | ---: | --- |", *rows, "",
        f"- {a.many} per call against 1: {median[1] / median[a.many]:.3f}x (medians); by "
        f"round {' / '.join(f'{x:.3f}' for x in per_round)}x"])
    write_result("steps_per_execution",
                 {"batches": a.batches, "batch_size": BATCH, "rounds": a.rounds,
                  "seconds": seconds, "speedup": median[1] / median[a.many],
                  "speedup_by_round": per_round}, md)  # fmt: skip
    print(md)


if __name__ == "__main__":
    main()
