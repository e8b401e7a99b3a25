"""Self-contained model directories: train once on a whole corpus, predict anywhere.

A model directory holds ``model.json`` (model name and parameters, label set, feature extractor
settings, normalisation mode, the config it came from), the weights (``weights.pt`` for neural
models, ``model.pkl`` for scikit-learn ones) and ``normaliser.npz``.
"""

from __future__ import annotations

import io
import json
import pickle
import random
from pathlib import Path

import numpy as np
import torch

from emovox.audio import load_audio
from emovox.errors import ConfigError, EmovoxError
from emovox.experiments.config import ExperimentConfig, to_dict
from emovox.experiments.dataset import load_dataset
from emovox.features import Normaliser, make_extractor
from emovox.io import atomic_write, atomic_write_json
from emovox.models import build_model
from emovox.training import SequenceSet


def default_model_dir() -> Path:
    """The model bundled with the package (``emovox models`` describes it), used when no
    ``--model`` is given."""
    path = Path(__file__).with_name("default_model")
    if not (path / "model.json").exists():
        raise EmovoxError(f"{path}: the bundled default model is missing from this "
                          "installation; pass --model DIR")
    return path


def train_and_save(config: ExperimentConfig, out: Path, n_valid: int = 1,
                   progress: bool = True) -> dict:
    """Train on every speaker but ``n_valid`` validation speakers (seeded choice); save."""
    from emovox.evaluation.metrics import classification_metrics
    from emovox.experiments.runner import Ensemble, model_proba, train_model

    if config.task.kind != "categorical":
        raise ConfigError("emovox train saves categorical models only; evaluate dimensional "
                          "models with `emovox experiment`")
    dataset = load_dataset(config, progress)
    seed = config.protocol.seeds[0]
    speakers = dataset.manifest.speakers
    valid_speakers = sorted(random.Random(seed).sample(speakers, n_valid))
    train = dataset.manifest.filter(lambda u: u.speaker not in valid_speakers)
    valid = dataset.manifest.with_speakers(valid_speakers)
    out.mkdir(parents=True, exist_ok=True)
    model, normaliser, info = train_model(config, dataset, train, valid, seed, out)
    valid_metrics = classification_metrics(
        dataset.targets(valid), model_proba(model, dataset.sequences(valid, normaliser)))
    meta = {
        "model": {"name": config.model.name, "params": config.model.params},
        "labels": dataset.labels,
        "features": dataset.extractor.settings(),
        "normalise": config.features.normalise,
        "input_dim": dataset.input_dim,
        "stack": dataset.stack,
        "valid_speakers": valid_speakers,
        "valid_metrics": valid_metrics,
        "config": to_dict(config),
    }
    members = model if isinstance(model, Ensemble) else [model]
    if isinstance(members[0], torch.nn.Module):
        buf = io.BytesIO()
        torch.save([m.state_dict() for m in members], buf)
        atomic_write(out / "weights.pt", lambda fh: fh.write(buf.getvalue()))
    else:
        atomic_write(out / "model.pkl", lambda fh: pickle.dump(model, fh))
    buf = io.BytesIO()
    np.savez(buf, **{k: v for k, v in normaliser.state().items() if v is not None})
    atomic_write(out / "normaliser.npz", lambda fh: fh.write(buf.getvalue()))
    atomic_write_json(out / "model.json", {**meta, "training": info})
    for checkpoint in out.glob("*checkpoint*.pt"):
        checkpoint.unlink()
    return meta


class Recognizer:
    """A trained model directory, ready to label audio."""

    def __init__(self, model_dir: str | Path):
        model_dir = Path(model_dir)
        meta_path = model_dir / "model.json"
        if not meta_path.exists():
            raise EmovoxError(f"{model_dir}: not a model directory (no model.json)")
        self.meta = json.loads(meta_path.read_text())
        self.labels: list[str] = self.meta["labels"]
        self.config = self.meta["config"]
        self.extractor = make_extractor(self.meta["features"]["name"],
                                        **self.meta["features"]["params"])
        state = dict(np.load(model_dir / "normaliser.npz"))
        self.normaliser = Normaliser.from_state(state)
        if self.normaliser.mode == "speaker":
            # A lone file has no speaker statistics: fall back to the training-set z-score.
            self.normaliser.mode = "global"
        if (model_dir / "weights.pt").exists():
            from emovox.experiments.runner import Ensemble

            self.model = Ensemble()
            for state in torch.load(model_dir / "weights.pt", weights_only=True):
                member = build_model(self.meta["model"]["name"], self.meta["input_dim"],
                                     len(self.labels), **self.meta["model"]["params"])
                member.load_state_dict(state)
                self.model.append(member.eval())
        else:
            with open(model_dir / "model.pkl", "rb") as fh:
                self.model = pickle.load(fh)

    def features(self, wave: np.ndarray) -> np.ndarray:
        from emovox.features.base import stack_frames

        return stack_frames(self.normaliser.apply([self.extractor(wave)])[0],
                            self.meta.get("stack", 1))

    def proba(self, wave: np.ndarray) -> np.ndarray:
        feats = self.features(wave)
        data = SequenceSet([feats], np.zeros(1, dtype=np.int64))
        from emovox.experiments.runner import model_proba

        return model_proba(self.model, data)[0]

    def predict_file(self, path: str | Path) -> dict:
        proba = self.proba(load_audio(path, self.extractor.sample_rate))
        return {
            "path": str(path),
            "label": self.labels[int(proba.argmax())],
            "confidence": round(float(proba.max()), 6),
            "probabilities": {k: round(float(v), 6) for k, v in zip(self.labels, proba,
                                                                     strict=True)},
        }
