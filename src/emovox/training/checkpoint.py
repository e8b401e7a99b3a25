"""One resumable-training helper for every loop (supervised epochs, REINFORCE updates, CTC).

A :class:`Checkpoint` saves, in one atomically written file, the state of every part of a
training loop (models, optimisers, schedulers: anything with ``state_dict``), the RNG states,
and the loop's own progress (epoch, best weights, history). A killed run restores all of it and
continues as if it had never stopped.
"""

from __future__ import annotations

import io
import logging
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from emovox.io import atomic_write

log = logging.getLogger(__name__)


def save_checkpoint(path: Path, state: dict) -> None:
    """torch.save, atomically."""
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write(path, lambda fh: fh.write(buf.getvalue()))


class Checkpoint:
    def __init__(self, path: Path | None, **parts: Any):
        self.path = path
        self.parts = parts

    def restore(self) -> dict[str, Any] | None:
        """Load every part and the RNG states; return the loop's progress, or None when there is
        nothing to resume."""
        if self.path is None or not self.path.exists():
            return None
        state = torch.load(self.path, weights_only=False)
        for name, part in self.parts.items():
            part.load_state_dict(state["parts"][name])
        torch.set_rng_state(state["rng"]["torch"])
        np.random.set_state(state["rng"]["numpy"])
        random.setstate(state["rng"]["python"])
        log.info("resuming from %s", self.path)
        return state["progress"]

    def save(self, progress: dict[str, Any]) -> None:
        if self.path is None:
            return
        save_checkpoint(self.path, {
            "parts": {name: part.state_dict() for name, part in self.parts.items()},
            "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
                    "python": random.getstate()},
            "progress": progress,
        })
