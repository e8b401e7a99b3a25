"""Supervised learning on frame features: any registered sequence model (GRU, BiGRU, 1-D CNN,
the recogniser-transfer heads), one or an ensemble of seeds per fold, categorical or
dimensional targets, optional training-time augmentation."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from emovox.asr.layers import WhisperLayers
from emovox.corpora import Manifest
from emovox.errors import ConfigError, EmovoxError, ModelDirError
from emovox.experiments.dataset import Dataset
from emovox.experiments.methods.base import METHODS, Method, RunContext, Split
from emovox.experiments.onnx import UNPADDED, StepGraph, export_sequence_models, not_exportable
from emovox.experiments.recogniser_streams import (
    CONTEXT_S,
    BlockStreamer,
    CausalBlockStreamer,
    WindowStreamer,
    shared_batcher,
)
from emovox.experiments.streamers import STEP_MS, GruStreamer, Streamer
from emovox.features import Extractor, Normaliser
from emovox.features.base import stack_frames
from emovox.features.spectral import FramedExtractor
from emovox.io import atomic_write
from emovox.models import build_model
from emovox.models.recurrent import GruBaseline
from emovox.training import SequenceSet, fit, predict
from emovox.training.tasks import Classification, Regression
from emovox.training.trainer import class_weight_tensor, seed_everything

#: Audio a stream re-encodes every step when its features cannot stream frame for frame
#: (``experiments.recogniser_streams.WindowStreamer``): the utterance's last WINDOW_S seconds, older
#: frames keeping their states; exact up to WINDOW_S, and within the per-step budget at any
#: length (benchmarks/streaming_recogniser.py measures 1.5, 2, 3 s and the whole utterance).
WINDOW_S: float | None = 3.0
#: How a model on Whisper's layers streams, its steps batched across the process's streams
#: either way: ``window`` (the last WINDOW_S re-encoded every step: exact up to WINDOW_S) or
#: ``blocks`` (``recogniser_streams.BlockStreamer``: each step's new audio after 1 s of
#: context; ~2× cheaper, but its frames differ from offline ones: -0.034 UAR on Emo-DB with
#: a head trained offline, -0.020 with one trained on blocks; benchmarks/RESULTS.md).
RECOGNISER_STREAMING: Literal["window", "blocks"] = "window"


@dataclass
class SequenceModels:
    """What a supervised fold trains: the ensemble's members, the normaliser fitted on the
    training speakers, the task (it maps regression outputs back to the rating scale), and the
    front end that turns new audio into the members' input."""

    members: list[Any]
    normaliser: Normaliser
    task: Classification | Regression
    extractor: Extractor
    stack: int

    def sequences(self, feats: list[np.ndarray], speakers: list[str] | None = None
                  ) -> list[np.ndarray]:
        return [stack_frames(f, self.stack) for f in self.normaliser.apply(feats, speakers)]


def reads_pool(dataset: Dataset, model: Any) -> bool:
    """A model that reads only its input's time mean is fed each utterance's mean (from the
    cached frame statistics: memory independent of utterance length), never its frames."""
    return dataset.stack == 1 and getattr(model, "reads_time_mean", False)


