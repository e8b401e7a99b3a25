"""Export a trained model directory to ONNX: the network as graphs, its front end as data, so
that a runtime without Python (or PyTorch) can label and stream emotions.

``export_onnx(MODEL_DIR, OUT)`` writes into OUT:

``model.onnx``
    whole utterances: ``features`` [batch, frames, dim] float32 → ``probabilities`` [batch, K]
    (the rows of a batch must have equal length: no padding; an ensemble's members are
    averaged inside the graph, as in PyTorch).
``step.onnx``
    (``gru_baseline``/``rnn`` and ``emorl``, one model) one decision step of a stream:
    ``frames`` [n, dim], ``hidden`` [1, 1, H], ``total`` [H], ``count`` [1] int64 →
    ``hidden_out``, ``total_out``, ``count_out``, ``probabilities`` [K] and, for ``emorl``,
    ``action`` [1] int64 (0 wait, 1 terminate). ``total``/``count`` are the running sum of the
    GRU's states and the number of frames read; start from zeros.
``normaliser.json``
    the z-score of the front end: ``mode`` and the training set's ``mean`` and ``std``.
``frontend.json``
    what happens around the graphs: extractor name and parameters, sample rate, frame rate,
    stacking, labels, decision step and the graphs' inputs and outputs.

The graphs come from PyTorch's TorchScript ONNX exporter (ONNX ``GRU`` ops, opset
:data:`OPSET`): it needs no extra package, and ``torch`` is pinned exactly.
"""

from __future__ import annotations

import io
import pickle
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from emovox.errors import EmovoxError
from emovox.io import atomic_write, atomic_write_json
from emovox.models.convolutional import Cnn1d
from emovox.models.emorl import EmoRL
from emovox.models.recurrent import BiGru, BiGruEncoder, GruBaseline, MeanPool, Progressive
from emovox.serving.onnx_runtime import FORMAT

OPSET = 17


def _full_lengths(x: torch.Tensor) -> torch.Tensor:
    """Every row of an unpadded batch is ``frames`` long (traced as a shape, not a constant)."""
    return torch.ones_like(x[:, 0, 0], dtype=torch.long) * x.shape[1]


def _bigru(encoder: BiGruEncoder, x: torch.Tensor) -> torch.Tensor:
    return encoder.pool(encoder.gru(x)[0], _full_lengths(x))


#: Logits of an unpadded batch per model class. ``run_rnn``'s packed sequences have no ONNX
#: form; without padding the plain GRU call gives the same states.
UNPADDED: dict[type, Callable[[nn.Module, torch.Tensor], torch.Tensor]] = {
    GruBaseline: lambda m, x: m.head(m.gru(x)[0].mean(1)),
    EmoRL: lambda m, x: m.classifier(m.gru(x)[0].mean(1)),
    BiGru: lambda m, x: m.head(_bigru(m.encoder, x)),
    Progressive: lambda m, x: m.head(torch.cat(
        [x[..., : m.recogniser_dim].mean(1), _bigru(m.branch, x[..., m.recogniser_dim :])], -1)),
    MeanPool: lambda m, x: m(x, _full_lengths(x)),
    Cnn1d: lambda m, x: m(x, _full_lengths(x)),
}


class _Utterance(nn.Module):
    """Whole utterances → class probabilities averaged over the ensemble's members."""

    def __init__(self, members: list[nn.Module]):
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        probs = [torch.softmax(UNPADDED[type(m)](m, features), -1) for m in self.members]
        return torch.stack(probs).mean(0)


class _Step(nn.Module):
    """One decision step of :class:`emovox.serving.streaming.StreamingRecognizer`: run the GRU
    on the step's frames from the carried hidden state, add its states to the running sum, and
    classify (and, for EmoRL, choose the action) on the running mean."""

    def __init__(self, net: GruBaseline | EmoRL):
        super().__init__()
        self.gru = net.gru
        self.classifier = net.classifier if isinstance(net, EmoRL) else net.head
        self.policy = net.policy if isinstance(net, EmoRL) else None

    def forward(self, frames, hidden, total, count):
        out, hidden = self.gru(frames.unsqueeze(0), hidden)
        total = total + out[0].sum(0)
        count = count + frames.shape[0]
        state = total / count.to(total.dtype)
        proba = torch.softmax(self.classifier(state), -1)
        if self.policy is None:
            return hidden, total, count, proba
        return hidden, total, count, proba, self.policy(state).argmax(-1, keepdim=True)


def load_model_dir(model_dir: Path):
    """The directory's Recognizer; an unreadable, corrupt or older-format directory fails with
    one line naming it."""
    from emovox.serving.model_dir import Recognizer

    try:
        return Recognizer(model_dir)
    except EmovoxError:
        raise
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, EOFError,
            pickle.UnpicklingError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EmovoxError(f"{model_dir}: cannot read the model directory "
                          f"({type(exc).__name__}: {reason[:200]}); it is corrupt or from an "
                          "older emovox — retrain it with `emovox train`") from None


def _export(module: nn.Module, args: tuple, path: Path, inputs: list[str], outputs: list[str],
            dynamic: dict[str, dict[int, str]]) -> None:
    buf = io.BytesIO()
    with warnings.catch_warnings():  # the TorchScript exporter's deprecation and GRU notes
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, buf, dynamo=False, opset_version=OPSET,
                          input_names=inputs, output_names=outputs, dynamic_axes=dynamic)
    atomic_write(path, lambda fh: fh.write(buf.getvalue()))


