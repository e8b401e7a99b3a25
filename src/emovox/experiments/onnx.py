"""ONNX graphs of trained sequence models: what a method's ``export_onnx`` writes (the export
directory's layout is in :mod:`emovox.serving.onnx_export`).

Any ensemble of the models in :data:`UNPADDED` exports ``model.onnx`` (whole utterances, the
members averaged inside the graph); a single GRU read through the running mean of its states
also exports ``step.onnx``, one decision step of a stream (:class:`StepGraph`: the classifier
and, for EmoRL, the agent's action logits; the stop rule stays in ``early.decisions``). The
front end (extractor, z-score, stacking) is data: ``normaliser.json`` and the description
returned for ``frontend.json``; Whisper's layers are a graph too, ``features.onnx``
(:func:`export_layer_states`: log-mel, encoder, chosen layers), so that an export of a
recogniser-layer model runs from audio to probabilities without PyTorch.

The graphs come from PyTorch's TorchScript ONNX exporter (ONNX ``GRU`` ops, opset
:data:`OPSET`): it needs no extra package, and ``torch`` is pinned exactly.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from emovox.early.reinforce import EmoRLConfig, step_frames
from emovox.errors import EmovoxError
from emovox.io import atomic_write, atomic_write_json
from emovox.models import MODELS
from emovox.models.convolutional import Cnn1d
from emovox.models.emorl import EmoRL
from emovox.models.recurrent import (
    BiGru,
    BiGruEncoder,
    GruBaseline,
    LayerMix,
    MeanPool,
    Progressive,
)

OPSET = 17


def _full_lengths(x: torch.Tensor) -> torch.Tensor:
    """Every row of an unpadded batch is ``frames`` long (traced as a shape, not a constant)."""
    return torch.ones_like(x[:, 0, 0], dtype=torch.long) * x.shape[1]


def _bigru(encoder: BiGruEncoder, x: torch.Tensor) -> torch.Tensor:
    return encoder.pool(encoder.gru(x)[0], _full_lengths(x))


#: Logits of an unpadded batch per model class: the models that export. ``run_rnn``'s packed
#: sequences have no ONNX form; without padding the plain GRU call gives the same states.
UNPADDED: dict[type, Callable[[nn.Module, torch.Tensor], torch.Tensor]] = {
    GruBaseline: lambda m, x: m.head(m.gru(x)[0].mean(1)),
    EmoRL: lambda m, x: m.classifier(m.gru(x)[0].mean(1)),
    BiGru: lambda m, x: m.head(_bigru(m.encoder, x)),
    Progressive: lambda m, x: m.head(torch.cat(
        [x[..., : m.recogniser_dim].mean(1), _bigru(m.branch, x[..., m.recogniser_dim :])], -1)),
    MeanPool: lambda m, x: m(x, _full_lengths(x)),
    LayerMix: lambda m, x: m(x, _full_lengths(x)),
    Cnn1d: lambda m, x: m(x, _full_lengths(x)),
}


class UtteranceGraph(nn.Module):
    """Whole utterances → class probabilities averaged over the ensemble's members."""

    def __init__(self, members: list[nn.Module]):
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        probs = [torch.softmax(UNPADDED[type(m)](m, features), -1) for m in self.members]
        return torch.stack(probs).mean(0)


class StepGraph(nn.Module):
    """One decision step of a GRU stream (``experiments.streamers.GruStream``): run the GRU on
    the step's frames from the carried hidden state, add its states to the running sum, and
    classify on the running mean; with a ``policy`` (EmoRL's agent), its action logits too."""

    def __init__(self, gru: nn.GRU, classifier: nn.Module, policy: nn.Module | None = None):
        super().__init__()
        self.gru, self.classifier, self.policy = gru, classifier, policy

    def forward(self, frames, hidden, total, count):
        out, hidden = self.gru(frames.unsqueeze(0), hidden)
        total = total + out[0].sum(0)
        count = count + frames.shape[0]
        state = total / count.to(total.dtype)
        proba = torch.softmax(self.classifier(state), -1)
        if self.policy is None:
            return hidden, total, count, proba
        return hidden, total, count, proba, self.policy(state)


def exportable_models() -> list[str]:
    return sorted(n for n in MODELS.names() if MODELS.get(n) in UNPADDED)


def not_exportable(model: str, kind: str, method: str) -> EmovoxError:
    return EmovoxError(f"model {model!r} ({kind}, method {method!r}) cannot be exported to "
                       f"ONNX; exportable: {', '.join(exportable_models())}")


