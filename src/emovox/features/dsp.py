"""Frame-level building blocks shared by the MFCC and spectrogram extractors.

Every operation is either frame-local (a frame is ``samples[t*hop : t*hop+win]``, no centring)
or a centred window over frames with edge replication. That is what lets a streaming extractor
reproduce the offline features exactly: it only has to wait for the few frames of look-ahead.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.fft import dct
from scipy.ndimage import uniform_filter1d

EPS = 1e-8


def n_frames(n_samples: int, win: int, hop: int) -> int:
    """Frames of a signal: one per hop whose window fits, at least one."""
    return 1 + max(0, n_samples - win) // hop


def frame_signal(x: np.ndarray, win: int, hop: int, count: int | None = None) -> np.ndarray:
    """[count, win] view of ``x`` (zero-padded at the end where a window runs past it)."""
    count = n_frames(len(x), win, hop) if count is None else count
    need = (count - 1) * hop + win
    if len(x) < need:
        x = np.pad(x, (0, need - len(x)))
    return np.lib.stride_tricks.sliding_window_view(x, win)[::hop][:count]


@lru_cache(maxsize=16)
def window(kind: str, size: int) -> np.ndarray:
    return {"hamming": np.hamming, "hann": np.hanning}[kind](size).astype(np.float32)


def power_spectrum(frames: np.ndarray, n_fft: int, kind: str = "hamming",
                   preemphasis: float = 0.0) -> np.ndarray:
    """|FFT|² of windowed frames, with per-frame DC removal and optional pre-emphasis."""
    frames = frames - frames.mean(axis=1, keepdims=True)
    if preemphasis:
        frames = np.concatenate(
            [frames[:, :1] * (1 - preemphasis), frames[:, 1:] - preemphasis * frames[:, :-1]],
            axis=1,
        )
    spec = np.fft.rfft(frames * window(kind, frames.shape[1]), n=n_fft)
    return (spec.real**2 + spec.imag**2).astype(np.float32)


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + hz / 700.0)


@lru_cache(maxsize=16)
def mel_filterbank(n_mels: int, n_fft: int, sample_rate: int, fmin: float = 20.0,
                   fmax: float | None = None) -> np.ndarray:
    """[n_fft//2+1, n_mels] HTK-style triangular filters."""
    fmax = fmax or sample_rate / 2
    edges = np.linspace(_hz_to_mel(np.array(fmin)), _hz_to_mel(np.array(fmax)), n_mels + 2)
    hz = 700.0 * (10 ** (edges / 2595.0) - 1.0)
    bins = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    lower, centre, upper = hz[:-2, None], hz[1:-1, None], hz[2:, None]
    up = (bins[None, :] - lower) / (centre - lower)
    down = (upper - bins[None, :]) / (upper - centre)
    return np.maximum(0.0, np.minimum(up, down)).T.astype(np.float32)


def mfcc_from_mel(mel_power: np.ndarray, n_mfcc: int) -> np.ndarray:
    """Cepstral coefficients c0..c(n-1) of a mel power spectrogram."""
    return dct(np.log(mel_power + EPS), type=2, norm="ortho", axis=1)[:, :n_mfcc]


def deltas(x: np.ndarray, width: int = 2) -> np.ndarray:
    """HTK regression deltas over ±``width`` frames, edges replicated."""
    padded = np.pad(x, ((width, width), (0, 0)), mode="edge")
    n = len(x)
    num = sum(k * (padded[width + k : width + k + n] - padded[width - k : width - k + n])
              for k in range(1, width + 1))
    return num / (2 * sum(k * k for k in range(1, width + 1)))


def moving_average(x: np.ndarray, size: int) -> np.ndarray:
    """Centred moving average over ``size`` frames, edges replicated."""
    if size <= 1:
        return x
    return uniform_filter1d(x, size=size, axis=0, mode="nearest")


@lru_cache(maxsize=16)
def _window_acf(size: int, n_fft: int) -> np.ndarray:
    """Autocorrelation of the Hann window (pitch_acf divides by it; a stream asks every chunk)."""
    return np.fft.irfft(np.abs(np.fft.rfft(window("hann", size), n=n_fft)) ** 2, n=n_fft)[:size]


def pitch_acf(
    frames: np.ndarray,
    sample_rate: int,
    fmin: float = 60.0,
    fmax: float = 500.0,
    voicing_threshold: float = 0.45,
    silence_db: float = -60.0,
) -> tuple[np.ndarray, np.ndarray]:
    """F0 (Hz, 0 when unvoiced) and voicing probability per frame.

    Boersma's (1993) autocorrelation method: the Hann-windowed frame's normalised
    autocorrelation divided by the window's own, peak picked in [fmin, fmax] with parabolic
    interpolation. The peak height is the voicing probability.
    """
    size = frames.shape[1]
    n_fft = 1 << int(np.ceil(np.log2(2 * size)))
    w = window("hann", size)
    centred = frames - frames.mean(axis=1, keepdims=True)
    spec = np.fft.rfft(centred * w, n=n_fft)
    acf = np.fft.irfft(spec.real**2 + spec.imag**2, n=n_fft)[:, :size]
    w_acf = _window_acf(size, n_fft)
    lo, hi = int(sample_rate / fmax), min(int(sample_rate / fmin), size // 2)
    energy = acf[:, :1]
    norm = acf[:, lo : hi + 2] / np.maximum(energy, EPS) / (w_acf[lo : hi + 2] / w_acf[0])
    inner = norm[:, 1:-1]
    # The first local maximum within 5 % of the best one: multiples of the period score almost as
    # high as the period itself once the window is compensated, so prefer the shortest lag.
    local_max = (inner >= norm[:, :-2]) & (inner >= norm[:, 2:])
    strong = local_max & (inner >= 0.95 * inner.max(axis=1, keepdims=True))
    peak = np.where(strong.any(axis=1), np.argmax(strong, axis=1), np.argmax(inner, axis=1)) + 1
    rows = np.arange(len(norm))
    left, mid, right = norm[rows, peak - 1], norm[rows, peak], norm[rows, peak + 1]
    denom = left - 2 * mid + right
    shift = np.where(np.abs(denom) > EPS, 0.5 * (left - right) / np.where(denom == 0, 1, denom), 0)
    lag = lo + peak + np.clip(shift, -1, 1)
    prob = np.clip(mid, 0.0, 1.0)
    rms_db = 10 * np.log10(np.mean(centred**2, axis=1) + 1e-12)
    # A maximum on the search boundary is the slope of the zero-lag peak, not a period.
    interior = (peak > 1) & (peak < inner.shape[1])
    voiced = (prob >= voicing_threshold) & (rms_db > silence_db) & interior
    f0 = np.where(voiced, sample_rate / lag, 0.0)
    return f0.astype(np.float32), np.where(rms_db > silence_db, prob, 0.0).astype(np.float32)


def loudness(mel_power: np.ndarray) -> np.ndarray:
    """Perceptual loudness per frame: sum of mel band intensities compressed by the power 0.3
    (Stevens' law, as in openSMILE's loudness)."""
    return np.sum(np.power(mel_power, 0.3), axis=1)
