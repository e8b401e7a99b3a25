"""Write a degraded copy of a corpus: same utterance ids and labels, audio through a channel.

``DST/wav/<id>.wav`` (16-bit, 16 kHz mono), ``DST/manifest.jsonl`` (load it with the
``manifest`` corpus format) and ``DST/channel.json`` (the channel's settings and the ids of the
noise and room sources it used, so an experiment can prove they never met the training data).
Files are written atomically and existing ones are kept: an interrupted run resumes.
"""

from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path

import soundfile as sf
from tqdm import tqdm

from emovox.audio import SAMPLE_RATE, load_audio
from emovox.channels.robot import RobotChannel
from emovox.corpora.manifest import Manifest, Utterance
from emovox.errors import AudioError, ConfigError
from emovox.io import atomic_write, atomic_write_json
from emovox.parallel import imap


def _degrade_one(args: tuple[RobotChannel, Utterance, Path]) -> str | None:
    channel, utt, target = args
    if target.exists():
        return None
    try:
        wave = load_audio(utt.path, SAMPLE_RATE, utt.start, utt.end)
    except AudioError as exc:
        return str(exc)
    out = channel(wave, channel.rng_for(utt.id))
    buf = io.BytesIO()
    sf.write(buf, out, SAMPLE_RATE, subtype="PCM_16", format="WAV")
    atomic_write(target, lambda fh: fh.write(buf.getvalue()))
    return None


def degrade_corpus(manifest: Manifest, channel: RobotChannel, out: Path, workers: int = 1,
                   progress: bool = True) -> Manifest:
    out = Path(out)
    info_path = out / "channel.json"
    settings = channel.settings()
    if info_path.exists() and json.loads(info_path.read_text())["settings"] != settings:
        raise ConfigError(f"{out}: holds a copy degraded with other settings; "
                          "choose another --out or delete it")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(info_path, {"settings": settings, "sources": sorted(channel.sources())})
    jobs = [(channel, u, out / "wav" / f"{u.id}.wav") for u in manifest]
    bar = tqdm(total=len(jobs), desc=f"degrading ({channel.name})", unit="utt",
               disable=not progress)
    failures = []
    for failure in imap(_degrade_one, jobs, workers, chunksize=8, min_jobs=9):
        failures.append(failure)
        bar.update()
    bar.close()
    problems = [f for f in failures if f]
    kept = [replace(u, path=f"wav/{u.id}.wav", start=None, end=None)
            for u, f in zip(manifest, failures, strict=True) if not f]
    degraded = Manifest(kept, list(manifest.problems) + problems)
    degraded.to_jsonl(out / "manifest.jsonl")
    return degraded


def channel_sources(manifest_path: Path) -> set[str]:
    """Sources recorded beside a degraded copy's manifest (empty for an ordinary corpus)."""
    info = Path(manifest_path).parent / "channel.json"
    return set(json.loads(info.read_text())["sources"]) if info.exists() else set()