def _verify(path: Path, module: nn.Module, feeds: dict[str, np.ndarray]) -> float:
    """Max |ONNX − PyTorch| of the first output on ``feeds`` (a sanity check at export)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, feeds)
    with torch.no_grad():
        want = module(*(torch.from_numpy(v) for v in feeds.values()))
    want = want if isinstance(want, tuple) else (want,)
    return max(float(np.abs(g - w.numpy()).max()) for g, w in zip(got, want, strict=True))


def export_onnx(model_dir: str | Path, out: str | Path) -> dict:
    """Write the ONNX export of ``model_dir`` into ``out``; returns the front-end description
    (also written as ``frontend.json``), with the export-time check's differences."""
    from emovox.early.reinforce import EmoRLConfig, step_frames
    from emovox.serving.model_dir import source_digest

    model_dir, out = Path(model_dir), Path(out)
    rec = load_model_dir(model_dir)
    name = rec.config.model.name
    members = list(getattr(rec.trained, "members", None) or [])
    if not members or any(type(m) not in UNPADDED for m in members):
        kind = type(members[0]).__name__ if members else type(rec.trained).__name__
        raise EmovoxError(f"{model_dir}: model {name!r} ({kind}, method {rec.meta['method']!r}) "
                          f"cannot be exported to ONNX; exportable: "
                          f"{', '.join(sorted(_exportable_names()))}")
    for m in members:
        m.eval()
    extractor, normaliser = rec.trained.extractor, rec.trained.normaliser
    stack = int(rec.trained.stack)
    dim = extractor.dim * stack
    rng = np.random.default_rng(0)
    out.mkdir(parents=True, exist_ok=True)

    whole = _Utterance(members).eval()
    example = torch.from_numpy(rng.standard_normal((1, 23, dim)).astype(np.float32))
    _export(whole, (example,), out / "model.onnx", ["features"], ["probabilities"],
            {"features": {0: "batch", 1: "frames"}, "probabilities": {0: "batch"}})
    check = {"model.onnx": _verify(out / "model.onnx", whole, {
        "features": rng.standard_normal((2, 57, dim)).astype(np.float32)})}

    frame_rate = extractor.frame_rate / stack if extractor.frame_rate else None
    graphs: dict = {"model.onnx": {
        "inputs": {"features": ["batch", "frames", dim]},
        "outputs": {"probabilities": ["batch", len(rec.labels)]},
    }}
    step_info = None
    agent = isinstance(members[0], EmoRL)
    if len(members) == 1 and isinstance(members[0], GruBaseline | EmoRL) and frame_rate:
        net = members[0]
        step = _Step(net).eval()
        hidden = net.gru.hidden_size
        outputs = ["hidden_out", "total_out", "count_out", "probabilities"]
        if agent:
            outputs.append("action")
        example_args = (torch.zeros(4, dim), torch.zeros(1, 1, hidden), torch.zeros(hidden),
                        torch.zeros(1, dtype=torch.long))
        _export(step, example_args, out / "step.onnx", ["frames", "hidden", "total", "count"],
                outputs, {"frames": {0: "n"}})
        check["step.onnx"] = _verify(out / "step.onnx", step, {
            "frames": rng.standard_normal((7, dim)).astype(np.float32),
            "hidden": rng.standard_normal((1, 1, hidden)).astype(np.float32),
            "total": rng.standard_normal(hidden).astype(np.float32),
            "count": np.array([5], dtype=np.int64)})
        params = rec.config.method.params
        emorl = params if isinstance(params, EmoRLConfig) else EmoRLConfig()
        step_info = {
            "step_frames": step_frames(emorl, frame_rate),
            "step_ms": emorl.step_ms,
            "max_steps": emorl.max_steps,
            "policy": "agent" if agent else "threshold",
        }
        graphs["step.onnx"] = {
            "inputs": {"frames": ["n", dim], "hidden": [1, 1, hidden], "total": [hidden],
                       "count": [1]},
            "outputs": {"hidden_out": [1, 1, hidden], "total_out": [hidden], "count_out": [1],
                        "probabilities": [len(rec.labels)],
                        **({"action": [1]} if agent else {})},
        }
    norm = normaliser.state()
    atomic_write_json(out / "normaliser.json", {
        "mode": norm["mode"],
        "mean": None if norm["mean"] is None else np.asarray(norm["mean"]).tolist(),
        "std": None if norm["std"] is None else np.asarray(norm["std"]).tolist(),
    })
    frontend = {
        "format": FORMAT,
        "source": str(model_dir),
        # the model directory's files this export was made from (a stale export is not run)
        "source_digest": source_digest(model_dir),
        "method": rec.meta["method"],
        "config": rec.meta["config"],  # the method's own settings (e.g. what predict reports)
        "model": {"name": name, "params": rec.config.model.params},
        "ensemble": len(members),
        "labels": rec.labels,
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
        "streaming": step_info,
        "graphs": graphs,
        "opset": OPSET,
        "export_check_max_abs_diff": check,
    }
    atomic_write_json(out / "frontend.json", frontend)
    return frontend


def _exportable_names() -> list[str]:
    from emovox.models import MODELS

    return [n for n in MODELS.names() if MODELS.get(n) in UNPADDED]

