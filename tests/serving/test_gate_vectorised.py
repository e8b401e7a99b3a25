"""The speech gate judges a chunk's frames at once (``SpeechGate.judge``); it must say exactly
what the frame-by-frame gate said: the same speech/non-speech frames, and the same levels (to
1e-9 dB: a batched mean may round otherwise), on real Emo-DB speech with real noise, silence and
a tone, whatever the chunking."""

from __future__ import annotations

import numpy as np
import pytest

from emovox.audio import load_audio
from emovox.serving.streaming import GateConfig, SpeechGate

SR = 16_000
FILES = ["03a01Wa", "08a02Na", "09b03Fd", "11b03Nb", "13a01Ec", "16b10Wb"]


class FrameByFrameGate(SpeechGate):
    """The gate as it was before ``judge`` (one frame per call), kept here as the reference;
    the state (webrtcvad, window, level history) is the gate's own."""

    def __call__(self, frame: np.ndarray) -> bool:
        cfg = self.config
        self.level = level = 10 * np.log10(float(np.mean(np.square(frame, dtype=np.float64)))
                                           + 1e-12)
        self.levels.append(level)
        if level < cfg.energy_floor_db or level < min(self.levels) + cfg.margin_db:
            return False
        power = np.abs(np.fft.rfft(frame * self.window, self.n_fft)) ** 2
        peak = int(power.argmax())
        if power[max(0, peak - 2) : peak + 3].sum() >= cfg.tone_fraction * power.sum():
            return False
        pcm = (np.clip(frame, -1, 1) * 32767).astype("<i2").tobytes()
        return self.vad.is_speech(pcm, self.sample_rate)


def _signal(emodb, noise_dir) -> np.ndarray:
    """Speech at several noise levels (every noise of the corpus), with silence and a tone."""
    rng = np.random.default_rng(0)
    parts = [np.zeros(SR // 2, np.float32)]
    noises = sorted(noise_dir.glob("*.wav"))
    for k, name in enumerate(FILES):
        speech = load_audio(emodb / "wav" / f"{name}.wav")
        noise = load_audio(noises[k % len(noises)])
        start = rng.integers(0, max(1, len(noise) - len(speech) - SR))
        noise = np.resize(noise[start:], len(speech) + SR)
        snr_db = [30, 20, 10, 5, 0, -5][k]
        gain = np.sqrt(np.mean(speech**2) / (np.mean(noise**2) + 1e-12)) / 10 ** (snr_db / 20)
        mix = gain * noise
        mix[SR // 2 : SR // 2 + len(speech)] += speech
        parts.append(mix.astype(np.float32))
    t = np.arange(SR) / SR
    parts += [0.3 * np.sin(2 * np.pi * 1000 * t).astype(np.float32), np.zeros(SR, np.float32)]
    return np.concatenate(parts)


@pytest.mark.parametrize("aggressiveness", [0, 2, 3])
def test_judge_equals_the_frame_by_frame_gate(emodb, noise_dir, aggressiveness):
    wave = _signal(emodb, noise_dir)
    config = GateConfig(aggressiveness=aggressiveness)
    reference = FrameByFrameGate(config, SR)
    frames = wave[: len(wave) // 480 * 480].reshape(-1, 480)
    want = [reference(f) for f in frames]
    levels = []
    for f in frames:
        reference_level = FrameByFrameGate(config, SR)
        reference_level(f)
        levels.append(reference_level.level)
    assert 0.2 < np.mean(want) < 0.8  # speech and non-speech both present
    for per_call in (1, 3, 4, 7, 67, len(frames)):
        gate = SpeechGate(config, SR)
        got, got_levels = [], []
        for i in range(0, len(frames), per_call):
            speech, level = gate.judge(frames[i : i + per_call])
            got += speech.tolist()
            got_levels += level.tolist()
            assert gate.level == got_levels[-1]
        assert got == want, per_call
        np.testing.assert_allclose(got_levels, levels, rtol=0, atol=1e-9)
    single = SpeechGate(config, SR)
    assert [single(f) for f in frames] == want
