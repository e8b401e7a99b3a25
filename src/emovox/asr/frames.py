"""Whisper's frame geometry, without PyTorch: how many encoder frames a piece of audio makes and
where a piece sits in the 30 s context. Shared by the encoder (``asr.whisper``), the feature
extractor (``asr.layers``) and the streamers, which must agree on it to the frame."""

from __future__ import annotations

import numpy as np

#: Whisper's encoder frames: two 10 ms mel hops each (50 a second); its context holds 1500 (30 s).
FRAME_SAMPLES, CONTEXT_FRAMES = 320, 1500

#: Audio before a block-causal block that its front end reads (two encoder frames: the
#: log-mel windows and convolutions of the block's first frame see no edge); zeros before the
#: first block (``asr.whisper.BlockCausalStates``).
FRONT_MARGIN = 2 * FRAME_SAMPLES


def frames_of(samples: int) -> int:
    """Encoder frames of ``samples`` audio samples (one per started pair of whole mel hops)."""
    return -(-(samples // (FRAME_SAMPLES // 2)) // 2)


def context_offsets(first_frames: np.ndarray | int, frames: int) -> np.ndarray:
    """Where pieces of ``frames`` frames starting at frame ``first_frames`` of their recording
    sit in Whisper's context: their place within the 30 s window that holds them, moved back
    where a piece would run past the context's end."""
    first = np.asarray(first_frames, dtype=np.int64) % CONTEXT_FRAMES
    return np.minimum(first, CONTEXT_FRAMES - frames)
