"""Small serialisable manifests of labelled utterances (in the spirit of lhotse supervisions)."""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from emovox.io import atomic_write_text


@dataclass
class Word:
    """A word of the transcript with its time span in seconds from the utterance start."""

    text: str
    start: float
    end: float


@dataclass
class Utterance:
    """One labelled stretch of speech: everything a loader knows about it, nothing computed."""

    id: str
    path: str
    speaker: str
    label: str | None = None
    start: float | None = None
    end: float | None = None
    gender: str | None = None
    session: str | None = None
    corpus: str | None = None
    #: Categorical votes per annotator, e.g. ``{"C-E2": ["neutral", "frustration"]}``.
    votes: dict[str, list[str]] = field(default_factory=dict)
    valence: float | None = None
    arousal: float | None = None
    dominance: float | None = None
    transcript: str | None = None
    words: list[Word] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Utterance:
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in data.items() if k in known}
        data["words"] = [w if isinstance(w, Word) else Word(**w) for w in data.get("words") or []]
        data["votes"] = data.get("votes") or {}
        return cls(**data)


#: Columns written to CSV (nested votes and words travel as JSON strings).
CSV_COLUMNS = [f.name for f in fields(Utterance)]


class Manifest:
    """An ordered collection of utterances with the queries experiments need."""

    def __init__(self, utterances: Iterable[Utterance] = (), problems: list[str] | None = None):
        self.utterances = list(utterances)
        ids = Counter(u.id for u in self.utterances)
        dup = [i for i, n in ids.items() if n > 1]
        if dup:
            raise ValueError(f"duplicate utterance ids in manifest: {dup[:5]}")
        #: Problems met while loading (skipped files and why), for ``corpus info`` and reports.
        self.problems = problems or []

    def __len__(self) -> int:
        return len(self.utterances)

    def __iter__(self) -> Iterator[Utterance]:
        return iter(self.utterances)

    def __getitem__(self, index: int) -> Utterance:
        return self.utterances[index]

    def filter(self, keep: Callable[[Utterance], bool]) -> Manifest:
        return Manifest([u for u in self.utterances if keep(u)], list(self.problems))

    def with_speakers(self, speakers: Iterable[str]) -> Manifest:
        wanted = set(speakers)
        return self.filter(lambda u: u.speaker in wanted)

    @property
    def speakers(self) -> list[str]:
        return sorted({u.speaker for u in self.utterances})

    @property
    def labels(self) -> list[str]:
        return sorted({u.label for u in self.utterances if u.label is not None})

    def label_counts(self) -> Counter:
        return Counter(u.label for u in self.utterances)

    def speaker_counts(self) -> Counter:
        return Counter(u.speaker for u in self.utterances)

    # ---- serialisation -------------------------------------------------------------------
    def to_jsonl(self, path: str | Path) -> None:
        text = "".join(json.dumps(u.to_dict(), ensure_ascii=False) + "\n" for u in self)
        atomic_write_text(path, text)

    @classmethod
    def from_jsonl(cls, path: str | Path) -> Manifest:
        with open(path, encoding="utf-8") as fh:
            return cls(Utterance.from_dict(json.loads(line)) for line in fh if line.strip())

    def to_csv(self, path: str | Path) -> None:
        import io

        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for u in self:
            row = u.to_dict()
            row["votes"] = json.dumps(row["votes"], ensure_ascii=False) if row["votes"] else ""
            row["words"] = json.dumps(row["words"], ensure_ascii=False) if row["words"] else ""
            writer.writerow(row)
        atomic_write_text(path, buf.getvalue())
