"""Self-contained model directories: train once on a whole corpus, label audio anywhere.

A model directory holds ``model.json`` (format version, method, label set, feature extractor
settings, the config it came from, validation scores) and the method's own files (for the
supervised methods ``weights.pt`` or ``model.pkl`` and ``normaliser.npz``). The method named in
``model.json`` saves and loads them, so serving never needs to know which method it runs.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from emovox.errors import ConfigError, EmovoxError, ModelDirError
from emovox.io import atomic_write_json
from emovox.serving.runtime import Runtime

if TYPE_CHECKING:
    from emovox.experiments.config import ExperimentConfig
    from emovox.features import Extractor, SpeakerStatistics

# The experiment layers (configs, methods, PyTorch) are imported where a model is trained or
# loaded, not here: ``emovox predict`` on an ONNX export never pays for importing PyTorch.

#: Bumped when the directory layout changes; older directories fail with how to convert.
FORMAT_VERSION = 1
#: The ONNX export shipped inside a model directory (``emovox export DIR --out DIR/onnx``);
#: ``emovox predict`` runs it with onnxruntime while it matches the directory's files.
ONNX_SUBDIR = "onnx"
RUNTIMES = ("auto", "torch", "onnx")


#: Models bundled with the package, by the name ``--model`` accepts: the default (Whisper base
#: up to block 3, mean-pooled, adapting to its speaker) and the GRU it replaced (global
#: normalisation; cheaper per stream).
BUNDLED = {"default": "default_model", "gru": "gru_model"}


def bundled_model_dir(name: str = "default") -> Path:
    """A bundled model's directory (``emovox models`` describes them)."""
    path = Path(__file__).with_name(BUNDLED[name])
    if not (path / "model.json").exists():
        raise EmovoxError(f"{path}: the bundled {name!r} model is missing from this "
                          "installation; pass --model DIR")
    return path


def default_model_dir() -> Path:
    """The model used when no ``--model`` is given."""
    return bundled_model_dir("default")


def resolve_model(model: str | Path | None) -> Path:
    """What ``--model`` names: nothing — the default; an existing path — that directory; a
    bundled model's name (``default``, ``gru``) — the bundled one; else the path as given (its
    loader then says what is wrong with it)."""
    if model is None:
        return default_model_dir()
    path = Path(model)
    if not path.exists() and str(model) in BUNDLED:
        return bundled_model_dir(str(model))
    return path


def train_and_save(config: ExperimentConfig, out: Path, n_valid: int = 1,
                   progress: bool = True) -> dict:
    """Train on every speaker but ``n_valid`` validation speakers (seeded choice); save."""
    from emovox.corpora import Manifest
    from emovox.experiments.config import to_dict
    from emovox.experiments.dataset import load_dataset
    from emovox.experiments.methods.base import METHODS, RunContext, Split, make_method

    # Methods with their own output record (``describe``, e.g. dcgan's valence/arousal
    # distributions) save dimensional models too.
    describes = hasattr(METHODS.get(config.method.name), "describe")
    if config.task.kind != "categorical" and not describes:
        raise ConfigError("emovox train saves categorical models only; evaluate dimensional "
                          "models with `emovox experiment`")
    dataset = load_dataset(config, progress)
    seed = config.protocol.seeds[0]
    speakers = dataset.manifest.speakers
    if not 1 <= n_valid < len(speakers):
        raise ConfigError(f"--valid-speakers {n_valid}: must be between 1 and "
                          f"{len(speakers) - 1} for a corpus of {len(speakers)} speakers")
    valid_speakers = sorted(random.Random(seed).sample(speakers, n_valid))
    split = Split(dataset.manifest.filter(lambda u: u.speaker not in valid_speakers),
                  dataset.manifest.with_speakers(valid_speakers), Manifest([]))
    out.mkdir(parents=True, exist_ok=True)
    method = make_method(config)
    trained, info = method.fit(dataset, split, RunContext(seed=seed, work_dir=out))
    meta = {
        "format_version": FORMAT_VERSION,
        "method": config.method.name,
        "labels": dataset.labels,
        "features": dataset.extractor.settings(),
        "valid_speakers": valid_speakers,
        "valid_metrics": method.score(trained, dataset, split.valid).metrics,
        "config": to_dict(config),
    }
    meta |= method.save(trained, out)
    atomic_write_json(out / "model.json", {**meta, "training": info})
    for checkpoint in out.glob("*checkpoint*.pt"):
        checkpoint.unlink()
    return meta


def read_meta(model_dir: Path) -> dict[str, Any]:
    path = model_dir / "model.json"
    if not model_dir.is_dir():
        raise EmovoxError(f"{model_dir}: not a model directory (no such directory)")
    if not path.exists():
        raise EmovoxError(f"{model_dir}: not a model directory (no model.json)")
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelDirError(path, f"not valid JSON ({exc})") from None
    version = meta.get("format_version", 0) if isinstance(meta, dict) else None
    if version == 0 and isinstance(meta, dict) and "model" in meta:
        meta = upgrade_format0(meta)
    elif version != FORMAT_VERSION:
        raise ModelDirError(path, f"model directory format {version} (this emovox reads "
                            f"format {FORMAT_VERSION}); convert by retraining: emovox train "
                            "CONFIG --out DIR (the old model.json holds its config)")
    missing = [k for k in ("method", "labels", "features", "config") if k not in meta]
    if missing:
        raise ModelDirError(path, f"lacks {missing}")
    return meta


