"""Incremental features with the split extractors (each frame's local values computed once) and
in whole steps (``batch``): still the offline features, frame for frame."""

from __future__ import annotations

import numpy as np
import pytest

from emovox.audio import load_audio
from emovox.features import dsp, make_extractor
from emovox.features.incremental import StreamingFeatures


def _stream(extractor, wave, chunk, batch):
    stream = StreamingFeatures(extractor, batch)
    parts = [stream.push(wave[i : i + chunk]) for i in range(0, len(wave), chunk)]
    assert all(len(p) % batch == 0 for p in parts)
    return np.concatenate([*parts, stream.finish()]), stream


def test_split_extractor_computes_what_it_did_in_one_piece(emodb):
    """mfcc_prosody's local + contextual stages give exactly the one-piece computation."""
    ex = make_extractor("mfcc_prosody")
    p = ex.params
    wave = load_audio(emodb / "wav" / "03a01Wa.wav")
    mel = ex.mel_power(wave, p["n_mels"], 512)
    mfcc = dsp.mfcc_from_mel(mel, p["n_mfcc"])
    d1 = dsp.deltas(mfcc)
    f0, voicing = dsp.pitch_acf(ex.frames(wave, int(16000 * p["pitch_win_ms"] / 1000)), 16000,
                                p["fmin"], p["fmax"])
    prosody = np.stack([f0, voicing, dsp.loudness(mel)], axis=1)
    whole = np.concatenate([mfcc, d1, dsp.deltas(d1), dsp.moving_average(prosody, p["smooth"])],
                           axis=1)
    np.testing.assert_array_equal(ex(wave), whole.astype(np.float32))


@pytest.mark.parametrize("batch", [1, 30])
def test_streaming_in_steps_equals_offline(emodb, batch):
    ex = make_extractor("mfcc_prosody")
    for name in ("03a01Fa", "16b10Wb"):
        wave = load_audio(emodb / "wav" / f"{name}.wav")
        offline = ex(wave)
        for chunk in (160, 1600, 4800, len(wave)):
            online, stream = _stream(ex, wave, chunk, batch)
            assert online.shape == offline.shape
            np.testing.assert_allclose(online, offline, atol=1e-4, rtol=1e-5)
            assert len(stream.buffer) < 30 * 160 + 640 + chunk  # bounded, however long


@pytest.mark.parametrize("n", [1, 399, 400, 640, 641, 2000, 4971])
def test_short_and_odd_lengths(n):
    ex = make_extractor("mfcc_prosody")
    wave = np.random.default_rng(n).standard_normal(n).astype(np.float32) * 0.1
    for batch in (1, 30):
        online, _ = _stream(ex, wave, 37, batch)
        np.testing.assert_allclose(online, ex(wave), atol=1e-4, rtol=1e-5)


def test_batch_returns_frames_a_step_at_a_time(emodb):
    ex = make_extractor("mfcc_prosody")
    wave = load_audio(emodb / "wav" / "03a01Fa.wav")
    stream = StreamingFeatures(ex, batch=30)
    counts = [len(stream.push(wave[i : i + 1600])) for i in range(0, len(wave), 1600)]
    # a step's 30 frames come in the push whose audio completes them (with the look-ahead)
    ready = np.cumsum(counts)
    for i, got in enumerate(ready):
        total = min(len(wave), (i + 1) * 1600)
        final = max(0, dsp.n_frames(total, ex.reach, ex.hop) - ex.context_frames)
        assert got == final // 30 * 30
