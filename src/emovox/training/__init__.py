"""Training: batches and the resumable trainer."""

from emovox.training.data import AugmentedSet, SequenceSet
from emovox.training.trainer import TrainConfig, fit, predict

__all__ = ["AugmentedSet", "SequenceSet", "TrainConfig", "fit", "predict"]
