"""Range metadata for config dataclasses: ``epochs: int = bounded(40, ge=1)``. The config loader
checks every bounded field when a YAML file or override is read, so a bad value fails with one
line naming the key and the allowed range, before any audio is read."""

from __future__ import annotations

from dataclasses import field
from typing import Any


def bounded(default: Any, *, ge: float | None = None, gt: float | None = None,
            le: float | None = None, lt: float | None = None) -> Any:
    return field(default=default, metadata={"range": (ge, gt, le, lt)})


def range_error(value: Any, bounds: tuple) -> str | None:
    """None when ``value`` (a number, or each number of a list) is within ``bounds``."""
    ge, gt, le, lt = bounds
    values = value if isinstance(value, list) else [value]
    for v in values:
        if not isinstance(v, int | float):  # None, or e.g. a Ray workers mapping
            continue
        if ((ge is not None and v < ge) or (gt is not None and v <= gt)
                or (le is not None and v > le) or (lt is not None and v >= lt)):
            parts = [f">= {ge}" if ge is not None else "", f"> {gt}" if gt is not None else "",
                     f"<= {le}" if le is not None else "", f"< {lt}" if lt is not None else ""]
            return f"{v!r} out of range: must be {' and '.join(p for p in parts if p)}"
    return None
