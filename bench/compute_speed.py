"""Compute speed of the encoder against HF transformers + PyTorch on the SAME batches.

    KBF_DATA_DIR=../shared/data python bench/compute_speed.py [--batches 20] [--warmup 4]

Unlike bench/finetune_throughput.py (raw text to weight updates, each side with
its own tokenizer and batching), this benchmark fixes the batches first and
times only the model:

1. SST-2 train rows are shuffled with a fixed seed, tokenized once with our C++
   tokenizer, grouped by length as Hugging Face's `group_by_length` does (within
   windows of 50 batches, longest first) and each batch padded to its longest
   row. The timed batches are drawn at random (seeded) from that epoch's
   batches, so they have the epoch's length mix. The id arrays go to one .npz
   that every side reads: all frameworks see exactly the same ids.
2. Each measurement runs in its own subprocess (TF's and PyTorch's thread
   pools in one process would slow each other): our `model.fit` training step,
   our `model.predict`, our exported SavedModel's `serve_ids` and
   `serving_default` signatures (loaded with `tf.saved_model.load` in a process
   that never imports Keras, called as TF Serving calls them), HF + PyTorch
   training (fused AdamW, as HF Trainer's default; the same warm-up/linear-decay
   schedule, gradient clipping)
   and `torch.inference_mode` evaluation; float32 and bfloat16 (ours:
   the mixed_bfloat16 policy, and the export's `precision="bfloat16"` option;
   PyTorch: `torch.autocast("cpu", torch.bfloat16)`).
   Each export is served twice: in the server's default environment, and (separate
   rows) with TF_ONEDNN_ASSUME_FROZEN_WEIGHTS=1, a setting a TF Serving deployment
   can make (`--no-frozen-weights` leaves it out), and with one intra-op thread
   (TF Serving's `--tensorflow_intra_op_parallelism=1`; `--no-one-thread` leaves it out).
   The single rows are timed twice on both sides, the second pass with every row length
   seen before.
3. A large float32 and bfloat16 matmul, timed in the same run, gives the
   machine's peak; each row reports the model FLOP/s it reached against it.

Warm-up batches (graph tracing, first calls) are excluded from every timing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import minilm_dir, others_running, timed, write_result

MAX_LENGTH = 128
WINDOW_BATCHES = 50  # HF's LengthGroupedSampler: mega-batches of 50 batches
LEARNING_RATE = 5e-5
PRECISIONS = ("float32", "bfloat16")


# ----------------------------------------------------------------------- batches
def grouped_batches(lengths, batch_size: int, seed: int, grouping: str = "length") -> list:
    """Row indices per batch: seeded shuffle, then longest-first within 50-batch windows
    (`grouping="length"`), or consecutive rows of the shuffle (`"none"`, a plain sampler)."""
    import numpy as np

    order = np.random.default_rng(seed).permutation(len(lengths))
    if grouping == "none":
        return [order[i:i + batch_size] for i in range(0, len(order) - batch_size + 1,
                                                       batch_size)]
    window = WINDOW_BATCHES * batch_size
    batches = []
    for start in range(0, len(order) - batch_size + 1, window):
        chunk = order[start:start + window]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk) - batch_size + 1,
                                                           batch_size)]
    return batches


def prepare_batches(path: Path, batch_sizes, count: int, seed: int,
                    grouping: str = "length") -> dict:
    """Tokenize SST-2 train once; write `count` batches per batch size to `path` (.npz)."""
    import numpy as np

    from keras_bert_ft.data import load_dataset
    from keras_bert_ft.tokenizers.wordpiece import WordPieceTokenizer

    train = load_dataset("sst2", "train")
    texts = list(train.texts)
    labels = np.asarray(train.labels, np.int32)
    tok = WordPieceTokenizer(str(minilm_dir() / "vocab.txt"), lowercase=True)
    enc = tok.encode_batch(texts, max_length=MAX_LENGTH)
    lengths = enc["input_mask"].sum(axis=1)
    arrays, summary = {}, {}
    rng = np.random.default_rng(seed + 1)
    for bs in batch_sizes:
        batches = grouped_batches(lengths, bs, seed, grouping)
        picked = rng.choice(len(batches), size=count, replace=False)
        seqs = []
        for j, b in enumerate(picked):
            rows = batches[b]
            seq = int(lengths[rows].max())
            seqs.append(seq)
            for name in ("input_word_ids", "input_mask", "input_type_ids"):
                arrays[f"b{bs}_{j}_{name}"] = enc[name][rows, :seq]
            arrays[f"b{bs}_{j}_labels"] = labels[rows]
            arrays[f"b{bs}_{j}_texts"] = np.array([texts[r] for r in rows])
        summary[bs] = {"batches": count, "padded_lengths": seqs,
                       "real_tokens": int(sum(int(lengths[batches[b]].sum()) for b in picked))}
    np.savez(path, **arrays)
    return summary


def load_batches(path: str, batch_size: int, count: int) -> list[dict]:
    import numpy as np

    data = np.load(path)
    names = ("input_word_ids", "input_mask", "input_type_ids", "labels", "texts")
    return [{n: data[f"b{batch_size}_{j}_{n}"] for n in names} for j in range(count)]


def forward_flops(batch: dict, layers=6, hidden=384, intermediate=1536) -> float:
    """Multiply-adds x2 of the encoder's forward pass over the padded batch."""
    b, s = batch["input_word_ids"].shape
    dense = 2 * b * s * layers * (4 * hidden * hidden + 2 * hidden * intermediate)
    attention = 2 * 2 * b * s * s * hidden * layers
    return float(dense + attention)


