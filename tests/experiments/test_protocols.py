from __future__ import annotations

import json

import pytest
from iemocap_fixture import write_iemocap

from emovox.corpora import Manifest, Utterance, load_corpus
from emovox.errors import ConfigError
from emovox.experiments.protocols import make_folds, write_folds


def _manifest(speakers, sessions=None):
    return Manifest(Utterance(id=f"{s}-{i}", path="x", speaker=s, label="a",
                              session=(sessions or {}).get(s)) for s in speakers for i in range(2))


#: Ten speakers, as in Emo-DB.
TEN = _manifest(["03", "08", "09", "10", "11", "12", "13", "14", "15", "16"])


def _assert_disjoint(folds, speakers):
    for fold in folds:
        train, valid, test = set(fold.train), set(fold.valid), set(fold.test)
        assert not (train & valid) and not (train & test) and not (valid & test)
        assert train | valid | test == set(speakers)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_loso_every_speaker_tests_and_validates_once(seed):
    folds = make_folds(TEN, "loso", seed)
    assert len(folds) == 10
    _assert_disjoint(folds, TEN.speakers)
    assert sorted(f.test[0] for f in folds) == TEN.speakers
    assert sorted(f.valid[0] for f in folds) == TEN.speakers
    assert folds == make_folds(TEN, "loso", seed)  # repeatable


def test_seeds_rotate_validation_speakers():
    a, b = make_folds(TEN, "loso", 0), make_folds(TEN, "loso", 1)
    assert [f.test for f in a] == [f.test for f in b]
    assert [f.valid for f in a] != [f.valid for f in b]


def test_leave_one_session_out_gives_ten_folds():
    speakers = [f"Ses0{n}{g}" for n in range(1, 6) for g in "FM"]
    m = _manifest(speakers, {s: s[:5] for s in speakers})
    folds = make_folds(m, "loso_session")
    assert len(folds) == 10
    _assert_disjoint(folds, speakers)
    for fold in folds:
        assert fold.valid[0][:5] == fold.test[0][:5]  # same session
        assert not any(s[:5] == fold.test[0][:5] for s in fold.train)


def test_iemocap_fixture_sessions(tmp_path):
    m = load_corpus("iemocap", write_iemocap(tmp_path))
    folds = make_folds(m, "loso_session")
    assert len(folds) == 4 and {f.test[0] for f in folds} == {"Ses01F", "Ses01M", "Ses02F",
                                                              "Ses02M"}


def test_speaker_kfold():
    folds = make_folds(TEN, "speaker_kfold", seed=3, k=5)
    assert len(folds) == 5
    _assert_disjoint(folds, TEN.speakers)
    assert sorted(s for f in folds for s in f.test) == TEN.speakers
    with pytest.raises(ConfigError):
        make_folds(TEN, "speaker_kfold", k=11)
    with pytest.raises(ConfigError, match="unknown protocol"):
        make_folds(TEN, "random_split")


def test_fold_file(tmp_path):
    folds = {s: make_folds(TEN, "loso", s) for s in (0, 1)}
    write_folds(tmp_path / "folds.json", "loso", folds)
    data = json.loads((tmp_path / "folds.json").read_text())
    assert data["protocol"] == "loso" and len(data["seeds"]["1"]) == 10
    assert set(data["seeds"]["0"][0]) == {"index", "train", "valid", "test"}


def test_train_only_corpora_train_in_every_fold_and_are_never_scored():
    target = [f"emodb_{i}" for i in range(4)]
    extra = [f"nemo_{i}" for i in range(3)]
    manifest = Manifest(Utterance(id=f"{s}-0", path="x", speaker=s, label="a",
                                  corpus=s.split("_")[0]) for s in target + extra)
    folds = make_folds(manifest, "loso", 0, train_only=["nemo"])
    assert len(folds) == len(target)
    _assert_disjoint(folds, target + extra)
    for fold in folds:
        assert set(extra) <= set(fold.train)
        assert set(fold.valid + fold.test) <= set(target)
    with pytest.raises(ConfigError, match="train_only: \\['ravdess'\\] not among"):
        make_folds(manifest, "loso", 0, train_only=["ravdess"])
