"""Wall time of one small study on the local process pool vs Ray on this machine, in one run,
and what N machines would give, from the per-fold durations the Ray run measured.

    .venv/bin/python benchmarks/ray_overhead.py

The study: Emo-DB, 7 classes, leave-one-speaker-out over 10 speakers, seed 0, ``gru_baseline``
on ``mfcc_prosody`` (stacked by 3, per-speaker z-score) with 32 or 64 units, ``--epochs``
epochs: two variants × 10 folds = 20 tasks; two workers / Ray CPUs. Features are extracted
into the cache before either run is timed.
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import tempfile
import time
from pathlib import Path

import yaml
from results import machine, write_section

from emovox.experiments.config import build_config
from emovox.experiments.dataset import load_dataset
from emovox.experiments.study import run_study

EMODB = Path(__file__).resolve().parents[2] / "shared" / "data" / "emodb"


def study(epochs: int, workers) -> dict:
    return {
        "name": "ray_overhead",
        "base": {
            "corpus": {"format": "emodb", "path": str(EMODB)},
            "features": {"name": "mfcc_prosody", "normalise": "speaker", "stack": 3,
                         "workers": 1},
            "protocol": {"name": "loso", "seeds": [0]},
            "model": {"name": "gru_baseline", "params": {"hidden": 32}},
            "training": {"epochs": epochs, "batch_size": 32, "lr": 0.003, "progress": False},
            "workers": workers,
        },
        "variants": {"gru32": {}, "gru64": {"model.params.hidden": 64}},
    }


def run(tmp: Path, name: str, epochs: int, workers) -> tuple[float, dict]:
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(study(epochs, workers)))
    start = time.perf_counter()
    summary = run_study(path, tmp / name, progress=False)
    return time.perf_counter() - start, summary


def makespan(durations: list[float], slots: int) -> float:
    """Longest-first list scheduling of the measured fold durations on ``slots`` CPUs."""
    heap = [0.0] * slots
    for d in sorted(durations, reverse=True):
        heapq.heappush(heap, heapq.heappop(heap) + d)
    return max(heap)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6)
    args = parser.parse_args()
    import ray

    base = study(args.epochs, 1)["base"]
    load_dataset(build_config(base), progress=False)  # fill the feature cache: neither pays
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        pool_s, pool = run(tmp, "pool", args.epochs, 2)
        started = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        init_s = time.perf_counter() - started
        ray_s, on_ray = run(tmp, "ray", args.epochs, {"backend": "ray", "address": "auto"})
        ray_s += init_s
        ray.shutdown()
        same = pool["variants"] == on_ray["variants"]
        by_variant = [[json.loads(p.read_text())["seconds"]
                       for p in (tmp / "ray" / v).glob("runs/seed*/fold*/result.json")]
                      for v in on_ray["variants"]]
        pool_folds = sum(json.loads(p.read_text())["seconds"]
                         for p in (tmp / "pool").glob("*/runs/seed*/fold*/result.json"))
    durations = [d for ds in by_variant for d in ds]

    def schedule(slots: int) -> float:  # variants run one after another
        return sum(makespan(ds, slots) for ds in by_variant)

    driver = ray_s - schedule(2)  # dataset loading, reports, Ray start-up
    print(f"pool {pool_s:.1f} s, ray {ray_s:.1f} s (init {init_s:.1f} s), same metrics: {same}")
    scaling = [(n, driver + schedule(2 * n)) for n in (1, 2, 4, 8)]
    uar = " / ".join(f"{v} {m['clean']['uar'][0]:.3f}" for v, m in pool["variants"].items())
    lines = [
        "## Ray executor overhead",
        "",
        f"One study, two variants × 10 leave-one-speaker-out folds (Emo-DB 7 classes, seed 0, "
        f"`gru_baseline` 32 / 64 units on cached `mfcc_prosody`, {args.epochs} epochs) = "
        f"{len(durations)} fold tasks; two worker processes vs a local Ray instance with 2 "
        f"CPUs (its start-up included); {machine()}; load average at the end "
        f"{os.getloadavg()[0]:.1f} (a shared machine).",
        "",
        "```",
        ".venv/bin/python benchmarks/ray_overhead.py" + (
            f" --epochs {args.epochs}" if args.epochs != 6 else ""),
        "```",
        "",
        "| executor | wall time | ratio to process pool | metrics |",
        "|---|---|---|---|",
        f"| process pool (`workers: 2`) | {pool_s:.1f} s | 1.00 | UAR {uar} |",
        f"| Ray, local, 2 CPUs (`workers: {{backend: ray, address: auto}}`) | {ray_s:.1f} s "
        f"| **{ray_s / pool_s:.2f}** ({100 * (ray_s / pool_s - 1):+.0f} %) | "
        f"{'identical' if same else 'DIFFERENT'} |",
        "",
        f"Ray start-up {init_s:.1f} s. Time inside the fold tasks, summed: process pool "
        f"{pool_folds:.0f} s, Ray {sum(durations):.0f} s (the rest of each wall time is "
        "start-up, shipping the dataset, loading and reports). Ray's fold tasks took "
        f"{min(durations):.1f}–{max(durations):.1f} s. Projected wall time on N "
        "machines of 2 CPUs each: the driver's own time in this run (wall − the 2-CPU "
        f"schedule of the tasks = {driver:.1f} s: dataset loading, reports, start-up) + "
        "longest-first scheduling of each variant's measured fold durations on 2N CPUs, "
        "variant after variant as a study runs them:",
        "",
        "| machines | projected wall time | speed-up vs 1 |",
        "|---|---|---|",
        *[f"| {n} | {s:.1f} s | {scaling[0][1] / s:.2f}× |" for n, s in scaling],
    ]
    write_section("ray_overhead", "\n".join(lines))


if __name__ == "__main__":
    main()
