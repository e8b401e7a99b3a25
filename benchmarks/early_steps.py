"""What a recogniser-layer stream hears at every decision step, computed once per corpus.

Every utterance goes through ``WindowStreamer`` (the streamer ``StreamingRecognizer`` runs after
its speech gate, fed here from the file's first sample) with the extractor of the study's
``whisper_layers`` feature; at each 300 ms step and at the end the mean of the raw frames heard
is kept (float32). The Whisper encoder is frozen, so these do not depend on the fold: an MP head
(mean pooling → linear) on frames normalised by any per-dimension statistics reads exactly
``head((mean - μ) / σ)`` — ``early_recogniser.py`` checks that against the real streamer.
Resumable: written every ``SAVE_EVERY`` files.
"""

from __future__ import annotations

from pathlib import Path

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

SAVE_EVERY = 200


def pooling_streamer(extractor: Extractor) -> WindowStreamer:
    """The deployed streamer with the model replaced by 'the mean of the frames heard'."""
    return WindowStreamer(extractor.extract_from, lambda feats: (feats.mean(0), None),
                          extractor.sample_rate, extractor.frame_rate, STEP_MS, WINDOW_S)


def stream_means(streamer: WindowStreamer, path: str) -> tuple[float, np.ndarray, np.ndarray]:
    """Duration, seconds heard at every step, mean raw frame at every step."""
    wave = load_audio(path, streamer.sample_rate)
    stream = streamer.start(10**9)
    with torch.no_grad():
        steps = stream.push(wave) + stream.finish()
    return (len(wave) / streamer.sample_rate, np.array([s.seconds for s in steps]),
            np.stack([s.proba for s in steps]).astype(np.float32))


def _save(path: Path, done: dict) -> None:
    ids = sorted(done)
    arrays = {"ids": np.array(ids), "duration": np.array([done[i][0] for i in ids]),
              "n_steps": np.array([len(done[i][1]) for i in ids]),
              "seconds": np.concatenate([done[i][1] for i in ids]),
              "means": np.concatenate([done[i][2] for i in ids])}

    def write(fh) -> None:
        np.savez(fh, **arrays)

    atomic_write(path, write)


def load_steps(path: Path) -> dict[str, tuple[float, np.ndarray, np.ndarray]]:
    if not path.exists():
        return {}
    with np.load(path) as z:  # each z[key] reads the whole array again: once each
        ids, duration, n_steps = z["ids"], z["duration"], z["n_steps"]
        seconds, means = z["seconds"], z["means"]
    ends = np.cumsum(n_steps)
    return {str(i): (float(d), seconds[b - n : b], means[b - n : b])
            for i, d, n, b in zip(ids, duration, n_steps, ends, strict=True)}


def corpus_steps(manifest: Manifest, extractor: Extractor, path: Path
                 ) -> dict[str, tuple[float, np.ndarray, np.ndarray]]:
    """Per utterance id: (duration, seconds [K], mean raw frames [K, D]); cached in ``path``."""
    done = load_steps(path)
    todo = [u for u in manifest if u.id not in done]
    streamer = pooling_streamer(extractor)
    for n, u in enumerate(tqdm(todo, desc="streaming every utterance", leave=False), 1):
        done[u.id] = stream_means(streamer, u.path)
        if n % SAVE_EVERY == 0:
            _save(path, done)
    if todo:
        _save(path, done)
    return done
