"""Models register by name; later systems add theirs without touching the trainer."""

from emovox.models import convolutional, emorl, recurrent, svm  # noqa: F401  (register models)
from emovox.models.base import MODELS, SequenceModel, build_model, masked_mean, register_model

__all__ = ["MODELS", "SequenceModel", "build_model", "masked_mean", "register_model"]
