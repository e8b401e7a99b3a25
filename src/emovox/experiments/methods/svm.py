"""The classic anchor as a method: utterance functionals and a linear SVM whose C is chosen on
the validation speakers (``model.name: svm_functionals``)."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from emovox.errors import ConfigError, ModelDirError
from emovox.experiments.dataset import Dataset
from emovox.experiments.methods.base import METHODS, Split
from emovox.experiments.methods.supervised import (
    SequenceModels,
    Supervised,
    load_normaliser,
    save_normaliser,
)
from emovox.io import atomic_write
from emovox.training import SequenceSet


@METHODS.register
class Svm(Supervised):
    """A linear SVM on utterance functionals, C chosen on validation speakers."""

    name = "svm"
    needs = ("functionals",)

    def fit(self, dataset: Dataset, split: Split, work_dir: Path | None
            ) -> tuple[SequenceModels, dict]:
        if dataset.dimensional or dataset.augmented:
            raise ConfigError("method svm supports neither dimensional targets nor "
                              "augmentation")
        return super().fit(dataset, split, work_dir)

    def fit_member(self, model, dataset, train_set, valid_set, task, seed, checkpoint) -> dict:
        return model.fit((train_set.feats, train_set.targets),
                         (valid_set.feats, valid_set.targets))

    def member_outputs(self, member: Any, data: SequenceSet, task) -> np.ndarray:
        return member.predict_proba(data.feats)

    def save(self, trained: SequenceModels, out: Path) -> dict[str, Any]:
        atomic_write(out / "model.pkl", lambda fh: pickle.dump(trained.members, fh))
        save_normaliser(trained.normaliser, out / "normaliser.npz")
        return {"input_dim": trained.extractor.dim * trained.stack, "stack": trained.stack}

    def load(self, model_dir: Path, meta: dict[str, Any]) -> SequenceModels:
        from emovox.features import make_extractor
        from emovox.training.tasks import Classification

        path = model_dir / "model.pkl"
        try:
            with open(path, "rb") as fh:
                members = pickle.load(fh)
        except FileNotFoundError:
            raise ModelDirError(path, "missing") from None
        except Exception as exc:  # noqa: BLE001  (unpickling a damaged file raises anything)
            raise ModelDirError(path, f"damaged or cut off ({type(exc).__name__})") from None
        extractor = make_extractor(meta["features"]["name"], **meta["features"]["params"])
        return SequenceModels(members, load_normaliser(model_dir / "normaliser.npz"),
                              Classification(len(meta["labels"])), extractor,
                              int(meta.get("stack", 1)))
