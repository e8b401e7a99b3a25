"""Run an ONNX export (``emovox export``) with onnxruntime instead of PyTorch.

:class:`OnnxRecognizer` labels whole utterances with ``model.onnx``; :class:`OnnxStream` steps
``step.onnx`` through an utterance as it arrives, carrying the four arrays a runtime in any
language would carry (hidden state, running sum, frame count, frames not yet stepped). The
front end (extractor, z-score, stacking) is emovox's own numpy code, driven by the export's
``frontend.json`` and ``normaliser.json``; Whisper's layers come from the export's
``features.onnx`` (cut into 30 s contexts as PyTorch cuts them, ``asr.layers.whisper_frames``),
and such a model streams as the PyTorch streamer does (``experiments.recogniser_streams``).
Nothing here imports PyTorch: ``emovox predict`` on an export starts in a fraction of the time.
"""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from emovox.asr.layers import whisper_frames
from emovox.early.decisions import Step, stop_rule
from emovox.errors import EmovoxError
from emovox.experiments.methods.base import class_record
from emovox.experiments.recogniser_streams import BlockStreamer, StepBatcher, WindowStreamer
from emovox.features import Normaliser, SpeakerStatistics, make_extractor
from emovox.features.base import stack_frames
from emovox.features.incremental import StreamingFeatures
from emovox.features.normalise import require_speaker_normalisation
from emovox.io import cache_dir
from emovox.serving.runtime import Runtime

log = logging.getLogger(__name__)

#: Version of the exported directory's layout (``frontend.json`` ``format``); 2: the agent's
#: ``step.onnx`` outputs its action logits (``action_logits``), not the chosen action.
FORMAT = 2


