"""The `pretrain` subcommand of `keras-bert-ft`: continued masked-LM pretraining on raw
text."""

from __future__ import annotations

import argparse

from keras_bert_ft.cli.common import FRACTION, POSITIVE, integer, number, subcommand


def _configure_pretrain(p: argparse.ArgumentParser) -> None:
    from keras_bert_ft.pretraining.run import PretrainSettings

    s = PretrainSettings()
    p.add_argument("--text", nargs="+", required=True, metavar="FILE",
                   help="raw text files: one document per line, or documents separated by "
                   "blank lines; .jsonl files give one document per line in the field "
                   "\"text\" (required, no default)")
    p.add_argument("--from", dest="model", default=s.model,
                   help="encoder to start from: packaged name, HF/Google/TF-Hub/keras-hub "
                   "directory, or Hugging Face Hub name (default %(default)s)")
    p.add_argument("--steps", type=integer(1), default=s.steps,
                   help="optimizer steps in all (default %(default)s)")
    p.add_argument("--batch-size", type=integer(1), default=s.batch_size,
                   help="sequences per step (default %(default)s)")
    p.add_argument("--max-length", type=integer(8), default=s.max_length,
                   help="tokens per packed sequence, specials included (default %(default)s)")
    p.add_argument("--learning-rate", type=POSITIVE, default=s.learning_rate,
                   help="peak learning rate (default %(default)s)")
    p.add_argument("--warmup-ratio", type=number(0, 1), default=s.warmup_ratio,
                   help="fraction of the steps that warm the learning rate up (default "
                   "%(default)s)")
    p.add_argument("--nsp", action="store_true", default=s.nsp,
                   help="also train next-sentence prediction on sentence pairs (default: off)")
    p.add_argument("--whole-word-masking", dest="whole_word", action="store_true",
                   default=s.whole_word,
                   help="mask a word's ## pieces together (default: off)")
    p.add_argument("--mask-fraction", dest="select_rate", type=number(0, 1, low_open=True),
                   default=s.select_rate,
                   help="fraction of tokens chosen for prediction (default %(default)s)")
    p.add_argument("--max-predictions", type=integer(1), default=s.max_predictions,
                   help="cap on predictions per sequence (default %(default)s)")
    p.add_argument("--validation-fraction", type=FRACTION, default=s.validation_fraction,
                   help="fraction of the documents held out for MLM loss and accuracy "
                   "(default %(default)s)")
    p.add_argument("--max-documents", type=integer(1), default=s.max_documents,
                   help="use only the first N documents (default: all)")
    p.add_argument("--steps-per-checkpoint", type=integer(1), default=s.steps_per_checkpoint,
                   help="steps between checkpoints and held-out evaluations (default "
                   "%(default)s)")
    p.add_argument("--head-warmup-steps", type=integer(0), default=s.head_warmup_steps,
                   help="first train the heads alone for N steps, the encoder frozen: for a "
                   "model without pretrained heads (default %(default)s)")
    p.add_argument("--head-warmup-learning-rate", type=POSITIVE,
                   default=s.head_warmup_learning_rate,
                   help="peak learning rate of the head warm-up (default %(default)s)")
    p.add_argument("--snapshots", action="store_true", default=s.snapshots,
                   help="also keep the model of every checkpoint as a Hugging Face directory "
                   "in OUTPUT_DIR/snapshots/step-N, to choose the step count on your own "
                   "validation data (default: off)")
    p.add_argument("--seed", type=integer(0), default=s.seed,
                   help="seed of the split, packing and masks (default %(default)s)")
    p.add_argument("--output-dir", default=s.output_dir,
                   help="checkpoints, TensorBoard logs, and the adapted encoder as a Hugging "
                   "Face directory and encoder.keras (default %(default)s)")
    p.add_argument("--no-resume", action="store_true", default=not s.resume,
                   help="start over even if --output-dir holds checkpoints (default: resume)")


@subcommand("pretrain", "continue masked-LM pretraining of an encoder on raw text",
            _configure_pretrain)
def pretrain_command(args) -> int:
    from keras_bert_ft.pretraining.run import PretrainSettings, pretrain

    settings = PretrainSettings(
        text_files=list(args.text), model=args.model, steps=args.steps,
        batch_size=args.batch_size, max_length=args.max_length,
        learning_rate=args.learning_rate, warmup_ratio=args.warmup_ratio, nsp=args.nsp,
        whole_word=args.whole_word, select_rate=args.select_rate,
        max_predictions=args.max_predictions,
        validation_fraction=args.validation_fraction, max_documents=args.max_documents,
        steps_per_checkpoint=args.steps_per_checkpoint,
        head_warmup_steps=args.head_warmup_steps,
        head_warmup_learning_rate=args.head_warmup_learning_rate, snapshots=args.snapshots,
        seed=args.seed,
        output_dir=args.output_dir, resume=not args.no_resume)
    result = pretrain(settings)
    print(f"\nSaved: {result.output_dir} (Hugging Face directory with the MLM head, "
          f"encoder.keras, checkpoints/, logs/); fine-tune it with "
          f"keras-bert-ft train --from {result.output_dir} ...")
    return 0
