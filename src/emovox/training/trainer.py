"""A thin, resumable training loop for every neural model.

Adam; gradient clipping by norm or value; the learning rate halves on a validation plateau and
training stops at a minimum rate or after ``patience`` epochs without improvement; the best
validation checkpoint is restored before testing. The whole state (model, optimiser, schedule,
best weights, history) is checkpointed atomically every epoch, and each epoch's randomness is a
function of (seed, epoch): a killed run resumes and ends with the same weights.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from emovox.errors import ConfigError
from emovox.schema import bounded
from emovox.training.checkpoint import Checkpoint
from emovox.training.data import AugmentedSet, SequenceSet, batches, bucketed_batches, epoch_order
from emovox.training.tasks import Classification, Regression

Task = Classification | Regression

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    epochs: int = bounded(40, ge=1)
    batch_size: int = bounded(32, ge=1)
    lr: float = bounded(1e-3, gt=0)
    weight_decay: float = bounded(0.0, ge=0)
    clip_norm: float | None = bounded(None, gt=0)
    clip_value: float | None = bounded(None, gt=0)
    lr_factor: float = bounded(0.5, gt=0, lt=1)
    plateau_patience: int = bounded(2, ge=0)
    min_lr: float = bounded(1e-5, ge=0)
    patience: int = bounded(8, ge=1)
    sortagrad: bool = True
    #: Sort windows of this many batches by length before batching (0/1 disables).
    bucket: int = bounded(4, ge=0)
    class_weights: bool = False
    balanced_sampling: bool = False
    #: "loss" (validation loss) or the task's score ("uar"; "ccc" for dimensional models)
    #: picks the checkpoint that is restored.
    select_on: str = "loss"
    threads: int = bounded(1, ge=1)
    progress: bool = True


@dataclass
class History:
    epoch: int = -1
    best_epoch: int = -1
    best_score: float = float("inf")
    bad_epochs: int = 0
    records: list[dict] = field(default_factory=list)


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


def class_weight_tensor(targets: np.ndarray, n_classes: int) -> torch.Tensor:
    counts = np.bincount(targets, minlength=n_classes).astype(np.float32)
    weights = counts.sum() / np.maximum(counts, 1) / n_classes
    return torch.from_numpy(weights)


@torch.no_grad()
def raw_outputs(model: nn.Module, data: SequenceSet, batch_size: int = 64) -> np.ndarray:
    """The model's raw outputs (logits or values) in ``data`` order."""
    model.eval()
    order = np.argsort(data.lengths)
    chunks = []
    for idx in batches(order, batch_size):
        x, lengths, _ = data.batch(idx)
        chunks.append(model(x, lengths).numpy())
    out = np.zeros((len(data), chunks[0].shape[1]), dtype=np.float32)
    out[order] = np.concatenate(chunks)
    return out


def predict(model: nn.Module, data: SequenceSet, batch_size: int = 64,
            task: Task | None = None) -> np.ndarray:
    """Predictions in ``data`` order: softmax probabilities, or the task's predictions."""
    raw = torch.from_numpy(raw_outputs(model, data, batch_size))
    return (task.predictions(raw) if task else torch.softmax(raw, dim=-1)).numpy()


def fit(
    model: nn.Module,
    train: SequenceSet | AugmentedSet,
    valid: SequenceSet,
    config: TrainConfig,
    seed: int,
    checkpoint: Path | None = None,
    task: Task | None = None,
) -> History:
    """Train ``model`` in place; on return it holds the best validation weights.

    ``train`` may hold several versions of each example (augmentation): each epoch draws one.
    """
    torch.set_num_threads(config.threads)
    if task is None:
        n_classes = int(train.targets.max()) + 1
        weight = class_weight_tensor(train.targets, n_classes) if config.class_weights else None
        task = Classification(n_classes, weight)
    if config.select_on not in ("loss", task.score_name):
        raise ConfigError(f"training.select_on must be 'loss' or {task.score_name!r} for this "
                          f"task, not {config.select_on!r}")
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr,
                                 weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimiser, factor=config.lr_factor, patience=config.plateau_patience)
    saver = Checkpoint(checkpoint, model=model, optimiser=optimiser, scheduler=scheduler)
    progress = saver.restore() or {"best": copy.deepcopy(model.state_dict()),
                                   "history": History()}
    best_state, history = progress["best"], progress["history"]

    bar = tqdm(total=config.epochs, initial=history.epoch + 1, desc="epochs",
               disable=not config.progress, leave=False)
    for epoch in range(history.epoch + 1, config.epochs):
        if history.bad_epochs >= config.patience or optimiser.param_groups[0]["lr"] < config.min_lr:
            break
        torch.manual_seed(seed * 100_003 + epoch)  # dropout noise: a function of (seed, epoch)
        model.train()
        data = train.for_epoch(epoch, seed)
        order = epoch_order(data, epoch, seed, config.sortagrad, config.balanced_sampling)
        total = 0.0
        if config.sortagrad and epoch == 0:
            chunks = batches(order, config.batch_size)
        else:
            chunks = bucketed_batches(order, data.lengths, config.batch_size, seed, epoch,
                                      config.bucket)
        for idx in chunks:
            x, lengths, y = data.batch(idx)
            loss = task.loss(model(x, lengths), y)
            optimiser.zero_grad()
            loss.backward()
            if config.clip_value is not None:
                nn.utils.clip_grad_value_(model.parameters(), config.clip_value)
            if config.clip_norm is not None:
                nn.utils.clip_grad_norm_(model.parameters(), config.clip_norm)
            optimiser.step()
            total += loss.item() * len(idx)
        valid_loss, valid_score = evaluate(model, valid, task)
        scheduler.step(valid_loss)
        score = valid_loss if config.select_on == "loss" else -valid_score
        if score < history.best_score:
            history.best_score, history.best_epoch, history.bad_epochs = score, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            history.bad_epochs += 1
        history.epoch = epoch
        history.records.append({"epoch": epoch, "train_loss": total / len(train),
                                "valid_loss": valid_loss,
                                f"valid_{task.score_name}": valid_score,
                                "lr": optimiser.param_groups[0]["lr"]})
        bar.update()
        bar.set_postfix(valid_loss=f"{valid_loss:.3f}", score=f"{valid_score:.3f}")
        saver.save({"best": best_state, "history": history})
    bar.close()
    model.load_state_dict(best_state)
    return history


@torch.no_grad()
def evaluate(model: nn.Module, data: SequenceSet, task: Task) -> tuple[float, float]:
    """Validation loss (over the whole set: CCC is a corpus-level statistic) and score."""
    raw = torch.from_numpy(raw_outputs(model, data))
    loss = float(task.loss(raw, torch.from_numpy(data.targets)))
    return loss, task.score(data.targets, task.predictions(raw).numpy())
