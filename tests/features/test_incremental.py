"""Incremental features with the split extractors (each frame's local values computed once) and
in whole steps (``batch``): still the offline features, frame for frame."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_features_close, speech_like

from emovox.features import dsp, make_extractor
from emovox.features.incremental import StreamingFeatures


def _stream(extractor, wave, chunk, batch):
    stream = StreamingFeatures(extractor, batch)
    parts = [stream.push(wave[i : i + chunk]) for i in range(0, len(wave), chunk)]
    assert all(len(p) % batch == 0 for p in parts)
    return np.concatenate([*parts, stream.finish()]), stream


def test_split_extractor_computes_what_it_did_in_one_piece():
    """mfcc_prosody's local + contextual stages give the one-piece computation."""
    ex = make_extractor("mfcc_prosody")
    p = ex.params
    wave = speech_like(2.0, seed=1)
    mel = ex.mel_power(wave, p["n_mels"], 512)
    mfcc = dsp.mfcc_from_mel(mel, p["n_mfcc"])
    d1 = dsp.deltas(mfcc)
    f0, voicing = dsp.pitch_acf(ex.frames(wave, int(16000 * p["pitch_win_ms"] / 1000)), 16000,
                                p["fmin"], p["fmax"])
    prosody = np.stack([f0, voicing, dsp.loudness(mel)], axis=1)
    whole = np.concatenate([mfcc, d1, dsp.deltas(d1), dsp.moving_average(prosody, p["smooth"])],
                           axis=1)
    assert_features_close(ex(wave), whole.astype(np.float32))


@pytest.mark.parametrize("batch", [1, 30])
def test_streaming_in_steps_equals_offline(batch):
    ex = make_extractor("mfcc_prosody")
    for seed in (1, 2):
        wave = speech_like(2.0, seed)
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


def test_batch_returns_frames_a_step_at_a_time():
    ex = make_extractor("mfcc_prosody")
    wave = speech_like(2.0, seed=1)
    stream = StreamingFeatures(ex, batch=30)
    counts = [len(stream.push(wave[i : i + 1600])) for i in range(0, len(wave), 1600)]
    # a step's 30 frames come in the push whose audio completes them (with the look-ahead)
    ready = np.cumsum(counts)
    for i, got in enumerate(ready):
        total = min(len(wave), (i + 1) * 1600)
        final = max(0, dsp.n_frames(total, ex.reach, ex.hop) - ex.context_frames)
        assert got == final // 30 * 30