# ----------------------------------------------------------------------- children
def id_inputs(b: dict) -> dict:
    return {n: b[n] for n in ("input_word_ids", "input_mask", "input_type_ids")}


def ours_model(precision: str):
    from keras_bert_ft.checkpoints import load_pretrained
    from keras_bert_ft.models import BertClassifier
    from keras_bert_ft.training import set_precision

    set_precision("mixed_bfloat16" if precision == "bfloat16" else "float32")
    encoder, tok, _ = load_pretrained("all-minilm-l6-v2")
    # pooling="pooled" is what BertForSequenceClassification computes.
    return BertClassifier(encoder, 2, pooling="pooled", tokenizer=tok)


def as_dataset(batches, with_labels: bool):
    import tensorflow as tf

    spec = {n: tf.TensorSpec([None, None], tf.int32)
            for n in ("input_word_ids", "input_mask", "input_type_ids")}

    def gen():
        for b in batches:
            yield (id_inputs(b), b["labels"]) if with_labels else id_inputs(b)

    sig = (spec, tf.TensorSpec([None], tf.int32)) if with_labels else spec
    return tf.data.Dataset.from_generator(gen, output_signature=sig).prefetch(4)


def child_ours_train(args, precision) -> dict:
    from keras_bert_ft.training import create_optimizer

    batches = load_batches(args.npz, 32, args.warmup + args.batches)
    model = ours_model(precision)
    # compile_classifier's settings, plus steps_per_execution (fewer Python steps).
    optimizer = create_optimizer(LEARNING_RATE, args.warmup + args.batches, warmup_ratio=0.1,
                                 weight_decay=0.01, clipnorm=1.0)
    model.compile(optimizer=optimizer, loss=model.default_loss(),
                  metrics=model.default_metrics(), steps_per_execution=args.steps_per_execution)
    model.fit(as_dataset(batches[:args.warmup], True), epochs=1, verbose=0)
    start = time.perf_counter()
    model.fit(as_dataset(batches[args.warmup:], True), epochs=1, verbose=0)
    return {"train_b32": time.perf_counter() - start}


