"""Old import paths kept for one release after a module moved."""

from __future__ import annotations

import importlib
import sys
import warnings


def alias_module(old_name: str, new_name: str) -> None:
    """Make the module `old_name` the module `new_name`, with a DeprecationWarning.

    Called at the top of the old module's file. The old name then refers to the
    very same module object, so attributes, private helpers and monkeypatching
    behave exactly as through the new name.
    """
    warnings.warn(
        f"{old_name} is deprecated and will be removed in the next release; "
        f"import {new_name} instead",
        DeprecationWarning,
        stacklevel=3,
    )
    sys.modules[old_name] = importlib.import_module(new_name)
