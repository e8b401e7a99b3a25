"""nEMO loader (real corpus, parse only) and the combined multi-corpus format."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from conftest import write_tone

from emovox.corpora import load_corpus
from emovox.corpora.combined import part_of
from emovox.corpora.emodb import EMOTIONS as EMODB_EMOTIONS
from emovox.errors import CorpusError

COMMON = ["anger", "fear", "happiness", "neutral", "sadness"]
HEADER = "file_id\temotion\traw_text\tnormalized_text\tspeaker_id\tgender\tage\n"


@pytest.fixture(scope="module")
def nemo_manifest(nemo):
    return load_corpus("nemo", nemo, check_files=False)


def test_nemo_counts_labels_and_speakers(nemo_manifest):
    m = nemo_manifest
    assert len(m) == 4481 and not m.problems
    assert m.speakers == ["EB0", "IC0", "KD0", "KS0", "MK0", "MP0", "SM0", "TP0", "WR0"]
    assert m.label_counts() == {"anger": 749, "fear": 736, "happiness": 749, "neutral": 809,
                                "sadness": 769, "surprise": 669}
    assert m.speaker_counts()["MP0"] == 256
    u = next(u for u in m if u.id == "WR0_surprised_64")
    assert (u.speaker, u.label, u.gender, u.corpus) == ("WR0", "surprise", "m", "nemo")
    assert u.transcript == "Ucho wykrywa dźwięki o różnej częstotliwości."
    assert u.path.endswith("samples/WR0_surprised_64.flac") and Path(u.path).exists()
    assert next(u for u in m if u.speaker == "EB0").gender == "f"


def test_nemo_shares_emodb_label_spellings(nemo_manifest):
    assert set(COMMON) == set(nemo_manifest.labels) & set(EMODB_EMOTIONS.values())


def test_nemo_bad_rows_follow_the_policy(tmp_path):
    (tmp_path / "samples").mkdir()
    write_tone(tmp_path / "samples" / "AB0_anger_1.wav")
    write_tone(tmp_path / "samples" / "AB0_bored_2.wav")
    rows = ["AB0_anger_1.wav\tanger\tTak.\ttak\t   AB0\tfemale\t30",
            "AB0_bored_2.wav\tbored\tNie.\tnie\t   AB0\tfemale\t30",
            "AB0_fear_3.wav\tfear\tNie.\tnie\t   AB0\tfemale\t30"]
    (tmp_path / "data.tsv").write_text(HEADER + "\n".join(rows) + "\n", encoding="utf-8")
    m = load_corpus("nemo", tmp_path)
    assert [(u.id, u.speaker, u.label) for u in m] == [("AB0_anger_1", "AB0", "anger")]
    assert len(m.problems) == 2
    assert "bored" in m.problems[0] and "no audio" in m.problems[1]
    with pytest.raises(CorpusError, match="bored"):
        load_corpus("nemo", tmp_path, on_error="stop")
    with pytest.raises(CorpusError, match="no data.tsv"):
        load_corpus("nemo", tmp_path / "samples")


def test_combined_prefixes_ids_and_speakers_and_keeps_the_common_labels(emodb, nemo):
    parts = [{"format": "emodb", "path": "emodb"}, {"format": "nemo", "path": "nemo"}]
    m = load_corpus("combined", emodb.parent, labels=COMMON, parts=parts, check_files=False)
    assert Counter(u.corpus for u in m) == {"emodb": 408, "nemo": 3812}
    assert m.labels == COMMON
    assert len(m.speakers) == 19
    assert "emodb_03" in m.speakers and "nemo_EB0" in m.speakers
    u = next(u for u in m if u.id == "emodb_03a01Fa")
    assert (u.speaker, u.label, u.corpus, part_of(u.id)) == ("emodb_03", "happiness", "emodb",
                                                             "emodb")
    assert Path(u.path).exists()


def test_combined_rejects_bad_parts(emodb):
    with pytest.raises(CorpusError, match="needs options.parts"):
        load_corpus("combined", emodb.parent)
    with pytest.raises(CorpusError, match="needs format and path"):
        load_corpus("combined", emodb.parent, parts=[{"format": "emodb"}])
    twice = [{"format": "emodb", "path": "emodb"}, {"format": "emodb", "path": str(emodb)}]
    with pytest.raises(CorpusError, match="distinct name"):
        load_corpus("combined", emodb.parent, parts=twice)
    twice[1]["name"] = "emodb2"
    m = load_corpus("combined", emodb.parent, parts=twice, check_files=False)
    assert len(m) == 2 * 535 and len(m.speakers) == 20
