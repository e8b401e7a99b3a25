"""Models register by name; later systems add theirs without touching the trainer."""

from emovox.models.base import MODELS, SequenceModel, build_model, check_model, masked_mean

__all__ = ["MODELS", "SequenceModel", "build_model", "check_model", "masked_mean"]
