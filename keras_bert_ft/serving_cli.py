"""The `export` and `predict` subcommands of `keras-bert-ft` (TF Serving exports).

`keras_bert_ft.cli` registers them by calling `register_serving_commands`.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Callable
from pathlib import Path


def _column(value: str) -> str | int:
    return int(value) if value.isdigit() else value


def _configure_export(p: argparse.ArgumentParser) -> None:
    p.add_argument("model_path", help="a trained model: model.keras or the --output-dir of train")
    p.add_argument("--export-dir",
                   help="the model's base path for TF Serving (default saved_models/NAME)")
    p.add_argument("--name", help="model name (default: the model's folder name)")
    p.add_argument("--version", type=int, help="version number (default: the next free one)")
    p.add_argument("--pairs", action="store_true",
                   help="the model classifies sentence pairs: serve text and text_pair")
    p.add_argument("--max-length", type=int, help="tokens per example (default: the model's)")


def _configure_predict(p: argparse.ArgumentParser) -> None:
    p.add_argument("model_dir", help="an export: saved_models/NAME (newest version) or a version")
    p.add_argument("texts", nargs="*", help="texts to classify")
    p.add_argument("--pair", action="append", help="second text (pair models); once per text")
    p.add_argument("--input", help="a .csv or .tsv file of texts to classify")
    p.add_argument("--text-column", type=_column, default="text")
    p.add_argument("--pair-column", type=_column)
    p.add_argument("--no-header", action="store_true", help="the file has no header row")
    p.add_argument("--output", help="write a CSV of predictions here (default: standard output)")
    p.add_argument("--batch-size", type=int, default=64)


def register_serving_commands(subcommand: Callable, error: type[Exception]) -> None:
    """Register `export` and `predict` with the CLI's `subcommand` decorator."""

    @subcommand("export", "export a trained model for TF Serving (raw text in, labels out)",
                _configure_export)
    def export_command(args) -> int:
        from keras_bert_ft.cli import load_trained_model
        from keras_bert_ft.export import export_for_serving

        model = load_trained_model(args.model_path)
        source = Path(args.model_path)
        name = args.name or (source if source.is_dir() else source.parent).resolve().name
        export_dir = Path(args.export_dir or Path("saved_models") / name)
        try:
            path = export_for_serving(model, None, export_dir, args.version, pairs=args.pairs,
                                      max_length=args.max_length)
        except (FileExistsError, ValueError) as err:
            raise error(str(err)) from None
        print(f"Exported {path} (serve with --model_base_path={export_dir.resolve()})")
        return 0

    @subcommand("predict", "classify texts with an exported SavedModel", _configure_predict)
    def predict_command(args) -> int:
        from keras_bert_ft.serving_predict import ExportedClassifier, read_texts

        if bool(args.texts) == bool(args.input):
            raise error("give texts on the command line or --input FILE, not both or neither")
        try:
            if args.input:
                texts, pairs = read_texts(args.input, args.text_column, args.pair_column,
                                          header=not args.no_header)
            else:
                texts, pairs = args.texts, args.pair
            classifier = ExportedClassifier(args.model_dir)
            result = classifier.predict(texts, pairs, batch_size=args.batch_size)
        except (FileNotFoundError, ValueError) as err:
            raise error(str(err)) from None
        names = classifier.label_names or [
            str(i) for i in range(result["probabilities"].shape[1])]
        if result["probabilities"].shape[1] == 1:  # one sigmoid unit: the score of label 1
            names = names[1:2]
        out = open(args.output, "w", newline="", encoding="utf-8") if args.output else sys.stdout
        try:
            if args.input or args.output:
                writer = csv.writer(out)
                writer.writerow(["text"] + (["text_pair"] if pairs else []) + ["label"]
                                + [f"p_{n}" for n in names])
                for i, text in enumerate(texts):
                    writer.writerow([text] + ([pairs[i]] if pairs else []) + [result["label"][i]]
                                    + [f"{p:.6f}" for p in result["probabilities"][i]])
            else:
                for i in range(len(texts)):
                    scores = dict(zip(names, map(float, result["probabilities"][i]), strict=True))
                    print(json.dumps({"label": result["label"][i], "probabilities": scores}))
        finally:
            if out is not sys.stdout:
                out.close()
        return 0
