"""Early decisions with the recogniser-layer model (MP-2: Whisper tiny.en layer 2, mean-pooled,
linear head) on Emo-DB, 7 classes, leave-one-speaker-out: how much of an utterance it must hear.

Each of the 10 folds of ``make_folds(manifest, "loso", 0)`` (a validation and a test speaker
each) trains the ``mp_2_long`` row of configs/recogniser_transfer_emodb.yaml through the
Supervised method (checkpoint chosen on the validation speaker). Then every validation and test
file goes through the method's own streamer (``Method.streamer``: what ``StreamingRecognizer``
runs after its speech gate, here fed the file from its first sample, so no gate onset or
pre-roll) and the class probabilities of every 300 ms step and of the end are kept. A stream
has no speaker statistics, so the speaker-normalised model reads live features normalised with
its training speakers' statistics (``Normaliser`` fallback); the offline, speaker-normalised test
UAR is reported beside it. Emo-DB files here are at most 2.0 s, inside the streamer's 3 s window:
every step's features are exactly the offline features of the prefix heard.

On the test speakers, mean ± std over folds: the whole-utterance UAR; UAR on the first 10 … 100 %
(the step whose heard time is closest to that fraction); and two confidence-threshold exits (the
first step whose top probability reaches θ, else the end) with θ from the grid 0.30 … 0.99 chosen
on the fold's validation speaker only: (c) the smallest θ whose validation UAR is within 0.02 of
the validation whole-utterance UAR; (d) the θ maximising validation UAR − 0.1 · fraction heard.
Folds resume from ``--work``.

    .venv/bin/python benchmarks/early_recogniser.py [--work runs/early_recogniser]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from results import machine, write_section  # noqa: E402
from tqdm import tqdm  # noqa: E402

from emovox.audio import load_audio  # noqa: E402
from emovox.evaluation.metrics import uar  # noqa: E402
from emovox.experiments.config import apply_overrides, build_config, read_yaml  # noqa: E402
from emovox.experiments.dataset import load_dataset  # noqa: E402
from emovox.experiments.methods.base import Split, make_method  # noqa: E402
from emovox.experiments.protocols import make_folds  # noqa: E402
from emovox.io import atomic_write_json  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "configs" / "recogniser_transfer_emodb.yaml"
VARIANT = "mp_2_long"
FRACTIONS = np.round(np.arange(0.1, 1.01, 0.1), 1)
THETAS = np.round(np.arange(0.30, 0.995, 0.01), 2)
TOLERANCE = 0.02  # rule (c), and the target
LATENCY_COST = 0.1  # rule (d)
FIGURE = ROOT / "docs" / "figures" / "early_recogniser.png"


def config():
    study = read_yaml(STUDY)
    data = apply_overrides(copy.deepcopy(study["base"]), study["variants"][VARIANT])
    data["name"] = f"early_recogniser/{VARIANT}"
    data["corpus"]["path"] = str(ROOT / data["corpus"]["path"])
    return build_config(data)


def stream_file(streamer, path: str) -> dict:
    """Seconds heard and class probabilities at every step of one file, and its duration."""
    wave = load_audio(path)
    stream = streamer.start(10**9)
    steps = stream.push(wave) + stream.finish()
    return {"duration": len(wave) / streamer.sample_rate,
            "seconds": [s.seconds for s in steps],
            "proba": [[round(float(p), 6) for p in s.proba] for s in steps]}


def run_fold(cfg, dataset, fold, work: Path) -> dict:
    done = work / "streams.json"
    if done.exists():
        return json.loads(done.read_text())
    method = make_method(cfg)
    split = Split(dataset.split(fold.train), dataset.split(fold.valid), dataset.split(fold.test),
                  0)
    trained, _ = method.fit(dataset, split, work)
    streamer = method.streamer(trained)
    result = {"valid_speaker": fold.valid, "test_speaker": fold.test,
              "offline_test_uar": method.score(trained, dataset, split.test).metrics["uar"]}
    for part, manifest in (("valid", split.valid), ("test", split.test)):
        bar = tqdm(manifest, desc=f"fold {fold.index} {part}", leave=False)
        with torch.no_grad():
            result[part] = [{"label": dataset.labels.index(u.label),
                             **stream_file(streamer, u.path)} for u in bar]
    atomic_write_json(done, result)
    return result


def exits(files: list[dict], theta: float | None = None, fraction: float | None = None
          ) -> tuple[np.ndarray, np.ndarray]:
    """Predicted class and fraction heard per file: at the step closest to ``fraction`` of the
    file, or at the first step whose top probability reaches ``theta`` (else the end), or at the
    end."""
    preds, heard = [], []
    for f in files:
        proba, seconds = np.array(f["proba"]), np.array(f["seconds"])
        if fraction is not None:
            i = int(np.argmin(np.abs(seconds - fraction * f["duration"])))
        elif theta is not None:
            sure = np.flatnonzero(proba.max(1) >= theta)
            i = int(sure[0]) if len(sure) else len(seconds) - 1
        else:
            i = len(seconds) - 1
        preds.append(int(proba[i].argmax()))
        heard.append(min(seconds[i] / f["duration"], 1.0))
    return np.array(preds), np.array(heard)


def score(files: list[dict], **how) -> tuple[float, float]:
    preds, heard = exits(files, **how)
    return uar(np.array([f["label"] for f in files]), preds, 7), float(heard.mean())


def choose(valid: list[dict]) -> tuple[float, float, bool]:
    """θ by rule (c) and by rule (d), on the validation speaker's files only, and whether any θ
    came within the tolerance (else rule (c) takes the θ of the best validation UAR)."""
    whole = score(valid)[0]
    grid = [(t, *score(valid, theta=t)) for t in THETAS]
    near = [t for t, u, _ in grid if u >= whole - TOLERANCE]
    rule_c = near[0] if near else max(grid, key=lambda g: g[1])[0]
    rule_d = max(grid, key=lambda g: g[1] - LATENCY_COST * g[2])[0]
    return rule_c, rule_d, bool(near)


def plot(curve: np.ndarray, heard: np.ndarray, whole: np.ndarray, points: dict[str, tuple]
         ) -> None:
    """Test UAR against the mean fraction actually heard at each nominal fraction's step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    mean, std = curve.mean(0), curve.std(0)
    ax.plot(heard, mean, "o-", label="step closest to 10 … 100 %")
    ax.fill_between(heard, mean - std, mean + std, alpha=0.2)
    ax.axhline(whole.mean(), color="k", lw=0.8, label="whole utterance")
    ax.axhline(whole.mean() - TOLERANCE, color="k", lw=0.8, ls=":", label="whole − 0.02")
    for name, (u, frac) in points.items():
        ax.errorbar(frac.mean(), u.mean(), xerr=frac.std(), yerr=u.std(), fmt="s", capsize=3,
                    label=name)
    ax.set_xlabel("fraction of the utterance heard")
    ax.set_ylabel("test UAR (7 classes)")
    ax.set_title("MP-2 streamed, Emo-DB LOSO (10 folds, mean ± std)")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    FIGURE.parent.mkdir(parents=True, exist_ok=True)
    tmp = FIGURE.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=120)
    os.replace(tmp, FIGURE)


