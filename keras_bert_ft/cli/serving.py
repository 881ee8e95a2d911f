"""The `export` and `predict` subcommands of `keras-bert-ft` (TF Serving exports).

Every option is checked before the slow work (loading TensorFlow models,
predicting) starts, and every bad input ends as one `error:` line (exit 2).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from pathlib import Path

from keras_bert_ft.cli.common import CLIError, column, first_line, load_trained_model, subcommand


def _configure_export(p: argparse.ArgumentParser) -> None:
    p.add_argument("model_path",
                   help="a trained model: model.keras, or the --output-dir of train")
    p.add_argument("--export-dir", metavar="DIR",
                   help="the model's base path for TF Serving (default: saved_models/NAME)")
    p.add_argument("--name", help="model name (default: the model's folder name)")
    p.add_argument("--version", type=int, metavar="N",
                   help="version number, 1 or more (default: the next free one); "
                   "an existing version is never overwritten")
    kind = p.add_mutually_exclusive_group()
    kind.add_argument("--pairs", dest="pairs", action="store_true", default=None,
                      help="serve sentence pairs (text and text_pair) (default: what the "
                      "model was trained on; single texts if the model does not record it)")
    kind.add_argument("--single", dest="pairs", action="store_false",
                      help="serve single texts (default: what the model was trained on)")
    p.add_argument("--max-length", type=int, metavar="N",
                   help="tokens per example, at most the encoder's position embeddings "
                   "(default: the model's own)")
    p.add_argument("--precision", choices=("float32", "bfloat16"), default="float32",
                   help="bfloat16: the encoder computes in bfloat16, its projection weights "
                   "stored in bfloat16 (faster on CPUs with AMX/AVX512-BF16; probabilities "
                   "within about 1e-2) (default: float32)")
    p.add_argument("--parallel-groups", type=int, metavar="N",
                   help="run each transformer block's heads and feed-forward units as N "
                   "independent chains that the server runs on different cores at once; "
                   "1 keeps each projection whole (default: export_for_serving's, 2)")


def _configure_predict(p: argparse.ArgumentParser) -> None:
    p.add_argument("model_dir",
                   help="an export: saved_models/NAME (its newest version) or a version folder")
    p.add_argument("texts", nargs="*", help="texts to classify (or use --input)")
    p.add_argument("--pair", action="append", metavar="TEXT",
                   help="second text of a pair (pair exports); once per text, in order "
                   "(default: none)")
    p.add_argument("--input", metavar="FILE",
                   help="a .csv, .tsv or .jsonl file of texts to classify (default: none; "
                   "the texts on the command line)")
    p.add_argument("--text-column", type=column, default="text", metavar="COLUMN",
                   help="text column: CSV/TSV header name or 0-based index, or JSONL key "
                   "(default: text)")
    p.add_argument("--pair-column", type=column, metavar="COLUMN",
                   help="second-text column, for pair exports (default: none)")
    p.add_argument("--no-header", action="store_true",
                   help="the CSV/TSV file has no header row; give columns by index "
                   "(default: the first row names the columns)")
    p.add_argument("--output", metavar="FILE",
                   help="write a CSV of predictions here (default: standard output; JSON "
                   "lines for texts on the command line)")
    p.add_argument("--batch-size", type=int, default=64, metavar="N",
                   help="texts per call of the SavedModel (default: 64)")


@subcommand("export", "export a trained model for TF Serving (raw text in, labels out)",
            _configure_export)
def export_command(args) -> int:
    from keras_bert_ft.serving.export import export_for_serving, max_positions

    if args.version is not None and args.version < 1:
        raise CLIError(f"--version must be 1 or more, got {args.version}")
    if args.max_length is not None and args.max_length < 1:
        raise CLIError(f"--max-length must be 1 or more, got {args.max_length}")
    if args.parallel_groups is not None and args.parallel_groups < 1:
        raise CLIError(f"--parallel-groups must be 1 or more, got {args.parallel_groups}")
    source = Path(args.model_path)
    name = args.name or (source if source.is_dir() else source.parent).resolve().name
    export_dir = Path(args.export_dir or Path("saved_models") / name)
    _check_can_create(export_dir, "--export-dir")
    try:
        model = load_trained_model(args.model_path)
    except CLIError:
        raise
    except Exception as err:  # a broken or foreign file: say so in one line
        raise CLIError(f"{args.model_path}: cannot load the model ({first_line(err)})"
                    ) from None
    limit = max_positions(model)
    if args.max_length is not None and limit is not None and args.max_length > limit:
        raise CLIError(f"--max-length {args.max_length} is more than the encoder's {limit} "
                    f"position embeddings; use at most {limit}")
    known = getattr(model, "pairs", None)
    pairs = known if args.pairs is None else args.pairs
    if known is not None and pairs != known:
        trained, right, wrong = (("sentence pairs", "--pairs", "--single") if known
                                 else ("single texts", "--single", "--pairs"))
        raise CLIError(f"{args.model_path}: this model was trained on {trained}; export it "
                    f"with {right} (or no flag), not {wrong}")
    if pairs is None:
        print("note: the model does not record whether it classifies sentence pairs; "
              "exporting it for single texts (pass --pairs for a pair model)",
              file=sys.stderr)
        pairs = False
    try:
        groups = {} if args.parallel_groups is None else {"parallel_groups": args.parallel_groups}
        path = export_for_serving(model, None, export_dir, args.version, pairs=pairs,
                                  max_length=args.max_length, precision=args.precision, **groups)
    except (OSError, ValueError) as err:
        raise CLIError(first_line(err)) from None
    kind = "sentence pairs" if pairs else "single texts"
    print(f"Exported {path} for {kind} (serve with --model_base_path={export_dir.resolve()})")
    return 0

@subcommand("predict", "classify texts with an exported SavedModel", _configure_predict)
def predict_command(args) -> int:
    from keras_bert_ft.serving.predict import (
        ExportedClassifier,
        export_inputs,
        read_texts,
        resolve_export,
    )

    _check_predict_options(args)
    try:
        path = resolve_export(args.model_dir)
        export_pairs = "text_pair" in export_inputs(path)
    except (OSError, ValueError) as err:
        raise CLIError(str(err)) from None
    given_pairs = args.pair_column is not None if args.input else bool(args.pair)
    if export_pairs and not given_pairs:
        raise CLIError(f"{path} classifies sentence pairs: give the second texts with "
                    + ("--pair-column COLUMN" if args.input else "--pair TEXT per text"))
    if given_pairs and not export_pairs:
        raise CLIError(f"{path} classifies single texts: drop "
                    + ("--pair-column" if args.input else "--pair"))
    if args.input:
        texts, pairs = read_texts(args.input, args.text_column, args.pair_column,
                                  header=not args.no_header)
    else:
        texts, pairs = args.texts, args.pair
    import tensorflow as tf

    try:
        classifier = ExportedClassifier(path)
        result = classifier.predict(texts, pairs, batch_size=args.batch_size)
    except (OSError, ValueError, tf.errors.OpError) as err:
        raise CLIError(first_line(err)) from None
    _write_predictions(args, classifier, texts, pairs, result)
    return 0


def _check_can_create(path: Path, option: str) -> None:
    """Raise `CLIError` if `path` is a file, or a folder above it is not a folder."""
    if path.exists() and not path.is_dir():
        raise CLIError(f"{option} {path}: exists and is not a folder")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise CLIError(f"{option} {path}: {parent} is not a folder")
            return


def _check_predict_options(args) -> None:
    """Refuse contradictory or impossible predict options, before anything is loaded."""
    if bool(args.texts) == bool(args.input):
        raise CLIError("give texts on the command line or --input FILE, not both or neither")
    if args.batch_size < 1:
        raise CLIError(f"--batch-size must be 1 or more, got {args.batch_size}")
    if args.input:
        if args.pair:
            raise CLIError("--pair goes with texts on the command line; with --input name the "
                        "second-text column with --pair-column")
        source = Path(args.input)
        if not source.exists():
            raise CLIError(f"--input {source}: no such file")
        if not source.is_file():
            raise CLIError(f"--input {source}: not a file")
        if not os.access(source, os.R_OK):
            raise CLIError(f"--input {source}: cannot be read (permission denied)")
    else:
        if args.pair_column is not None or args.no_header:
            raise CLIError("--pair-column and --no-header describe an --input file")
        if args.pair and len(args.pair) != len(args.texts):
            raise CLIError(f"{len(args.texts)} texts but {len(args.pair)} --pair texts; "
                        "give one --pair per text")
    if args.output:
        out = Path(args.output)
        if out.is_dir():
            raise CLIError(f"--output {out}: is a folder; give a file name")
        if not out.resolve().parent.is_dir():
            raise CLIError(f"--output {out}: the folder {out.parent} does not exist")


def _write_predictions(args, classifier, texts, pairs, result) -> None:
    """A CSV (for --input or --output) or one JSON line per text on standard output."""
    from keras_bert_ft.infra import atomic_path

    names = classifier.label_names or [
        str(i) for i in range(result["probabilities"].shape[1])]
    if result["probabilities"].shape[1] == 1:  # one sigmoid unit: the score of label 1
        names = names[1:2]
    # A multi-label export gives each row a list of labels: "|"-joined in CSV.
    multi = "labels" in result
    label_header = "labels" if multi else "label"
    shown = ["|".join(row) for row in result["labels"]] if multi else result["label"]

    def write_csv(out) -> None:
        writer = csv.writer(out)
        writer.writerow(["text"] + (["text_pair"] if pairs else []) + [label_header]
                        + [f"p_{n}" for n in names])
        for i, text in enumerate(texts):
            writer.writerow([text] + ([pairs[i]] if pairs else []) + [shown[i]]
                            + [f"{p:.6f}" for p in result["probabilities"][i]])

    if args.output:
        with atomic_path(args.output) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
            write_csv(f)
    elif args.input:
        write_csv(sys.stdout)
    else:
        for i in range(len(texts)):
            scores = dict(zip(names, map(float, result["probabilities"][i]), strict=True))
            answer = result["labels"][i] if multi else result["label"][i]
            print(json.dumps({label_header: answer, "probabilities": scores}))
