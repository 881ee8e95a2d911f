"""The optimizer update (global-norm clip + AdamW) of all-MiniLM-L6-v2: ours against
PyTorch's AdamW, and the training step with and without the one-pass kernels.

    python bench/optimizer_update.py [--updates 60] [--steps 15] [--lengths 12 24 48]

1. The update alone, on fixed random gradients for every trainable variable (the word
   embeddings' as 768 rows of an IndexedSlices, as a batch of 32 x 24 gives it;
   PyTorch's dense, as `nn.Embedding` gives it): ours with the one-pass kernels
   (`KbfApplyAdamW`, the default on the CPU), ours with TensorFlow's kernels
   (`ResourceApplyGradientDescent` + `ResourceApplyAdam`) and Keras' own AdamW
   (`fused=False`); PyTorch `torch.optim.AdamW(fused=True)` (HF Trainer's default
   with torch >= 2.8) and its for-loop default. Each framework in its own process;
   the TensorFlow variants alternate in one.
2. The training step: two MiniLM classifiers, one traced with the one-pass kernels and
   one with TensorFlow's, `train_on_batch` on the same batch alternated (as
   bench/fused_layer_norm.py does).

Writes bench/results/optimizer_update.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import numpy as np
from _common import minilm_dir, write_result
from _train_steps import alternated_medians, alternated_steps
from compute_speed import LEARNING_RATE, ours_model

EMBEDDING_ROWS = 768  # gradient rows of the word embeddings for a batch of 32 x 24
CLIP_NORM = 1.0


def tf_update_times(updates: int, warmup: int) -> dict:
    """Seconds per update of each TensorFlow variant, alternated update by update."""
    import tensorflow as tf

    from keras_bert_ft.training import create_optimizer, optimizers

    model = ours_model("float32")
    variables = model.trainable_variables
    rng = np.random.default_rng(0)
    grads = []
    for v in variables:
        if tuple(v.shape)[0] == model.encoder.config.vocab_size:
            rows = rng.integers(0, v.shape[0], EMBEDDING_ROWS)
            grads.append(tf.IndexedSlices(
                tf.constant(rng.normal(size=(EMBEDDING_ROWS, v.shape[1])), tf.float32),
                tf.constant(rows, tf.int32), tf.constant(v.shape)))
        else:
            grads.append(tf.constant(rng.normal(size=v.shape), tf.float32))
    real = optimizers.one_pass_library
    steps = {}
    for name in ("one_pass", "tensorflow_kernels", "keras"):
        optimizer = create_optimizer(LEARNING_RATE, 10_000, clipnorm=CLIP_NORM)
        optimizer.fused = name != "keras"
        # The choice is made when the update is traced.
        optimizers.one_pass_library = real if name == "one_pass" else (lambda: None)
        step = tf.function(lambda g, o=optimizer: o.apply(g, variables))
        for _ in range(warmup):
            step(grads)
        steps[name] = step
    optimizers.one_pass_library = real
    return alternated_medians(steps, grads, updates)


def torch_update_times(updates: int, warmup: int) -> dict:
    """Seconds per clip + AdamW step of PyTorch, fused and for-loop, alternated."""
    import torch
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(str(minilm_dir()), num_labels=2)
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    optimizers = {name: torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE,
                                          weight_decay=0.01, fused=name == "torch_fused")
                  for name in ("torch_fused", "torch_for_loop")}  # fmt: skip

    def step(optimizer):
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP_NORM)
        optimizer.step()

    for optimizer in optimizers.values():
        for _ in range(warmup):
            step(optimizer)
    return alternated_medians({name: lambda _, o=optimizer: step(o)
                               for name, optimizer in optimizers.items()}, None, updates)


def training_step_times(lengths, batch: int, steps: int, warmup: int) -> list[dict]:
    """Median `train_on_batch` seconds with the one-pass kernels and with TF's, alternated."""
    from keras_bert_ft.training import optimizers

    rows = alternated_steps(optimizers, "one_pass_library", lambda: None,
                                  ("tensorflow_kernels", "one_pass"), lengths, batch, steps,
                                  warmup)
    return [{**r, "speedup": r["tensorflow_kernels"] / r["one_pass"]} for r in rows]


def child(args) -> None:
    if args.child == "tensorflow":
        print(json.dumps(tf_update_times(args.updates, args.warmup)))
    elif args.child == "torch":
        print(json.dumps(torch_update_times(args.updates, args.warmup)))
    else:
        print(json.dumps(training_step_times(args.lengths, args.batch, args.steps, args.warmup)))


def run_child(args, name: str):
    command = [sys.executable, __file__, "--child", name, "--updates", str(args.updates),
               "--steps", str(args.steps), "--warmup", str(args.warmup), "--batch",
               str(args.batch), "--lengths", *map(str, args.lengths)]  # fmt: skip
    proc = subprocess.run(command, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"child {name} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--updates", type=int, default=60)
    p.add_argument("--steps", type=int, default=15)
    p.add_argument("--warmup", type=int, default=4)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lengths", type=int, nargs="+", default=[12, 24, 48])
    p.add_argument("--child", choices=["tensorflow", "torch", "training"])
    args = p.parse_args()
    if args.child:
        child(args)
        return
    ours = run_child(args, "tensorflow")
    theirs = run_child(args, "torch")
    training = run_child(args, "training")
    ms = {name: round(1e3 * seconds, 2) for name, seconds in {**ours, **theirs}.items()}
    update_rows = [
        ("ours, one-pass kernels (`KbfApplyAdamW`, the default on the CPU)", "one_pass"),
        ("ours, TensorFlow's kernels (`ResourceApplyGradientDescent` + `ResourceApplyAdam`)",
         "tensorflow_kernels"),
        ("ours, Keras' AdamW (`fused=False`)", "keras"),
        ("PyTorch `AdamW(fused=True)` (HF Trainer's default, torch >= 2.8)", "torch_fused"),
        ("PyTorch `AdamW()` (for-loop)", "torch_for_loop"),
    ]
    lines = [
        "The optimizer update of all-MiniLM-L6-v2 (22.7 M values): a global-norm clip to "
        f"{CLIP_NORM} and AdamW, on fixed random gradients (the word embeddings' as "
        f"{EMBEDDING_ROWS} rows of an IndexedSlices on our side, dense on PyTorch's, as each "
        f"framework gives it); median of {args.updates} updates, each framework in its own "
        "process, the variants of one framework alternated.", "",
        "| update | ms | PyTorch fused / this |", "| --- | ---: | ---: |",
        *[f"| {label} | {ms[key]:.2f} | {ms['torch_fused'] / ms[key]:.2f}x |"
          for label, key in update_rows],
        "", f"Training step (`train_on_batch`, batch {args.batch}, all positions real, "
        f"median of {args.steps} alternated steps):", "",
        "| batch x length | TensorFlow's kernels ms | one-pass kernels ms | speed-up |",
        "| --- | ---: | ---: | ---: |",
        *[f"| {r['batch']} x {r['length']} | {1e3 * r['tensorflow_kernels']:.1f} | "
          f"{1e3 * r['one_pass']:.1f} | {r['speedup']:.3f}x |" for r in training],
    ]
    write_result("optimizer_update", {"update_ms": ms, "training": training}, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
