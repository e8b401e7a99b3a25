"""Typed settings from YAML mappings: one checker for the experiment config and for every
plug-in's parameters.

A settings class is a dataclass; :func:`build` makes one from a mapping and fails with one line
naming the key on an unknown or missing key, a wrong type, a choice outside a ``Literal`` or a
number outside a ``bounded`` field's range (``epochs: int = bounded(40, ge=1)``).
:func:`signature_params` makes the dataclass of a builder whose keyword parameters are its
declaration (a model, an augmentation, a corpus loader).
"""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from collections.abc import Callable, Collection
from dataclasses import field
from typing import Any

from emovox.errors import ConfigError


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


def build(cls: type, data: Any, where: str = "", owner: str = "") -> Any:
    """Instantiate dataclass ``cls`` from a mapping (null = all defaults), checking every key:
    ``where`` is the keys' path in the config (``model.params``), named by any error, and
    ``owner`` what they belong to (`` for model 'bigru'``)."""
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = set(data) - set(fields)
    if unknown:
        raise ConfigError(f"{where or 'config'}: unknown key(s) {sorted(unknown)}{owner}; "
                          f"expected {sorted(fields)}")
    missing = [name for name, f in fields.items() if name not in data
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"{where or 'config'}: missing key(s) {missing}{owner}")
    kwargs = {}
    for key, value in data.items():
        hint = hints[key]
        path = f"{where}.{key}" if where else key
        if dataclasses.is_dataclass(hint):
            kwargs[key] = build(hint, value, path)
        else:
            kwargs[key] = _check(hint, value, path)
            bounds = fields[key].metadata.get("range")
            problem = bounds and range_error(kwargs[key], bounds)
            if problem:
                raise ConfigError(f"{path}: {problem}")
    return cls(**kwargs)


def _check(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        if value not in typing.get_args(hint):
            raise ConfigError(f"{where}: {value!r} is not one of {list(typing.get_args(hint))}")
        return value
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(hint):
            try:
                return _check(option, value, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: {value!r} does not match {hint}")
    if hint is type(None):
        if value is None:
            return None
        raise ConfigError(f"{where}: expected null")
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [_check(typing.get_args(hint)[0], v, where) for v in value]
    if origin is tuple:  # tuple[X, ...]: a YAML list
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return tuple(_check(typing.get_args(hint)[0], v, where) for v in value)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        item = typing.get_args(hint)[1]
        if dataclasses.is_dataclass(item):
            return {k: build(item, v, f"{where}.{k}") for k, v in value.items()}
        return value
    if hint is Any:
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is int and isinstance(value, bool):
        raise ConfigError(f"{where}: expected int, got {value!r}")
    if not isinstance(value, hint):
        raise ConfigError(f"{where}: expected {hint.__name__}, got {value!r}")
    return value


def signature_params(builder: Callable, supplied: Collection[str] = ()) -> type:
    """The dataclass of ``builder``'s keyword parameters (types from its annotations, defaults
    from its defaults), leaving out those its caller ``supplied`` itself (a model's
    ``input_dim``): the parameters are declared once, where they are used."""
    signature = inspect.signature(builder, eval_str=True)
    fields: list[tuple] = []
    for p in signature.parameters.values():
        if p.name in supplied or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        hint = Any if p.annotation is p.empty else p.annotation
        fields.append((p.name, hint) if p.default is p.empty
                      else (p.name, hint, field(default=p.default)))
    name = f"{getattr(builder, '__name__', 'builder')}_params"
    return dataclasses.make_dataclass(name, fields, kw_only=True, frozen=True)
