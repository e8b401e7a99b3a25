"""Speaker-independent cross-validation protocols, written out as explicit fold files.

A fold names its train, validation and test speakers; no speaker is ever in two of them. The
validation speakers pick the checkpoint, the learning-rate schedule and any threshold; the test
speakers are only ever scored.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from pathlib import Path

from emovox.corpora.manifest import Manifest
from emovox.errors import ConfigError
from emovox.io import atomic_write_json
from emovox.registry import Registry

#: Speaker-independent fold generators: (speakers, sessions, seed, k) → folds.
PROTOCOLS: Registry = Registry("protocol")


@dataclass(frozen=True)
class Fold:
    index: int
    train: tuple[str, ...]
    valid: tuple[str, ...]
    test: tuple[str, ...]

    def check(self) -> None:
        sets = [set(self.train), set(self.valid), set(self.test)]
        if sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2]:
            raise AssertionError(f"fold {self.index}: a speaker is in two of train/valid/test")
        if not all(sets):
            raise AssertionError(f"fold {self.index}: empty train, valid or test set")


def _fold(index: int, speakers: list[str], valid: list[str], test: list[str]) -> Fold:
    held = set(valid) | set(test)
    fold = Fold(index, tuple(s for s in speakers if s not in held), tuple(valid), tuple(test))
    fold.check()
    return fold


@PROTOCOLS.register("loso")
def leave_one_speaker_out(speakers: list[str], seed: int = 0, **_: object) -> list[Fold]:
    """One fold per test speaker; the validation speaker rotates through a seed-shuffled ring
    (with 10 speakers, every speaker validates once and tests once)."""
    ring = sorted(speakers)
    random.Random(seed).shuffle(ring)
    by_test = {s: ring[(i + 1) % len(ring)] for i, s in enumerate(ring)}
    return [_fold(i, sorted(speakers), [by_test[s]], [s]) for i, s in enumerate(sorted(speakers))]


@PROTOCOLS.register("loso_session")
def leave_one_session_out(
    speakers: list[str], sessions: dict[str, str], seed: int = 0, **_: object
) -> list[Fold]:
    """IEMOCAP's protocol: per session, one of its speakers validates and the other tests,
    then the roles swap, giving two folds per session (ten in all)."""
    by_session: dict[str, list[str]] = {}
    for s in sorted(speakers):
        by_session.setdefault(sessions[s], []).append(s)
    folds = []
    for session in sorted(by_session):
        members = by_session[session]
        if len(members) != 2:
            raise ConfigError(f"session {session} has speakers {members}; expected two")
        for valid, test in ((members[0], members[1]), (members[1], members[0])):
            folds.append(_fold(len(folds), sorted(speakers), [valid], [test]))
    return folds


@PROTOCOLS.register("speaker_kfold")
def speaker_kfold(speakers: list[str], k: int = 5, seed: int = 0, **_: object) -> list[Fold]:
    """k groups of speakers; each group tests once and the next group validates it."""
    if not 2 < k <= len(speakers):
        raise ConfigError(f"speaker k-fold needs 2 < k <= {len(speakers)} speakers, got k={k}")
    order = sorted(speakers)
    random.Random(seed).shuffle(order)
    groups = [sorted(order[i::k]) for i in range(k)]
    return [_fold(i, sorted(speakers), groups[(i + 1) % k], groups[i]) for i in range(k)]


@PROTOCOLS.register("split")
def predefined_split(speakers: list[str], sessions: dict[str, str], **_: object) -> list[Fold]:
    """A corpus's own split (MELD): speakers whose session is ``train``, ``dev`` or ``test``
    train, validate and test; one fold. Speaker-independent only if the corpus's split is."""
    roles: dict[str, list[str]] = {"train": [], "dev": [], "test": []}
    for s in sorted(speakers):
        if sessions.get(s) not in roles:
            raise ConfigError(f"split protocol: speaker {s} has session {sessions.get(s)!r}, "
                              "not train/dev/test")
        roles[sessions[s]].append(s)
    return [_fold(0, sorted(speakers), roles["dev"], roles["test"])]


def make_folds(manifest: Manifest, protocol: str, seed: int = 0, k: int = 5,
               train_only: list[str] = ()) -> list[Fold]:
    """The protocol's folds over the manifest's speakers. Speakers of the corpora named in
    ``train_only`` (parts of a ``combined`` corpus) are never validated or tested on: the folds
    are made over the other speakers and every fold trains on them too (more training data
    from another corpus, selection and scores on the target corpus only)."""
    split = PROTOCOLS.get(protocol)
    sessions = {u.speaker: u.session or "" for u in manifest}
    corpora = {u.corpus for u in manifest}
    unknown = sorted(set(train_only) - corpora)
    if unknown:
        raise ConfigError(f"protocol.train_only: {unknown} not among the corpus's parts "
                          f"{sorted(c for c in corpora if c)}")
    extra = sorted({u.speaker for u in manifest if u.corpus in train_only})
    speakers = [s for s in manifest.speakers if s not in extra]
    if len(speakers) < 3:
        raise ConfigError(f"{protocol} needs at least 3 speakers, corpus has {speakers}")
    folds = split(speakers, sessions=sessions, seed=seed, k=k)
    return [Fold(f.index, tuple(sorted(f.train + tuple(extra))), f.valid, f.test)
            for f in folds]


def write_folds(path: str | Path, protocol: str, seeds: dict[int, list[Fold]]) -> None:
    atomic_write_json(
        path,
        {
            "protocol": protocol,
            "seeds": {str(seed): [asdict(f) for f in folds] for seed, folds in seeds.items()},
        },
    )
