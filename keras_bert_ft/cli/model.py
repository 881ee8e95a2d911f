"""`keras-bert-ft explain` and `keras-bert-ft export-hf`: a trained model for people (an
HTML page of word attributions) and for Hugging Face `transformers` (a directory)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from keras_bert_ft.cli.common import CLIError, integer, load_trained_model, subcommand


def _configure_explain(p: argparse.ArgumentParser) -> None:
    from keras_bert_ft.explain import DEFAULT_MAX_STEPS, DEFAULT_STEPS, DEFAULT_TOLERANCE

    p.add_argument("model_path", help="a trained model: model.keras or the --output-dir of train")
    p.add_argument("texts", nargs="+", metavar="TEXT", help="texts to explain")
    p.add_argument("--pair", action="append", metavar="TEXT", default=None,
                   help="for a sentence-pair model: the second text, once per TEXT, in order "
                   "(default: none)")  # fmt: skip
    p.add_argument("--target", default=None,
                   help="explain the score of this label (name or index) (default: the "
                   "predicted label of each text)")  # fmt: skip
    p.add_argument("--steps", type=integer(1), default=DEFAULT_STEPS,
                   help="integrated-gradients intervals to start with; doubled until the "
                   "completeness check holds (default %(default)s)")  # fmt: skip
    p.add_argument("--max-steps", type=integer(1), default=DEFAULT_MAX_STEPS,
                   help="most intervals before giving up on the completeness check "
                   f"(within {DEFAULT_TOLERANCE:.0%}) (default %(default)s)")  # fmt: skip
    p.add_argument("--output", default="explanation.html",
                   help="the HTML page to write (default %(default)s)")


def _configure_export_hf(p: argparse.ArgumentParser) -> None:
    p.add_argument("model_path", help="a trained model: model.keras or the --output-dir of train")
    p.add_argument("--output-dir",
                   help="the Hugging Face directory to write (default: saved_models/NAME-hf, "
                   "NAME being the train output folder's name)")  # fmt: skip
    p.add_argument("--run-dir",
                   help="the train output folder whose run.json, settings.json and "
                   "report/metrics.json feed the model card (default: the folder of "
                   "model_path)")  # fmt: skip
    p.add_argument("--overwrite", action="store_true",
                   help="replace --output-dir if it exists (default: refuse)")


@subcommand("explain", "colour each word of texts by its attribution to the prediction "
            "(integrated gradients) in an HTML page", _configure_explain)  # fmt: skip
def explain_command(args) -> int:
    from keras_bert_ft.explain import DEFAULT_TOLERANCE, explain
    from keras_bert_ft.explain_html import render_html
    from keras_bert_ft.infra import atomic_write

    if args.pair is not None and len(args.pair) != len(args.texts):
        raise CLIError(f"{len(args.texts)} TEXT but {len(args.pair)} --pair: give one --pair "
                    "per TEXT")  # fmt: skip
    if args.max_steps < args.steps:
        raise CLIError(f"--max-steps {args.max_steps} is less than --steps {args.steps}")
    model = load_trained_model(args.model_path)
    if model.pairs and args.pair is None:
        raise CLIError(f"{args.model_path} classifies sentence pairs: give --pair TEXT for "
                    "each TEXT")  # fmt: skip
    if model.pairs is False and args.pair is not None:
        raise CLIError(f"{args.model_path} classifies single texts: remove --pair")
    explanations = explain(model, args.texts, args.pair, target=args.target,
                           steps=args.steps, max_steps=args.max_steps)  # fmt: skip
    for ex in explanations:
        top = sorted(ex.words, key=lambda w: -abs(w.attribution))[:5]
        print(f"{ex.predicted_name}  (explaining {ex.target_name} = {ex.score:.4f}): "
              + ", ".join(f"{w.text} {w.attribution:+.3f}" for w in top))
        print(f"  completeness: sum {ex.attribution_sum:+.4f} vs f(x) - f(baseline) "
              f"{ex.score - ex.baseline_score:+.4f}, error {ex.completeness_error:.1%} "
              f"({ex.steps} steps)")  # fmt: skip
        if ex.completeness_error > DEFAULT_TOLERANCE:
            print(f"warning: the attributions of {ex.text[:40]!r} miss the completeness "
                  f"check ({ex.completeness_error:.1%} > {DEFAULT_TOLERANCE:.0%}); raise "
                  "--max-steps", file=sys.stderr)  # fmt: skip
    title = f"Explanations of {Path(args.model_path).name}"
    atomic_write(args.output, render_html(explanations, title))
    print(f"Saved: {args.output}")
    return 0

@subcommand("export-hf", "write a trained classifier as a Hugging Face transformers "
            "directory (BertForSequenceClassification, tokenizer, model card)",
            _configure_export_hf)  # fmt: skip
def export_hf_command(args) -> int:
    from keras_bert_ft.checkpoints.hf_classifier import (
        check_exportable,
        needs_remote_code,
        save_hf_classifier,
    )

    source = Path(args.model_path)
    run_dir = Path(args.run_dir) if args.run_dir else (source if source.is_dir()
                                                        else source.parent)  # fmt: skip
    name = run_dir.resolve().name
    out = Path(args.output_dir) if args.output_dir else Path("saved_models") / f"{name}-hf"
    if out.exists() and not args.overwrite and (not out.is_dir() or any(out.iterdir())):
        raise CLIError(f"--output-dir {out} already exists; choose another or add --overwrite")
    model = load_trained_model(args.model_path)
    check_exportable(model)
    save_hf_classifier(model, out, run_dir=run_dir, name=name, overwrite=args.overwrite)
    remote = ", trust_remote_code=True" if needs_remote_code(model) else ""
    print(f"Saved: {out} (AutoModelForSequenceClassification.from_pretrained("
          f"\"{out}\"{remote}))")  # fmt: skip
    if remote:
        hidden = " and hidden layers" if model.hidden_units else ""
        print(f"This head ({model.pooling} pooling{hidden}) has no transformers class; "
              "the folder carries its PyTorch code (modeling_keras_bert_ft.py)")
    return 0
