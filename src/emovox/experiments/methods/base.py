"""The Method interface: a way of learning from a fold.

A method says what it needs from the data, trains on a fold's training speakers with selection
on its validation speakers, scores any set of utterances, saves and loads the trained state in a
model directory, and may add its own sections to a report. The runner, ``emovox train`` and the
serving layer only talk to this interface: a new method is one module that subclasses
:class:`Method` and registers itself with ``@METHODS.register``.

Each method's parameters are a dataclass (``Params``): ``method.params`` in a config is checked
against it when the config is read (unknown keys and wrong types fail before any audio is read).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from emovox.corpora import Manifest
from emovox.errors import EmovoxError
from emovox.evaluation.metrics import classification_metrics, dimensional_metrics
from emovox.experiments.methods import METHODS

if TYPE_CHECKING:
    from emovox.experiments.config import ExperimentConfig
    from emovox.experiments.dataset import Dataset
    from emovox.experiments.streamers import Streamer


@dataclass
class Split:
    """One fold's utterances: train on ``train``, select on ``valid``, report on ``test``."""

    train: Manifest
    valid: Manifest
    test: Manifest


@dataclass(frozen=True)
class RunContext:
    """The run a method trains in, as its caller (the runner, ``emovox train``) states it:
    nothing is inferred from where a directory sits."""

    seed: int = 0
    #: The fold's index under the protocol; None outside a cross-validation (``emovox train``).
    fold: int | None = None
    #: This run's own files (checkpoints an interrupted run resumes from); None keeps nothing.
    work_dir: Path | None = None
    #: Artefacts that runs side by side may reuse (a study's variants share one EmoRL baseline
    #: per fold); None shares nothing.
    shared_dir: Path | None = None

    def checkpoint(self, name: str) -> Path | None:
        """Where to checkpoint ``name`` in the work dir (None when there is none)."""
        return self.work_dir / name if self.work_dir else None


@dataclass
class Scores:
    """Metrics of one set of utterances and one row per utterance (id, speaker, true, pred,
    proba or values, plus any method-specific columns)."""

    metrics: dict[str, float]
    predictions: list[dict[str, Any]]


@dataclass
class FoldResult:
    """Everything one fold of one seed produced; ``result.json`` is its serialised form."""

    seed: int
    fold: int
    test_speakers: list[str]
    valid_speakers: list[str]
    test: Scores
    #: The same test speakers' utterances in every extra test set, by name.
    tests: dict[str, Scores] = field(default_factory=dict)
    #: Training history (epochs, best epoch, per-epoch records) as the method reports it.
    training: dict[str, Any] = field(default_factory=dict)
    #: Method-specific results (EmoRL's early-decision comparison, curves, ...).
    extra: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FoldResult:
        data = dict(data)
        data["test"] = Scores(**data["test"])
        data["tests"] = {k: Scores(**v) for k, v in data.get("tests", {}).items()}
        return cls(**data)


def class_record(proba: np.ndarray, labels: list[str]) -> dict[str, Any]:
    """Label, confidence and every class probability (also what ONNX exports answer)."""
    return {"label": labels[int(proba.argmax())], "confidence": round(float(proba.max()), 6),
            "probabilities": {k: round(float(v), 6) for k, v in zip(labels, proba, strict=True)}}


