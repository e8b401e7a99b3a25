"""Incremental feature extraction that reproduces the offline extractor frame for frame.

The framed extractors are frame-local or use centred windows with edge replication, so frame t
is final once ``lookahead_frames`` later frames exist. Each push recomputes only a window of
recent audio — the new frames plus the look-ahead margin on both sides — so the cost of a chunk
does not grow with the audio already heard.
"""

from __future__ import annotations

import numpy as np

from emovox.errors import EmovoxError
from emovox.features.dsp import n_frames
from emovox.features.spectral import FramedExtractor


class StreamingFeatures:
    def __init__(self, extractor: FramedExtractor):
        if not isinstance(extractor, FramedExtractor):
            raise EmovoxError(f"extractor {extractor.name!r} cannot stream; use a numpy "
                              "framed extractor such as mfcc_prosody")
        self.extractor = extractor
        self.hop, self.win = extractor.hop, extractor.win
        self.margin = extractor.lookahead_frames
        self.reset()

    def reset(self) -> None:
        self.buffer = np.zeros(0, dtype=np.float32)
        self.buffer_start = 0  # absolute frame index of the buffer's first sample / hop
        self.total = 0  # samples pushed
        self.emitted = 0  # frames returned so far

    def _compute(self, upto: int) -> np.ndarray:
        """Frames [emitted, upto) from the buffered audio."""
        if upto <= self.emitted:
            return np.zeros((0, self.extractor.dim), dtype=np.float32)
        feats = self.extractor(self.buffer)
        offset = self.emitted - self.buffer_start
        out = feats[offset : offset + upto - self.emitted]
        self.emitted = upto
        keep_from = max(0, self.emitted - self.margin)  # frames needed as left context
        drop = (keep_from - self.buffer_start) * self.hop
        if drop > 0:
            self.buffer = self.buffer[drop:]
            self.buffer_start = keep_from
        return out

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Append samples; return the frames that became final ([n, dim], possibly empty)."""
        self.buffer = np.concatenate([self.buffer, np.asarray(samples, dtype=np.float32)])
        self.total += len(samples)
        if self.total < self.win:
            return np.zeros((0, self.extractor.dim), dtype=np.float32)
        available = n_frames(self.total, self.win, self.hop)
        return self._compute(max(self.emitted, available - self.margin))

    def finish(self) -> np.ndarray:
        """The remaining frames, with the end-of-utterance edge handled as offline."""
        if self.total == 0:
            return np.zeros((0, self.extractor.dim), dtype=np.float32)
        return self._compute(n_frames(self.total, self.win, self.hop))
