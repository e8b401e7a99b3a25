from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from conftest import write_tone

from emovox.audio import load_audio
from emovox.errors import AudioError


def test_any_rate_and_channels_become_mono_16k(tmp_path):
    stereo = write_tone(tmp_path / "s.wav", rate=44100, channels=2, seconds=0.5)
    wave = load_audio(stereo)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert len(wave) == pytest.approx(8000, abs=2)
    assert np.max(np.abs(wave)) == pytest.approx(0.3, abs=0.01)


def test_real_emodb_file_is_resampled(emodb):
    path = emodb / "wav" / "03b03Nb.wav"  # truncated at 2.0 s in this copy: no padding
    info = sf.info(path)
    wave = load_audio(path)
    assert len(wave) == pytest.approx(info.frames * 16000 / info.samplerate, abs=2)


def test_segment(tmp_path):
    path = write_tone(tmp_path / "t.wav", seconds=2.0)
    assert len(load_audio(path, start=0.5, end=1.5)) == 16000
    with pytest.raises(AudioError, match="outside"):
        load_audio(path, start=1.5, end=3.5)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_bytes(b""), "empty file"),
        (lambda p: p.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt garbage" * 3), "corrupt"),
        (lambda p: sf.write(p, np.zeros(16000), 16000), "silent"),
        (lambda p: sf.write(p, np.zeros((0,)), 16000), "no audio samples"),
    ],
)
def test_bad_audio_named_in_one_line(tmp_path, make, message):
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(AudioError, match=message) as info:
        load_audio(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_missing_and_huge_and_truncated(tmp_path):
    with pytest.raises(AudioError, match="file not found"):
        load_audio(tmp_path / "nope.wav")
    long = write_tone(tmp_path / "long.wav", seconds=3.0)
    with pytest.raises(AudioError, match="exceeds the 2 s limit"):
        load_audio(long, max_seconds=2.0)
    data = long.read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioError, match="cut.wav: truncated"):
        load_audio(tmp_path / "cut.wav")


def test_trailing_digital_silence_is_trimmed(tmp_path):
    t = np.arange(8000) / 16000
    speech = 0.3 * np.sin(2 * np.pi * 200 * t)
    sf.write(tmp_path / "padded.wav", np.concatenate([speech, np.zeros(8000)]), 16000)
    assert len(load_audio(tmp_path / "padded.wav")) == pytest.approx(8000, abs=2)


def test_emodb_copy_padding_is_removed(emodb):
    # Every file of the shared copy is exactly 2.0 s; short sentences are zero-padded.
    info = sf.info(emodb / "wav" / "03a01Nc.wav")
    assert info.frames / info.samplerate == pytest.approx(2.0)
    assert len(load_audio(emodb / "wav" / "03a01Nc.wav")) < 1.8 * 16000
