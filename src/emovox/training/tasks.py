"""What a model is trained to output: class probabilities or dimensional values.

A task owns its loss, the mapping from raw model outputs to predictions, and the validation
score used for checkpoint selection, so the trainer is the same for both.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from emovox.errors import ConfigError
from emovox.evaluation.metrics import ccc, uar


class Classification:
    score_name = "uar"

    def __init__(self, n_classes: int, weights: torch.Tensor | None = None):
        self.n_classes = n_classes
        self.criterion = nn.CrossEntropyLoss(weight=weights)

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.criterion(outputs, targets)

    def predictions(self, outputs: torch.Tensor) -> torch.Tensor:
        return torch.softmax(outputs, dim=-1)

    def score(self, targets: np.ndarray, predictions: np.ndarray) -> float:
        return uar(targets, predictions.argmax(1), self.n_classes)


def ccc_loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """1 − concordance correlation coefficient, averaged over the output dimensions."""
    mean_o, mean_t = outputs.mean(0), targets.mean(0)
    cov = ((outputs - mean_o) * (targets - mean_t)).mean(0)
    ccc_ = 2 * cov / (outputs.var(0, unbiased=False) + targets.var(0, unbiased=False)
                      + (mean_o - mean_t) ** 2 + 1e-8)
    return (1 - ccc_).mean()


class Regression:
    """Arousal/valence(/dominance) regression trained with MSE or CCC loss; scored by mean CCC.

    The model learns z-scored targets (``mean``/``std`` of the training fold), so its head
    starts on the right scale; predictions are mapped back to the corpus scale.
    """

    score_name = "ccc"
    LOSSES = {"mse": nn.functional.mse_loss, "ccc": ccc_loss}

    def __init__(self, loss: str = "ccc", targets: np.ndarray | None = None):
        if loss not in self.LOSSES:
            raise ConfigError(f"unknown regression loss {loss!r}; "
                              f"choose from {sorted(self.LOSSES)}")
        self.criterion = self.LOSSES[loss]
        self.mean, self.std = torch.tensor(0.0), torch.tensor(1.0)
        if targets is not None:
            targets = np.asarray(targets, dtype=np.float32)
            self.mean = torch.from_numpy(targets.mean(0))
            self.std = torch.from_numpy(targets.std(0) + 1e-6)

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.criterion(outputs, (targets.to(outputs.dtype) - self.mean) / self.std)

    def predictions(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs * self.std + self.mean

    def score(self, targets: np.ndarray, predictions: np.ndarray) -> float:
        return float(np.mean([ccc(targets[:, d], predictions[:, d])
                              for d in range(targets.shape[1])]))
