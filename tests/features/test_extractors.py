from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_features_close, speech_like, write_speech, write_tone

from emovox.audio import load_audio
from emovox.corpora import Utterance
from emovox.errors import ConfigError
from emovox.features import FeatureCache, Normaliser, extract_all, make_extractor

SR = 16000


def tone(hz=220.0, seconds=1.0, amplitude=0.3):
    t = np.arange(int(seconds * SR)) / SR
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.float32)


@pytest.mark.parametrize(
    ("name", "params", "dim", "frames"),
    [
        ("mfcc_prosody", {}, 48, 1 + (SR - 400) // 160),
        ("mfcc_pitch", {}, 27, 1 + (SR - 320) // 160),
        ("power_spectrogram", {}, 161, 1 + (SR - 320) // 160),
        ("log_mel", {"n_mels": 64}, 64, 1 + (SR - 400) // 160),
        ("waveform", {}, 1, SR),
        ("egemaps_lld", {}, 34, None),
        ("smile_functionals", {}, 88, 1),
    ],
)
def test_shapes_and_frame_counts(name, params, dim, frames):
    extractor = make_extractor(name, **params)
    feats = extractor(tone() + 0.01 * np.random.default_rng(0).standard_normal(SR))
    assert extractor.dim == dim and feats.shape[1] == dim
    if frames is not None:
        assert feats.shape[0] == frames
    else:  # openSMILE: one frame per 10 ms, a few fewer at the edges
        assert abs(feats.shape[0] - 100) <= 5
    assert feats.dtype == np.float32 and np.isfinite(feats).all()


@pytest.mark.parametrize("hz", [110.0, 220.0, 330.0])
def test_pure_tone_f0_and_voicing(hz):
    feats = make_extractor("mfcc_prosody")(tone(hz))
    f0, voicing = feats[20:-20, 45], feats[20:-20, 46]
    assert np.median(f0) == pytest.approx(hz, rel=0.01)
    assert np.median(voicing) > 0.9
    pitch = make_extractor("mfcc_pitch")(tone(hz))[20:-20, 26]
    assert np.median(pitch) == pytest.approx(hz, rel=0.01)


def test_noise_is_unvoiced():
    noise = np.random.default_rng(1).standard_normal(SR).astype(np.float32) * 0.1
    feats = make_extractor("mfcc_prosody", smooth=1)(noise)
    assert np.mean(feats[:, 45] == 0) > 0.8


def test_loudness_rises_with_gain():
    extractor = make_extractor("mfcc_prosody")
    quiet, loud = extractor(tone(amplitude=0.05)), extractor(tone(amplitude=0.5))
    assert np.median(loud[:, 47]) > 2 * np.median(quiet[:, 47])
    smile = make_extractor("egemaps_lld")
    loud_lld, quiet_lld = smile(tone(amplitude=0.5)), smile(tone(amplitude=0.05))
    assert np.median(loud_lld[:, 0]) > np.median(quiet_lld[:, 0])


def test_unknown_extractor_or_parameter():
    with pytest.raises(ConfigError, match="unknown feature extractor"):
        make_extractor("mel_magic")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \[.n_mfc.\]"):
        make_extractor("mfcc_prosody", n_mfc=3)


def test_cache_keyed_by_content_and_config(tmp_path):
    src = write_speech(tmp_path / "a.wav")
    utt = Utterance(id="a", path=str(src), speaker="s1")
    cache = FeatureCache(tmp_path / "cache")
    extractor = make_extractor("mfcc_prosody")
    first = cache.get(extractor, utt)
    entries = list((tmp_path / "cache").rglob("*.npy"))
    assert len(entries) == 1 and not list((tmp_path / "cache").rglob("*.tmp"))
    np.testing.assert_array_equal(np.load(entries[0]), first)
    np.save(entries[0], first * 0 + 7)  # served from the cache, not recomputed
    assert (cache.get(extractor, utt) == 7).all()
    cache.get(make_extractor("mfcc_prosody", n_mfcc=13), utt)  # other config, other entry
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == 2
    entries[0].write_bytes(b"half-written")  # a damaged entry is recomputed
    np.testing.assert_array_equal(cache.get(extractor, utt), first)


def test_parallel_extraction_matches_serial_and_skips_bad_files(tmp_path):
    utts = [Utterance(id=f"u{k}", path=str(write_speech(tmp_path / f"u{k}.wav", 1.0, k)),
                      speaker="s1") for k in range(12)]
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio")
    utts.append(Utterance(id="bad", path=str(bad), speaker="s1"))
    extractor = make_extractor("mfcc_prosody")
    serial = extract_all(utts, extractor, workers=1, progress=False)
    parallel = extract_all(utts, extractor, FeatureCache(tmp_path / "c"), workers=2,
                           progress=False)
    assert set(serial) == set(parallel) == {u.id for u in utts[:-1]}
    for key in serial:
        assert_features_close(parallel[key], serial[key])


def test_normalisation_uses_only_given_statistics():
    extractor = make_extractor("mfcc_prosody")
    feats = [extractor(speech_like(1.5, seed)) for seed in range(20)]
    speakers = ["a" if seed % 3 else "b" for seed in range(20)]
    norm = Normaliser("global").fit(feats[:10])
    out = np.concatenate(norm.apply(feats[:10]))
    np.testing.assert_allclose(out.mean(0), 0, atol=1e-3)
    np.testing.assert_allclose(out.std(0), 1, atol=1e-2)
    per_speaker = norm.__class__("speaker").fit(feats[:10]).apply(feats, speakers)
    for spk in set(speakers):
        rows = np.concatenate([f for f, s in zip(per_speaker, speakers, strict=True) if s == spk])
        np.testing.assert_allclose(rows.mean(0), 0, atol=1e-3)
    per_utt = Normaliser("utterance").apply(feats[:1])[0]
    np.testing.assert_allclose(per_utt.mean(0), 0, atol=1e-3)
    with pytest.raises(ConfigError):
        Normaliser("minmax")


def test_stereo_file_through_extractor(tmp_path):
    path = write_tone(tmp_path / "st.wav", rate=22050, channels=2)
    feats = make_extractor("mfcc_prosody")(load_audio(path))
    assert np.median(feats[20:-20, 45]) == pytest.approx(220, rel=0.01)


@pytest.mark.parametrize("name", ["mfcc_prosody", "mfcc_pitch", "log_mel"])
def test_long_recordings_extract_in_chunks_as_in_one_piece(name):
    """``predict`` on long files extracts chunk by chunk (bounded memory): the same features,
    frame for frame, within float32 rounding (chunks are other matrix sizes)."""
    wave = speech_like(70.0, seed=3)
    extractor = make_extractor(name)
    chunked, whole = extractor.extract_long(wave, chunk_frames=1500), extractor(wave)
    assert len(whole) > 3 * 1500  # several chunks
    assert_features_close(chunked, whole)
