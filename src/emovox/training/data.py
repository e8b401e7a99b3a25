"""Padded variable-length batches, SortaGrad ordering and balanced sampling."""

from __future__ import annotations

import numpy as np
import torch


class SequenceSet:
    """Feature matrices with integer (or float, for regression) targets."""

    def __init__(self, feats: list[np.ndarray], targets: np.ndarray):
        if len(feats) != len(targets):
            raise ValueError("features and targets differ in length")
        self.feats = feats
        self.targets = np.asarray(targets)
        self.lengths = np.array([len(f) for f in feats])

    def __len__(self) -> int:
        return len(self.feats)

    def batch(self, indices: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Zero-padded [B, T, D] features, [B] lengths, [B] targets."""
        lengths = self.lengths[indices]
        x = np.zeros((len(indices), lengths.max(), self.feats[0].shape[1]), dtype=np.float32)
        for row, i in enumerate(indices):
            x[row, : lengths[row]] = self.feats[i]
        return torch.from_numpy(x), torch.from_numpy(lengths), torch.from_numpy(
            self.targets[indices])

    def for_epoch(self, epoch: int, seed: int) -> SequenceSet:
        """The examples of one training epoch (the same every epoch)."""
        return self


class AugmentedSet:
    """Training examples with several versions each (clean and augmented); every epoch draws
    one version per example, as a function of (seed, epoch)."""

    def __init__(self, versions: list[list[np.ndarray]], targets: np.ndarray):
        if len(versions) != len(targets) or any(not v for v in versions):
            raise ValueError("every example needs at least one version and a target")
        self.versions = versions
        self.targets = np.asarray(targets)

    def __len__(self) -> int:
        return len(self.versions)

    def for_epoch(self, epoch: int, seed: int) -> SequenceSet:
        rng = np.random.default_rng([seed, epoch, 2])
        return SequenceSet([v[rng.integers(len(v))] for v in self.versions], self.targets)


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
