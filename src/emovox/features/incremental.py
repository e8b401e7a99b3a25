"""Incremental feature extraction that reproduces the offline extractor frame for frame.

The framed extractors are frame-local or use centred windows with edge replication, so frame t
is final once ``lookahead_frames`` later frames exist. Extractors that split their computation
(``FramedExtractor.split``: frame-local values, then centred operations over frames) compute
each frame's local values once, when the samples it reads have all arrived, and redo only the
cheap centred part over a few frames of context. Others recompute a window of recent audio —
the new frames plus the look-ahead margin on both sides. Either way the cost of a chunk does not
grow with the audio already heard.

``batch``: frames are returned only in whole multiples of ``batch`` counted from the first
frame (and the rest at :meth:`finish`). A streaming recogniser that decides every ``batch``
frames gets each step's frames in the same push as before, but computes them (and runs its
network) once per step instead of once per chunk: the per-call overhead, which dominates on
100 ms chunks, is paid a third as often.
"""

from __future__ import annotations

import numpy as np

from emovox.errors import EmovoxError
from emovox.features.dsp import n_frames
from emovox.features.spectral import FramedExtractor


class StreamingFeatures:
    def __init__(self, extractor: FramedExtractor, batch: int = 1):
        if not isinstance(extractor, FramedExtractor):
            raise EmovoxError(f"extractor {extractor.name!r} cannot stream; use a numpy "
                              "framed extractor such as mfcc_prosody")
        self.extractor = extractor
        self.hop, self.win = extractor.hop, extractor.win
        self.split = extractor.split
        self.margin = extractor.lookahead_frames
        self.context = extractor.context_frames
        self.reach = extractor.reach
        self.batch = batch
        self.reset()

    def reset(self) -> None:
        self.buffer = np.zeros(0, dtype=np.float32)
        self.buffer_start = 0  # absolute frame index of the buffer's first sample / hop
        self.total = 0  # samples pushed
        self.emitted = 0  # frames returned so far
        #: split extractors: local values of frames [local_start, local_start + len(local))
        self.local: np.ndarray | None = None
        self.local_start = 0

    def _empty(self) -> np.ndarray:
        return np.zeros((0, self.extractor.dim), dtype=np.float32)

    def _compute(self, upto: int) -> np.ndarray:
        """Frames [emitted, upto) from the buffered audio."""
        if upto <= self.emitted:
            return self._empty()
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

    def _extend_local(self, upto: int) -> None:
        """Local values of frames up to ``upto`` (the buffer starts at the first frame without
        them); then drop the samples no later frame reads."""
        first = self.buffer_start
        if upto <= first:
            return
        # only the samples these frames read (the frames after them would be thrown away)
        values = self.extractor.local(self.buffer[: (upto - first - 1) * self.hop
                                                  + self.reach])[: upto - first]
        self.local = values if self.local is None else np.concatenate([self.local, values])
        self.buffer = self.buffer[(upto - first) * self.hop :]
        self.buffer_start = upto

    def _emit(self, upto: int) -> np.ndarray:
        """Frames [emitted, upto) from the local values (exact: their centred context is
        there, or the utterance's edge, which the centred operations replicate as offline)."""
        if upto <= self.emitted or self.local is None:
            return self._empty()
        first = max(self.local_start, self.emitted - self.context)
        values = self.local[first - self.local_start :]
        out = self.extractor.contextual(values)[self.emitted - first : upto - first]
        self.emitted = upto
        keep = max(self.local_start, self.emitted - self.context)
        self.local = self.local[keep - self.local_start :]
        self.local_start = keep
        return np.ascontiguousarray(out, dtype=np.float32)

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Append samples; return the frames that became final ([n, dim], possibly empty)."""
        self.buffer = np.concatenate([self.buffer, np.asarray(samples, dtype=np.float32)])
        self.total += len(samples)
        if self.total < (self.reach if self.split else self.win):
            return self._empty()
        if not self.split:
            available = n_frames(self.total, self.win, self.hop) - self.margin
            return self._compute(available // self.batch * self.batch)
        # frames whose every sample has arrived; of those, the ones whose right context has
        ready = n_frames(self.total, self.reach, self.hop)
        upto = (ready - self.context) // self.batch * self.batch
        if upto <= self.emitted:
            return self._empty()
        self._extend_local(ready)
        return self._emit(upto)

    def finish(self) -> np.ndarray:
        """The remaining frames, with the end-of-utterance edge handled as offline."""
        if self.total == 0:
            return self._empty()
        count = n_frames(self.total, self.win, self.hop)
        if not self.split:
            return self._compute(count)
        self._extend_local(count)
        return self._emit(count)
