"""The `keras-bert-ft` command line (`main`), one module per group of subcommands.

`keras_bert_ft.cli.app` holds the parser and `main`; `common` what the subcommands
share; `train`, `serving`, `model` and `pretrain` the subcommands. Importing this
package imports none of them: `main` (the console script `keras_bert_ft.cli:main`) is
loaded on first use, so that importing a subcommand module never imports
`keras_bert_ft.cli.app`. (No submodule is named `main`: once imported, it would hide
the function `keras_bert_ft.cli.main`.)
"""

from importlib import import_module

# Names of the old single-module `keras_bert_ft.cli`, by the module that now holds them.
_MOVED = {
    "main": "app", "build_parser": "app", "quiet_tensorflow": "app",
    "exit_status": "app", "one_line": "app",
    "SUBCOMMANDS": "common", "subcommand": "common", "CLIError": "common",
    "load_trained_model": "common", "integer": "common", "number": "common",
    "integers": "common", "numbers": "common", "POSITIVE": "common", "FRACTION": "common",
    "EXIT_USAGE": "common", "EXIT_BUG": "common",
    "settings_from_args": "train",
}  # fmt: skip

__all__ = ["main"]


def __getattr__(name: str):
    if name in _MOVED:
        return getattr(import_module(f"keras_bert_ft.cli.{_MOVED[name]}"), name)
    if name == "FROZEN_LEARNING_RATE":  # a library rule now
        from keras_bert_ft.training.finetune import FROZEN_LEARNING_RATE

        return FROZEN_LEARNING_RATE
    raise AttributeError(f"module 'keras_bert_ft.cli' has no attribute {name!r}")
