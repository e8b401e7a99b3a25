from __future__ import annotations

import json

import pytest
from conftest import write_speech
from iemocap_fixture import write_iemocap

from emovox.corpora import Manifest, load_corpus
from emovox.corpora.iemocap import speaker_of
from emovox.errors import ConfigError, CorpusError


def test_emodb_counts_labels_and_speakers(emodb_manifest):
    m = emodb_manifest
    assert len(m) == 535
    assert len(m.speakers) == 10
    assert m.label_counts() == {"anger": 127, "boredom": 81, "neutral": 79, "happiness": 71,
                                "fear": 69, "sadness": 62, "disgust": 46}
    u = next(u for u in m if u.id == "03a01Fa")
    assert (u.speaker, u.label, u.gender) == ("03", "happiness", "m")
    assert u.transcript == "Der Lappen liegt auf dem Eisschrank."
    assert next(u for u in m if u.id.startswith("08")).gender == "f"


def test_emodb_word_timings_follow_the_transcript(emodb_manifest):
    untimed = [u.id for u in emodb_manifest if not u.words]
    assert untimed == ["13a01Wb"]  # its silb/ file is empty in the corpus
    for u in emodb_manifest:
        if not u.words:
            continue
        words = [w.text for w in u.words]
        assert words == [w.strip(".,?!") for w in u.transcript.split()], u.id
        starts = [w.start for w in u.words]
        assert starts == sorted(starts)
        assert all(w.end >= w.start for w in u.words)
    u = next(u for u in emodb_manifest if u.id == "03a01Fa")
    assert u.words[1].text == "Lappen"
    assert u.words[1].start == pytest.approx(0.244195)
    assert u.words[1].end == pytest.approx(0.643428)


def test_manifest_roundtrip_jsonl(tmp_path):
    """Every field survives: words, transcripts, dimensions and annotator votes included."""
    small = load_corpus("iemocap", write_iemocap(tmp_path)).with_speakers(["Ses01F", "Ses01M"])
    assert any(u.words for u in small) and any(u.votes for u in small)
    small.to_jsonl(tmp_path / "m.jsonl")
    back = Manifest.from_jsonl(tmp_path / "m.jsonl")
    assert [u.to_dict() for u in back] == [u.to_dict() for u in small]
    small.to_csv(tmp_path / "m.csv")
    assert (tmp_path / "m.csv").read_text().startswith("id,path,speaker,label")


def test_iemocap_selection_rules(tmp_path):
    root = write_iemocap(tmp_path)
    m = load_corpus("iemocap", root)
    ids = {u.id: u.label for u in m}
    assert ids == {
        "Ses01F_impro01_F000": "neutral", "Ses01F_impro01_M000": "anger",
        "Ses01F_impro01_M001": "happiness", "Ses01M_script01_1_F000": "sadness",
        "Ses01M_script01_1_M000": "frustration", "Ses02F_impro02_F000": "anger",
        "Ses02F_impro02_M000": "neutral", "Ses02F_impro02_M001": "happiness",
    }
    u = next(u for u in m if u.id == "Ses01F_impro01_F000")
    assert u.speaker == "Ses01F" and u.session == "Ses01"
    assert (u.valence, u.arousal, u.dominance) == (2.5, 2.5, 2.5)
    assert u.votes["C-E3"] == ["neutral", "frustration"]
    assert u.transcript == "Excuse me."
    # The speaker is the last part's letter, not the dialogue's marker-wearing actor.
    assert next(u for u in m if u.id == "Ses01M_script01_1_F000").speaker == "Ses01F"


def test_iemocap_four_class_and_binary_sets(tmp_path):
    root = write_iemocap(tmp_path)
    four = load_corpus("iemocap", root, labels=["anger", "happiness", "neutral", "sadness"])
    assert four.label_counts() == {"anger": 2, "happiness": 2, "neutral": 2, "sadness": 1}
    binary = load_corpus("iemocap", root, labels=["anger", "neutral"])
    assert len(binary) == 4
    no_merge = load_corpus("iemocap", root, merge_excited=False)
    assert next(u for u in no_merge if u.id == "Ses01F_impro01_M001").label == "excited"
    strict = load_corpus("iemocap", root, min_agreement=3)
    # Excited + Happiness + Excited counts as three votes for happiness once merged.
    assert {u.id for u in strict} == {"Ses01F_impro01_F000", "Ses01F_impro01_M001",
                                      "Ses02F_impro02_F000"}
    loose = load_corpus("iemocap", root, min_agreement=1, drop_three_way=False)
    assert "Ses01M_script01_1_M001" in {u.id for u in loose}


