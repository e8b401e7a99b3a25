"""Reading audio: any rate and channel count in, mono float32 at the model's rate out.

Every failure is an :class:`AudioError` naming the file, so a corpus with one bad file reports it
instead of dying with a traceback deep inside a worker.
"""

from __future__ import annotations

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
    if (last - first) / info.samplerate > max_seconds:
        raise AudioError(
            path,
            f"{(last - first) / info.samplerate:.0f} s of audio exceeds the "
            f"{max_seconds:.0f} s limit",
        )
    try:
        data, rate = sf.read(str(path), start=first, stop=last, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioError(path, f"corrupt or truncated audio ({exc})") from None
    if len(data) < (last - first) * 0.99:
        raise AudioError(path, f"truncated: expected {last - first} frames, read {len(data)}")
    return prepare_samples(data, rate, sample_rate, path, allow_silent)


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
) -> np.ndarray:
    """Mix ``data`` ([frames] or [frames, channels]) to mono and resample it; reject silence."""
    data = np.asarray(data, dtype=np.float32)
    mono = data.mean(axis=1) if data.ndim == 2 else data
    if mono.size == 0:
        raise AudioError(source, "no audio samples")
    if not np.all(np.isfinite(mono)):
        raise AudioError(source, "audio contains NaN or infinite samples")
    if not allow_silent and float(np.max(np.abs(mono))) < SILENCE_PEAK:
        raise AudioError(source, "silent audio (peak below -80 dBFS)")
    mono = trim_trailing_zeros(mono)
    if rate != sample_rate:
        mono = soxr.resample(mono, rate, sample_rate, quality="HQ").astype(np.float32)
    return np.ascontiguousarray(mono)