def export_sequence_models(trained: Any, out: Path, step: StepGraph | None, step_ms: float,
                           max_steps: int | None) -> dict[str, Any]:
    """Write ``model.onnx``, ``step.onnx`` (when ``step`` is given and the features have a frame
    rate) and ``normaliser.json`` of ``trained`` (a ``methods.supervised.SequenceModels``:
    members and front end) into ``out``; return their description for ``frontend.json``, with
    the export-time check's differences. ``step_ms``, ``max_steps``: the stream's decision
    step and its cap."""
    members = trained.members
    extractor, normaliser, stack = trained.extractor, trained.normaliser, int(trained.stack)
    for m in members:
        m.eval()
    dim = extractor.dim * stack
    rng = np.random.default_rng(0)
    out.mkdir(parents=True, exist_ok=True)

    whole = UtteranceGraph(members).eval()
    example = torch.from_numpy(rng.standard_normal((1, 23, dim)).astype(np.float32))
    _write(whole, (example,), out / "model.onnx", ["features"], ["probabilities"],
           {"features": {0: "batch", 1: "frames"}, "probabilities": {0: "batch"}})
    check = {"model.onnx": _max_abs_diff(out / "model.onnx", whole, {
        "features": rng.standard_normal((2, 57, dim)).astype(np.float32)})}
    with torch.no_grad():
        n_classes = whole(example).shape[-1]

    frame_rate = extractor.frame_rate / stack if extractor.frame_rate else None
    graphs: dict = {"model.onnx": {
        "inputs": {"features": ["batch", "frames", dim]},
        "outputs": {"probabilities": ["batch", n_classes]},
    }}
    agent = step is not None and step.policy is not None
    streaming = None
    if step is not None and frame_rate:
        step.eval()
        hidden = step.gru.hidden_size
        outputs = ["hidden_out", "total_out", "count_out", "probabilities"]
        if agent:
            outputs.append("action_logits")
        example_args = (torch.zeros(4, dim), torch.zeros(1, 1, hidden), torch.zeros(hidden),
                        torch.zeros(1, dtype=torch.long))
        _write(step, example_args, out / "step.onnx", ["frames", "hidden", "total", "count"],
               outputs, {"frames": {0: "n"}})
        check["step.onnx"] = _max_abs_diff(out / "step.onnx", step, {
            "frames": rng.standard_normal((7, dim)).astype(np.float32),
            "hidden": rng.standard_normal((1, 1, hidden)).astype(np.float32),
            "total": rng.standard_normal(hidden).astype(np.float32),
            "count": np.array([5], dtype=np.int64)})
        streaming = {
            "step_frames": step_frames(EmoRLConfig(step_ms=step_ms), frame_rate),
            "step_ms": step_ms,
            "max_steps": max_steps,
            "policy": "agent" if agent else "threshold",
        }
        graphs["step.onnx"] = {
            "inputs": {"frames": ["n", dim], "hidden": [1, 1, hidden], "total": [hidden],
                       "count": [1]},
            "outputs": {"hidden_out": [1, 1, hidden], "total_out": [hidden], "count_out": [1],
                        "probabilities": [n_classes],
                        **({"action_logits": [2]} if agent else {})},
        }
    features_graph = export_layer_states(extractor, out, rng, check, graphs)
    norm = normaliser.state()
    atomic_write_json(out / "normaliser.json", {
        "mode": norm["mode"],
        "mean": None if norm["mean"] is None else np.asarray(norm["mean"]).tolist(),
        "std": None if norm["std"] is None else np.asarray(norm["std"]).tolist(),
    })
    return {
        "ensemble": len(members),
        # what `emovox predict` answers: the agent's early decision (EmoRL, via step.onnx) or
        # the whole utterance (model.onnx)
        "predict": "decision" if agent else "utterance",
        "features": extractor.settings(),
        "sample_rate": extractor.sample_rate,
        "feature_dim": extractor.dim,
        "feature_frame_rate": extractor.frame_rate,
        "stack": stack,
        "input_dim": dim,
        "frame_rate": frame_rate,
        "normalise": norm["mode"],
        "streaming": streaming,
        # Whisper's layers: audio → frames as a graph too (``features.onnx``)
        "features_graph": features_graph,
        "graphs": graphs,
        "opset": OPSET,
        "export_check_max_abs_diff": check,
    }


def export_layer_states(extractor: Any, out: Path, rng: np.random.Generator, check: dict,
                        graphs: dict) -> str | None:
    """``features.onnx`` of a ``whisper_layers`` extractor (``asr.whisper.LayerStates``: the
    log-mel front end, the encoder up to the chosen layers): ``audio`` [batch, samples] and
    ``offset`` [batch] (each row's first frame's position in Whisper's context, int64) →
    ``states`` [batch, frames, dim]. Its name, or None for other features (computed by
    emovox's own numpy code) or a Hugging Face checkpoint."""
    states = getattr(extractor, "layer_states", None)
    if states is None:
        return None
    name = "features.onnx"
    example = (torch.zeros(1, 8000), torch.zeros(1, dtype=torch.long))
    _write(states, example, out / name, ["audio", "offset"], ["states"],
           {"audio": {0: "batch", 1: "samples"}, "offset": {0: "batch"},
            "states": {0: "batch", 1: "frames"}})
    check[name] = _max_abs_diff(out / name, states, {
        "audio": (0.1 * rng.standard_normal((2, 23_456))).astype(np.float32),
        "offset": np.array([0, 31], dtype=np.int64)})
    graphs[name] = {"inputs": {"audio": ["batch", "samples"], "offset": ["batch"]},
                    "outputs": {"states": ["batch", "frames", extractor.dim]}}
    return name


def _write(module: nn.Module, args: tuple, path: Path, inputs: list[str], outputs: list[str],
           dynamic: dict[str, dict[int, str]]) -> None:
    buf = io.BytesIO()
    with warnings.catch_warnings():  # the TorchScript exporter's deprecation and GRU notes
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, buf, dynamo=False, opset_version=OPSET,
                          input_names=inputs, output_names=outputs, dynamic_axes=dynamic)
    atomic_write(path, lambda fh: fh.write(buf.getvalue()))


def _max_abs_diff(path: Path, module: nn.Module, feeds: dict[str, np.ndarray]) -> float:
    """Max |ONNX − PyTorch| over the graph's outputs on ``feeds`` (a sanity check at export)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, feeds)
    with torch.no_grad():
        want = module(*(torch.from_numpy(v) for v in feeds.values()))
    want = want if isinstance(want, tuple) else (want,)
    return max(float(np.abs(g - w.numpy()).max()) for g, w in zip(got, want, strict=True))
