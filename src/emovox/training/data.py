"""Padded variable-length batches, SortaGrad ordering and balanced sampling."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


class SequenceSet:
    """Feature matrices with integer (or float, for regression) targets. ``feats`` is any
    sequence of [T, D] arrays: held in memory, or read (and normalised) when a batch asks for
    them, with ``lengths`` given so nothing is read to order the batches.

    ``pooled``: each item is already its utterance's [1, D] mean over time (for a model that
    only reads that mean, ``reads_time_mean``), while ``lengths`` stay the frame counts, so
    batches are ordered and bucketed exactly as for the frames; a batch has one step each.
    """

    def __init__(self, feats: Sequence[np.ndarray], targets: np.ndarray,
                 lengths: np.ndarray | None = None, pooled: bool = False):
        if len(feats) != len(targets):
            raise ValueError("features and targets differ in length")
        self.feats = feats
        self.targets = np.asarray(targets)
        self.lengths = np.array([len(f) for f in feats]) if lengths is None else \
            np.asarray(lengths)
        self.pooled = pooled

    def __len__(self) -> int:
        return len(self.feats)

    def batch(self, indices: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Zero-padded [B, T, D] features, [B] lengths, [B] targets."""
        rows = [self.feats[i] for i in indices]
        lengths = np.array([len(f) for f in rows]) if self.pooled else self.lengths[indices]
        x = np.zeros((len(indices), lengths.max(), rows[0].shape[1]), dtype=np.float32)
        for row, f in enumerate(rows):
            x[row, : lengths[row]] = f
        return torch.from_numpy(x), torch.from_numpy(lengths), torch.from_numpy(
            self.targets[indices])

    def for_epoch(self, epoch: int, seed: int) -> SequenceSet:
        """The examples of one training epoch (the same every epoch)."""
        return self


class _Chosen(Sequence[np.ndarray]):
    """Example i of version ``choice[i]``, read when asked for."""

    def __init__(self, versions: list[SequenceSet], choice: np.ndarray):
        self.versions, self.choice = versions, choice

    def __len__(self) -> int:
        return len(self.choice)

    def __getitem__(self, i: int) -> np.ndarray:  # type: ignore[override]
        return self.versions[self.choice[i]].feats[i]


class AugmentedSet:
    """Training examples with several versions each (clean and augmented): ``versions[k]``
    holds version k of every example. Every epoch draws one version per example, as a function
    of (seed, epoch)."""

    def __init__(self, versions: list[SequenceSet]):
        if not versions or any(len(v) != len(versions[0]) for v in versions):
            raise ValueError("every version needs every example")
        self.versions = versions
        self.targets = versions[0].targets

    def __len__(self) -> int:
        return len(self.targets)

    def for_epoch(self, epoch: int, seed: int) -> SequenceSet:
        rng = np.random.default_rng([seed, epoch, 2])
        choice = np.array([rng.integers(len(self.versions)) for _ in range(len(self))],
                          dtype=np.int64)
        lengths = np.stack([v.lengths for v in self.versions])[choice, np.arange(len(self))]
        return SequenceSet(_Chosen(self.versions, choice), self.targets, lengths,
                           self.versions[0].pooled)


def epoch_order(
    data: SequenceSet,
    epoch: int,
    seed: int,
    sortagrad: bool,
    balanced: bool,
) -> np.ndarray:
    """Order of training examples for ``epoch``; a pure function of (seed, epoch), so a resumed
    run sees exactly the batches an uninterrupted one would have.

    SortaGrad: the first epoch goes from shortest to longest utterance. Balanced: examples are
    drawn with probability inversely proportional to their class frequency.
    """
    rng = np.random.default_rng([seed, epoch])
    if sortagrad and epoch == 0:
        return np.argsort(data.lengths, kind="stable")
    if balanced:
        counts = np.bincount(data.targets)
        weights = 1.0 / counts[data.targets]
        return rng.choice(len(data), size=len(data), p=weights / weights.sum())
    return rng.permutation(len(data))


def batches(order: np.ndarray, batch_size: int) -> list[np.ndarray]:
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def bucketed_batches(order: np.ndarray, lengths: np.ndarray, batch_size: int, seed: int,
                     epoch: int, bucket: int = 4) -> list[np.ndarray]:
    """Batches of similar length (less padding), still random: ``order`` is cut into windows
    of ``bucket`` batches, each sorted by length, and the resulting batches are shuffled."""
    if bucket <= 1:
        return batches(order, batch_size)
    out = []
    span = batch_size * bucket
    for i in range(0, len(order), span):
        window = order[i : i + span]
        window = window[np.argsort(lengths[window], kind="stable")]
        out += batches(window, batch_size)
    rng = np.random.default_rng([seed, epoch, 1])
    return [out[i] for i in rng.permutation(len(out))]
