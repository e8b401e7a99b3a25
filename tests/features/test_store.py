"""The feature cache serves paths and statistics, not frames: what the store reads back, the
statistics beside each entry, and normalisation computed from those statistics."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from emovox.corpora import Utterance
from emovox.features import FeatureCache, Normaliser, SpeakerStatistics, extract_all, make_extractor
from emovox.features.store import StoredFeatures, statistics_path


@pytest.fixture(scope="module")
def utts(emodb_manifest) -> list[Utterance]:
    return list(emodb_manifest.with_speakers(["03", "08"]))[:8]


def test_store_reads_the_cache_and_keeps_statistics_beside_it(tmp_path, utts):
    extractor = make_extractor("mfcc_prosody")
    held = extract_all(utts, extractor, progress=False)  # no cache: computed and held
    stored = extract_all(utts, extractor, FeatureCache(tmp_path / "c"), workers=2,
                         progress=False)
    assert set(stored) == set(held) == {u.id for u in utts}
    for u in utts:
        frames = stored[u.id]
        np.testing.assert_allclose(frames, held[u.id], rtol=1e-5, atol=1e-5)
        assert stored.length(u.id) == len(held[u.id])
        frames[0] = np.nan  # a copy read from the cache file: the entry stays as it was
        assert np.isfinite(stored[u.id][0]).all()
        ours, exact = stored.statistics(u.id), SpeakerStatistics.of([held[u.id]])
        assert ours.count == exact.count
        np.testing.assert_allclose(ours.sum, exact.sum, rtol=1e-5, atol=1e-3)
        np.testing.assert_allclose(ours.sumsq, exact.sumsq, rtol=1e-5, atol=1e-3)
    # what a worker process receives: paths and counts, never the frames
    frame_bytes = sum(held[u.id].nbytes for u in utts)
    assert len(pickle.dumps(stored)) < frame_bytes / 20 < len(pickle.dumps(held))


def test_an_entry_without_statistics_gets_them(tmp_path, utts):
    """Entries written before statistics existed (or by older emovox) are completed, not
    recomputed."""
    cache, extractor = FeatureCache(tmp_path / "c"), make_extractor("mfcc_prosody")
    path, length = cache.entry(extractor, utts[0])
    np.save(path, np.full((length, extractor.dim), 2.0, np.float32))  # served as it is
    statistics_path(path).unlink()
    assert cache.entry(extractor, utts[0]) == (path, length)
    stats = StoredFeatures({"a": path}, {"a": length}).statistics("a")
    mean, std = stats.mean_std()
    np.testing.assert_allclose(mean, 2.0)
    np.testing.assert_allclose(std, 0.0, atol=1e-4)


def test_normalisation_from_statistics_matches_normalising_frames():
    rng = np.random.default_rng(0)
    feats = [rng.normal(3.0, 2.0, (int(n), 5)).astype(np.float32) for n in rng.integers(4, 40, 9)]
    speakers = ["a", "a", "b", "b", "b", "c", "c", "a", "c"]
    stacked = np.concatenate(feats).astype(np.float64)
    fitted = Normaliser("global").fit(feats)
    np.testing.assert_allclose(fitted.mean, stacked.mean(0), rtol=1e-10)
    np.testing.assert_allclose(fitted.std, stacked.std(0) + 1e-5, rtol=1e-8)
    streamed = SpeakerStatistics.of(feats[:4]).merge(SpeakerStatistics.of(feats[4:]))
    np.testing.assert_allclose(Normaliser().fit_statistics(streamed).std, fitted.std,
                               rtol=1e-10)
    for mode in ("global", "speaker", "utterance", "none"):
        out = Normaliser(mode).fit(feats).apply(feats, speakers)
        for spk in set(speakers):
            mine = [i for i, s in enumerate(speakers) if s == spk]
            rows = np.concatenate([feats[i] for i in mine]).astype(np.float64)
            for i in mine:
                expected = {"global": (feats[i] - fitted.mean) / fitted.std,
                            "speaker": (feats[i] - rows.mean(0)) / (rows.std(0) + 1e-5),
                            "utterance": (feats[i] - feats[i].mean(0, dtype=np.float64))
                            / (feats[i].std(0, dtype=np.float64) + 1e-5),
                            "none": feats[i]}[mode]
                np.testing.assert_allclose(out[i], expected, rtol=1e-5, atol=1e-5)
    clean = [f * 0 + 1 for f in feats]  # speaker statistics from other frames: a reference
    out = Normaliser("speaker").apply(clean, speakers, reference=feats)
    assert not np.allclose(out[0], 0)