def child_ours_predict(args, precision) -> dict:
    batches = load_batches(args.npz, 32, args.warmup + args.batches)
    model = ours_model(precision)
    model.predict(as_dataset(batches[:args.warmup], False), verbose=0)
    start = time.perf_counter()
    model.predict(as_dataset(batches[args.warmup:], False), verbose=0)
    return {"predict_b32": time.perf_counter() - start}


def child_ours_export(args, precision) -> dict:
    from keras_bert_ft.serving.export import export_for_serving

    model = ours_model(precision)
    # bfloat16: the export option that stores the projections in bfloat16 (no weight casts).
    path = export_for_serving(model, export_dir=Path(args.workdir) / f"export_{precision}",
                              precision=precision)
    return {"export_path": str(path)}


def child_ours_serve(args, precision) -> dict:
    """The exported signatures, in a process that does not import Keras."""
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (registers the in-graph tokenizer's kernels)

    if args.intra_op:  # before TensorFlow runs anything, as a server's thread setting
        tf.config.threading.set_intra_op_parallelism_threads(args.intra_op)
    # (TensorFlow itself puts keras in sys.modules; what must stay out is our package,
    # so that the SavedModel alone, as TF Serving sees it, does the work.)
    assert "keras_bert_ft" not in sys.modules, "the serving process must not import the package"
    loaded = tf.saved_model.load(args.export_path)
    serve_ids = loaded.signatures["serve_ids"]
    serve_text = loaded.signatures["serving_default"]
    out = {}
    for bs, count in ((32, args.batches), (1, args.batches_b1)):
        batches = load_batches(args.npz, bs, args.warmup + count)
        ids = [{k: tf.constant(v) for k, v in id_inputs(b).items()} for b in batches]
        texts = [tf.constant(b["texts"]) for b in batches]
        out[f"serve_ids_b{bs}"] = timed(lambda x: serve_ids(**x), ids, args.warmup)
        if bs == 1:  # the same rows again: every row length has been seen once
            out["serve_ids_b1_again"] = timed(lambda x: serve_ids(**x), ids, args.warmup)
        out[f"serving_default_b{bs}"] = timed(lambda t: serve_text(text=t), texts, args.warmup)
    assert "keras_bert_ft" not in sys.modules
    return out


def hf_model(train: bool):
    import torch
    from transformers import BertForSequenceClassification

    torch.manual_seed(0)
    model = BertForSequenceClassification.from_pretrained(str(minilm_dir()), num_labels=2)
    model.train(train)
    return model


def torch_ids(b: dict) -> dict:
    import torch

    return {"input_ids": torch.from_numpy(b["input_word_ids"].astype("int64")),
            "attention_mask": torch.from_numpy(b["input_mask"].astype("int64")),
            "token_type_ids": torch.from_numpy(b["input_type_ids"].astype("int64"))}


def child_hf_train(args, precision) -> dict:
    import torch
    from transformers import get_linear_schedule_with_warmup

    batches = load_batches(args.npz, 32, args.warmup + args.batches)
    model = hf_model(train=True)
    steps = args.warmup + args.batches
    # fused=True: HF Trainer's default optimizer (`adamw_torch_fused`) with torch >= 2.8.
    opt = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, weight_decay=0.01, fused=True)
    sched = get_linear_schedule_with_warmup(opt, int(0.1 * steps), steps)
    inputs = [(torch_ids(b), torch.from_numpy(b["labels"].astype("int64"))) for b in batches]

    def step(batch):
        x, y = batch
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bfloat16"):
            loss = model(**x, labels=y).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad()

    return {"train_b32": timed(step, inputs, args.warmup)}


