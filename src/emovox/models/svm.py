"""The classic anchor: utterance functionals, per-speaker z-normalisation, a linear SVM."""

from __future__ import annotations

import numpy as np
from scipy.special import softmax
from sklearn.svm import SVC

from emovox.models.base import MODELS


@MODELS.register("svm_functionals")
class SvmFunctionals:
    """Linear-kernel SVM (libsvm, one-vs-one) whose C is chosen on the validation speakers.

    ``predict_proba`` returns the softmax of libsvm's one-vs-rest decision values (votes plus
    confidence): its argmax is the SVM's prediction and ROC-AUC ranks by the margin, but they are
    not calibrated probabilities.
    """

    def __init__(self, input_dim: int, n_outputs: int,
                 c_grid: tuple[float, ...] = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)):
        self.c_grid = tuple(c_grid)
        self.n_outputs = n_outputs
        self.svm: SVC | None = None
        self.chosen_c: float | None = None

    @staticmethod
    def _vectors(feats: list[np.ndarray]) -> np.ndarray:
        return np.stack([f.mean(axis=0) for f in feats])

    def _fit(self, c: float, x: np.ndarray, y: np.ndarray) -> SVC:
        return SVC(kernel="linear", C=c, class_weight="balanced",
                   decision_function_shape="ovr").fit(x, y)

    def fit(self, train: tuple[list[np.ndarray], np.ndarray],
            valid: tuple[list[np.ndarray], np.ndarray]) -> dict:
        from emovox.evaluation.metrics import uar

        x_tr, y_tr = self._vectors(train[0]), train[1]
        x_va, y_va = self._vectors(valid[0]), valid[1]
        scores = {c: uar(y_va, self._fit(c, x_tr, y_tr).predict(x_va), self.n_outputs)
                  for c in self.c_grid}
        self.chosen_c = max(scores, key=lambda c: (scores[c], -c))
        self.svm = self._fit(self.chosen_c, x_tr, y_tr)
        return {"valid_uar_by_c": scores, "chosen_c": self.chosen_c}

    def predict_proba(self, feats: list[np.ndarray]) -> np.ndarray:
        assert self.svm is not None
        margins = self.svm.decision_function(self._vectors(feats))
        if margins.ndim == 1:  # binary: one margin for the positive class
            margins = np.stack([-margins, margins], axis=1) / 2
        scores = np.full((len(feats), self.n_outputs), -1e9)
        scores[:, self.svm.classes_] = margins
        return softmax(scores, axis=1)
