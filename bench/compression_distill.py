"""Distillation on SST-2: a k-layer student from the 6-layer teacher.

Usage: python bench/compression_distill.py [--layers 3] [--train-size 8000] [--epochs 2]
                                          [--teacher DIR] [--seed 0] [--seeds 3]
Needs a teacher: bench/_sst2_teacher.py (same --train-size), or the model that
`bench/finetune_accuracy.py sst2 --save-dir DIR` keeps (--train-size 0: all rows). Reports dev
accuracy of teacher, the truncated student before distillation and after,
and batch-1 latency (median over dev sentences, real lengths, taken in turns).
The student is distilled once per seed (--seed, --seed + 1, ...; default 3 seeds):
its accuracy is reported as mean ± sample standard deviation over the seeds, the
latency is that of the first seed's student.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import _compress as compress
import numpy as np
from _common import interleaved_latency_ms, mean_spread, seed_summary, write_result
from _sst2_teacher import TEACHER_DIR, load_teacher, subset

from keras_bert_ft.compression.distillation import distill, make_student
from keras_bert_ft.data import load_dataset


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--intermediate-size", type=int,
                   help="prune the student's feed-forward units to this many per layer")
    p.add_argument("--train-size", type=int, default=8000, help="0: all of SST-2 train")
    p.add_argument("--teacher", default=str(TEACHER_DIR))
    p.add_argument("--learning-rate", type=float, default=1e-4)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--temperature", type=float, default=2.0)
    p.add_argument("--alpha", type=float, default=0.5)
    p.add_argument("--latency-examples", type=int, default=300)
    p.add_argument("--seed", type=int, default=0, help="the first seed")
    p.add_argument("--seeds", type=int, default=3, help="students to distil (default 3)")
    a = p.parse_args()
    if a.seeds < 1:
        p.error(f"--seeds must be at least 1, got {a.seeds}")
    seeds = list(range(a.seed, a.seed + a.seeds))
    start = time.perf_counter()
    splits = load_dataset("sst2")
    train = subset(splits["train"], a.train_size) if a.train_size else splits["train"]
    dev = splits["validation"]
    teacher = load_teacher(a.teacher)
    teacher_settings = json.loads((Path(a.teacher) / "settings.json").read_text())
    x_dev = teacher.encode(dev.texts)
    teacher_acc = compress.accuracy(teacher.predict(x_dev, batch_size=64, verbose=0), dev.labels)
    shape = dict(num_layers=a.layers, intermediate_size=a.intermediate_size)
    truncated_acc = compress.accuracy(
        make_student(teacher, **shape).predict(x_dev, batch_size=64, verbose=0),
        dev.labels)  # fmt: skip
    t = time.perf_counter()
    accuracies = []
    for seed in seeds:
        trained, trained_history = distill(teacher, train, dev, **shape, epochs=a.epochs,
                                           temperature=a.temperature, alpha=a.alpha,
                                           learning_rate=a.learning_rate, seed=seed)  # fmt: skip
        accuracies.append(compress.accuracy(trained.predict(x_dev, batch_size=64, verbose=0),
                                            dev.labels))  # fmt: skip
        if seed == seeds[0]:
            student, history = trained, trained_history
    train_seconds = (time.perf_counter() - t) / len(seeds)
    over_seeds = seed_summary(accuracies)
    student_acc = over_seeds["mean"]
    examples = [compress.rows(x_dev, i) for i in range(min(a.latency_examples, len(dev)))]
    ms = interleaved_latency_ms(
        {"teacher": compress.compiled(teacher), "student": compress.compiled(student)}, examples)
    payload = {
        "train_subset": (f"first {len(train)} of {len(splits['train'])} SST-2 train rows"
                         if a.train_size else f"all {len(train)} SST-2 train rows"),
        "teacher_dir": a.teacher,
        "teacher_settings": teacher_settings,
        "teacher": {"layers": teacher.encoder.config.num_layers, "dev_accuracy": teacher_acc,
                    "batch1_ms": ms["teacher"]},
        "student": {"layers": a.layers,
                    "intermediate_size": student.encoder.config.intermediate_size,
                    "dev_accuracy": student_acc, "dev_accuracy_over_seeds": over_seeds,
                    "seeds": seeds, "batch1_ms": ms["student"],
                    "dev_accuracy_before_distillation": truncated_acc},
        "settings": {"temperature": a.temperature, "alpha": a.alpha, "epochs": a.epochs,
                     "learning_rate": a.learning_rate},
        "history": {k: [float(v) for v in vs] for k, vs in history.items()},
        "accuracy_kept": student_acc / teacher_acc,
        "speedup_batch1": ms["teacher"] / ms["student"],
        "distill_seconds": train_seconds,
        "wall_seconds": time.perf_counter() - start,
        "latency_examples": len(examples),
    }
    md = (
        f"Teacher: all-MiniLM-L6-v2 (6 layers) fine-tuned on SST-2 train "
        f"({teacher_settings['epochs']} epochs, lr {teacher_settings['learning_rate']}; "
        f"`{a.teacher}`). Student: the teacher's first {a.layers} layers + head"
        + (f", each feed-forward layer pruned to the {a.intermediate_size} of "
           f"{teacher.encoder.config.intermediate_size} units with the largest weight norms"
           if a.intermediate_size else "")
        + ", distilled on "
        f"{payload['train_subset']} (T={a.temperature}, alpha={a.alpha}, lr {a.learning_rate}, "
        f"{a.epochs} epochs, {train_seconds:.0f} s per student), {len(seeds)} seed(s) "
        f"({', '.join(map(str, seeds))}): student accuracy "
        f"{mean_spread(over_seeds)} (mean ± sample std). Dev: {len(dev)} rows.\n\n"
        "| model | layers | SST-2 dev accuracy (student: mean over seeds) | "
        "batch-1 latency (median ms) |\n"
        "| --- | ---: | ---: | ---: |\n"
        f"| teacher | {payload['teacher']['layers']} | {teacher_acc:.4f} | {ms['teacher']:.2f} |\n"
        f"| student before distillation | {a.layers} | {truncated_acc:.4f} | |\n"
        f"| student | {a.layers} | {student_acc:.4f} | {ms['student']:.2f} |\n\n"
        f"Accuracy kept: {payload['accuracy_kept']:.1%}; speed-up at batch 1: "
        f"{payload['speedup_batch1']:.2f}x (over {len(examples)} dev sentences at their real "
        f"length, teacher and student timed in turns). Wall time: "
        f"{payload['wall_seconds']:.0f} s on a 2-core CPU."
    )
    narrow = f"_ffn{a.intermediate_size}" if a.intermediate_size else ""
    write_result(f"compression_distill_{a.layers}layer{narrow}", payload, md)
    print(md)


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
