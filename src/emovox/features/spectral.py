"""Frame-level extractors computed with numpy: MFCC + prosody, spectrograms, the waveform."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emovox.features import dsp
from emovox.features.base import EXTRACTORS, Extractor
from emovox.schema import bounded


class FramedExtractor(Extractor):
    """Shared framing for extractors parameterised by ``win_ms``/``hop_ms``."""

    @property
    def win(self) -> int:
        return int(round(self.sample_rate * self.params["win_ms"] / 1000))

    @property
    def hop(self) -> int:
        return int(round(self.sample_rate * self.params["hop_ms"] / 1000))

    @property
    def context_frames(self) -> int:
        """Frames either side of frame t that its centred operations (deltas, smoothing) read."""
        p = self.params
        return max(4 if "n_mfcc" in p else 0, p.get("smooth", 1) // 2)

    @property
    def reach(self) -> int:
        """Samples from a frame's start that its frame-local values read (the analysis window,
        or the wider pitch window)."""
        pitch = self.params.get("pitch_win_ms")
        return max(self.win, int(self.sample_rate * pitch / 1000) if pitch else 0)

    @property
    def lookahead_frames(self) -> int:
        """Frames after frame t that can change frame t: the centred context of deltas and
        smoothing, plus frames whose wider pitch window reaches past the audio. A streaming
        extractor holds frame t back until this many later frames exist."""
        context = self.context_frames
        extra = -(-(self.reach - self.win) // self.hop)
        return context + extra + (1 if context or extra else 0)

    #: Extractors that split ``compute`` into :meth:`local` (per frame, from the frame's own
    #: samples) and :meth:`contextual` (centred operations over frames) set this; a stream then
    #: computes each frame's local values once (``features.incremental``).
    split: bool = False

    def local(self, wave: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def contextual(self, local: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def extract_long(self, wave: np.ndarray, chunk_frames: int = 6000) -> np.ndarray:
        """Chunks of ``chunk_frames`` frames, each computed with enough frames of context on both
        sides (the centred windows' reach) to equal the whole-recording features."""
        total = dsp.n_frames(len(wave), self.win, self.hop)
        if total <= 2 * chunk_frames:
            return self(wave)
        context = self.lookahead_frames + 1
        parts = []
        for first in range(0, total, chunk_frames):
            last = min(total, first + chunk_frames)
            a, b = max(0, first - context), min(total, last + context)
            end = len(wave) if b == total else (b - 1) * self.hop + self.win
            feats = self(wave[a * self.hop : end])
            parts.append(feats[first - a : last - a])
        return np.concatenate(parts)

    def frames(self, wave: np.ndarray, size: int | None = None) -> np.ndarray:
        """Frames of ``size`` samples (default: the window) starting every hop; the frame count
        is always that of the analysis window, so tracks of different widths line up."""
        count = dsp.n_frames(len(wave), self.win, self.hop)
        return dsp.frame_signal(wave, size or self.win, self.hop, count)

    def mel_power(self, wave: np.ndarray, n_mels: int, n_fft: int) -> np.ndarray:
        spec = dsp.power_spectrum(self.frames(wave), n_fft, "hamming", preemphasis=0.97)
        return spec @ dsp.mel_filterbank(n_mels, n_fft, self.sample_rate)


@EXTRACTORS.register
class MfccProsody(FramedExtractor):
    """EmoRL's features: MFCCs with Δ and ΔΔ, then F0, voicing probability and loudness, the
    three prosodic tracks smoothed by a centred moving average."""

    name = "mfcc_prosody"

    @dataclass(frozen=True)
    class Params:
        n_mfcc: int = bounded(15, ge=1)
        n_mels: int = bounded(26, ge=1)
        win_ms: float = bounded(25.0, gt=0)
        hop_ms: float = bounded(10.0, gt=0)
        pitch_win_ms: float = bounded(40.0, gt=0)
        #: Frames of the centred moving average over the prosodic tracks.
        smooth: int = bounded(15, ge=1)
        fmin: float = bounded(60.0, gt=0)
        fmax: float = bounded(500.0, gt=0)

    split = True

    @property
    def dim(self) -> int:
        return 3 * self.params["n_mfcc"] + 3

    def local(self, wave: np.ndarray) -> np.ndarray:
        """MFCCs, F0, voicing probability and loudness of every frame."""
        p = self.params
        mel = self.mel_power(wave, p["n_mels"], 512)
        pitch_frames = self.frames(wave, int(self.sample_rate * p["pitch_win_ms"] / 1000))
        f0, voicing = dsp.pitch_acf(pitch_frames, self.sample_rate, p["fmin"], p["fmax"])
        return np.concatenate([dsp.mfcc_from_mel(mel, p["n_mfcc"]),
                               np.stack([f0, voicing, dsp.loudness(mel)], axis=1)], axis=1)

    def contextual(self, local: np.ndarray) -> np.ndarray:
        """Δ and ΔΔ of the MFCCs; the prosodic tracks smoothed."""
        n = self.params["n_mfcc"]
        mfcc = local[:, :n]
        d1 = dsp.deltas(mfcc)
        return np.concatenate([mfcc, d1, dsp.deltas(d1),
                               dsp.moving_average(local[:, n:], self.params["smooth"])], axis=1)

    def compute(self, wave: np.ndarray) -> np.ndarray:
        return self.contextual(self.local(wave))


@EXTRACTORS.register
class MfccPitch(FramedExtractor):
    """The ASR-transfer paper's features: MFCCs with Δ and a smoothed pitch track."""

    name = "mfcc_pitch"

    @dataclass(frozen=True)
    class Params(MfccProsody.Params):
        n_mfcc: int = bounded(13, ge=1)
        win_ms: float = bounded(20.0, gt=0)

    @property
    def dim(self) -> int:
        return 2 * self.params["n_mfcc"] + 1

    def compute(self, wave: np.ndarray) -> np.ndarray:
        p = self.params
        mfcc = dsp.mfcc_from_mel(self.mel_power(wave, p["n_mels"], 512), p["n_mfcc"])
        pitch_frames = self.frames(wave, int(self.sample_rate * p["pitch_win_ms"] / 1000))
        f0, _ = dsp.pitch_acf(pitch_frames, self.sample_rate, p["fmin"], p["fmax"])
        pitch = dsp.moving_average(f0[:, None], p["smooth"])
        return np.concatenate([mfcc, dsp.deltas(mfcc), pitch], axis=1)


@EXTRACTORS.register
class PowerSpectrogram(FramedExtractor):
    """DeepSpeech2's input: log power spectrum of 20 ms Hamming windows (161 bins at 16 kHz)."""

    name = "power_spectrogram"

    @dataclass(frozen=True)
    class Params:
        win_ms: float = bounded(20.0, gt=0)
        hop_ms: float = bounded(10.0, gt=0)
        log: bool = True

    @property
    def dim(self) -> int:
        return self.win // 2 + 1

    def compute(self, wave: np.ndarray) -> np.ndarray:
        spec = dsp.power_spectrum(self.frames(wave), self.win, "hamming")
        return np.log(spec + dsp.EPS) if self.params["log"] else spec


@EXTRACTORS.register
class LogMel(FramedExtractor):
    """Log mel filterbank energies (``n_mels``, ``win_ms``, ``hop_ms``)."""

    name = "log_mel"

    @dataclass(frozen=True)
    class Params:
        n_mels: int = bounded(40, ge=1)
        win_ms: float = bounded(25.0, gt=0)
        hop_ms: float = bounded(10.0, gt=0)
        n_fft: int = bounded(512, ge=1)

    @property
    def dim(self) -> int:
        return self.params["n_mels"]

    def compute(self, wave: np.ndarray) -> np.ndarray:
        return np.log(self.mel_power(wave, self.params["n_mels"], self.params["n_fft"]) + dsp.EPS)


@EXTRACTORS.register
class Waveform(Extractor):
    """The samples themselves, for raw-waveform models: [samples, 1] at 16 kHz."""

    name = "waveform"

    @property
    def frame_rate(self) -> float:
        return float(self.sample_rate)

    @property
    def dim(self) -> int:
        return 1

    def compute(self, wave: np.ndarray) -> np.ndarray:
        return wave[:, None]