def child_hf_eval(args, precision) -> dict:
    import torch
    from transformers import BertTokenizerFast

    model = hf_model(train=False)
    tok = BertTokenizerFast(str(minilm_dir() / "vocab.txt"), do_lower_case=True)
    out = {}

    def forward(x):
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16,
                                                     enabled=precision == "bfloat16"):
            return torch.softmax(model(**x).logits.float(), -1)

    def with_tokenizer(texts):
        return forward(tok(list(texts), padding="longest", truncation=True,
                           max_length=MAX_LENGTH, return_tensors="pt"))

    for bs, count in ((32, args.batches), (1, args.batches_b1)):
        batches = load_batches(args.npz, bs, args.warmup + count)
        inputs = [torch_ids(b) for b in batches]
        out[f"eval_b{bs}"] = timed(forward, inputs, args.warmup)
        if bs == 1:
            out["eval_b1_again"] = timed(forward, inputs, args.warmup)
        out[f"eval_text_b{bs}"] = timed(with_tokenizer, [b["texts"] for b in batches],
                                        args.warmup)
    return out


def child_tf_peak(args, precision) -> dict:
    import tensorflow as tf

    dtype = tf.bfloat16 if precision == "bfloat16" else tf.float32
    a = tf.random.normal([args.peak_size] * 2, dtype=tf.float32)
    a = tf.cast(a, dtype)
    mm = tf.function(lambda x: tf.matmul(x, x))
    mm(a).numpy()
    start = time.perf_counter()
    for _ in range(args.peak_reps):
        r = mm(a)
    r.numpy()
    return {"matmul_flops_per_s": 2 * args.peak_size ** 3 * args.peak_reps
            / (time.perf_counter() - start)}


def child_torch_peak(args, precision) -> dict:
    import torch

    dtype = torch.bfloat16 if precision == "bfloat16" else torch.float32
    a = torch.randn(args.peak_size, args.peak_size).to(dtype)
    torch.mm(a, a)
    start = time.perf_counter()
    for _ in range(args.peak_reps):
        torch.mm(a, a)
    return {"matmul_flops_per_s": 2 * args.peak_size ** 3 * args.peak_reps
            / (time.perf_counter() - start)}


CHILDREN = {
    "ours_train": child_ours_train, "ours_predict": child_ours_predict,
    "ours_export": child_ours_export, "ours_serve": child_ours_serve,
    "hf_train": child_hf_train, "hf_eval": child_hf_eval,
    "tf_peak": child_tf_peak, "torch_peak": child_torch_peak,
}


# A server setting of TensorFlow's oneDNN kernels: weights read from variables are taken as
# constant, so each matmul reorders and caches them once. Right for a process that only
# serves a loaded SavedModel (TF Serving); wrong where weights change (training).
FROZEN_WEIGHTS_ENV = {"TF_ONEDNN_ASSUME_FROZEN_WEIGHTS": "1"}


def run_child(args, name: str, precision: str, env_extra: dict | None = None,
              **extra) -> dict:
    cmd = [sys.executable, __file__, "--child", name, "--precision", precision,
           "--npz", args.npz, "--workdir", args.workdir, "--batches", str(args.batches),
           "--batches-b1", str(args.batches_b1), "--warmup", str(args.warmup),
           "--steps-per-execution", str(args.steps_per_execution),
           "--peak-size", str(args.peak_size), "--peak-reps", str(args.peak_reps)]
    for k, v in extra.items():
        cmd += [f"--{k.replace('_', '-')}", str(v)]
    env = dict(os.environ)
    if name in ("hf_train", "hf_eval", "torch_peak"):
        env["CUDA_VISIBLE_DEVICES"] = ""
    elif args.onednn != "tf-default":
        env["TF_ENABLE_ONEDNN_OPTS"] = "1" if args.onednn == "on" else "0"
    else:
        env.pop("TF_ENABLE_ONEDNN_OPTS", None)
    env.update(env_extra or {})
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"child {name} {precision} failed (exit {proc.returncode})")
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")][-1]
    settings = [*(env_extra or {}), *(f"intra-op {v}" for k, v in extra.items()
                                        if k == "intra_op")]
    label = f"{name} ({', '.join(settings)})" if settings else name
    print(f"  {label} {precision}: {time.perf_counter() - started:.0f} s in the child",
          flush=True)
    return json.loads(line[7:])


