"""The `keras-bert-ft` command: its parser and `main` (`keras_bert_ft.cli.main`).

The subcommands live in the modules beside this one (`train`: train, evaluate, tune, run,
distill; `serving`: export, predict; `model`: explain, export-hf; `pretrain`: pretrain).
Each registers its functions in `keras_bert_ft.cli.common.SUBCOMMANDS` when imported;
this module imports them all and builds the parser from the registry. Nothing imports
this module but `keras_bert_ft.cli` itself (`main`, `python -m keras_bert_ft.cli`).

Every option is checked before any work starts. An error caused by the input (the
package's `KerasBertFtError`) is printed as one line, `error: ...`, with exit status 2;
so is a ValueError or OSError raised by the package's own code (library code that does
not raise the package's error types yet). Anything else is a bug: one line with a hint,
exit status 1. `--debug` prints the traceback as well.

TensorFlow prints start-up log lines from C++ before it reads any setting (see
`quiet_tensorflow`); the CLI keeps them off the terminal unless `--verbose-tf` or
`--debug` is given. This module and the subcommand modules therefore do not import
TensorFlow when they are imported.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path

from keras_bert_ft.cli import model, pretrain, serving, train  # they register subcommands
from keras_bert_ft.cli.common import EXIT_BUG, EXIT_USAGE, SUBCOMMANDS, Subcommand
from keras_bert_ft.errors import KerasBertFtError

# `--help` lists the groups in this order; subcommands registered elsewhere come last.
_GROUPS = [module.__name__ for module in (train, serving, model, pretrain)]


def _listing_order(cmd: Subcommand) -> int:
    module = cmd.run.__module__
    return _GROUPS.index(module) if module in _GROUPS else len(_GROUPS)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (`error: ...`), exit status 2."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"error: {message} (see: {self.prog} --help)\n")


def _add_global_options(p: argparse.ArgumentParser, default) -> None:
    p.add_argument("--debug", action="store_true", default=default,
                   help="on an error, print the Python traceback too; show TensorFlow's logs")
    p.add_argument("--verbose-tf", action="store_true", default=default,
                   help="show TensorFlow's start-up log lines (hidden by default)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="keras-bert-ft", description="Fine-tune BERT encoders for text classification."
    )
    _add_global_options(parser, False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for cmd in sorted(SUBCOMMANDS.values(), key=_listing_order):  # stable sort
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help)
        cmd.configure(p)
        # Also accepted after the command; SUPPRESS keeps a value given before it.
        _add_global_options(p, argparse.SUPPRESS)
        p.set_defaults(_run=cmd.run)
    return parser


def quiet_tensorflow() -> None:
    """Import TensorFlow without its start-up log lines on the terminal.

    TensorFlow's C++ code logs through absl before `absl::InitializeLog()` is
    called, and absl writes such early messages to stderr whatever the
    threshold, so TF_CPP_MIN_LOG_LEVEL cannot hide them (oneDNN, CUDA driver
    and CPU feature notices). They are all written while the library loads,
    so stderr (file descriptor 2) points to /dev/null for the import only.
    TF_CPP_MIN_LOG_LEVEL=3 (unless already set) quiets what C++ logs later.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    import logging

    logging.getLogger("tensorflow").setLevel(logging.ERROR)


def _raised_by_package(error: BaseException) -> bool:
    # Where the exception was raised: the innermost frame of its traceback.
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return False
    package = Path(__file__).resolve().parents[1]  # keras_bert_ft/
    return Path(tb.tb_frame.f_code.co_filename).resolve().is_relative_to(package)


def exit_status(error: BaseException) -> int:
    """2 for errors in the input (the package's own errors; ValueError and OSError raised
    by the package's code), 1 for anything else: a bug."""
    if isinstance(error, KerasBertFtError):
        return EXIT_USAGE
    if isinstance(error, (ValueError, OSError)) and _raised_by_package(error):
        return EXIT_USAGE
    return EXIT_BUG


def one_line(text: str) -> str:
    """`text` with its lines joined, so an error is always one line."""
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


def main(argv: list[str] | None = None) -> int:
    """Entry point of `keras-bert-ft` and `python -m keras_bert_ft.cli`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--debug" not in argv and "--verbose-tf" not in argv:
        quiet_tensorflow()
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume from the last checkpoint",
              file=sys.stderr)  # fmt: skip
        return 130
    except KerasBertFtError as e:  # the input was wrong
        return _report(e, EXIT_USAGE, args.debug)
    except Exception as e:  # a bug, unless it is a ValueError / OSError of the package's
        return _report(e, exit_status(e), args.debug)


def _report(error: BaseException, status: int, debug: bool) -> int:
    """Print `error` as one `error: ...` line (after its traceback with --debug)."""
    if debug:
        traceback.print_exception(error)
    message = one_line(error) or type(error).__name__
    if status == EXIT_BUG:
        message = (f"unexpected {type(error).__name__}: {message} (this is a bug; rerun with "
                   "--debug for the traceback)")  # fmt: skip
    print(f"error: {message}", file=sys.stderr)
    return status
