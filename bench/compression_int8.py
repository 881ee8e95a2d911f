"""int8 post-training quantization of the SST-2 teacher: accuracy, batch-1 latency, size.

Usage: python bench/compression_int8.py [--seq-length 64] [--latency-examples 300]
Needs the teacher from bench/_sst2_teacher.py. TFLite models take a fixed
(1, seq_length) input; the Keras models run at each sentence's real length.
"""

from __future__ import annotations

import argparse
import os
import time

import _compress as compress
from _common import interleaved_latency_ms, write_result
from _sst2_teacher import TEACHER_DIR, load_teacher

from keras_bert_ft.compression import quantization as q
from keras_bert_ft.data import load_dataset

OUT = "/tmp/kbf_bench/int8"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seq-length", type=int, default=64)
    p.add_argument("--latency-examples", type=int, default=300)
    p.add_argument("--max-accuracy-drop", type=float, default=0.01)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    start = time.perf_counter()
    splits = load_dataset("sst2")
    dev = splits["validation"]
    teacher = load_teacher()
    x_dev = teacher.encode(dev.texts)
    os.makedirs(OUT, exist_ok=True)

    results = {}
    keras_size = os.path.getsize(TEACHER_DIR / "model.keras")
    results["keras_float32"] = {
        "dev_accuracy": compress.accuracy(teacher.predict(x_dev, batch_size=64, verbose=0),
                                          dev.labels), "file_bytes": keras_size}  # fmt: skip
    k8 = q.keras_int8(teacher)
    results["keras_int8"] = {
        "dev_accuracy": compress.accuracy(k8.predict(x_dev, batch_size=64, verbose=0), dev.labels)}
    k8_path = f"{OUT}/model_int8.keras"
    k8.save(k8_path)
    results["keras_int8"]["file_bytes"] = os.path.getsize(k8_path)

    # The gate: write the dynamic-range model only if it keeps accuracy.
    gate = q.export_quantized(teacher, f"{OUT}/model_dynamic.tflite", x_dev, dev.labels,
                              mode="dynamic", max_accuracy_drop=a.max_accuracy_drop,
                              seq_length=a.seq_length)  # fmt: skip
    rep = q.representative_features(teacher.tokenizer, common_subset_texts(splits["train"]),
                                     seq_length=a.seq_length, count=200)  # fmt: skip
    tflite = {}
    for mode in q.TFLITE_MODES:
        t = time.perf_counter()
        content = q.convert_to_tflite(teacher, mode, seq_length=a.seq_length,
                                      representative=rep if mode == "full_int8" else None)
        tflite[mode] = q.TFLiteClassifier(content, num_threads=a.threads)
        results[f"tflite_{mode}"] = {
            "dev_accuracy": compress.accuracy(tflite[mode].predict(x_dev), dev.labels),
            "file_bytes": len(content), "convert_seconds": time.perf_counter() - t,
        }

    examples = [compress.rows(x_dev, i) for i in range(min(a.latency_examples, len(dev)))]
    padded = [q.pad_features(e, a.seq_length) for e in examples]
    fns = {"keras_float32": compress.compiled(teacher), "keras_int8": compress.compiled(k8)}
    ms = interleaved_latency_ms(fns, examples)
    ms.update(interleaved_latency_ms(
        {f"tflite_{m}": tflite[m].predict_one for m in q.TFLITE_MODES}, padded))
    for name, v in ms.items():
        results[name]["batch1_ms"] = v

    base = results["keras_float32"]["dev_accuracy"]
    payload = {
        "variants": results, "seq_length": a.seq_length, "tflite_threads": a.threads,
        "gate": {"mode": "dynamic", "float_accuracy": gate.float_accuracy,
                 "quantized_accuracy": gate.quantized_accuracy,
                 "max_accuracy_drop": a.max_accuracy_drop, "written": True},
        "latency_examples": len(examples), "wall_seconds": time.perf_counter() - start,
    }
    lines = ["| variant | SST-2 dev accuracy | vs Keras float32 | batch-1 ms (median) | "
             "file MB |", "| --- | ---: | ---: | ---: | ---: |"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['dev_accuracy']:.4f} | {100 * (r['dev_accuracy'] - base):+.2f}"
                     f" pt | {r['batch1_ms']:.2f} | {r['file_bytes'] / 1e6:.1f} |")
    f32 = results["tflite_float32"]
    summary = "\n".join(
        f"- {m}: {f32['batch1_ms'] / results[m]['batch1_ms']:.2f}x faster than TFLite float32, "
        f"{results['keras_float32']['batch1_ms'] / results[m]['batch1_ms']:.2f}x faster than "
        f"Keras float32; {f32['file_bytes'] / results[m]['file_bytes']:.2f}x smaller than the "
        f"TFLite float32 file, {keras_size / results[m]['file_bytes']:.2f}x smaller than the "
        "float32 .keras file"
        for m in ("tflite_dynamic", "tflite_full_int8", "keras_int8"))
    md = (
        "The 6-layer SST-2 teacher (all-MiniLM-L6-v2 fine-tuned on the first 8000 SST-2 train "
        f"rows, bench/_sst2_teacher.py) quantized after training. TFLite models: fixed input "
        f"(1, {a.seq_length}), {a.threads} threads; full_int8 calibrated on 200 random "
        "training sentences. Keras models run at each sentence's real length. Latency: "
        f"median over {len(examples)} dev sentences, variants timed in turns.\n\n"
        + "\n".join(lines) + "\n\n" + summary + "\n\n"
        f"Accuracy gate (dynamic, max drop {a.max_accuracy_drop}): float "
        f"{gate.float_accuracy:.4f} -> {gate.quantized_accuracy:.4f}, passed, written.\n"
        f"Wall time: {payload['wall_seconds']:.0f} s on a 2-core CPU."
    )
    write_result("compression_int8", payload, md)
    print(md)


def common_subset_texts(train):
    # Calibrate on training rows the teacher was trained on (the 8000-row subset).
    return train.texts[:8000]


if __name__ == "__main__":
    main()