def test_iemocap_speaker_rule():
    assert speaker_of("Ses01F_impro01_M012") == "Ses01M"
    assert speaker_of("Ses05M_script02_2_F003") == "Ses05F"


def test_iemocap_missing_wav_is_reported_not_silent(tmp_path):
    root = write_iemocap(tmp_path)
    missing = root / "Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.wav"
    missing.unlink()
    m = load_corpus("iemocap", root)
    assert "Ses01F_impro01_F000" not in {u.id for u in m}
    assert any("Ses01F_impro01_F000.wav: file not found" in p for p in m.problems)
    with pytest.raises(CorpusError, match="Ses01F_impro01_F000.wav"):
        load_corpus("iemocap", root, on_error="stop")


def _touch_wavs(root, names):
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        write_speech(path, 0.5)


def test_ravdess_file_names(tmp_path):
    _touch_wavs(tmp_path, ["Actor_01/03-01-05-02-01-01-01.wav",
                           "Actor_02/03-01-01-01-02-02-02.wav",
                           "Actor_02/03-02-03-01-02-02-02.wav"])
    m = load_corpus("ravdess", tmp_path)
    assert [(u.speaker, u.label, u.gender) for u in m] == [
        ("Actor_01", "anger", "m"), ("Actor_02", "neutral", "f")]
    assert m[1].transcript == "Dogs are sitting by the door."
    assert len(load_corpus("ravdess", tmp_path, include_song=True)) == 3


def test_cremad_file_names(tmp_path):
    _touch_wavs(tmp_path, ["AudioWAV/1001_DFA_ANG_XX.wav", "AudioWAV/1002_IEO_HAP_HI.wav",
                           "AudioWAV/1003_IEO_XYZ_HI.wav"])
    (tmp_path / "VideoDemographics.csv").write_text("ActorID,Age,Sex\n1001,51,Male\n")
    m = load_corpus("cremad", tmp_path)
    assert [(u.speaker, u.label) for u in m] == [("1001", "anger"), ("1002", "happiness")]
    assert m[0].gender == "m" and m[0].transcript == "Don't forget a jacket."
    assert any("unknown emotion code 'XYZ'" in p for p in m.problems)
    with pytest.raises(CorpusError, match="1003_IEO_XYZ_HI.wav"):
        load_corpus("cremad", tmp_path, on_error="stop")


def test_generic_csv(tmp_path):
    _touch_wavs(tmp_path, ["a.wav", "b.wav", "c.wav"])
    (tmp_path / "m.csv").write_text(
        "path,label,speaker,session,transcript,valence,arousal\n"
        "a.wav,anger,s1,1,hello,1.5,4\nb.wav,neutral,s2,,,,\nc.wav,,s3,,,,\n")
    m = load_corpus("csv", tmp_path / "m.csv")
    assert [(u.id, u.label, u.speaker) for u in m] == [("a", "anger", "s1"), ("b", "neutral", "s2")]
    assert m[0].valence == 1.5 and m[0].arousal == 4.0 and m[0].transcript == "hello"
    assert any("empty label" in p for p in m.problems)
    (tmp_path / "bad.csv").write_text("file,label\nx.wav,anger\n")
    with pytest.raises(CorpusError, match="lacks required column"):
        load_corpus("csv", tmp_path / "bad.csv")


def test_bad_corpus_inputs(tmp_path):
    with pytest.raises(CorpusError, match="not found"):
        load_corpus("emodb", tmp_path / "nowhere")
    with pytest.raises(CorpusError, match="no wav/ folder"):
        load_corpus("emodb", tmp_path)
    with pytest.raises(ConfigError, match="unknown corpus format"):
        load_corpus("timit", tmp_path)
    _touch_wavs(tmp_path, ["wav/03a01Wa.wav"])
    with pytest.raises(CorpusError, match="labels"):
        load_corpus("emodb", tmp_path, labels=["anger", "contempt"])
    # A corrupt file among good ones: skipped with its name recorded, or stops the run.
    (tmp_path / "wav" / "03a02Wa.wav").write_bytes(b"RIFF\x00\x00garbage")
    (tmp_path / "wav" / "03a04Wa.wav").write_bytes(b"")
    (tmp_path / "wav" / "03a05Xa.wav").write_bytes(b"")
    m = load_corpus("emodb", tmp_path)
    assert [u.id for u in m] == ["03a01Wa"]
    text = json.dumps(m.problems)
    assert "03a02Wa.wav: unreadable or corrupt" in text
    assert "03a04Wa.wav: empty file" in text
    assert "03a05Xa.wav: unknown emotion code 'X'" in text