class Method:
    """A way of learning from a fold.

    Subclasses set ``name`` and ``Params`` and implement :meth:`fit`, :meth:`outputs`,
    :meth:`save` and :meth:`load`. ``outputs`` returns class probabilities [N, C] (categorical
    tasks) or values [N, D] (dimensional); :meth:`score` turns them into :class:`Scores` with
    the shared metrics, and methods with richer outputs override it.
    """

    name: ClassVar[str]

    @dataclass
    class Params:
        """No parameters."""

    #: What the method reads from a Dataset beyond frame features (documentation and checks):
    #: any of "frames", "functionals", "transcripts", "word_timings", "unlabelled", "waveform".
    needs: ClassVar[tuple[str, ...]] = ("frames",)

    def __init__(self, config: ExperimentConfig):
        self.config = config
        self.params = config.method.params

    @property
    def model_name(self) -> str:
        """What reports and the service call the model: ``model.name``, unless the method
        builds its own network and ignores ``model:``."""
        return self.config.model.name

    # -- training and scoring -------------------------------------------------------------
    def fit(self, dataset: Dataset, split: Split, run: RunContext) -> tuple[Any, dict]:
        """Train on ``split.train``, select on ``split.valid``, seeded by ``run.seed``;
        checkpoint under ``run.work_dir`` so an interrupted fold resumes. Returns (trained
        state, training info)."""
        raise NotImplementedError

    def outputs(self, trained: Any, dataset: Dataset, manifest: Manifest) -> np.ndarray:
        raise NotImplementedError

    def score(self, trained: Any, dataset: Dataset, manifest: Manifest) -> Scores:
        return scores_from_outputs(dataset, manifest, self.outputs(trained, dataset, manifest))

    def describe(self, outputs: np.ndarray, labels: list[str]) -> dict[str, Any]:
        """``emovox predict``'s record of one utterance's outputs: by default the label, its
        confidence and every class probability."""
        return class_record(outputs, labels)

    def predict_wave(self, trained: Any, wave: np.ndarray) -> np.ndarray:
        """Probabilities (or values) for one new 16 kHz mono utterance (``emovox predict``)."""
        raise NotImplementedError(f"method {self.name!r} cannot label new audio")

    def streamer(self, trained: Any) -> Streamer:
        """The per-utterance model that ``serving.streaming`` runs on a live stream
        (``experiments.streamers``: stepping or utterance-level); one line why not, if not."""
        raise EmovoxError(f"method {self.name!r} cannot stream")

    def export_onnx(self, trained: Any, out: Path) -> dict[str, Any]:
        """Write the trained model as ONNX graphs and front-end data into ``out`` (the layout:
        ``serving.onnx_export``; the graphs: ``experiments.onnx``) and return their description
        for ``frontend.json``; one line why not, if it cannot be exported."""
        from emovox.experiments.onnx import not_exportable

        raise not_exportable(self.model_name, type(trained).__name__, self.name)

    def extra(self, trained: Any, dataset: Dataset, split: Split) -> dict[str, Any]:
        """Method-specific results of a finished fold (stored in ``FoldResult.extra``)."""
        return {}

    def report(self, results: list[FoldResult], out: Path) -> tuple[dict[str, Any], str]:
        """A method's own block of ``metrics.json`` and Markdown section of ``report.md``
        (figures written under ``out``), summarising ``FoldResult.extra`` over folds."""
        return {}, ""

    # -- model directories ----------------------------------------------------------------
    def save(self, trained: Any, out: Path) -> dict[str, Any]:
        """Write the trained state's files into ``out``; return what ``model.json`` must hold
        to load it again (beyond the method name and config)."""
        raise NotImplementedError

    def load(self, model_dir: Path, meta: dict[str, Any]) -> Any:
        raise NotImplementedError


def fold_dir(out: Path, seed: int, fold: int) -> Path:
    """Where the runner keeps one fold's checkpoints and ``result.json``."""
    return out / "runs" / f"seed{seed}" / f"fold{fold}"


def scores_from_outputs(dataset: Dataset, manifest: Manifest, outputs: np.ndarray) -> Scores:
    """The shared metrics and per-utterance rows of class probabilities or dimensional values."""
    targets = dataset.targets(manifest)
    if dataset.dimensional:
        return Scores(
            dimensional_metrics(targets, outputs, dataset.task.dimensions),
            [{"id": u.id, "speaker": u.speaker, "label": u.label,
              "true": [float(v) for v in t], "pred": [round(float(v), 6) for v in p]}
             for u, t, p in zip(manifest, targets, outputs, strict=True)])
    return Scores(
        classification_metrics(targets, outputs),
        [{"id": u.id, "speaker": u.speaker, "true": dataset.labels[t],
          "pred": dataset.labels[int(p.argmax())], "proba": [round(float(v), 6) for v in p]}
         for u, t, p in zip(manifest, targets, outputs, strict=True)])


def make_method(config: ExperimentConfig) -> Method:
    return METHODS.get(config.method.name)(config)
