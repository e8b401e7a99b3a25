"""Training-time augmentation: composable waveform transforms and seeded augmented versions."""

from emovox.augment.padding import NoiseFloor, PadSilence
from emovox.augment.prefix import Prefix
from emovox.augment.transforms import (
    TRANSFORMS,
    BackgroundNoise,
    Compose,
    Gain,
    RoomReverb,
    TimeStretch,
    Transform,
    build_augmentation,
)
from emovox.augment.variants import AugmentConfig, Variant, variants

__all__ = ["TRANSFORMS", "AugmentConfig", "BackgroundNoise", "Compose", "Gain", "NoiseFloor",
           "PadSilence", "Prefix", "RoomReverb", "TimeStretch", "Transform", "Variant",
           "build_augmentation", "variants"]