@METHODS.register
class Supervised(Method):
    """Train a registered sequence model on frame features, checkpoint on validation."""

    name = "supervised"
    needs = ("frames",)

    def task(self, dataset: Dataset, targets: np.ndarray) -> Classification | Regression:
        if dataset.dimensional:
            return Regression(self.config.task.loss, targets)
        weights = (class_weight_tensor(targets, len(dataset.labels))
                   if self.config.training.class_weights else None)
        return Classification(len(dataset.labels), weights)

    def fit(self, dataset: Dataset, split: Split, run: RunContext
            ) -> tuple[SequenceModels, dict]:
        config = self.config
        normaliser = dataset.fit_normaliser(split.train, config.features.normalise)
        # (this also builds a recogniser's encoder, for input_dim, whose construction draws
        # random numbers: before the members are seeded, never between seed and model)
        pooled = reads_pool(dataset, build_model(config.model.name, dataset.input_dim,
                                                 dataset.n_outputs, **config.model.params))
        train_set = dataset.training_set(split.train, normaliser, pooled)
        valid_set = dataset.sequences(split.valid, normaliser, pooled)
        task = self.task(dataset, train_set.targets)
        members, infos = [], []
        for member in range(config.model.ensemble):
            member_seed = run.seed * 1000 + member
            seed_everything(member_seed)
            model = build_model(config.model.name, dataset.input_dim, dataset.n_outputs,
                                **config.model.params)
            infos.append(self.fit_member(model, dataset, train_set, valid_set, task,
                                         member_seed, run.checkpoint(f"checkpoint{member}.pt")))
            members.append(model)
        info = infos[0] if len(infos) == 1 else {"members": infos}
        return SequenceModels(members, normaliser, task, dataset.extractor, dataset.stack), info

    def fit_member(self, model: torch.nn.Module, dataset: Dataset, train_set, valid_set,
                   task, seed: int, checkpoint: Path | None) -> dict:
        if not isinstance(model, torch.nn.Module):
            raise ConfigError(f"model {self.config.model.name!r} is not a neural sequence "
                              "model; use its own method (e.g. method.name: svm)")
        history = fit(model, train_set, valid_set, self.config.training, seed, checkpoint, task)
        return {"best_epoch": history.best_epoch, "epochs": history.epoch + 1,
                "history": history.records}

    def member_outputs(self, member: Any, data: SequenceSet, task) -> np.ndarray:
        return predict(member, data, task=task)

    def outputs_of(self, trained: SequenceModels, data: SequenceSet) -> np.ndarray:
        return np.mean([self.member_outputs(m, data, trained.task) for m in trained.members],
                       axis=0)

    def outputs(self, trained: SequenceModels, dataset: Dataset,
                manifest: Manifest) -> np.ndarray:
        pooled = reads_pool(dataset, trained.members[0])
        return self.outputs_of(trained, dataset.sequences(manifest, trained.normaliser, pooled))

    def classify(self, trained: SequenceModels, feats: np.ndarray) -> np.ndarray:
        """Probabilities of one utterance's raw frame features (normalised and stacked here).
        A model that reads only the time mean gets the normalised mean (as in training: fixed
        statistics are affine per dimension), so a stream's step costs the same at any
        utterance length."""
        if trained.stack == 1 and getattr(trained.members[0], "reads_time_mean", False) and \
                trained.normaliser.mode != "utterance":
            mean = trained.normaliser.apply([feats.mean(0, keepdims=True)])[0]
            data = SequenceSet([mean], np.zeros(1, dtype=np.int64), np.array([len(feats)]),
                               pooled=True)
        else:
            data = SequenceSet(trained.sequences([feats]), np.zeros(1, dtype=np.int64))
        return self.outputs_of(trained, data)[0]

    def streamer(self, trained: SequenceModels) -> Streamer:
        """A single GRU on features that stream frame for frame (normalised with fixed
        statistics) carries its state across chunks; a block-causal ``whisper_layers`` model
        encodes each step's block once (``CausalBlockStreamer``); any other re-encodes the heard
        audio (the last WINDOW_S) every step, a model on Whisper's layers (mp, layer_mix, rnn)
        batched across the process's streams, or in blocks (RECOGNISER_STREAMING)."""
        net = trained.members[0]
        if len(trained.members) == 1 and isinstance(net, GruBaseline) and \
                isinstance(trained.extractor, FramedExtractor) and \
                trained.normaliser.mode != "utterance":
            return GruStreamer(trained.extractor, trained.normaliser, trained.stack, net.gru,
                               net.head)
        if not isinstance(net, torch.nn.Module) or trained.extractor.frame_rate is None:
            raise EmovoxError(f"model {self.config.model.name!r} cannot stream: it reads "
                              "whole-utterance features")
        extractor = trained.extractor
        classify = lambda feats: (self.classify(trained, feats), None)  # noqa: E731
        batcher = None
        blocks = extractor.block_causal if isinstance(extractor, WhisperLayers) else None
        if blocks is not None:  # each step's block encoded once: the offline frames
            if extractor.params["block_ms"] != STEP_MS:
                raise EmovoxError(f"block_ms={extractor.params['block_ms']}: a block-causal "
                                  f"model streams in blocks of its {STEP_MS:g} ms step")
            return CausalBlockStreamer(
                shared_batcher(extractor.key(), extractor.encode_block, cached=True), classify,
                extractor.sample_rate, extractor.frame_rate, STEP_MS, blocks.new_ring,
                extractor.params["lookahead_ms"])
        if isinstance(extractor, WhisperLayers) and extractor.layer_states is not None and \
                not extractor.params["pad"]:
            batcher = shared_batcher(extractor.key(), extractor.encode)
            if RECOGNISER_STREAMING == "blocks":
                return BlockStreamer(batcher, classify, extractor.sample_rate,
                                     extractor.frame_rate, STEP_MS)
        return WindowStreamer(extractor.extract_from, classify, extractor.sample_rate,
                              extractor.frame_rate, STEP_MS, WINDOW_S, batcher=batcher)

    def predict_wave(self, trained: SequenceModels, wave: np.ndarray) -> np.ndarray:
        return self.classify(trained, trained.extractor.extract_long(wave))

    def export_onnx(self, trained: SequenceModels, out: Path) -> dict[str, Any]:
        """``model.onnx`` of the ensemble; a single GRU also streams through ``step.onnx``,
        deciding by a confidence threshold."""
        net = trained.members[0]
        if any(type(m) not in UNPADDED for m in trained.members):
            raise not_exportable(self.model_name, type(net).__name__, self.name)
        step = StepGraph(net.gru, net.head) if len(trained.members) == 1 and \
            isinstance(net, GruBaseline) else None
        graphs = export_sequence_models(trained, out, step, STEP_MS, None)
        if graphs["features_graph"]:  # streamed from features.onnx as this method streams
            graphs["recogniser_streaming"] = {"kind": RECOGNISER_STREAMING, "step_ms": STEP_MS,
                                              "window_s": WINDOW_S, "context_s": CONTEXT_S}
        return graphs

    # -- model directories ----------------------------------------------------------------
    def save(self, trained: SequenceModels, out: Path) -> dict[str, Any]:
        self.save_members(trained.members, out)
        save_normaliser(trained.normaliser, out / "normaliser.npz")
        return {"input_dim": trained.extractor.dim * trained.stack, "stack": trained.stack}

    def load(self, model_dir: Path, meta: dict[str, Any]) -> SequenceModels:
        from emovox.features import make_extractor

        extractor = make_extractor(meta["features"]["name"], **meta["features"]["params"])
        return SequenceModels(self.load_members(model_dir, meta),
                              load_normaliser(model_dir / "normaliser.npz"),
                              Classification(len(meta["labels"])), extractor,
                              int(meta.get("stack", 1)))

    def save_members(self, members: list[Any], out: Path) -> None:
        """``weights.pt``: the members' state dicts."""
        buf = io.BytesIO()
        torch.save([m.state_dict() for m in members], buf)
        atomic_write(out / "weights.pt", lambda fh: fh.write(buf.getvalue()))

    def load_members(self, model_dir: Path, meta: dict[str, Any]) -> list[Any]:
        members = []
        for state in load_torch(model_dir / "weights.pt"):
            member = build_model(self.config.model.name, meta["input_dim"], len(meta["labels"]),
                                 **self.config.model.params)
            try:
                member.load_state_dict(state)
            except RuntimeError as exc:
                raise ModelDirError(model_dir / "weights.pt",
                                    f"weights do not fit the model ({exc})") from None
            members.append(member.eval())
        return members


def save_normaliser(normaliser: Normaliser, path: Path) -> None:
    buf = io.BytesIO()
    np.savez(buf, **{k: v for k, v in normaliser.state().items() if v is not None})
    atomic_write(path, lambda fh: fh.write(buf.getvalue()))


def load_normaliser(path: Path) -> Normaliser:
    """The training statistics; a lone file has no speaker statistics, so per-speaker
    normalisation falls back to the training-set z-score."""
    try:
        normaliser = Normaliser.from_state(dict(np.load(path)))
    except FileNotFoundError:
        raise ModelDirError(path, "missing") from None
    except (OSError, ValueError, KeyError) as exc:
        raise ModelDirError(path, f"unreadable ({exc})") from None
    if normaliser.mode == "speaker":
        normaliser.mode = "global"
    return normaliser


def load_torch(path: Path) -> Any:
    try:
        return torch.load(path, weights_only=True)
    except FileNotFoundError:
        raise ModelDirError(path, "missing") from None
    except Exception as exc:  # noqa: BLE001  (torch raises many kinds on a damaged file)
        raise ModelDirError(path, f"damaged or cut off ({type(exc).__name__})") from None
