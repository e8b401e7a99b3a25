"""Driver for the DCGAN study (issue 12) until the Method runner lands on main.

Runs ``DCGANMethod`` over leave-one-speaker-out folds for several variants, label fractions and
seeds, appending one JSON line per finished run to ``OUT/runs.jsonl`` (rerunning skips finished
runs: resumable), then writes Table 2, Table 3, the label-fraction curve, loss curves and the
real-vs-generated grid under OUT.

    PYTHONPATH=src nice -n 10 .venv/bin/python benchmarks/dcgan_study.py --out runs/dcgan_emodb \\
        --variants basic_cnn multitask_cnn basic_dcgan multitask_dcgan --fractions 1.0
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from emovox.corpora import load_corpus
from emovox.evaluation.valence import CLASSES3, POINTS, fuzzy_label, rating_metrics
from emovox.experiments.dataset import Dataset
from emovox.experiments.methods.base import Split
from emovox.experiments.methods.dcgan import DCGANMethod, plot_grid, plot_losses
from emovox.experiments.protocols import leave_one_speaker_out
from emovox.features import FeatureCache, extract_all, make_extractor
from emovox.models.dcgan import VARIANTS


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default="../shared/data/emodb")
    ap.add_argument("--format", default="emodb")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--variants", nargs="+", default=["basic_cnn", "multitask_cnn",
                                                      "basic_dcgan", "multitask_dcgan"])
    ap.add_argument("--fractions", nargs="+", type=float, default=[1.0])
    ap.add_argument("--fraction-variants", nargs="+", default=["basic_cnn", "basic_dcgan"],
                    help="variants also trained with fewer labels")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--folds", nargs="+", type=int, default=None)
    ap.add_argument("--unlabelled", nargs="*", default=[])
    ap.add_argument("--unlabelled-limit", type=int, default=0)
    ap.add_argument("--params", default="{}", help="JSON method params for every run")
    ap.add_argument("--summary-only", action="store_true")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    runs_path = args.out / "runs.jsonl"
    if not args.summary_only:
        run_all(args, runs_path)
    summarise_runs(runs_path, args.out)


def run_all(args: argparse.Namespace, runs_path: Path) -> None:
    done = {json.loads(line)["key"] for line in runs_path.open()} if runs_path.exists() else set()
    manifest = load_corpus(args.format, args.corpus)
    extractor = make_extractor("stft_spectrogram")
    feats = extract_all(manifest, extractor, FeatureCache("auto"), progress=False)
    dataset = Dataset(manifest.filter(lambda u: u.id in feats), feats, manifest.labels,
                      extractor)
    folds = leave_one_speaker_out(dataset.manifest.speakers)
    # Fold-major: whatever number of folds finishes holds every variant and fraction.
    for seed in args.seeds:
        for fold in folds:
            for fraction in args.fractions:
                for variant in args.variants:
                    if args.folds is not None and fold.index not in args.folds:
                        continue
                    if fraction < 1 and variant not in args.fraction_variants:
                        continue
                    key = f"{variant}/f{fraction}/s{seed}/fold{fold.index}"
                    if key in done:
                        continue
                    params = DCGANMethod.Params(
                        variant=variant, label_fraction=fraction, unlabelled=args.unlabelled,
                        unlabelled_limit=args.unlabelled_limit, **json.loads(args.params))
                    config = SimpleNamespace(
                        method=SimpleNamespace(params=params),
                        task=SimpleNamespace(derived=True, dimensions=["valence", "arousal"]),
                        features=SimpleNamespace(cache="auto"))
                    method = DCGANMethod(config)
                    split = Split(dataset.split(fold.train), dataset.split(fold.valid),
                                  dataset.split(fold.test), seed)
                    start, cpu = time.perf_counter(), time.process_time()
                    record = {"key": key, "variant": variant, "fraction": fraction,
                              "seed": seed, "fold": fold.index, "test": list(fold.test)}
                    try:
                        work = args.out / "work" / key.replace("/", "_")
                        work.mkdir(parents=True, exist_ok=True)
                        trained, info = method.fit(dataset, split, work)
                        scores = method.score(trained, dataset, split.test)
                        record.update(metrics=metrics_of(scores), info=info,
                                      extra=method.extra(trained, dataset, split))
                    except Exception as exc:  # a failed GAN is recorded, never scored
                        from emovox.training.semi import GANFailure

                        if not isinstance(exc, GANFailure):
                            raise
                        record["failed"] = str(exc)
                    record["seconds"] = time.perf_counter() - start
                    # CPU time of this process: with threads=1 the single-core cost, whatever
                    # the machine's load (wall seconds depend on the other jobs).
                    record["cpu_seconds"] = time.process_time() - cpu
                    record["load"] = os.getloadavg()[0]
                    with runs_path.open("a") as fh:
                        fh.write(json.dumps(record) + "\n")
                    m = record.get("metrics", {})
                    print(json.dumps({"key": key, "seconds": round(record["seconds"], 1),
                                      "ua3": m.get("ua3"), "ua5": m.get("ua5"),
                                      "r": m.get("pearson_r"),
                                      "passes": len(record.get("info", {}).get("history", {})
                                                    .get("passes", [])),
                                      "failed": record.get("failed")}), flush=True)


def metrics_of(scores) -> dict:
    """The run's metrics under the summary's names, with both confusion matrices."""
    m = scores.metrics
    labels = np.stack([fuzzy_label(p["true"][0]) for p in scores.predictions])
    full = rating_metrics(labels, np.array([p["valence_proba"] for p in scores.predictions]),
                          labels @ POINTS)
    return {"ua5": m["valence_ua5"], "ua3": m["valence_ua3"], "pearson_r": m["valence_pearson"],
            "arousal_ua5": m["arousal_ua5"], "arousal_ua3": m["arousal_ua3"],
            "arousal_pearson_r": m["arousal_pearson"], "confusion5": full["confusion5"],
            "confusion3": full["confusion3"]}


def summarise_runs(runs_path: Path, out: Path) -> None:
    runs = [json.loads(line) for line in runs_path.open()]
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        groups.setdefault((r["variant"], r["fraction"]), []).append(r)
    lines = ["| model | labels kept | runs (folds × seeds) | failed | 5-class UA | 3-class UA "
             "| Pearson r | arousal 3-class UA | s / run |", "|---" * 9 + "|"]
    best, best_ua = None, -1.0
    curve: dict[str, dict[float, tuple[float, float]]] = {}
    for (variant, fraction), rs in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        ok = [r for r in rs if "metrics" in r]
        if not ok:
            continue

        def ms(key: str, ok=ok) -> tuple[float, float]:
            v = np.array([r["metrics"][key] for r in ok], dtype=float)
            return float(np.nanmean(v)), float(np.nanstd(v))

        cells = [f"{m:.3f} ± {s:.3f}" for m, s in (ms("ua5"), ms("ua3"), ms("pearson_r"))]
        # Valence-only variants never train the arousal head: no arousal number for them.
        aro_m, aro_s = ms("arousal_ua3")
        cells.append(f"{aro_m:.3f} ± {aro_s:.3f}" if VARIANTS[variant].arousal else "—")
        secs = np.mean([r["seconds"] for r in ok])
        lines.append(f"| {variant} | {fraction:.0%} | {len(ok)} | {len(rs) - len(ok)} | "
                     + " | ".join(cells) + f" | {secs:.0f} |")
        curve.setdefault(variant, {})[fraction] = ms("ua3")
        if fraction == 1.0 and ms("ua3")[0] > best_ua:
            best, best_ua = (variant, ok), ms("ua3")[0]
    text = ["# DCGAN study", "", *lines, ""]
    if best:
        variant, ok = best
        c5 = np.sum([r["metrics"]["confusion5"] for r in ok], axis=0)
        c3 = np.sum([r["metrics"]["confusion3"] for r in ok], axis=0)
        text += [f"Table 3: confusion of the best model at 100 % labels ({variant}), summed over "
                 "runs; rows are label mass (split labels count half in each row).", "",
                 "| 5-class | " + " | ".join(str(i) for i in range(1, 6)) + " |",
                 "|---" * 6 + "|"]
        text += [f"| {i + 1} | " + " | ".join(f"{v:.1f}" for v in row) + " |"
                 for i, row in enumerate(c5)]
        text += ["", "| 3-class | " + " | ".join(CLASSES3) + " |", "|---" * 4 + "|"]
        text += [f"| {CLASSES3[i]} | " + " | ".join(f"{v:.1f}" for v in row) + " |"
                 for i, row in enumerate(c3)]
        first = ok[0]
        plot_losses(first["info"]["history"]["passes"], f"{variant}, fold {first['fold']}",
                    out / "losses_best.png")
    for r in runs:
        if r.get("extra", {}).get("real"):
            plot_grid(np.array(r["extra"]["real"]), np.array(r["extra"]["fake"]),
                      out / "samples.png")
            plot_losses(r["info"]["history"]["passes"], f"{r['variant']}, fold {r['fold']}, "
                        f"{r['fraction']:.0%} labels", out / "losses_gan.png")
            break
    if any(len(v) > 1 for v in curve.values()):
        plot_curve(curve, out / "label_fraction.png")
    (out / "summary.md").write_text("\n".join(text) + "\n")
    print("\n".join(text))


def plot_curve(curve: dict, path: Path) -> None:
    import matplotlib.pyplot as plt

    from emovox.evaluation.plots import save_figure

    fig, ax = plt.subplots(figsize=(5, 3.4))
    for variant, points in sorted(curve.items()):
        xs = sorted(points)
        ax.errorbar([100 * x for x in xs], [points[x][0] for x in xs],
                    yerr=[points[x][1] for x in xs], marker="o", capsize=3, label=variant,
                    linestyle="--" if "cnn" in variant else "-")
    ax.set_xlabel("labelled share of training utterances (%)")
    ax.set_ylabel("3-class valence UA (derived)")
    ax.legend(fontsize=8)
    save_figure(fig, path)


if __name__ == "__main__":
    main()