def pm(values: np.ndarray, fmt: str = ".3f") -> str:
    return f"{np.mean(values):{fmt}} ± {np.std(values):{fmt}}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "early_recogniser")
    args = parser.parse_args()
    torch.set_num_threads(1)
    load = os.getloadavg()[0]
    cfg = config()
    dataset = load_dataset(cfg)
    folds = make_folds(dataset.manifest, "loso", 0)
    results = [run_fold(cfg, dataset, f, args.work / f"fold{f.index}") for f in folds]

    durations = [f["duration"] for r in results for f in r["test"]]
    whole = np.array([score(r["test"])[0] for r in results])
    offline = np.array([r["offline_test_uar"] for r in results])
    curve = np.array([[score(r["test"], fraction=x)[0] for x in FRACTIONS] for r in results])
    heard_at = np.array([[score(r["test"], fraction=x)[1] for x in FRACTIONS] for r in results])
    thetas = [choose(r["valid"]) for r in results]
    ops = {}
    for k, name in enumerate(("(c) threshold, smallest θ within 0.02 on validation",
                              "(d) threshold, θ maximising validation UAR − 0.1·fraction")):
        got = [score(r["test"], theta=t[k]) for r, t in zip(results, thetas, strict=True)]
        u, frac = np.array([g[0] for g in got]), np.array([g[1] for g in got])
        ops[name] = (u, frac, np.array([t[k] for t in thetas]))
    target = {n: bool(u.mean() >= whole.mean() - TOLERANCE and frac.mean() <= 0.5)
              for n, (u, frac, _) in ops.items()}
    plot(curve, heard_at.mean(0), whole,
         {n.split(",")[0]: (u, frac) for n, (u, frac, _) in ops.items()})
    for n, (u, frac, th) in ops.items():
        print(f"{n}: UAR {pm(u)}  fraction {pm(frac, '.2f')}  θ {th.tolist()}")
    print("whole", pm(whole), "offline", pm(offline))

    lines = [
        "## Early decisions with the recogniser-layer model (MP-2) on Emo-DB, 7 classes",
        "",
        "Emo-DB, 7 classes, leave-one-speaker-out (10 folds, seed 0, `make_folds(manifest, "
        "'loso', 0)`: one validation and one test speaker per fold); the `mp_2_long` row of "
        "configs/recogniser_transfer_emodb.yaml (Whisper tiny.en layer 2, mean-pooled, linear "
        "head, per-speaker normalisation, Adam 3e-3, ≤ 200 epochs, patience 30, weight decay "
        "1e-4; checkpoint chosen on the validation speaker). Every validation and test file "
        "streamed through the method's streamer (what `StreamingRecognizer` runs after its "
        "speech gate; fed from the file's first sample, so no gate onset or pre-roll): "
        f"probabilities every 300 ms and at the end (test files {min(durations):.2f}–"
        f"{max(durations):.2f} s, mean {np.mean(durations):.2f} s: steps at 0.3, 0.6, … s and "
        "at the end; inside the 3 s window, so each step equals offline inference on the "
        "prefix). A "
        "live stream has no statistics of its speaker, so it normalises with the training "
        "speakers' (the `Normaliser` fallback); the offline, speaker-normalised whole-utterance "
        f"test UAR of the same models is {pm(offline)}. Test speakers, mean ± std over the 10 "
        "folds. Threshold exits: the first step whose top probability reaches θ, else the end; θ "
        "from 0.30 … 0.99 (step 0.01) chosen on the fold's validation speaker only, (c) the "
        "smallest θ whose validation UAR is within 0.02 of the validation whole-utterance UAR, "
        "(d) the θ maximising validation UAR − 0.1 · mean fraction heard. In "
        f"{sum(not t[2] for t in thetas)} of the 10 folds no θ of the grid came within 0.02 on "
        "validation; there (c) takes the θ of the best validation UAR (the first of ties). "
        f"{machine()}; load average {load:.2f} at the start (accuracy only, nothing timed).",
        "",
        "```",
        ".venv/bin/python benchmarks/early_recogniser.py",
        "```",
        "",
        f"Whole utterance (streamed, the end): test UAR {pm(whole)}.",
        "",
        "| first x of the utterance | " + " | ".join(f"{x:.0%}" for x in FRACTIONS) + " |",
        "|---" * (len(FRACTIONS) + 1) + "|",
        "| fraction actually heard | " + " | ".join(f"{h:.2f}" for h in heard_at.mean(0)) + " |",
        "| test UAR | " + " | ".join(f"{m:.3f} ± {s:.3f}" for m, s in
                                    zip(curve.mean(0), curve.std(0), strict=True)) + " |",
        "",
        "| operating point | θ per fold | test UAR | − whole | fraction heard | speed-up | "
        "target (within 0.02, ≤ 0.5 heard) |",
        "|---|---|---|---|---|---|---|",
        *[f"| {n} | {', '.join(f'{t:.2f}' for t in th)} | {pm(u)} | "
          f"{u.mean() - whole.mean():+.3f} | {pm(frac, '.2f')} | {1 / frac.mean():.2f}× | "
          f"{'met' if target[n] else 'missed'} |" for n, (u, frac, th) in ops.items()],
        "",
        "Speed-up = 1 / mean fraction heard. Curve: docs/figures/early_recogniser.png.",
    ]
    write_section("early_recogniser", "\n".join(lines))


if __name__ == "__main__":
    main()
