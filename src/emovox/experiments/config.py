"""Typed experiment configuration, loaded from YAML with ``key.sub=value`` overrides.

Everything is checked when the config is read, before any audio: unknown keys, wrong types,
numeric ranges (``bounded`` fields), and every component's parameters, each by its registry
(``Registry.params``: one typed dataclass per method, model, extractor, augmentation, corpus
format and channel). The config imports registries, never the plug-ins: they import it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from emovox.augment import AugmentConfig
from emovox.errors import ConfigError
from emovox.schema import bounded, build
from emovox.training.trainer import TrainConfig


@dataclass
class CorpusConfig:
    format: str = "emodb"
    path: str = "../shared/data/emodb"
    #: Keep only these labels (in this order); None keeps all.
    labels: list[str] | None = None
    #: Keep only these speakers (smoke tests, subsets); None keeps all.
    speakers: list[str] | None = None
    #: A bad audio file: "skip" it (warn, list it in the report) or "stop".
    on_error: Literal["skip", "stop"] = "skip"
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
    kind: Literal["categorical", "dimensional"] = "categorical"
    dimensions: list[str] = field(default_factory=lambda: ["arousal", "valence"])
    #: Regression loss: "ccc" (1 − concordance correlation) or "mse".
    loss: Literal["ccc", "mse"] = "ccc"
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
    config = build(ExperimentConfig, data)
    check_components(config)
    return config


def check_components(config: ExperimentConfig) -> None:
    """Each component's parameters, checked by its registry, and the settings that only make
    sense together. Imports the registries when called: reading a config stays light."""
    from emovox.augment import TRANSFORMS
    from emovox.channels import CHANNELS
    from emovox.corpora import CORPORA
    from emovox.experiments.methods import METHODS
    from emovox.experiments.protocols import PROTOCOLS
    from emovox.features import make_extractor
    from emovox.models import check_model

    if not dataclasses.is_dataclass(config.method.params):
        config.method.params = METHODS.params(config.method.name, config.method.params,
                                              "method.params")
    METHODS.get(config.method.name)(config)  # a method checks how its parameters combine
    check_model(config.model.name, config.model.params)
    make_extractor(config.features.name, **config.features.params)
    for name, params in config.augment.transforms.items():
        TRANSFORMS.params(name, params, f"augment.transforms.{name}")
    CORPORA.params(config.corpus.format, config.corpus.options, "corpus.options")
    PROTOCOLS.get(config.protocol.name)
    if not config.protocol.seeds:
        raise ConfigError("protocol.seeds: must name at least one seed")
    for name, test in config.test_sets.items():
        CORPORA.params(test.format, test.options, f"test_sets.{name}.options")
        if test.channel:
            CHANNELS.params(test.channel, test.channel_params,
                            f"test_sets.{name}.channel_params")


def load_config(path: str | Path | None, overrides: list[str] = ()) -> ExperimentConfig:
    data = read_yaml(path) if path is not None else {}
    return build_config(apply_overrides(data, list(overrides)))


def to_dict(config: ExperimentConfig) -> dict:
    return dataclasses.asdict(config)
