"""The classic anchor as a method: utterance functionals and a linear SVM whose C is chosen on
the validation speakers (``model.name: svm_functionals``)."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from emovox.errors import ConfigError, ModelDirError
from emovox.experiments.dataset import Dataset
from emovox.experiments.methods.base import METHODS, RunContext, Split
from emovox.experiments.methods.supervised import SequenceModels, Supervised
from emovox.io import atomic_write
from emovox.training import SequenceSet


@METHODS.register
class Svm(Supervised):
    """A linear SVM on utterance functionals, C chosen on validation speakers."""

    name = "svm"
    needs = ("functionals",)

    def fit(self, dataset: Dataset, split: Split, run: RunContext
            ) -> tuple[SequenceModels, dict]:
        if dataset.dimensional or dataset.augmented:
            raise ConfigError("method svm supports neither dimensional targets nor "
                              "augmentation")
        return super().fit(dataset, split, run)

    def fit_member(self, model, dataset, train_set, valid_set, task, seed, checkpoint) -> dict:
        return model.fit((train_set.feats, train_set.targets),
                         (valid_set.feats, valid_set.targets))

    def member_outputs(self, member: Any, data: SequenceSet, task) -> np.ndarray:
        return member.predict_proba(data.feats)

    def save_members(self, members: list[Any], out: Path) -> None:
        atomic_write(out / "model.pkl", lambda fh: pickle.dump(members, fh))

    def load_members(self, model_dir: Path, meta: dict[str, Any]) -> list[Any]:
        path = model_dir / "model.pkl"
        try:
            with open(path, "rb") as fh:
                return pickle.load(fh)
        except FileNotFoundError:
            raise ModelDirError(path, "missing") from None
        except Exception as exc:  # noqa: BLE001  (unpickling a damaged file raises anything)
            raise ModelDirError(path, f"damaged or cut off ({type(exc).__name__})") from None
