"""Typed experiment configuration, loaded from YAML with ``key.sub=value`` overrides.

Everything is checked when the config is read, before any audio: unknown keys, wrong types,
numeric ranges (``bounded`` fields), and every component's own parameters against the
component (the method's ``Params``, the model builder's signature, the extractor's defaults,
each augmentation's and channel's parameters, the corpus loader's options).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from emovox.augment import AugmentConfig
from emovox.errors import ConfigError
from emovox.schema import bounded, range_error
from emovox.training.trainer import TrainConfig


@dataclass
class CorpusConfig:
    format: str = "emodb"
    path: str = "../shared/data/emodb"
    #: Keep only these labels (in this order); None keeps all.
    labels: list[str] | None = None
    #: Keep only these speakers (smoke tests, subsets); None keeps all.
    speakers: list[str] | None = None
    on_error: str = "skip"
    #: Loader-specific options (e.g. IEMOCAP's ``merge_excited``).
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class FeatureConfig:
    name: str = "egemaps_lld"
    params: dict[str, Any] = field(default_factory=dict)
    normalise: str = "global"
    #: Concatenate this many consecutive frames into one (shorter sequences, faster RNNs).
    stack: int = bounded(1, ge=1)
    #: Feature cache directory: "auto" is $EMOVOX_CACHE/features (default
    #: ~/.cache/emovox/features); null computes on the fly.
    cache: str | None = "auto"
    #: Processes, or ``{backend: ray, address: ...}`` (emovox.ray_executor).
    workers: int | dict[str, Any] = bounded(2, ge=1)


@dataclass
class ProtocolConfig:
    name: str = "loso"
    seeds: list[int] = field(default_factory=lambda: [0])
    k: int = bounded(5, ge=2)
    #: Run only these fold indices (smoke tests); null runs all.
    folds: list[int] | None = bounded(None, ge=0)
    #: Parts of a ``combined`` corpus whose speakers only ever train (never validate or test).
    train_only: list[str] = field(default_factory=list)


@dataclass
class ModelConfig:
    name: str = "bigru"
    params: dict[str, Any] = field(default_factory=dict)
    #: Models trained per fold from different initial seeds; their probabilities are averaged.
    ensemble: int = bounded(1, ge=1)


@dataclass
class MethodConfig:
    """How to learn from a fold (``emovox list methods``) and its typed parameters."""

    name: str = "supervised"
    params: Any = field(default_factory=dict)


@dataclass
class TaskConfig:
    #: "categorical" (class probabilities) or "dimensional" (regression of ``dimensions``).
    kind: str = "categorical"
    dimensions: list[str] = field(default_factory=lambda: ["arousal", "valence"])
    #: Regression loss: "ccc" (1 − concordance correlation) or "mse".
    loss: str = "ccc"
    #: Derive dimensions from the category (emovox.corpora.dimensions) for corpora that have
    #: no dimensional annotation (Emo-DB, RAVDESS, CREMA-D). Reports say so.
    derived: bool = False


@dataclass
class TestSetConfig:
    """Another copy of the corpus to test every fold on (same utterance ids, e.g. re-recorded)."""

    format: str = "manifest"
    path: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    #: When ``path`` holds no corpus yet, create it by passing the experiment's corpus through
    #: this channel (see ``emovox corpus degrade``), with ``channel_params``.
    channel: str | None = None
    channel_params: dict[str, Any] = field(default_factory=dict)


@dataclass
class ExperimentConfig:
    name: str = "experiment"
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainConfig = field(default_factory=TrainConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    #: Training-time augmentation (training folds only; never validation or test).
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    #: Extra test sets by name; the main corpus is reported as the "clean" test.
    test_sets: dict[str, TestSetConfig] = field(default_factory=dict)
    #: How to learn from a fold; the model, features and training settings above are its
    #: ingredients.
    method: MethodConfig = field(default_factory=MethodConfig)
    #: Folds trained in parallel processes (each with ``training.threads`` threads), or
    #: ``{backend: ray, address: auto|HOST:PORT|local}`` for Ray tasks (emovox.ray_executor).
    workers: int | dict[str, Any] = bounded(1, ge=1)


def _build(cls: type, data: Any, where: str) -> Any:
    """Instantiate dataclass ``cls`` from a dict, rejecting unknown keys and wrong types."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    known = set(fields)
    unknown = set(data) - known
    if unknown:
        raise ConfigError(f"{where or 'config'}: unknown key(s) {sorted(unknown)}; "
                          f"expected {sorted(known)}")
    kwargs = {}
    for key, value in data.items():
        hint = hints[key]
        path = f"{where}.{key}" if where else key
        if dataclasses.is_dataclass(hint):
            kwargs[key] = _build(hint, value or {}, path)
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
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        item = typing.get_args(hint)[1]
        if dataclasses.is_dataclass(item):
            return {k: _build(item, v or {}, f"{where}.{k}") for k, v in value.items()}
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