# ----------------------------------------------------------------------- report
ROWS = (  # (row, our child key, their child key, batch size, what)
    ("training step", "ours_train:train_b32", "hf_train:train_b32", 32, 3),
    ("inference: model.predict vs eval", "ours_predict:predict_b32", "hf_eval:eval_b32", 32, 1),
    ("serve_ids vs eval", "ours_serve:serve_ids_b32", "hf_eval:eval_b32", 32, 1),
    ("serve_ids vs eval", "ours_serve:serve_ids_b1", "hf_eval:eval_b1", 1, 1),
    ("serving_default (text) vs fast tokenizer + eval", "ours_serve:serving_default_b32",
     "hf_eval:eval_text_b32", 32, 1),
    ("serving_default (text) vs fast tokenizer + eval", "ours_serve:serving_default_b1",
     "hf_eval:eval_text_b1", 1, 1),
    ("serve_ids vs eval, server with TF_ONEDNN_ASSUME_FROZEN_WEIGHTS=1",
     "ours_serve_frozen:serve_ids_b32", "hf_eval:eval_b32", 32, 1),
    ("serve_ids vs eval, server with TF_ONEDNN_ASSUME_FROZEN_WEIGHTS=1",
     "ours_serve_frozen:serve_ids_b1", "hf_eval:eval_b1", 1, 1),
    ("serve_ids vs eval, server with one intra-op thread",
     "ours_serve_1thread:serve_ids_b32", "hf_eval:eval_b32", 32, 1),
    ("serve_ids vs eval, server with one intra-op thread",
     "ours_serve_1thread:serve_ids_b1", "hf_eval:eval_b1", 1, 1),
    ("serve_ids vs eval, the same single rows a second time",
     "ours_serve:serve_ids_b1_again", "hf_eval:eval_b1_again", 1, 1),
    ("serve_ids vs eval, the same single rows a second time, server with one intra-op "
     "thread", "ours_serve_1thread:serve_ids_b1_again", "hf_eval:eval_b1_again", 1, 1),
)


def build_rows(args, seconds: dict, flops: dict, peaks: dict) -> list[dict]:
    rows = []
    for precision in args.precisions:
        for label, ours, theirs, bs, passes in ROWS:
            o, t = seconds.get((precision, ours)), seconds.get((precision, theirs))
            if o is None or t is None:
                continue
            n = args.batches if bs == 32 else args.batches_b1
            work = flops[bs] * passes  # training: forward + backward ~ 3 forward passes
            row = {"precision": precision, "row": label, "batch_size": bs,
                   "ours_examples_per_s": round(n * bs / o, 2),
                   "theirs_examples_per_s": round(n * bs / t, 2),
                   "ratio": round(t / o, 3),
                   "ours_utilisation": round(work / o / peaks[precision], 4),
                   "theirs_utilisation": round(work / t / peaks[precision], 4)}
            rows.append(row)
    return rows


