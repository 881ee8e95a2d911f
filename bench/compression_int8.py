"""int8 post-training quantization of the SST-2 teacher: accuracy, batch-1 latency, size.

Usage: python bench/compression_int8.py [--teacher DIR ...] [--seq-length 64]
    [--latency-examples 300]
Needs fine-tuned SST-2 models: the teacher of bench/_sst2_teacher.py by default, or
the folders `bench/finetune_accuracy.py sst2 --save-dir DIR` writes (one per seed).
TFLite models take a fixed (1, seq_length) input; the Keras models run at each
sentence's real length.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import _compress as compress
from _common import RESULTS_DIR, interleaved_latency_ms, mean_spread, seed_summary, write_result
from _sst2_teacher import TEACHER_DIR, load_teacher

from keras_bert_ft.compression import quantization as q
from keras_bert_ft.data import load_dataset

OUT = "/tmp/kbf_bench/int8"


def quantize(teacher_dir: str, splits, out: Path, a) -> tuple[dict, dict, dict]:
    """Every variant of the teacher in `teacher_dir`, scored on SST-2 dev.

    Returns (results by variant, the models by variant for timing, the gate's record).
    """
    dev = splits["validation"]
    teacher = load_teacher(teacher_dir)
    x_dev = teacher.encode(dev.texts)
    out.mkdir(parents=True, exist_ok=True)
    results = {"keras_float32": {
        "dev_accuracy": compress.accuracy(teacher.predict(x_dev, batch_size=64, verbose=0),
                                          dev.labels),
        "file_bytes": os.path.getsize(Path(teacher_dir) / "model.keras")}}  # fmt: skip
    k8 = q.keras_int8(teacher)
    results["keras_int8"] = {
        "dev_accuracy": compress.accuracy(k8.predict(x_dev, batch_size=64, verbose=0), dev.labels)}
    k8_path = out / "model_int8.keras"
    k8.save(k8_path)
    results["keras_int8"]["file_bytes"] = os.path.getsize(k8_path)

    # The gate: write the dynamic-range model only if it keeps accuracy.
    gate = q.export_quantized(teacher, out / "model_dynamic.tflite", x_dev, dev.labels,
                              mode="dynamic", max_accuracy_drop=a.max_accuracy_drop,
                              seq_length=a.seq_length)  # fmt: skip
    rep = q.representative_features(teacher.tokenizer, common_subset_texts(splits["train"]),
                                     seq_length=a.seq_length, count=200)  # fmt: skip
    models = {"keras_float32": teacher, "keras_int8": k8}
    for mode in q.TFLITE_MODES:
        t = time.perf_counter()
        content = q.convert_to_tflite(teacher, mode, seq_length=a.seq_length,
                                      representative=rep if mode == "full_int8" else None)
        models[f"tflite_{mode}"] = q.TFLiteClassifier(content, num_threads=a.threads)
        results[f"tflite_{mode}"] = {
            "dev_accuracy": compress.accuracy(models[f"tflite_{mode}"].predict(x_dev),
                                              dev.labels),
            "file_bytes": len(content), "convert_seconds": time.perf_counter() - t,
        }
    gate_record = {"mode": "dynamic", "float_accuracy": gate.float_accuracy,
                   "quantized_accuracy": gate.quantized_accuracy,
                   "max_accuracy_drop": a.max_accuracy_drop, "written": True}
    return results, {"models": models, "x_dev": x_dev}, gate_record


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--teacher", nargs="+", default=[str(TEACHER_DIR)],
                   help="fine-tuned SST-2 model folders (model.keras); accuracy is given as "
                        "mean ± std over them, latency and sizes are the first one's")
    p.add_argument("--seq-length", type=int, default=64)
    p.add_argument("--latency-examples", type=int, default=300)
    p.add_argument("--max-accuracy-drop", type=float, default=0.01)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=str(RESULTS_DIR))
    a = p.parse_args()
    start = time.perf_counter()
    splits = load_dataset("sst2")
    runs = []
    for i, teacher_dir in enumerate(a.teacher):
        results, first, gate = quantize(teacher_dir, splits, Path(OUT) / f"teacher{i}", a)
        runs.append({"teacher": teacher_dir, "variants": results, "gate": gate})
        if i == 0:
            timing = first  # the first teacher's models are timed below
    results = runs[0]["variants"]
    models, x_dev = timing["models"], timing["x_dev"]
    count = min(a.latency_examples, len(x_dev["input_mask"]))
    examples = [compress.rows(x_dev, i) for i in range(count)]
    padded = [q.pad_features(e, a.seq_length) for e in examples]
    fns = {k: compress.compiled(models[k]) for k in ("keras_float32", "keras_int8")}
    ms = interleaved_latency_ms(fns, examples)
    ms.update(interleaved_latency_ms(
        {f"tflite_{m}": models[f"tflite_{m}"].predict_one for m in q.TFLITE_MODES}, padded))
    for name, v in ms.items():
        results[name]["batch1_ms"] = v

    over = {name: {
        "dev_accuracy": seed_summary([r["variants"][name]["dev_accuracy"] for r in runs]),
        "change_points": seed_summary([100 * (r["variants"][name]["dev_accuracy"]
                                             - r["variants"]["keras_float32"]["dev_accuracy"])
                                       for r in runs])} for name in results}  # fmt: skip
    payload = {
        "teachers": a.teacher, "runs": runs, "over_teachers": over,
        "variants": results, "seq_length": a.seq_length, "tflite_threads": a.threads,
        "latency_examples": len(examples), "wall_seconds": time.perf_counter() - start,
    }
    lines = ["| variant | SST-2 dev accuracy | vs Keras float32 (points) | batch-1 ms (median) | "
             "file MB |", "| --- | ---: | ---: | ---: | ---: |"]
    for name, r in results.items():
        lines.append(f"| {name} | {mean_spread(over[name]['dev_accuracy'])} | "
                     f"{mean_spread(over[name]['change_points'], 2)} | {r['batch1_ms']:.2f} | "
                     f"{r['file_bytes'] / 1e6:.1f} |")
    f32 = results["tflite_float32"]
    keras_size = results["keras_float32"]["file_bytes"]
    summary = "\n".join(
        f"- {m}: {f32['batch1_ms'] / results[m]['batch1_ms']:.2f}x faster than TFLite float32, "
        f"{results['keras_float32']['batch1_ms'] / results[m]['batch1_ms']:.2f}x faster than "
        f"Keras float32; {f32['file_bytes'] / results[m]['file_bytes']:.2f}x smaller than the "
        f"TFLite float32 file, {keras_size / results[m]['file_bytes']:.2f}x smaller than the "
        "float32 .keras file"
        for m in ("tflite_dynamic", "tflite_full_int8", "keras_int8"))
    gates = "; ".join(f"{r['gate']['float_accuracy']:.4f} -> {r['gate']['quantized_accuracy']:.4f}"
                      for r in runs)
    md = (
        f"Fine-tuned 6-layer SST-2 classifiers (all-MiniLM-L6-v2; teachers: "
        f"{', '.join(f'`{t}`' for t in a.teacher)}) quantized after training. TFLite models: "
        f"fixed input (1, {a.seq_length}), {a.threads} threads; full_int8 calibrated on 200 "
        "random training sentences. Keras models run at each sentence's real length. "
        "Accuracy: mean ± sample std over the teachers. Latency and sizes: the first "
        f"teacher's, median over {len(examples)} dev sentences, variants timed in turns.\n\n"
        + "\n".join(lines) + "\n\n" + summary + "\n\n"
        f"Accuracy gate (dynamic, max drop {a.max_accuracy_drop}), float -> quantized per "
        f"teacher: {gates}; all passed, written.\n"
        f"Wall time: {payload['wall_seconds']:.0f} s on a 2-core CPU."
    )
    write_result("compression_int8", payload, md, out_dir=a.out)
    print(md)


def common_subset_texts(train):
    # Calibrate on training rows every teacher was trained on (the 8000-row teacher's
    # subset, which the full-SST-2 teachers also saw).
    return train.texts[:8000]


if __name__ == "__main__":
    main()