def _session(path: Path, threads: int | None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own (pybind) exception types
        raise EmovoxError(f"{path}: not a usable ONNX graph "
                          f"({str(exc).strip().splitlines()[0][:200]})") from None


def _run(session, path: Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """``session.run`` with every input's rank and fixed sizes checked first, so a wrong shape is
    one line that names the graph, the input and the shape it wants."""
    for spec in session.get_inputs():
        value = feeds[spec.name]
        want = spec.shape
        if value.ndim != len(want) or any(isinstance(w, int) and w != v
                                          for w, v in zip(want, value.shape, strict=True)):
            shown = ", ".join(str(w) for w in want)
            raise EmovoxError(f"{path.name}: input {spec.name!r} must have shape [{shown}], got "
                              f"{list(value.shape)}")
        if value.ndim and 0 in value.shape:
            raise EmovoxError(f"{path.name}: input {spec.name!r} is empty {list(value.shape)}")
    try:
        return session.run(None, feeds)
    except Exception as exc:
        raise EmovoxError(f"{path.name}: {str(exc).strip().splitlines()[0][:200]}") from None


def features_graph(path: Path, extractor: Any) -> Path:
    """``features.onnx`` of an export, or — where the export leaves it out, as the bundled
    default does to keep the package small (44 MB of Whisper weights that the installed
    ``whisper-base`` packages already hold) — the same graph built once from the installed
    weights into ``$EMOVOX_CACHE/onnx`` (PyTorch is imported for that first build only)."""
    if path.exists():
        return path
    cached = cache_dir("onnx") / f"{extractor.key()}-{FORMAT}" / path.name
    if not cached.exists():
        from emovox.experiments.onnx import export_layer_states

        log.info("building %s for %s once, into %s", path.name, extractor.key(), cached.parent)
        if export_layer_states(extractor, cached.parent, np.random.default_rng(0), {}, {}) is None:
            raise EmovoxError(f"{path}: missing, and {extractor.name} has no graph to rebuild "
                              "it from; export the model again")
    return cached


class OnnxRecognizer(Runtime):
    """An exported model directory whose network (``model.onnx``) onnxruntime runs
    (``threads``: intra-op threads, default onnxruntime's choice)."""

    def __init__(self, export_dir: str | Path, threads: int | None = None):
        export_dir = Path(export_dir)
        meta_path = export_dir / "frontend.json"
        if not meta_path.exists():
            hint = (f"; it is a model directory: export it with `emovox export {export_dir} "
                    "--format onnx --out DIR` and pass DIR"
                    if (export_dir / "model.json").exists() else "")
            raise EmovoxError(f"{export_dir}: not an ONNX export (no frontend.json){hint}")
        try:
            self.meta = json.loads(meta_path.read_text())
            norm = json.loads((export_dir / "normaliser.json").read_text())
        except (OSError, ValueError) as exc:
            raise EmovoxError(f"{export_dir}: unreadable ONNX export ({exc})") from None
        if self.meta.get("format") != FORMAT:
            raise EmovoxError(f"{export_dir}: ONNX export format {self.meta.get('format')!r}; "
                              f"this emovox reads format {FORMAT} — export the model again")
        self.labels = self.meta["labels"]
        try:
            self.extractor = make_extractor(self.meta["features"]["name"],
                                            **self.meta["features"]["params"])
        except (KeyError, TypeError) as exc:
            raise EmovoxError(f"{meta_path}: no usable feature settings ({exc}); export the "
                              "model again") from None
        self.normaliser = Normaliser.from_state(norm)
        self.normalise = self.meta["config"]["features"]["normalise"]
        self.stack = int(self.meta.get("stack", 1))
        self.path = export_dir / "model.onnx"
        self.session = _session(self.path, threads)
        graph = self.meta.get("features_graph")
        self.features_path = features_graph(export_dir / graph, self.extractor) if graph else None
        self.features_session = _session(self.features_path, threads) if graph else None
        width = (self.meta["feature_dim"] if graph else self.extractor.dim) * self.stack
        declared = self.session.get_inputs()[0].shape[-1]
        if declared != width:
            raise EmovoxError(f"{self.path}: the graph takes {declared} features per frame but "
                              f"the front end makes {width} ({self.meta['features']['name']} "
                              f"× stack {self.meta.get('stack', 1)})")
        step = export_dir / "step.onnx"
        self.step_path = step
        self.step_session = _session(step, threads) if self.meta.get("streaming") else None

    @property
    def sample_rate(self) -> int:
        return self.extractor.sample_rate

    def frames(self, wave: np.ndarray) -> np.ndarray:
        """The extractor's frames of one utterance (``features.onnx`` for Whisper's layers)."""
        if self.features_session is None:
            return self.extractor.extract_long(wave)
        return whisper_frames(wave, 0, bool(self.extractor.params.get("pad")), self.encode)

    def encode(self, audio: np.ndarray, offset: np.ndarray) -> np.ndarray:
        """``features.onnx``: [B, samples] audio → [B, frames, dim] (an ``asr.layers.Encode``)."""
        return _run(self.features_session, self.features_path,
                    {"audio": np.ascontiguousarray(audio, np.float32), "offset": offset})[0]

    def features(self, wave: np.ndarray) -> np.ndarray:
        """Normalised, stacked features of one utterance (as the PyTorch model directory
        makes them): the graphs' input."""
        return stack_frames(self.normaliser.apply([self.frames(wave)])[0], self.stack)

    def recogniser_streamer(self) -> WindowStreamer | BlockStreamer | None:
        """Streams of a Whisper-layer export (None for others), as the method streams on
        PyTorch: ``features.onnx`` on each step's window or block, ``model.onnx`` on all frames
        heard."""
        how = self.meta.get("recogniser_streaming")
        if self.features_session is None or not how:
            return None

        def classify(feats: np.ndarray) -> tuple[np.ndarray, None]:
            return self.run(stack_frames(self.normaliser.apply([feats])[0], self.stack)), None

        batcher = StepBatcher(self.encode)
        rate, frame_rate = self.extractor.sample_rate, self.meta["feature_frame_rate"]
        if how["kind"] == "blocks":
            return BlockStreamer(batcher, classify, rate, frame_rate, how["step_ms"],
                                 how["context_s"])
        return WindowStreamer(batcher.encode_block, classify, rate, frame_rate, how["step_ms"],
                              how["window_s"], batcher=batcher)

    def for_speaker(self, statistics: SpeakerStatistics, tau: float) -> OnnxRecognizer:
        """The export normalising with one speaker's statistics: ``normaliser.json`` holds the
        training statistics, the prior they are shrunk toward."""
        require_speaker_normalisation(self.normalise)
        adapted = copy.copy(self)
        adapted.normaliser = statistics.normaliser(self.normaliser, tau)
        return adapted

    def describe(self, proba: np.ndarray) -> dict:
        """The exportable methods (supervised, emorl) answer with the default record."""
        return class_record(proba, self.labels)

    def run(self, feats: np.ndarray) -> np.ndarray:
        """Probabilities of normalised, stacked features: [frames, dim] → [K], or
        [batch, frames, dim] → [batch, K] (rows of equal length)."""
        feats = np.asarray(feats, dtype=np.float32)
        single = feats.ndim == 2
        out = _run(self.session, self.path, {"features": feats[None] if single else feats})[0]
        return out[0] if single else out

    def proba(self, wave: np.ndarray) -> np.ndarray:
        """What ``emovox predict`` answers: the agent's early decision (EmoRL) or the whole
        utterance's probabilities."""
        feats = self.features(wave)
        if self.meta.get("predict") == "decision":
            stream = OnnxStream(self)
            stream.push_rows(feats, final=True)
            return stream.decision.proba
        return self.run(feats)


class OnnxStream:
    """One utterance streamed through ``step.onnx``: the same steps and decision as
    :class:`emovox.serving.streaming.StreamingRecognizer` on the same model, by the same stop
    rule (``early.decisions.stop_rule``: ``threshold``, else the agent's action logits).

    Feed audio with :meth:`push` (or normalised, stacked rows with :meth:`push_rows`), then
    :meth:`finish`; ``decision`` is the first step that stops, or the last one (``forced``).
    """

    def __init__(self, rec: OnnxRecognizer, threshold: float | None = None,
                 max_steps: int | None = None):
        info = rec.meta.get("streaming")
        #: A Whisper-layer export streams by ``experiments.recogniser_streams``, not step.onnx.
        self.blocks = rec.recogniser_streamer()
        if self.blocks is None and (rec.step_session is None or not info):
            raise EmovoxError(f"{rec.path.parent}: model {rec.meta['model']['name']!r} has no "
                              "step.onnx; only a single gru_baseline or emorl model or a "
                              "model on whisper_layers streams")
        self.rec = rec
        self.max_steps = max_steps or (info or {}).get("max_steps") or 10**9
        self.threshold = threshold
        if self.blocks is None:
            self.step_frames = int(info["step_frames"])
            self.outputs = [o.name for o in rec.step_session.get_outputs()]
            self.hidden_size = rec.step_session.get_inputs()[2].shape[0]
        self.reset()

    def reset(self) -> None:
        rec = self.rec
        self.steps: list[Step] = []
        #: The index in ``steps`` of the decision, once taken.
        self.decided: int | None = None
        self.forced = False
        if self.blocks is not None:
            self.utterance = self.blocks.start(self.max_steps)
            return
        self.features = StreamingFeatures(rec.extractor)
        self.pending = np.zeros((0, rec.extractor.dim), dtype=np.float32)
        self.rows = np.zeros((0, rec.meta["input_dim"]), dtype=np.float32)
        self.hidden = np.zeros((1, 1, self.hidden_size), dtype=np.float32)
        self.total = np.zeros(self.hidden_size, dtype=np.float32)
        self.count = np.zeros(1, dtype=np.int64)

    @property
    def decision(self) -> Step | None:
        return None if self.decided is None else self.steps[self.decided]

    def push(self, samples: np.ndarray) -> list[Step]:
        if self.blocks is not None:
            return [self._record(step) for step in self.utterance.push(samples)]
        return self._frames(self.features.push(samples), final=False)

    def finish(self) -> list[Step]:
        """End of the utterance: the remaining frames, a last partial step, the decision."""
        if self.blocks is None:
            return self._frames(self.features.finish(), final=True)
        steps = [self._record(step) for step in self.utterance.finish()]
        if self.decided is None and self.steps:
            self.decided, self.forced = len(self.steps) - 1, True
        return steps

    def _frames(self, frames: np.ndarray, final: bool) -> list[Step]:
        """Normalise and stack ``k`` frames per row as offline (the tail repeats the last)."""
        k = self.rec.stack
        if len(frames):
            self.pending = np.concatenate([self.pending,
                                           self.rec.normaliser.apply([frames])[0]])
        usable = len(self.pending) // k * k
        rows = [self.pending[:usable].reshape(-1, k * self.rec.extractor.dim)]
        self.pending = self.pending[usable:]
        if final and len(self.pending):
            tail = np.concatenate([self.pending,
                                   np.repeat(self.pending[-1:], k - len(self.pending), 0)])
            rows.append(tail.reshape(1, -1))
            self.pending = self.pending[:0]
        return self.push_rows(np.concatenate(rows), final)

    def push_rows(self, rows: np.ndarray, final: bool = False) -> list[Step]:
        """Normalised, stacked rows; a step runs every ``step_frames`` rows (and on the rest
        when ``final``)."""
        rows = np.asarray(rows, dtype=np.float32)
        if rows.ndim != 2 or rows.shape[1] != self.rows.shape[1]:
            raise EmovoxError(f"{self.rec.step_path.name}: input 'frames' must have shape "
                              f"[n, {self.rows.shape[1]}], got {list(rows.shape)}")
        self.rows = np.concatenate([self.rows, rows])
        steps = []
        while len(self.rows) >= self.step_frames and len(self.steps) < self.max_steps:
            steps.append(self._step(self.rows[: self.step_frames]))
            self.rows = self.rows[self.step_frames :]
        if len(self.steps) >= self.max_steps:  # decided: later audio changes nothing
            self.rows = self.rows[:0]
        if final:
            if len(self.rows) and len(self.steps) < self.max_steps:
                steps.append(self._step(self.rows))
            self.rows = self.rows[:0]
            if self.decided is None and self.steps:
                self.decided, self.forced = len(self.steps) - 1, True
        return steps

    def _step(self, frames: np.ndarray) -> Step:
        out = dict(zip(self.outputs, _run(self.rec.step_session, self.rec.step_path, {
            "frames": np.ascontiguousarray(frames), "hidden": self.hidden, "total": self.total,
            "count": self.count}), strict=True))
        self.hidden, self.total, self.count = out["hidden_out"], out["total_out"], out["count_out"]
        return self._record(Step(int(self.count[0]) / self.rec.meta["frame_rate"],
                                 out["probabilities"], out.get("action_logits")))

    def _record(self, step: Step) -> Step:
        """Keep ``step``; decide at the first that the stop rule stops (or the last allowed)."""
        self.steps.append(step)
        stop = bool(stop_rule(step.proba, self.threshold, step.actions))
        if self.decided is None and (stop or len(self.steps) >= self.max_steps):
            self.decided, self.forced = len(self.steps) - 1, not stop
        return step
