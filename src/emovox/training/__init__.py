"""Training: batches and the resumable trainer."""

from emovox.training.data import SequenceSet
from emovox.training.trainer import TrainConfig, fit, predict

__all__ = ["SequenceSet", "TrainConfig", "fit", "predict"]
