"""Cross-corpus emotion recognition on Emo-DB and nEMO's five common emotions.

For every model of the config (``benchmarks/cross_corpus.yaml``): train on one corpus (all its
speakers but ``valid_speakers`` validation speakers, as ``emovox train`` does) and score every
utterance of the other; then, trained on both, ``both_protocol`` over all speakers of the two
corpora, the UAR per corpus taken over that corpus's test speakers. Every cell is saved as it
finishes (rerunning resumes); the table goes to ``OUT/cross_corpus.md`` and stdout.
``--heldout MODEL_DIR`` instead scores a model directory trained on a combined corpus on the
speakers its config left out (the default model's speaker-independent scores).

    .venv/bin/python benchmarks/cross_corpus.py [--out runs/cross_corpus] [--only MODEL ...]
        [--skip-both]
    .venv/bin/python benchmarks/cross_corpus.py --heldout src/emovox/serving/gru_model
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from emovox.corpora.combined import part_of
from emovox.experiments.config import apply_overrides, build_config, read_yaml
from emovox.experiments.dataset import load_dataset
from emovox.experiments.runner import run_experiment
from emovox.io import atomic_write_json, atomic_write_text
from emovox.serving.model_dir import Recognizer, train_and_save

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("features", "model", "training", "augment", "method")
NAMES = {"emodb": "Emo-DB", "nemo": "nEMO"}


def model_config(spec: dict, base: dict, name: str) -> dict:
    """The base (corpus, protocol) with the model's sections; ``from: FILE`` (relative to the
    repository) takes them from another config (the default model's)."""
    data = copy.deepcopy(base)
    source = read_yaml(ROOT / spec["from"]) if "from" in spec else spec
    data.update({k: copy.deepcopy(source[k]) for k in SECTIONS if k in source})
    data["name"] = name
    return data


def parts(config: dict) -> dict[str, list[str]]:
    """Speakers of each part of the combined corpus (no features computed)."""
    from emovox.experiments.dataset import _load_manifest

    manifest = _load_manifest(build_config(config).corpus)
    speakers: dict[str, list[str]] = defaultdict(list)
    for speaker in manifest.speakers:
        speakers[part_of(speaker)].append(speaker)
    return dict(speakers)


def label_metrics(predictions: list[dict], labels: list[str]) -> dict[str, float]:
    """UAR, WA and macro-F1 of predictions (``true`` and ``pred`` labels)."""
    from emovox.evaluation.metrics import macro_f1, uar

    index = {label: i for i, label in enumerate(labels)}
    y = np.array([index[p["true"]] for p in predictions])
    yhat = np.array([index[p["pred"]] for p in predictions])
    return {"uar": uar(y, yhat, len(labels)), "wa": float(np.mean(y == yhat)),
            "macro_f1": macro_f1(y, yhat, len(labels)), "n": len(predictions)}


def per_speaker_uar(predictions: list[dict], labels: list[str]) -> dict[str, float]:
    by_speaker: dict[str, list[dict]] = defaultdict(list)
    for p in predictions:
        by_speaker[p["speaker"]].append(p)
    return {s: label_metrics(ps, labels)["uar"] for s, ps in sorted(by_speaker.items())}


def heldout(model_dir: Path) -> dict:
    """Score a model directory on the speakers of its combined corpus that its config left
    out of training and validation, per corpus."""
    recognizer = Recognizer(model_dir)
    config = apply_overrides(copy.deepcopy(recognizer.meta["config"]), {"augment.copies": 0})
    trained = set(config["corpus"]["speakers"] or ())
    every = [s for ss in parts(apply_overrides(copy.deepcopy(config),
                                               {"corpus.speakers": None})).values() for s in ss]
    held = [s for s in every if s not in trained]
    dataset = load_dataset(build_config(apply_overrides(config, {"corpus.speakers": held})))
    scored = recognizer.method.score(recognizer.trained, dataset, dataset.manifest)
    by_corpus: dict[str, list[dict]] = defaultdict(list)
    for p in scored.predictions:
        by_corpus[part_of(p["id"])].append(p)
    return {"model_dir": str(model_dir), "heldout_speakers": held,
            "valid_speakers": recognizer.meta["valid_speakers"],
            "per_corpus": {c: label_metrics(ps, dataset.labels) for c, ps in by_corpus.items()}}


def cross(config: dict, speakers: dict[str, list[str]], train: str, test: str, out: Path,
          n_valid: int) -> dict:
    """Train on part ``train`` (one model directory), score every utterance of ``test``."""
    done = out / f"{train}_to_{test}.json"
    if done.exists():
        return json.loads(done.read_text())
    start = time.time()
    model_dir = out / f"model_{train}"
    if not (model_dir / "model.json").exists():
        train_and_save(build_config(apply_overrides(copy.deepcopy(config),
                                                    {"corpus.speakers": speakers[train]})),
                       model_dir, n_valid=n_valid)
    trained = time.time() - start
    recognizer = Recognizer(model_dir)
    # per-speaker normalisation uses the test speakers' own statistics (never their labels)
    recognizer.trained.normaliser.mode = recognizer.meta["config"]["features"]["normalise"]
    test_config = build_config(apply_overrides(copy.deepcopy(config), {
        "corpus.speakers": speakers[test], "augment.copies": 0}))
    dataset = load_dataset(test_config)
    scored = recognizer.method.score(recognizer.trained, dataset, dataset.manifest)
    counts = np.bincount(dataset.targets(dataset.manifest), minlength=len(dataset.labels))
    result = {
        "train": train, "test": test, "metrics": scored.metrics,
        "per_speaker_uar": per_speaker_uar(scored.predictions, dataset.labels),
        "valid_speakers": recognizer.meta["valid_speakers"],
        "n_test": len(dataset.manifest), "chance_uar": 1 / len(dataset.labels),
        "chance_wa": float(counts.max() / counts.sum()),
        "train_seconds": trained, "seconds": time.time() - start,
    }
    atomic_write_json(done, result)
    return result


def both(config: dict, protocol: dict, out: Path) -> dict:
    """Trained on both corpora, speaker-independent: UAR per corpus over its test speakers."""
    done = out / "both.json"
    if done.exists():
        return json.loads(done.read_text())
    start = time.time()
    config = apply_overrides(copy.deepcopy(config), {"protocol": {"seeds": [0], **protocol}})
    run_experiment(build_config(config), out / "both", command="benchmarks/cross_corpus.py")
    scores: dict[str, list[float]] = defaultdict(list)
    for path in sorted((out / "both" / "runs").glob("seed*/fold*/result.json")):
        fold = json.loads(path.read_text())
        labels = config["corpus"]["labels"]
        for speaker, value in per_speaker_uar(fold["test"]["predictions"], labels).items():
            scores[part_of(speaker)].append(value)
    result = {"protocol": protocol, "seconds": time.time() - start,
              "per_corpus": {c: {"mean": float(np.mean(v)), "std": float(np.std(v)),
                                 "speakers": len(v)} for c, v in scores.items()}}
    atomic_write_json(done, result)
    return result


def table(rows: list[tuple[str, dict]]) -> str:
    lines = ["| model | trained on → tested on | UAR | WA | macro-F1 | chance UAR / WA | "
             "UAR per test speaker (mean ± std) | test utterances |",
             "|---|---|---|---|---|---|---|---|"]
    for name, cells in rows:
        for key, r in cells.items():
            if key == "both":
                continue
            m, spk = r["metrics"], list(r["per_speaker_uar"].values())
            lines.append(
                f"| {name} | {NAMES[r['train']]} → all of {NAMES[r['test']]} | "
                f"{m['uar']:.3f} | {m['wa']:.3f} | {m['macro_f1']:.3f} | "
                f"{r['chance_uar']:.3f} / {r['chance_wa']:.3f} | "
                f"{np.mean(spk):.3f} ± {np.std(spk):.3f} | {r['n_test']} |")
    both_rows = [(n, c["both"]) for n, c in rows if "both" in c]
    if both_rows:
        lines += ["", "Trained on both, speaker-independent over the 19 speakers (UAR mean ± "
                  "std over each corpus's test speakers; chance 0.200):", "",
                  "| model | protocol | Emo-DB UAR | nEMO UAR |", "|---|---|---|---|"]
        for name, r in both_rows:
            cells = [f"{r['per_corpus'][c]['mean']:.3f} ± {r['per_corpus'][c]['std']:.3f}"
                     for c in ("emodb", "nemo")]
            protocol = " ".join(f"{k}={v}" for k, v in r["protocol"].items())
            lines.append(f"| {name} | {protocol} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="benchmarks/cross_corpus.yaml")
    parser.add_argument("--out", default="runs/cross_corpus")
    parser.add_argument("--only", nargs="*", help="model names of the config to run")
    parser.add_argument("--skip-both", action="store_true",
                        help="only the train-on-one, test-on-the-other cells")
    parser.add_argument("--heldout", type=Path, metavar="MODEL_DIR",
                        help="score this model on its config's left-out speakers, then stop")
    args = parser.parse_args()
    if args.heldout:
        print(json.dumps(heldout(args.heldout), indent=1))
        return
    spec = read_yaml(args.config)
    out = Path(args.out)
    rows = []
    for name, model in spec["models"].items():
        if args.only and name not in args.only:
            continue
        config = model_config(model, spec["base"], name)
        speakers = parts(config)
        cells = {f"{a}_to_{b}": cross(config, speakers, a, b, out / name,
                                      spec.get("valid_speakers", 1))
                 for a, b in (("emodb", "nemo"), ("nemo", "emodb"))}
        if not args.skip_both or (out / name / "both.json").exists():  # reported once done
            protocol = model.get("both_protocol", spec["both_protocol"])
            cells["both"] = both(config, protocol, out / name)
        rows.append((name, cells))
        print(f"{name}: done", file=sys.stderr)
    text = table(rows)
    atomic_write_text(out / "cross_corpus.md", text)
    print(text)


if __name__ == "__main__":
    main()