def apply_overrides(data: dict, overrides: list[str] | dict[str, Any]) -> dict:
    """``training.lr=0.001`` style overrides (values parsed as YAML), or a mapping of dotted
    keys to values (a study's variants)."""
    if isinstance(overrides, dict):
        items = list(overrides.items())
    else:
        items = []
        for item in overrides:
            if "=" not in item:
                raise ConfigError(f"override {item!r} is not key=value")
            key, raw = item.split("=", 1)
            try:
                items.append((key, yaml.safe_load(raw)))
            except yaml.YAMLError as exc:
                raise ConfigError(f"override {item!r}: {yaml_problem(exc)}") from None
    for key, value in items:
        node = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {key!r}: {part} is not a section")
        node[parts[-1]] = value
    return data


def yaml_problem(exc: yaml.YAMLError) -> str:
    """A YAML error in one line, without PyYAML's multi-line context and caret."""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"invalid YAML: {problem}"


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ConfigError(f"{where}: {yaml_problem(exc)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def build_config(data: dict) -> ExperimentConfig:
    config = _build(ExperimentConfig, data, "")
    check_components(config)
    return config


def build_params(cls: type, data: Any, where: str) -> Any:
    """A component's typed parameters from a mapping (unknown keys, types, ranges checked)."""
    return _build(cls, data or {}, where)


def check_components(config: ExperimentConfig) -> None:
    """Each component's parameters against the component itself, and the settings that only
    make sense together. Imports the registries lazily: the schema above stays light."""
    from emovox.augment import check_transforms
    from emovox.corpora import check_corpus_options
    from emovox.experiments.methods.base import METHODS
    from emovox.experiments.methods.supervised import check_model_params
    from emovox.experiments.protocols import PROTOCOLS
    from emovox.features import make_extractor

    method = METHODS.get(config.method.name)
    if not dataclasses.is_dataclass(config.method.params):
        config.method.params = build_params(method.Params, config.method.params,
                                            "method.params")
    method(config)  # a method checks how its parameters combine when it is built
    check_model_params(config.model.name, config.model.params)
    make_extractor(config.features.name, **config.features.params)
    check_transforms(config.augment.transforms)
    check_corpus_options(config.corpus.format, config.corpus.options)
    PROTOCOLS.get(config.protocol.name)
    if not config.protocol.seeds:
        raise ConfigError("protocol.seeds: must name at least one seed")
    if config.task.kind not in ("categorical", "dimensional"):
        raise ConfigError(f"task.kind: must be categorical or dimensional, not "
                          f"{config.task.kind!r}")
    if config.task.loss not in ("ccc", "mse"):
        raise ConfigError(f"task.loss: must be ccc or mse, not {config.task.loss!r}")
    for name, test in config.test_sets.items():
        check_corpus_options(test.format, test.options, f"test_sets.{name}.options")
        if test.channel:
            from emovox.channels import CHANNELS

            channel = CHANNELS.get(test.channel)
            build_params(channel.config_class, test.channel_params,
                         f"test_sets.{name}.channel_params")


def load_config(path: str | Path | None, overrides: list[str] = ()) -> ExperimentConfig:
    data = read_yaml(path) if path is not None else {}
    return build_config(apply_overrides(data, list(overrides)))


def to_dict(config: ExperimentConfig) -> dict:
    return dataclasses.asdict(config)
