"""What every command shares: JSON-lines output, the exit codes, flag types and defaults."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import sys
from collections.abc import Callable
from typing import Any

EXIT_OK, EXIT_BAD_INPUT = 0, 2

#: The ``--help`` epilog of ``emovox`` and of every command (docs/cli.md says the same).
EXIT_CODES = (
    "exit codes: 0 done; 2 bad usage, config or input (one line on stderr names it; in a batch "
    "— predict, models, corpus degrade — every other input still gets its line and 2 means at "
    "least one input was bad); 130 interrupted (rerun the same command to resume)"
)

#: One command: its one-line help and the function that adds its arguments (and ``run``).
Command = tuple[str, Callable[[argparse.ArgumentParser], None]]


def emit(obj: dict) -> None:
    """One JSON line on stdout: the machine-readable output of every command."""
    print(json.dumps(obj, ensure_ascii=False), flush=True)


def report_error(message: str) -> None:
    """One line on stderr, the form every bad-input message takes."""
    print(f"emovox: error: {message}", file=sys.stderr)


def default(owner: Any, name: str) -> Any:
    """The default of a dataclass field or a function parameter: a flag's default is read from
    where the setting lives, never repeated as a literal in the CLI."""
    if dataclasses.is_dataclass(owner):
        (field,) = [f for f in dataclasses.fields(owner) if f.name == name]
        if field.default_factory is not dataclasses.MISSING:
            return field.default_factory()
        return field.default
    return inspect.signature(owner).parameters[name].default


def positive(kind: type) -> Callable[[str], Any]:
    """An argparse type for numbers > 0 (a bad value is a one-line usage error, exit 2)."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"{text} must be > 0")
        return value

    return parse