def markdown(args, rows, summary, peaks, fp32_vs_bf16, quiet: bool,
             frozen_bf16_vs_fp32=None) -> str:
    s32 = summary.get(32) or summary.get("32")
    table = ["| precision | row | batch | ours ex/s | HF+PyTorch ex/s | ours/theirs | "
             "ours % of peak | theirs % of peak |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        table.append(f"| {r['precision']} | {r['row']} | {r['batch_size']} | "
                     f"{r['ours_examples_per_s']:.1f} | {r['theirs_examples_per_s']:.1f} | "
                     f"{r['ratio']:.2f}x | {100 * r['ours_utilisation']:.1f} | "
                     f"{100 * r['theirs_utilisation']:.1f} |")
    grouping = (f"grouped by length within windows of {WINDOW_BATCHES} batches (HF "
                "`group_by_length`)" if args.grouping == "length" else
                "NOT grouped by length (consecutive rows of the shuffle, HF's default sampler)")
    real = s32["real_tokens"] / (32 * sum(s32["padded_lengths"]))
    lines = [
        f"Model compute only, on identical batches: SST-2 train rows, seeded shuffle, {grouping}, "
        f"each batch padded to its longest row ({100 * (1 - real):.0f} % of the positions of "
        "the batches of 32 are padding), all-MiniLM-L6-v2, ids from our C++ tokenizer "
        "shared by every side through one .npz. Each measurement in its own process, "
        f"{args.rounds} round(s) of all of them, each figure the median over the rounds; "
        f"{args.warmup} warm-up batches excluded; {args.batches} timed batches of 32 "
        f"(padded lengths {min(s32['padded_lengths'])}..{max(s32['padded_lengths'])}), "
        f"{args.batches_b1} timed single rows. Ours trains with `model.fit` "
        f"(steps_per_execution={args.steps_per_execution}); HF with fused AdamW "
        "(`fused=True`, HF Trainer's default `adamw_torch_fused`), the same "
        "schedule and clipping. bfloat16: our mixed_bfloat16 policy (training and predict), "
        "our export with `precision=\"bfloat16\"` (projection weights stored in bfloat16) vs "
        "`torch.autocast(\"cpu\", torch.bfloat16)`.", "",
        *table, "",
        f"- peak matmul ({args.peak_size}x{args.peak_size}, best of TF and PyTorch): "
        + ", ".join(f"{p} {v / 1e9:.0f} GFLOP/s" for p, v in peaks.items()),
        "- utilisation = encoder forward FLOPs (x3 for a training step) / time / that peak; "
        "the FLOPs are the whole encoder's on every side (our classifier runs the last "
        "block for the [CLS] query alone, so its figure counts work it skips)",
    ]
    lines.append(f"- TensorFlow's oneDNN kernels in our processes: `--onednn {args.onednn}`"
                 + {"on": " (TF_ENABLE_ONEDNN_OPTS=1, as importing keras_bert_ft sets it)",
                    "off": " (TF_ENABLE_ONEDNN_OPTS=0)",
                    "tf-default": " (TF_ENABLE_ONEDNN_OPTS unset)"}[args.onednn])
    skipped = [p for p in args.precisions if p not in args.torch_precisions]
    if skipped:
        lines.append(f"- PyTorch not run in {', '.join(skipped)} (`--torch-precisions`): no "
                     "ratio against it there")
    if fp32_vs_bf16:
        lines.append(f"- our bf16 export / our fp32 export, serve_ids batch 32: "
                     f"{fp32_vs_bf16:.2f}x")
    if frozen_bf16_vs_fp32:
        lines.append("- our bf16 export served with TF_ONEDNN_ASSUME_FROZEN_WEIGHTS=1 / our fp32 "
                     f"export served as by default, serve_ids batch 32: {frozen_bf16_vs_fp32:.2f}x")
    if any("FROZEN" in r["row"] for r in rows):
        lines.append("- rows \"server with TF_ONEDNN_ASSUME_FROZEN_WEIGHTS=1\": the same export, "
                     "the same batches, served in a process with that variable set, as a TF "
                     "Serving deployment can set it (oneDNN reorders each weight once and "
                     "caches it instead of reading it in plain layout on every call); the "
                     "rows above them are the server's default environment")
    if any("one intra-op thread" in r["row"] for r in rows):
        lines.append("- rows \"server with one intra-op thread\": the same export and batches, "
                     "served in a process whose TensorFlow runs each op on one thread "
                     "(TF Serving's `--tensorflow_intra_op_parallelism=1`); PyTorch keeps its "
                     "default of one thread per core, its faster setting for these rows")
    if any("a second time" in r["row"] for r in rows):
        lines.append("- rows \"the same single rows a second time\": both sides time a second "
                     "pass over the same single rows in the same process, so that every row "
                     "length has been seen before (TensorFlow's first call at a new length "
                     "costs extra, as in a server's first requests of each length)")
    load = os.getloadavg()
    if not quiet:
        lines.append(f"- load average at the start was above {0.75 * (os.cpu_count() or 1):.1f} "
                     f"(other jobs shared the {os.cpu_count()} cores): these numbers are "
                     "noisy; a quiet rerun is pending")
    else:
        lines.append(f"- quiet machine: nothing else ran (load average {load[0]:.2f} at the "
                     "end is the bench's own processes)")
    return "\n".join(lines)