#: Format 0 (before methods): the model name said how it was trained.
FORMAT0_METHODS = {"emorl": "emorl", "svm_functionals": "svm"}


def upgrade_format0(meta: dict[str, Any]) -> dict[str, Any]:
    """A format-0 ``model.json`` (written before methods existed) in format 1: its weights and
    normaliser files are unchanged, only the config names its method (EmoRL's rewards move from
    the ``emorl`` section to ``method.params``)."""
    config = dict(meta["config"])
    emorl = config.pop("emorl", {})
    name = FORMAT0_METHODS.get(meta["model"]["name"], "supervised")
    config["method"] = {"name": name, "params": emorl if name == "emorl" else {}}
    if name == "emorl":
        config["model"] = {**config["model"], "name": "gru_baseline"}
    return {**meta, "format_version": FORMAT_VERSION, "method": name, "config": config}


class Recognizer(Runtime):
    """A trained model directory, ready to label audio with PyTorch."""

    def __init__(self, model_dir: str | Path):
        from emovox.experiments.config import build_config
        from emovox.experiments.methods.base import make_method

        self.model_dir = Path(model_dir)
        self.meta = read_meta(self.model_dir)
        self.labels: list[str] = self.meta["labels"]
        try:
            self.config = build_config(self.meta["config"])
        except ConfigError as exc:
            raise ModelDirError(self.model_dir / "model.json", f"bad config ({exc})") from None
        self.method = make_method(self.config)
        self.trained = self.method.load(self.model_dir, self.meta)
        self.normalise = self.config.features.normalise

    @property
    def sample_rate(self) -> int:
        return self.trained.extractor.sample_rate

    @property
    def extractor(self) -> Extractor:
        return self.trained.extractor

    def for_speaker(self, statistics: SpeakerStatistics, tau: float) -> Recognizer:
        from emovox.experiments.streamers import enrol

        adapted = copy.copy(self)
        adapted.trained = enrol(self.trained, self.normalise, statistics, tau)
        return adapted

    def frames(self, wave: np.ndarray) -> np.ndarray:
        return self.trained.extractor.extract_long(wave)

    def features(self, wave: np.ndarray) -> np.ndarray:
        """A frame-feature model's input for one utterance: features, the training
        normalisation, frame stacking (what streaming reproduces chunk by chunk)."""
        if not hasattr(self.trained, "sequences"):
            raise EmovoxError(f"{self.model_dir}: method {self.method.name!r} does not read "
                              "frame features")
        return self.trained.sequences([self.frames(wave)])[0]

    def proba(self, wave: np.ndarray) -> np.ndarray:
        return self.method.predict_wave(self.trained, wave)

    def describe(self, proba: np.ndarray) -> dict:
        return self.method.describe(proba, self.labels)


def source_digest(model_dir: Path) -> str:
    """A hash of the files a model directory loads from (its top level, cards aside): an ONNX
    export records it, so a retrained directory is never run with a stale export."""
    digest = hashlib.sha256()
    for path in sorted(p for p in model_dir.iterdir() if p.is_file() and p.suffix != ".md"):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def bundled_export(model_dir: Path) -> tuple[Path | None, str]:
    """``model_dir/onnx`` if it is an export of this very directory, else None and why not."""
    export = model_dir / ONNX_SUBDIR / "frontend.json"
    if not export.exists():
        return None, "it holds no ONNX export"
    try:
        recorded = json.loads(export.read_text()).get("source_digest")
    except (OSError, ValueError, AttributeError):
        return None, f"{export} is unreadable"
    if recorded != source_digest(model_dir):
        return None, (f"its ONNX export ({export.parent}) is not of its current files; export "
                      f"again: emovox export {model_dir} --format onnx --out {export.parent}")
    return export.parent, ""


def open_recognizer(path: str | Path, runtime: str = "auto", threads: int | None = None
                    ) -> Runtime:
    """The recogniser ``emovox predict`` runs: ``onnx`` — onnxruntime on an export directory,
    or on a model directory's own current export (``onnx/``); ``torch`` — the model directory
    with PyTorch; ``auto`` — onnxruntime where such an export exists, else PyTorch."""
    path = Path(path)
    if runtime not in RUNTIMES:
        raise ConfigError(f"runtime {runtime!r}: choose from {list(RUNTIMES)}")
    if runtime == "torch":
        return Recognizer(path)
    export: Path | None = path if (path / "frontend.json").exists() else None
    why = ""
    if export is None and (path / "model.json").exists():
        export, why = bundled_export(path)
    if export is None and runtime == "auto":
        return Recognizer(path)
    if export is None and why and (path / ONNX_SUBDIR).exists():
        raise EmovoxError(f"{path}: {why}")
    from emovox.serving.onnx_runtime import OnnxRecognizer

    return OnnxRecognizer(export or path, threads=threads)
