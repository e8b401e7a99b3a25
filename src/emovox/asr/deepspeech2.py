"""A DeepSpeech2-style recogniser (the transfer paper's own): 2 convolutions + 5 bidirectional
GRUs trained with CTC on 161-bin power spectrograms, for users with transcribed speech
(LibriSpeech layout). Once trained, its layers serve as ``deepspeech2_layers`` features.

    emovox asr train /data/LibriSpeech/train-clean-100 --out models/ds2
"""

from __future__ import annotations

import copy
import unicodedata
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from emovox.corpora import Manifest
from emovox.errors import ConfigError
from emovox.features import FeatureCache, Normaliser, extract_all, make_extractor
from emovox.models.base import run_rnn
from emovox.training import SequenceSet
from emovox.training.checkpoint import Checkpoint, save_checkpoint
from emovox.training.data import batches, bucketed_batches, epoch_order
from emovox.training.trainer import seed_everything

ALPHABET = "_ 'abcdefghijklmnopqrstuvwxyz"  # index 0 is the CTC blank


def encode_text(text: str) -> list[int]:
    """Lower-case letters, space and apostrophe; diacritics stripped, anything else dropped."""
    plain = unicodedata.normalize("NFKD", text.lower()).encode("ascii", "ignore").decode()
    return [ALPHABET.index(c) for c in plain if c in ALPHABET[1:]]


def greedy_decode(log_probs: torch.Tensor, length: int) -> str:
    best = log_probs[:length].argmax(-1).tolist()
    out, previous = [], 0
    for index in best:
        if index != previous and index != 0:
            out.append(ALPHABET[index])
        previous = index
    return "".join(out)


