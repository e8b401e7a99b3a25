"""One registry shape for every pluggable kind: corpora, features, augmentations, channels,
protocols, models and methods.

A component registers itself by name where it is defined (``@FEATURES.register``); the
registry's ``providers`` are the modules imported on first lookup, so a package need not
import its plug-ins at start-up and a higher layer (``asr``) can provide a lower layer's kind
(features) without the lower one importing it. Unknown names fail with one line that lists the
choices; ``describe`` gives each name's one-line description for ``emovox list`` and ``--help``.

Every entry's parameters are one dataclass, checked the same way for every kind by
:meth:`Registry.params`: the entry's own ``Params`` class (methods, extractors, channels), or,
for a builder whose keyword parameters are its declaration (models, augmentations, corpus
loaders), the dataclass :func:`emovox.schema.signature_params` makes of them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from emovox.errors import ConfigError
from emovox.schema import build, signature_params

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, providers: tuple[str, ...] = (),
                 supplied: tuple[str, ...] = ()):
        """``supplied``: the builder arguments that the caller passes itself and a config
        never sets (a model's ``input_dim``, a corpus loader's ``root``)."""
        self.kind = kind
        self.providers = providers
        self.supplied = supplied
        self._items: dict[str, T] = {}
        self._params: dict[str, type] = {}
        self._loaded = False

    def register(self, name: str | Callable | type | None = None) -> Any:
        """``@REG.register`` (name from the object's ``name`` attribute) or
        ``@REG.register("name")``."""
        if callable(name) and not isinstance(name, str):
            return self._add(getattr(name, "name"), name)  # noqa: B009  (class attribute)

        def decorate(obj: T) -> T:
            return self._add(name if isinstance(name, str) else getattr(obj, "name"), obj)  # noqa: B009

        return decorate

    def _add(self, name: str, obj: T) -> T:
        if name in self._items and self._items[name] is not obj:
            raise ValueError(f"{self.kind} {name!r} registered twice")
        self._items[name] = obj
        return obj

    def _load(self, until: str | None = None) -> None:
        """Import the providers (all of them, or only until ``until`` is registered: a
        command pays only for the plug-ins it uses)."""
        for module in self.providers:
            if until is not None and until in self._items:
                return
            importlib.import_module(module)
        self._loaded = True  # every provider is imported now

    def get(self, name: str) -> T:
        if name not in self._items and not self._loaded:
            self._load(until=name)
        if name not in self._items:
            raise ConfigError(f"unknown {self.kind} {name!r}; choose from {self.names()}")
        return self._items[name]

    def params_class(self, name: str) -> type:
        """The dataclass of ``name``'s parameters."""
        if name not in self._params:
            entry = self.get(name)
            declared = getattr(entry, "Params", None)
            self._params[name] = declared if declared is not None else signature_params(
                entry, ("self", *self.supplied))
        return self._params[name]

    def params(self, name: str, data: Any, where: str) -> Any:
        """``name``'s typed parameters from a mapping; an unknown or missing key, a wrong type
        or a value out of range fails with one line that names ``where.key``."""
        return build(self.params_class(name), data, where, f" for {self.kind} {name!r}")

    def names(self) -> list[str]:
        if not self._loaded:
            self._load()
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        try:
            self.get(name)  # type: ignore[arg-type]
        except ConfigError:
            return False
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def describe(self) -> dict[str, str]:
        """name → the first line of its docstring."""
        return {name: _summary(self._items[name]) for name in self.names()}


def _summary(obj: Any) -> str:
    doc = getattr(obj, "description", None) or obj.__doc__ or ""
    return " ".join(doc.strip().split("\n\n")[0].split())
