"""Peak memory and wall time of `emovox train` at 1×, 2×, 4× the corpus, side by side.

The corpus of benchmarks/memory_scaling.yaml (Emo-DB + nEMO, five common emotions) is listed k
times in a CSV manifest, each copy under new utterance ids and speakers: the feature cache is
content-addressed, so every copy hits the same cache entries and only training grows. Each size
trains in its own process (a fixed number of epochs, so the work is proportional to the corpus);
its peak resident memory is that process's ``resource.getrusage`` (and, apart, its extraction
workers'). Memory that does not grow with k is the point: features are read from the cache
when a batch needs them, and a mean-reading model (``layer_mix``, ``mp``) trains on each
utterance's cached time mean. The last column is what holding every frame as float32, as
emovox did before, would take.

Recipes: ``mix_base_all`` (the config as it is: Whisper base, all layers, ``layer_mix``; its
features must be in the cache or are extracted first) and ``bigru_mfcc`` (a BiGRU on
``mfcc_pitch`` frames: the path that reads frames batch by batch, cheap to extract).

    .venv/bin/python benchmarks/memory_scaling.py [--recipes mix_base_all bigru_mfcc]
        [--sizes 1 2 4] [--epochs 1]
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from results import machine, write_section

from emovox.corpora import load_corpus

ROOT = Path(__file__).resolve().parents[1]
CONFIG = Path(__file__).with_name("memory_scaling.yaml")
RECIPES = {
    "mix_base_all": {},
    "bigru_mfcc": {"features": {"name": "mfcc_pitch", "normalise": "speaker", "stack": 2,
                                "workers": 2},
                   "model": {"name": "bigru", "params": {"hidden": 64, "layers": 1}}},
}


def repeated_manifest(k: int, out: Path) -> Path:
    """The config's corpus listed k times (copy r: ids and speakers suffixed ``~r``)."""
    corpus = yaml.safe_load(CONFIG.read_text())["corpus"]
    manifest = load_corpus(corpus["format"], ROOT / corpus["path"], labels=corpus["labels"],
                           **corpus["options"])
    path = out / f"corpus_x{k}.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "path", "label", "speaker"])
        for r in range(k):
            for u in manifest:
                writer.writerow([f"{u.id}~{r}", u.path, u.label, f"{u.speaker}~{r}"])
    return path


def child(recipe: str, corpus_csv: str, epochs: int, out: str) -> None:
    """One training run in this process; prints its peak memory as JSON (``epochs`` 0: only
    extract the features into the cache)."""
    from emovox.experiments.config import apply_overrides, build_config
    from emovox.experiments.dataset import load_dataset
    from emovox.serving.model_dir import train_and_save

    data = yaml.safe_load(CONFIG.read_text())
    labels = data["corpus"]["labels"]
    overrides = {**RECIPES[recipe],
                 "corpus": {"format": "csv", "path": corpus_csv, "labels": labels},
                 "training.epochs": max(epochs, 1), "training.patience": max(epochs, 1),
                 "training.progress": False}
    config = build_config(apply_overrides(data, overrides))
    if not epochs:  # the warm-up: fill the feature cache, outside every measured run
        load_dataset(config, progress=False)
        return
    start = time.perf_counter()
    train_and_save(config, Path(out), progress=False)
    seconds = time.perf_counter() - start
    peak = {"self_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "workers_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}
    dataset = load_dataset(config, progress=False)  # again, for its frame counts
    frames = sum(dataset.feats.length(u.id) for u in dataset.manifest)
    print(json.dumps({**peak, "train_s": seconds, "utterances": len(dataset.manifest),
                      "frames_gb": frames * dataset.input_dim * 4 / 1e9}))


def run(recipe: str, k: int, epochs: int, tmp: Path) -> dict:
    corpus = repeated_manifest(k, tmp)
    command = [sys.executable, __file__, "--child", recipe, str(corpus), str(epochs),
               str(tmp / f"{recipe}_x{k}")]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if done.returncode:
        raise SystemExit(f"{recipe} at {k}×: exit {done.returncode}\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1]) if epochs else {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", nargs="+", choices=sorted(RECIPES),
                        default=["mix_base_all", "bigru_mfcc"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[1, 2, 4])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--child", nargs=4, metavar=("RECIPE", "CSV", "EPOCHS", "OUT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        recipe, corpus_csv, epochs, out = args.child
        child(recipe, corpus_csv, int(epochs), out)
        return
    rows = []
    with tempfile.TemporaryDirectory(prefix="emovox-memory-") as tmp:
        for recipe in args.recipes:
            run(recipe, 1, 0, Path(tmp))
            for k in args.sizes:
                result = run(recipe, k, args.epochs, Path(tmp))
                rows.append((recipe, k, result))
                print(recipe, k, json.dumps(result), flush=True)
    lines = [
        "## Memory scaling of `emovox train` (memory_scaling)",
        "",
        f"Emo-DB + nEMO, five emotions (benchmarks/memory_scaling.yaml), listed k times under "
        f"new ids and speakers; {args.epochs} epoch(s) each, one process per size "
        f"(`python benchmarks/memory_scaling.py`). Peak RSS from `resource.getrusage` of the "
        f"training process; its feature-extraction workers apart. Time: `emovox train`'s "
        f"work (corpus, cached features, training, saving). {machine()}.",
        "",
        "| recipe | corpus | utterances | peak RSS (MB) | workers' peak RSS (MB) "
        "| `train_and_save` (s) | per utterance (ms) | all frames as float32 (GB) |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for recipe, k, r in rows:
        lines.append(f"| {recipe} | {k}× | {r['utterances']} | {r['self_mb']:.0f} | "
                     f"{r['workers_mb']:.0f} | {r['train_s']:.0f} | "
                     f"{1000 * r['train_s'] / r['utterances']:.1f} | {r['frames_gb']:.1f} |")
    lines += ["", "What still grows is what a model trains on: `mix_base_all` holds each "
              "utterance's normalised time mean (3,584 float32, 14 KB), `bigru_mfcc` nothing "
              "per utterance but its frame count. Validation scores are not comparable across "
              "sizes (a copy of the validation speaker trains), so none are shown; the "
              "full run and the before/after check: benchmarks/memory_scaling.md."]
    write_section("memory_scaling", "\n".join(lines))


if __name__ == "__main__":
    main()