def edit_distance(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


@dataclass
class DeepSpeech2Config:
    n_freq: int = 161
    channels: int = 32
    hidden: int = 800
    layers: int = 5
    epochs: int = 20
    batch_size: int = 32
    lr: float = 3e-4
    clip_norm: float = 400.0
    seed: int = 0


class DeepSpeech2(nn.Module):
    def __init__(self, n_freq: int = 161, channels: int = 32, hidden: int = 800, layers: int = 5):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, channels, (41, 11), stride=(2, 2), padding=(20, 5)),
            nn.BatchNorm2d(channels), nn.Hardtanh(0, 20),
            nn.Conv2d(channels, channels, (21, 11), stride=(2, 1), padding=(10, 5)),
            nn.BatchNorm2d(channels), nn.Hardtanh(0, 20))
        freq = (((n_freq + 1) // 2) + 1) // 2
        self.rnns = nn.ModuleList(
            nn.GRU(channels * freq if i == 0 else hidden, hidden, batch_first=True,
                   bidirectional=True) for i in range(layers))
        self.hidden = hidden
        self.out = nn.Linear(hidden, len(ALPHABET))

    def states(self, x: torch.Tensor, lengths: torch.Tensor
               ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """[B, T, F] spectrogram → hidden states (convolution output, then each GRU layer; both
        directions summed) at half the frame rate, and their lengths."""
        h = self.conv(x.transpose(1, 2).unsqueeze(1))  # [B, C, F', T']
        h = h.flatten(1, 2).transpose(1, 2)  # [B, T', C·F']
        lengths = (lengths + 1) // 2
        out = [h]
        for rnn in self.rnns:
            h = run_rnn(rnn, h, lengths)
            h = h[..., : self.hidden] + h[..., self.hidden :]
            out.append(h)
        return out, lengths

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        states, lengths = self.states(x, lengths)
        return torch.log_softmax(self.out(states[-1]), -1), lengths


def _targets(manifest: Manifest) -> list[list[int]]:
    targets = [encode_text(u.transcript or "") for u in manifest]
    empty = [u.id for u, t in zip(manifest, targets, strict=True) if not t]
    if empty:
        raise ConfigError(f"utterances without a usable transcript: {empty[:5]}")
    return targets


def train_deepspeech2(train: Manifest, valid: Manifest, out: Path, config: DeepSpeech2Config,
                      cache: FeatureCache | None = None, progress: bool = True) -> dict:
    """CTC training with SortaGrad, the checkpoint with the best validation character error
    rate kept; resumable (``out/checkpoint.pt``). Writes ``out/deepspeech2.pt``."""
    seed_everything(config.seed)
    extractor = make_extractor("power_spectrogram")
    sets = {}
    normaliser = None
    for name, manifest in (("train", train), ("valid", valid)):
        feats = extract_all(manifest, extractor, cache, progress=progress)
        kept = manifest.filter(lambda u, f=feats: u.id in f)
        if normaliser is None:
            normaliser = Normaliser("global").fit([feats[u.id] for u in kept])
        targets = _targets(kept)
        sets[name] = (SequenceSet(normaliser.apply([feats[u.id] for u in kept]),
                                  np.arange(len(kept))), targets, kept)
    model = DeepSpeech2(config.n_freq, config.channels, config.hidden, config.layers)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr)
    ctc = nn.CTCLoss(blank=0, zero_infinity=True)
    saver = Checkpoint(out / "checkpoint.pt", model=model, optimiser=optimiser)
    state = saver.restore() or {"epoch": -1, "best_cer": float("inf"), "best": None,
                                "history": []}
    data, targets, _ = sets["train"]
    for epoch in tqdm(range(state["epoch"] + 1, config.epochs), desc="deepspeech2",
                      disable=not progress):
        model.train()
        order = epoch_order(data, epoch, config.seed, sortagrad=True, balanced=False)
        chunks = batches(order, config.batch_size) if epoch == 0 else bucketed_batches(
            order, data.lengths, config.batch_size, config.seed, epoch)
        total = 0.0
        for idx in chunks:
            x, lengths, _ = data.batch(idx)
            log_probs, out_lengths = model(x, lengths)
            labels = [targets[i] for i in idx]
            loss = ctc(log_probs.transpose(0, 1), torch.tensor(sum(labels, [])), out_lengths,
                       torch.tensor([len(t) for t in labels]))
            optimiser.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), config.clip_norm)
            optimiser.step()
            total += loss.item() * len(idx)
        cer = character_error_rate(model, *sets["valid"][:2])
        state["history"].append({"epoch": epoch, "train_ctc": total / len(data), "valid_cer": cer})
        if cer < state["best_cer"]:
            state["best_cer"], state["best"] = cer, copy.deepcopy(model.state_dict())
        state["epoch"] = epoch
        saver.save(state)
    model.load_state_dict(state["best"])
    save_checkpoint(out / "deepspeech2.pt", {"config": asdict(config), "state": model.state_dict(),
                                             "normaliser": normaliser.state()})
    return {"best_valid_cer": state["best_cer"], "history": state["history"]}


@torch.no_grad()
def character_error_rate(model: DeepSpeech2, data: SequenceSet, targets: list[list[int]]
                         ) -> float:
    model.eval()
    errors = chars = 0
    for idx in batches(np.arange(len(data)), 32):
        x, lengths, _ = data.batch(idx)
        log_probs, out_lengths = model(x, lengths)
        for row, i in enumerate(idx):
            truth = "".join(ALPHABET[c] for c in targets[i])
            errors += edit_distance(greedy_decode(log_probs[row], int(out_lengths[row])), truth)
            chars += len(truth)
    return errors / max(chars, 1)


@lru_cache(maxsize=2)
def load_deepspeech2(path: str) -> tuple[DeepSpeech2, Normaliser]:
    saved = torch.load(Path(path).expanduser(), weights_only=False)
    c = saved["config"]
    model = DeepSpeech2(c["n_freq"], c["channels"], c["hidden"], c["layers"])
    model.load_state_dict(saved["state"])
    return model.eval(), Normaliser.from_state(saved["normaliser"])