def measure_round(args) -> dict:
    """Seconds (and peak FLOP/s) of every child for every precision, one process each."""
    seconds = {}
    for precision in args.precisions:
        print(f"{precision}:", flush=True)
        jobs = []
        torch_too = precision in args.torch_precisions
        if "peak" in args.only:
            jobs += [("tf_peak", {})] + [("torch_peak", {})] * torch_too
        if "train" in args.only:
            jobs += [("ours_train", {})] + [("hf_train", {})] * torch_too
        if ("predict" in args.only or "serve" in args.only) and torch_too:
            jobs += [("hf_eval", {})]
        if "predict" in args.only:
            jobs += [("ours_predict", {})]
        for name, extra in jobs:
            for key, value in run_child(args, name, precision, **extra).items():
                seconds[(precision, f"{name}:{key}")] = value
        if "serve" in args.only:
            path = run_child(args, "ours_export", precision)["export_path"]
            for key, value in run_child(args, "ours_serve", precision,
                                        export_path=path).items():
                seconds[(precision, f"ours_serve:{key}")] = value
            if args.frozen_weights and args.onednn == "on":
                for key, value in run_child(args, "ours_serve", precision, FROZEN_WEIGHTS_ENV,
                                            export_path=path).items():
                    seconds[(precision, f"ours_serve_frozen:{key}")] = value
            if args.one_thread:
                for key, value in run_child(args, "ours_serve", precision,
                                            export_path=path, intra_op=1).items():
                    seconds[(precision, f"ours_serve_1thread:{key}")] = value
    return seconds


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--batches", type=int, default=20, help="timed batches of 32")
    p.add_argument("--batches-b1", type=int, default=100, help="timed single-row batches")
    p.add_argument("--warmup", type=int, default=4, help="untimed batches first")
    p.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=list(PRECISIONS))
    p.add_argument("--only", nargs="+", choices=["train", "predict", "serve", "peak"],
                   default=["train", "predict", "serve", "peak"])
    p.add_argument("--torch-precisions", nargs="*", choices=PRECISIONS,
                   default=list(PRECISIONS),
                   help="run the PyTorch side in these only (its bfloat16 on a CPU without "
                   "bfloat16 instructions takes hours); ours still runs in every --precisions")
    p.add_argument("--name", help="results file name (default compute_speed, or "
                   "compute_speed_ungrouped with --grouping none)")
    p.add_argument("--onednn", choices=("on", "off", "tf-default"), default="on",
                   help="TF_ENABLE_ONEDNN_OPTS for our processes: on (what importing "
                   "keras_bert_ft sets; TF Serving reads it from its own environment), off, "
                   "or unset (TensorFlow's default for this CPU)")
    p.add_argument("--frozen-weights", action=argparse.BooleanOptionalAction, default=True,
                   help="also serve each export in a process with "
                   "TF_ONEDNN_ASSUME_FROZEN_WEIGHTS=1 (a TF Serving environment setting; "
                   "separate rows; needs --onednn on)")
    p.add_argument("--one-thread", action=argparse.BooleanOptionalAction, default=True,
                   help="also serve each export with one intra-op thread (separate rows)")
    p.add_argument("--steps-per-execution", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--grouping", choices=["length", "none"], default="length",
                   help="batches grouped by length (HF group_by_length) or not")
    p.add_argument("--peak-size", type=int, default=2048)
    p.add_argument("--peak-reps", type=int, default=10)
    p.add_argument("--rounds", type=int, default=1,
                   help="run every measurement this many times; report the medians")
    p.add_argument("--no-write", action="store_true", help="print, do not write results/")
    # Child mode.
    p.add_argument("--child", choices=sorted(CHILDREN))
    p.add_argument("--precision", choices=PRECISIONS, default="float32")
    p.add_argument("--npz")
    p.add_argument("--workdir")
    p.add_argument("--export-path")
    p.add_argument("--intra-op", type=int, default=0,
                   help="child: TensorFlow's intra-op threads (0: its default)")
    args = p.parse_args()

    if args.child:
        result = CHILDREN[args.child](args, args.precision)
        print("RESULT " + json.dumps(result), flush=True)
        return 0

    wall = time.perf_counter()
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="compute_speed_") as work:
        args.workdir = work
        args.npz = str(Path(work) / "batches.npz")
        count = args.warmup + max(args.batches, args.batches_b1)
        summary = prepare_batches(Path(args.npz), (32, 1), count, args.seed, args.grouping)
        batches32 = load_batches(args.npz, 32, args.warmup + args.batches)[args.warmup:]
        batches1 = load_batches(args.npz, 1, args.warmup + args.batches_b1)[args.warmup:]
        flops = {32: sum(map(forward_flops, batches32)), 1: sum(map(forward_flops, batches1))}
        # Every child runs once per round; each figure is the median over the rounds (the
        # rounds alternate the frameworks, so slow spells of a shared machine hit both).
        rounds = [measure_round(args) for _ in range(args.rounds)]
        seconds = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
        peaks = {}
        for precision in args.precisions:
            peaks[precision] = max(seconds.get((precision, "tf_peak:matmul_flops_per_s"), 0),
                                   seconds.get((precision, "torch_peak:matmul_flops_per_s"), 0))
            peaks[precision] = peaks[precision] or float("nan")
    rows = build_rows(args, seconds, flops, peaks)
    export_seconds = [seconds.get((p, "ours_serve:serve_ids_b32")) for p in PRECISIONS]
    bf16_gain = (export_seconds[0] / export_seconds[1]
                 if None not in export_seconds else None)
    frozen_bf16 = seconds.get(("bfloat16", "ours_serve_frozen:serve_ids_b32"))
    frozen_bf16_gain = (export_seconds[0] / frozen_bf16
                        if frozen_bf16 and export_seconds[0] else None)
    load_end = os.getloadavg()
    quiet = not others_running(load_start[0])
    md = markdown(args, rows, summary, peaks, bf16_gain, quiet, frozen_bf16_gain)
    print(md)
    payload = {
        "batches": {"batch_32": args.batches, "batch_1": args.batches_b1,
                    "grouping": args.grouping,
                    "warmup": args.warmup, "seed": args.seed, "summary": summary},
        "steps_per_execution": args.steps_per_execution,
        "peak_flops_per_s": peaks, "rows": rows,
        "bf16_export_over_fp32_export_b32": bf16_gain,
        "bf16_frozen_export_over_fp32_export_b32": frozen_bf16_gain,
        "rounds": args.rounds,
        "raw_seconds": {f"{p}:{k}": v for (p, k), v in seconds.items()},
        "raw_seconds_by_round": [{f"{p}:{k}": v for (p, k), v in r.items()} for r in rounds],
        "load_average_at_start": [round(x, 2) for x in load_start],
        "load_average_at_end": [round(x, 2) for x in load_end],
        "quiet": quiet, "quiet_rerun_pending": not quiet,
        "wall_seconds": round(time.perf_counter() - wall, 1),
    }
    if not args.no_write:
        default = "compute_speed" if args.grouping == "length" else "compute_speed_ungrouped"
        write_result(args.name or default, payload, md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
