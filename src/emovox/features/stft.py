"""The DCGAN paper's input (Chang & Scherer 2017): a log STFT spectrogram with 1024-sample
windows (64 ms at 16 kHz) and 128 frequency rows.

The paper's 128 rows cover 0–11 kHz of 22 kHz audio; at 16 kHz the band ends at 8 kHz, so the
512 FFT bins below Nyquist are averaged in groups of four (62.5 Hz per row, 0–8 kHz). The hop is
10 ms (the paper does not give one), so a 64-frame crop spans 0.64 s and a 128-frame crop 1.28 s.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emovox.features import dsp
from emovox.features.base import EXTRACTORS
from emovox.features.spectral import FramedExtractor
from emovox.schema import bounded


@EXTRACTORS.register
class StftSpectrogram(FramedExtractor):
    """Log STFT spectrogram, 1024-sample windows, 128 rows over 0–8 kHz (the DCGAN input)."""

    name = "stft_spectrogram"

    @dataclass(frozen=True)
    class Params:
        n_fft: int = bounded(1024, ge=1)
        rows: int = bounded(128, ge=1)
        hop_ms: float = bounded(10.0, gt=0)

    @property
    def win(self) -> int:
        return int(self.params["n_fft"])

    @property
    def dim(self) -> int:
        return int(self.params["rows"])

    def compute(self, wave: np.ndarray) -> np.ndarray:
        n_fft, rows = int(self.params["n_fft"]), int(self.params["rows"])
        if (n_fft // 2) % rows:
            raise ValueError(f"stft_spectrogram: {n_fft // 2} bins do not split into {rows} rows")
        if len(wave) < n_fft:  # one frame at least for very short clips
            wave = np.pad(wave, (0, n_fft - len(wave)))
        spec = dsp.power_spectrum(self.frames(wave), n_fft, "hann")[:, : n_fft // 2]
        pooled = spec.reshape(len(spec), rows, -1).mean(axis=2)
        return np.log(pooled + dsp.EPS)
