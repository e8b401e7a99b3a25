"""Export a trained model directory to ONNX: the network as graphs, its front end as data, so
that a runtime without Python (or PyTorch) can label and stream emotions.

``export_onnx(MODEL_DIR, OUT)`` asks the directory's method to write its graphs
(``Method.export_onnx``; the sequence models' graphs are in :mod:`emovox.experiments.onnx`) and
writes into OUT:

``model.onnx``
    whole utterances: ``features`` [batch, frames, dim] float32 → ``probabilities`` [batch, K]
    (the rows of a batch must have equal length: no padding; an ensemble's members are
    averaged inside the graph, as in PyTorch).
``step.onnx``
    (``gru_baseline``/``rnn`` and ``emorl``, one model) one decision step of a stream:
    ``frames`` [n, dim], ``hidden`` [1, 1, H], ``total`` [H], ``count`` [1] int64 →
    ``hidden_out``, ``total_out``, ``count_out``, ``probabilities`` [K] and, for ``emorl``,
    ``action_logits`` [2] (wait, terminate: ``early.decisions.stop_rule`` reads them).
    ``total``/``count`` are the running sum of the GRU's states and the number of frames read;
    start from zeros.
``normaliser.json``
    the z-score of the front end: ``mode`` and the training set's ``mean`` and ``std``.
``frontend.json``
    what happens around the graphs: extractor name and parameters, sample rate, frame rate,
    stacking, labels, decision step and the graphs' inputs and outputs.
"""

from __future__ import annotations

import pickle
from pathlib import Path

from emovox.errors import EmovoxError
from emovox.io import atomic_write_json
from emovox.serving.model_dir import Recognizer, source_digest
from emovox.serving.onnx_runtime import FORMAT


def load_model_dir(model_dir: Path) -> Recognizer:
    """The directory's Recognizer; an unreadable, corrupt or older-format directory fails with
    one line naming it."""
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


def export_onnx(model_dir: str | Path, out: str | Path) -> dict:
    """Write the ONNX export of ``model_dir`` into ``out``; returns the front-end description
    (also written as ``frontend.json``), with the export-time check's differences."""
    model_dir, out = Path(model_dir), Path(out)
    rec = load_model_dir(model_dir)
    try:
        graphs = rec.method.export_onnx(rec.trained, out)
    except EmovoxError as exc:  # the method's one line why not, naming the directory
        raise EmovoxError(f"{model_dir}: {exc}") from None
    frontend = {
        "format": FORMAT,
        "source": str(model_dir),
        # the model directory's files this export was made from (a stale export is not run)
        "source_digest": source_digest(model_dir),
        "method": rec.meta["method"],
        "config": rec.meta["config"],  # the method's own settings (e.g. what predict reports)
        "model": {"name": rec.config.model.name, "params": rec.config.model.params},
        "labels": rec.labels,
        **graphs,
    }
    atomic_write_json(out / "frontend.json", frontend)
    return frontend
