"""Reading audio: any rate and channel count in, mono float32 at the model's rate out.

Every failure is an :class:`AudioError` naming the file, so a corpus with one bad file reports it
instead of dying with a traceback deep inside a worker. The same checks guard ``emovox predict``
and the service's uploads (:func:`decode_audio`): sizes are judged from the header before
anything is decoded, sample values and length after.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from emovox.errors import AudioError

SAMPLE_RATE = 16_000
#: Peak amplitude below which a recording is treated as silent (about -80 dBFS).
SILENCE_PEAK = 1e-4
#: Longest recording accepted by default; longer files are almost always a wrong path or a
#: whole session, and would exhaust memory in feature extraction.
MAX_SECONDS = 600.0
#: Most decoded samples (frames × channels) of one file: what decoding costs in memory (4 bytes
#: each) is bounded by this, not by the compressed size (a 219 kB FLAC of 590 s of 96 kHz
#: stereo decodes to 450 MB). 32 M: 600 s of 48 kHz mono, 333 s of 48 kHz stereo.
MAX_SAMPLES = 32_000_000
#: Shortest audio that is labelled: less holds no judgeable speech (a syllable lasts about a
#: quarter second; a streaming model's decision step is 300 ms), and a label for it would be noise.
MIN_SECONDS = 0.25
#: Largest sample magnitude accepted. Integer PCM decodes to ±1; float files may run a little
#: over full scale, but values beyond +40 dBFS are not audio, and they overflow the features to
#: NaN (a float WAV of 1e30 labelled every class at 0.2).
MAX_PEAK = 100.0


def audio_info(path: str | Path) -> sf._SoundFileInfo:
    """Header of an audio file, or an AudioError saying why it cannot be opened."""
    path = Path(path)
    if not path.exists():
        raise AudioError(path, "file not found")
    if path.stat().st_size == 0:
        raise AudioError(path, "empty file (0 bytes)")
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioError(path, f"unreadable or corrupt audio ({exc})") from None
    _check_riff_size(path)
    return info


class AudioTooLarge(AudioError):
    """Longer or larger than a limit (the service answers 413, not 400)."""


def check_size(info: sf._SoundFileInfo, source: str | Path, frames: int | None = None,
               max_seconds: float = MAX_SECONDS, max_samples: int = MAX_SAMPLES) -> None:
    """Refuse audio too long or too large to decode (``frames`` of it, default all), from the
    header alone."""
    frames = info.frames if frames is None else frames
    seconds = frames / info.samplerate
    if seconds > max_seconds:
        raise AudioTooLarge(source, f"{seconds:.0f} s of audio exceeds the {max_seconds:g} s "
                                    "limit")
    if frames * info.channels > max_samples:
        raise AudioTooLarge(source, f"{frames * info.channels:,} samples ({seconds:.0f} s × "
                                    f"{info.samplerate} Hz × {info.channels} channels) exceed "
                                    f"the {max_samples:,}-sample limit")


def decode_audio(data: bytes, name: str, sample_rate: int = SAMPLE_RATE,
                 max_seconds: float = MAX_SECONDS, max_samples: int = MAX_SAMPLES
                 ) -> np.ndarray:
    """:func:`load_audio` for the bytes of a file (an upload) called ``name``."""
    if not data:
        raise AudioError(name, "empty upload (0 bytes)")
    try:
        check_size(sf.info(io.BytesIO(data)), name, max_seconds=max_seconds,
                   max_samples=max_samples)
        wave, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as exc:
        reason = getattr(exc, "error_string", None) or str(exc)
        raise AudioError(name, f"unreadable or corrupt audio ({reason})") from None
    return prepare_samples(wave, rate, sample_rate, name)


def _check_riff_size(path: Path) -> None:
    """libsndfile silently shortens a truncated WAV; the RIFF header still says how long it was."""
    with open(path, "rb") as fh:
        head = fh.read(12)
    if len(head) == 12 and head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        declared = int.from_bytes(head[4:8], "little") + 8
        actual = path.stat().st_size
        if declared != 0xFFFFFFFF + 8 and actual < declared:
            raise AudioError(path, f"truncated: header declares {declared} bytes, "
                                   f"file has {actual}")


def load_audio(
    path: str | Path,
    sample_rate: int = SAMPLE_RATE,
    start: float | None = None,
    end: float | None = None,
    max_seconds: float = MAX_SECONDS,
    allow_silent: bool = False,
    min_seconds: float = MIN_SECONDS,
    max_samples: int = MAX_SAMPLES,
) -> np.ndarray:
    """Mono float32 samples of ``path`` (optionally the segment ``start``–``end`` seconds),
    resampled with soxr to ``sample_rate``."""
    info = audio_info(path)
    if info.frames == 0:
        raise AudioError(path, "no audio samples")
    first = int(round((start or 0.0) * info.samplerate))
    last = info.frames if end is None else int(round(end * info.samplerate))
    if first < 0 or last > info.frames + info.samplerate // 100 or first >= last:
        raise AudioError(
            path,
            f"segment {start}-{end} s outside the file's {info.frames / info.samplerate:.2f} s",
        )
    last = min(last, info.frames)
    check_size(info, path, last - first, max_seconds, max_samples)
    try:
        data, rate = sf.read(str(path), start=first, stop=last, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioError(path, f"corrupt or truncated audio ({exc})") from None
    if len(data) < (last - first) * 0.99:
        raise AudioError(path, f"truncated: expected {last - first} frames, read {len(data)}")
    return prepare_samples(data, rate, sample_rate, path, allow_silent, min_seconds)


def trim_trailing_zeros(samples: np.ndarray, floor: float = 1e-6) -> np.ndarray:
    """Drop digital silence (exact zeros) padded after the speech. Corpus copies padded to a
    fixed length would otherwise lengthen every utterance, which skews anything measured as a
    fraction of the utterance (EmoRL's speed-up)."""
    loud = np.flatnonzero(np.abs(samples) > floor)
    return samples[: loud[-1] + 1] if len(loud) else samples


def prepare_samples(
    data: np.ndarray,
    rate: int,
    sample_rate: int = SAMPLE_RATE,
    source: str | Path = "<memory>",
    allow_silent: bool = False,
    min_seconds: float = MIN_SECONDS,
) -> np.ndarray:
    """Mix ``data`` ([frames] or [frames, channels]) to mono and resample it; reject silence,
    non-finite or absurd sample values, and audio shorter than ``min_seconds``."""
    data = np.asarray(data, dtype=np.float32)
    if data.size == 0:
        raise AudioError(source, "no audio samples")
    if not np.all(np.isfinite(data)):
        raise AudioError(source, "audio contains NaN or infinite samples")
    peak = float(np.max(np.abs(data)))
    if peak > MAX_PEAK:
        raise AudioError(source, f"sample values up to {peak:.3g}: not audio (full scale is "
                                 f"±1; at most ±{MAX_PEAK:g} accepted)")
    mono = data.mean(axis=1) if data.ndim == 2 else data
    if not allow_silent and float(np.max(np.abs(mono))) < SILENCE_PEAK:
        raise AudioError(source, "silent audio (peak below -80 dBFS)")
    mono = trim_trailing_zeros(mono)
    if len(mono) < min_seconds * rate:
        raise AudioError(source, f"{len(mono) / rate:.3g} s of audio is too short to judge "
                                 f"(at least {min_seconds:g} s)")
    if rate != sample_rate:
        mono = soxr.resample(mono, rate, sample_rate, quality="HQ").astype(np.float32)
    return np.ascontiguousarray(mono)
