"""The fenced code blocks of README.md, and the shell commands in them. Not a test module."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
_FENCE = re.compile(r"^```(\w*)\s*$")


@dataclass(frozen=True)
class Block:
    language: str
    text: str
    line: int  # 1-based line of the opening fence


def readme_blocks(path: Path = README) -> list[Block]:
    """Every fenced block, in order, with its language tag ("" when none)."""
    blocks, language, start, body = [], None, 0, []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        fence = _FENCE.match(line)
        if language is None and fence:
            language, start, body = fence.group(1), number, []
        elif language is not None and line.strip() == "```":
            blocks.append(Block(language, "\n".join(body) + "\n", start))
            language = None
        elif language is not None:
            body.append(line)
    if language is not None:
        raise ValueError(f"{path}:{start}: code block is never closed")
    return blocks


def shell_commands(block: Block) -> list[str]:
    """The commands of a shell block: continuation lines and multi-line quotes joined,
    comments dropped."""
    commands, pending = [], ""
    for line in block.text.splitlines():
        line = pending + line
        code, open_quote = _scan(line)
        if open_quote:
            pending = line + "\n"
            continue
        if code.rstrip().endswith("\\"):
            pending = code.rstrip()[:-1] + " "
            continue
        pending = ""
        if code.strip():
            commands.append(code.strip())
    if pending:
        raise ValueError(f"README.md:{block.line}: unfinished command {pending!r}")
    return commands


def _scan(line: str) -> tuple[str, bool]:
    """The line without its comment, and whether a quote is still open at its end.

    A "#" starts a comment at the line start or after a blank, outside quotes.
    """
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i], False
    return line, quote is not None
