"""What a recogniser-layer stream hears at every decision step, computed once per corpus.

Every utterance goes through ``WindowStreamer`` (the streamer ``StreamingRecognizer`` runs after
its speech gate, fed here from the file's first sample) with the extractor of the study's
``whisper_layers`` feature; at each 300 ms step and at the end the mean of the raw frames heard
is kept (float32). The Whisper encoder is frozen, so these do not depend on the fold: an MP head
(mean pooling → linear) on frames normalised by any per-dimension statistics reads exactly
``head((mean - μ) / σ)`` — ``early_recogniser.py`` checks that against the real streamer.
Resumable: written every ``SAVE_EVERY`` files.

With a ``GateConfig`` (``gated_steps``) each file is fed as the deployed ``StreamingRecognizer``
feeds it: its ``SpeechGate`` judges the file's 30 ms frames, the utterance opens at the first run
of ``start_ms`` of speech (the **onset**: that run's first frame) with ``preroll_ms`` before it,
and ends ``postroll_ms`` after the last speech frame; every step also records the speech (s, by
the gate) fed so far, since the stream decides only after ``min_speech_ms`` of it. Not
reproduced: a pause long enough to end an utterance (1.5 s) splits nothing here, and pauses are
fed as they come rather than held back until speech resumes (the same audio, fed later).
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from tqdm import tqdm

from emovox.audio import load_audio
from emovox.corpora import Manifest
from emovox.experiments.methods.supervised import WINDOW_S
from emovox.experiments.recogniser_streams import WindowStreamer
from emovox.experiments.streamers import STEP_MS
from emovox.features import Extractor
from emovox.io import atomic_write
from emovox.serving.streaming import FRAME_MS, GateConfig, SpeechGate

SAVE_EVERY = 200


def pooling_streamer(extractor: Extractor) -> WindowStreamer:
    """The deployed streamer with the model replaced by 'the mean of the frames heard'."""
    return WindowStreamer(extractor.extract_from, lambda feats: (feats.mean(0), None),
                          extractor.sample_rate, extractor.frame_rate, STEP_MS, WINDOW_S)


class Heard(NamedTuple):
    """What a stream heard of one file: ``seconds``, ``means`` and ``speech`` per step."""

    duration: float  # the file's length (s)
    seconds: np.ndarray  # audio fed to the stream at each step (s)
    means: np.ndarray  # the mean raw frame heard at each step [K, D]
    start: float  # where in the file feeding began (s): 0 ungated, else onset − pre-roll
    end: float  # where it stopped: the file's end ungated, else last speech + post-roll
    onset: float  # the speech onset (s into the file); ungated 0, NaN if the gate never opened
    speech: np.ndarray  # speech fed by each step (s): the gate's frames; ungated ``seconds``


def gate_bounds(wave: np.ndarray, sample_rate: int, gate: GateConfig
                ) -> tuple[float, float, float, np.ndarray]:
    """Start, end and onset (s) of the utterance the deployed gate cuts from a whole file, and
    each gate frame's speech flag; an onset of NaN: the gate never opened (the whole file)."""
    judge = SpeechGate(gate, sample_rate)
    n = len(wave) // judge.frame
    speech = judge.judge(wave[: n * judge.frame].reshape(n, judge.frame))[0]
    run = max(1, int(gate.start_ms // FRAME_MS))
    opened = np.flatnonzero(np.convolve(speech, np.ones(run), "valid") == run)
    duration = len(wave) / sample_rate
    if not len(opened):
        return 0.0, duration, float("nan"), speech
    frame_s = FRAME_MS / 1000
    onset = int(opened[0]) * frame_s
    start = max(0.0, onset - int(gate.preroll_ms // FRAME_MS) * frame_s)
    last = (int(np.flatnonzero(speech)[-1]) + 1) * frame_s
    return start, min(duration, last + gate.postroll_ms / 1000), onset, speech


def stream_means(streamer: WindowStreamer, path: str, gate: GateConfig | None = None) -> Heard:
    """Stream one file (from its first sample, or as the gate cuts it) and keep each step."""
    wave = load_audio(path, streamer.sample_rate)
    rate = streamer.sample_rate
    duration = len(wave) / rate
    if gate is None:
        start, end, onset, speech = 0.0, duration, 0.0, None
    else:
        start, end, onset, speech = gate_bounds(wave, rate, gate)
    stream = streamer.start(10**9)
    with torch.no_grad():
        steps = stream.push(wave[int(round(start * rate)) : int(round(end * rate))]) + \
            stream.finish()
    seconds = np.array([s.seconds for s in steps])
    if speech is None:
        spoken = seconds
    else:  # the gate's speech frames among those fed by each step
        frame_s = FRAME_MS / 1000
        total = np.concatenate([[0], np.cumsum(speech)])
        upto = np.clip(np.floor((start + seconds) / frame_s + 1e-6).astype(int), 0, len(speech))
        spoken = (total[upto] - total[int(round(start / frame_s))]) * frame_s
    return Heard(duration, seconds, np.stack([s.proba for s in steps]).astype(np.float32),
                 start, end, onset, spoken)


def _save(path: Path, done: dict[str, Heard]) -> None:
    ids = sorted(done)
    arrays = {"ids": np.array(ids), "n_steps": np.array([len(done[i].seconds) for i in ids]),
              **{k: np.array([getattr(done[i], k) for i in ids])
                 for k in ("duration", "start", "end", "onset")},
              **{k: np.concatenate([getattr(done[i], k) for i in ids])
                 for k in ("seconds", "means", "speech")}}

    def write(fh) -> None:
        np.savez(fh, **arrays)

    atomic_write(path, write)


def load_steps(path: Path) -> dict[str, Heard]:
    """The cache; one written before the gate existed reads as ungated."""
    if not path.exists():
        return {}
    with np.load(path) as z:  # each z[key] reads the whole array again: once each
        arrays = {k: z[k] for k in z.files}
    ids, duration, ends = arrays["ids"], arrays["duration"], np.cumsum(arrays["n_steps"])
    seconds = arrays["seconds"]
    start = arrays.get("start", np.zeros(len(ids)))
    end, onset = arrays.get("end", duration), arrays.get("onset", np.zeros(len(ids)))
    speech = arrays.get("speech", seconds)
    return {str(u): Heard(float(duration[k]), seconds[b - n : b], arrays["means"][b - n : b],
                          float(start[k]), float(end[k]), float(onset[k]), speech[b - n : b])
            for k, (u, n, b) in enumerate(zip(ids, arrays["n_steps"], ends, strict=True))}


def corpus_steps(manifest: Manifest, extractor: Extractor, path: Path,
                 gate: GateConfig | None = None) -> dict[str, Heard]:
    """Per utterance id: what a stream heard of it (``gate``: as the deployed stream's gate
    cuts it); cached in ``path``."""
    done = load_steps(path)
    todo = [u for u in manifest if u.id not in done]
    streamer = pooling_streamer(extractor)
    for n, u in enumerate(tqdm(todo, desc="streaming every utterance", leave=False), 1):
        done[u.id] = stream_means(streamer, u.path, gate)
        if n % SAVE_EVERY == 0:
            _save(path, done)
    if todo:
        _save(path, done)
    return done
