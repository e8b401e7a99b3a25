"""Driver for the DCGAN study (issue 12): resumable runs, paired statistics and figures.

Runs ``DCGANMethod`` over leave-one-speaker-out folds for several variants, label fractions and
seeds, appending one JSON line per finished run to ``OUT/runs.jsonl`` (rerunning skips finished
runs: resumable; each run records wall and CPU seconds), then writes Table 2, the label-fraction
table with paired semi-minus-supervised differences, Table 3, the label-fraction curve, loss
curves and the real-vs-generated grid (OUT, or ``--figures``), and optionally its section of
benchmarks/RESULTS.md. The same ``DCGANMethod`` runs through ``emovox study``.

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
from emovox.experiments.methods.base import RunContext, Split
from emovox.experiments.methods.dcgan import DCGANMethod, plot_grid, plot_losses
from emovox.experiments.protocols import leave_one_speaker_out
from emovox.features import FeatureCache, extract_all, make_extractor
from emovox.io import atomic_write_text
from emovox.models.dcgan import VARIANTS
from emovox.training.semi import GANFailure, crop_diversity


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number ≥ 1")
    return int(text)


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
    ap.add_argument("--no-summary", action="store_true", help="train only")
    ap.add_argument("--workers", type=positive_int, default=1,
                    help="train the (seed, fold) cells in this many processes at once, each "
                         "in OUT/parts/, merged into OUT/runs.jsonl as it finishes")
    ap.add_argument("--extra", nargs="*", default=[], metavar="TAG=DIR",
                    help="also summarise DIR's runs, their variants renamed variant+TAG")
    ap.add_argument("--table2-seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--figures", type=Path, default=None,
                    help="directory for the dcgan_*.png figures (default: OUT)")
    ap.add_argument("--results-section", default=None,
                    help="also write the summary into benchmarks/RESULTS.md under this name")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    runs_path = args.out / "runs.jsonl"
    if not args.summary_only:
        (run_parallel if args.workers > 1 else run_all)(args, runs_path)
    if args.no_summary:
        return
    body = summarise_runs(load_runs(args.out, args.extra), args.out, args.table2_seeds,
                          args.figures)
    if args.results_section:
        from results import machine, write_section

        write_section(args.results_section, f"## DCGAN study: {args.results_section}\n\n"
                      f"{machine()}; driver `benchmarks/dcgan_study.py` (docs/dcgan.md has the "
                      f"command and protocol).\n\n{body}")


def cells(args: argparse.Namespace, fold_indices: list[int]):
    """(key, variant, fraction, seed, fold) of every run asked for, seed- and fold-major:
    whatever number of folds finishes holds every variant and fraction."""
    for seed in args.seeds:
        for fold in fold_indices:
            if args.folds is not None and fold not in args.folds:
                continue
            for fraction in args.fractions:
                for variant in args.variants:
                    if fraction < 1 and variant not in args.fraction_variants:
                        continue
                    yield f"{variant}/f{fraction}/s{seed}/fold{fold}", variant, fraction, seed, fold


def run_parallel(args: argparse.Namespace, runs_path: Path) -> None:
    """One child process per unfinished (seed, fold) cell, ``args.workers`` at a time, each
    training into ``OUT/parts/s{seed}_fold{fold}`` (resumable there); a child's runs are
    appended to ``runs_path`` as soon as it ends, so an interrupted study keeps them."""
    import subprocess
    import sys
    import threading
    from concurrent.futures import ThreadPoolExecutor

    done = {json.loads(line)["key"] for line in runs_path.open()} if runs_path.exists() else set()
    manifest = load_corpus(args.format, args.corpus)
    n_folds = len(leave_one_speaker_out(manifest.speakers))
    todo = sorted({(seed, fold) for key, _, _, seed, fold in cells(args, list(range(n_folds)))
                   if key not in done})
    lock = threading.Lock()

    def train(cell: tuple[int, int]) -> None:
        seed, fold = cell
        part = args.out / "parts" / f"s{seed}_fold{fold}"
        cmd = [sys.executable, __file__, "--corpus", args.corpus, "--format", args.format,
               "--out", str(part), "--seeds", str(seed), "--folds", str(fold),
               "--variants", *args.variants, "--fractions", *map(str, args.fractions),
               "--fraction-variants", *args.fraction_variants, "--params", args.params,
               "--unlabelled-limit", str(args.unlabelled_limit), "--no-summary"]
        if args.unlabelled:
            cmd += ["--unlabelled", *args.unlabelled]
        result = subprocess.run(cmd, capture_output=True, text=True)
        part_runs = part / "runs.jsonl"
        with lock:
            new = [line for line in (part_runs.open() if part_runs.exists() else [])
                   if json.loads(line)["key"] not in done]
            with runs_path.open("a") as fh:
                fh.writelines(new)
            done.update(json.loads(line)["key"] for line in new)
            print(json.dumps({"seed": seed, "fold": fold, "runs": len(new),
                              "rc": result.returncode}), flush=True)
            if result.returncode:
                print(result.stderr[-3000:], file=sys.stderr, flush=True)

    with ThreadPoolExecutor(args.workers) as pool:
        list(pool.map(train, todo))


def run_all(args: argparse.Namespace, runs_path: Path) -> None:
    done = {json.loads(line)["key"] for line in runs_path.open()} if runs_path.exists() else set()
    manifest = load_corpus(args.format, args.corpus)
    extractor = make_extractor("stft_spectrogram")
    feats = extract_all(manifest, extractor, FeatureCache("auto"), progress=False)
    dataset = Dataset(manifest.filter(lambda u: u.id in feats), feats, manifest.labels,
                      extractor)
    folds = {f.index: f for f in leave_one_speaker_out(dataset.manifest.speakers)}
    for key, variant, fraction, seed, fold_index in cells(args, list(folds)):
        fold = folds[fold_index]
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
                      dataset.split(fold.test))
        start, cpu = time.perf_counter(), time.process_time()
        record = {"key": key, "variant": variant, "fraction": fraction,
                  "seed": seed, "fold": fold.index, "test": list(fold.test)}
        try:
            work = args.out / "work" / key.replace("/", "_")
            work.mkdir(parents=True, exist_ok=True)
            trained, info = method.fit(dataset, split, RunContext(seed, fold.index, work))
            scores = method.score(trained, dataset, split.test)
            record.update(metrics=metrics_of(scores), info=info,
                          extra=method.extra(trained, dataset, split))
        except GANFailure as exc:  # a failed GAN is recorded, never scored
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


def load_runs(out: Path, extra: list[str]) -> list[dict]:
    """The runs of OUT plus those of each ``TAG=DIR`` in ``extra``, whose variants are renamed
    ``variant+TAG`` (a method change measured in its own directory); the last record of a key
    wins."""
    runs: dict[str, dict] = {}
    for tag, directory in [("", out)] + [tuple(e.split("=", 1)) for e in extra]:
        path = Path(directory) / "runs.jsonl"
        for line in path.open() if path.exists() else []:
            r = json.loads(line)
            if tag:
                r["variant"] = f"{r['variant']}+{tag}"
                r["key"] = f"{tag}:{r['key']}"
            runs[r["key"]] = r
    return list(runs.values())


COLLAPSED = 0.2  # generated crops varying < 1/5 as much as real ones: a collapsed generator


def diversity(record: dict) -> float:
    """The run's 4 generated crops against its 4 real validation crops, at the kept pass."""
    return crop_diversity(np.array(record["extra"]["fake"]), np.array(record["extra"]["real"]))


def generator_health(order: list[tuple], ok: dict) -> list[str]:
    """Per adversarial row: the generators' diversity and how many collapsed (< COLLAPSED),
    which the discriminator-loss check does not see when the discriminator is merely
    winning (loss ≈ 0.01) rather than at 0."""
    rows = []
    for variant, fraction in order:
        values = [diversity(r) for r in ok[variant, fraction] if r.get("extra", {}).get("fake")]
        if values:
            rows.append(f"| {variant} | {fraction:.0%} | {len(values)} | "
                        f"{np.median(values):.2f} ({min(values):.2f}–{max(values):.2f}) | "
                        f"{sum(v < COLLAPSED for v in values)} |")
    if not rows:
        return []
    return ["", "Generator health at the kept pass: diversity = std across 4 generated crops / "
            "std across 4 real validation crops (≈ 1 healthy, ≈ 0 one output for every "
            f"noise); collapsed = diversity < {COLLAPSED} (runs kept, not stopped: "
            "`collapse_diversity` stops them during training):", "",
            "| model | labels kept | runs | diversity, median (range) | collapsed |",
            "|---" * 5 + "|", *rows]


def mean_std(values) -> tuple[float, float]:
    v = np.array(list(values), dtype=float)
    return float(np.nanmean(v)), float(np.nanstd(v))


def cell(values) -> str:
    m, s = mean_std(values)
    return f"{m:.3f} ± {s:.3f}"


def summarise_runs(runs: list[dict], out: Path, table2_seeds: list[int],
                   figures: Path | None = None) -> str:
    """Table 2 (all labels, ``table2_seeds``), the label-fraction table with paired
    semi-minus-supervised differences, Table 3 of the model best on *validation*, and the
    figures (``dcgan_*.png`` in ``figures``, default OUT); returns the Markdown (also written
    to OUT/summary.md)."""
    figures = figures or out
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        groups.setdefault((r["variant"], r["fraction"]), []).append(r)
    ok = {k: [r for r in rs if "metrics" in r] for k, rs in groups.items()}
    folds = sorted({r["fold"] for r in runs})
    head = ["| model | labels kept | runs (folds × seeds) | failed | 5-class UA | 3-class UA "
            "| Pearson r | arousal 3-class UA | valid 3-class UA | passes (best) | s / run |",
            "|---" * 11 + "|"]

    def row(variant: str, fraction: float, rs: list[dict], n_all: int) -> str:
        m = [r["metrics"] for r in rs]
        aro = cell(x["arousal_ua3"] for x in m) if VARIANTS[variant.split("+")[0]].arousal \
            else "—"  # valence-only variants never train the arousal head
        passes = np.mean([len(r["info"]["history"]["passes"]) for r in rs])
        best = np.mean([r["info"]["history"]["best_pass"] for r in rs])
        # CPU seconds where recorded (one thread: the single-core cost, whatever the load),
        # over the runs that recorded it; wall seconds only when none did.
        timed = [r["cpu_seconds"] for r in rs if "cpu_seconds" in r]
        cpu = (f"{np.mean(timed):.0f} CPU" + (f" ({len(timed)} runs)" if len(timed) < len(rs)
                                               else "")
               if timed else f"{np.mean([r['seconds'] for r in rs]):.0f} wall")
        seeds = sorted({r["seed"] for r in rs})
        return (f"| {variant} | {fraction:.0%} | {len(rs)} ({len({r['fold'] for r in rs})} × "
                f"{len(seeds)}) | {n_all - len(rs)} | {cell(x['ua5'] for x in m)} | "
                f"{cell(x['ua3'] for x in m)} | {cell(x['pearson_r'] for x in m)} | {aro} | "
                f"{cell(r['info']['history']['best_score'] for r in rs)} | {passes:.1f} "
                f"({best:.1f}) | {cpu} |")

    text = [f"Folds run: {len(folds)} ({', '.join(map(str, folds))}); mean ± std over the "
            "runs of each row (folds × seeds). valid = the validation speaker's 3-class UA at "
            "the pass the stop rule kept.", "",
            f"**Table 2** (all labels kept; seeds {table2_seeds}):", "", *head]
    order = sorted(ok, key=lambda k: (-k[1], list(VARIANTS).index(k[0].split("+")[0]), k[0]))
    for variant, fraction in order:
        rs = [r for r in ok[variant, fraction] if r["seed"] in table2_seeds]
        if fraction == 1.0 and rs:
            text.append(row(variant, fraction, rs, sum(r["seed"] in table2_seeds
                                                       for r in groups[variant, fraction])))
    fractions = sorted({k[1] for k in ok if k[1] < 1})
    if fractions:
        text += ["", "**Label fraction** (all seeds run):", "", *head]
        curve_variants = sorted({v for v, f in ok if f < 1})
        for variant, fraction in order:
            if variant in curve_variants and ok[variant, fraction]:
                text.append(row(variant, fraction, ok[variant, fraction],
                                len(groups[variant, fraction])))
        text += ["", "Paired differences, semi-supervised minus its supervised twin, on the "
                 "same (fold, seed) runs (3-class UA; test, then validation). Per seed: the "
                 "mean Δ over the folds of each seed; p: two-sided Wilcoxon signed-rank test "
                 "of the per-fold Δ averaged over seeds (folds are the independent units):",
                 "", "| pair | labels kept | pairs | Δ test 3-class UA | semi wins | per seed | "
                 "p (folds) | Δ valid 3-class UA | Δ test 5-class UA |", "|---" * 9 + "|"]
        deltas: dict[str, dict[float, list[float]]] = {}
        for semi in curve_variants:
            base = semi.split("+")[0]
            twin = base.replace("dcgan", "cnn")
            if base == twin:
                continue
            for fraction in [*fractions, 1.0]:
                a = {(r["fold"], r["seed"]): r for r in ok.get((semi, fraction), [])}
                b = {(r["fold"], r["seed"]): r for r in ok.get((twin, fraction), [])}
                common = sorted(set(a) & set(b))
                if not common:
                    continue
                d = [a[k]["metrics"]["ua3"] - b[k]["metrics"]["ua3"] for k in common]
                dv = [a[k]["info"]["history"]["best_score"]
                      - b[k]["info"]["history"]["best_score"] for k in common]
                d5 = [a[k]["metrics"]["ua5"] - b[k]["metrics"]["ua5"] for k in common]
                seeds, fold_ids = paired_units(common, d)
                text.append(f"| {semi} − {twin} | {fraction:.0%} | {len(common)} | "
                            f"{cell(d)} | {sum(x > 0 for x in d)}/{len(d)} | {seeds} | "
                            f"{fold_ids} | {cell(dv)} | {cell(d5)} |")
                deltas.setdefault(f"{semi} − {twin}", {})[fraction] = d
        text += changes_table(ok)
        plot_curve({v: {f: mean_std(r["metrics"]["ua3"] for r in ok[v, f])
                        for (w, f) in ok if w == v and ok[w, f]}
                    | {"n": {f: len(ok[v, f]) for (w, f) in ok if w == v}}
                    for v in curve_variants}, deltas, figures / "dcgan_label_fraction.png")
    full = {k: rs for k, rs in ok.items() if k[1] == 1.0 and rs}
    if full:
        # "Best" by the validation speakers' score, never by the test speakers'.
        best = max(full, key=lambda k: mean_std(r["info"]["history"]["best_score"]
                                                for r in full[k])[0])
        rs = full[best]
        c5 = np.sum([r["metrics"]["confusion5"] for r in rs], axis=0)
        c3 = np.sum([r["metrics"]["confusion3"] for r in rs], axis=0)
        text += ["", f"**Table 3**: confusion of the model best on validation at 100 % labels "
                 f"({best[0]}), summed over its {len(rs)} runs; rows are label mass (split "
                 "labels count half in each row), columns the predicted point.", "",
                 "| 5-class | " + " | ".join(str(i) for i in range(1, 6)) + " |",
                 "|---" * 6 + "|"]
        text += [f"| {i + 1} | " + " | ".join(f"{v:.1f}" for v in row) + " |"
                 for i, row in enumerate(c5)]
        text += ["", "| 3-class | " + " | ".join(CLASSES3) + " |", "|---" * 4 + "|"]
        text += [f"| {CLASSES3[i]} | " + " | ".join(f"{v:.1f}" for v in row) + " |"
                 for i, row in enumerate(c3)]
    gan = sorted((r for r in runs if r.get("extra", {}).get("real") and "+" not in r["variant"]),
                 key=lambda r: (r["seed"], r["fold"], -r["fraction"], r["variant"]))
    if gan:
        r = gan[0]
        plot_grid(np.array(r["extra"]["real"]), np.array(r["extra"]["fake"]),
                  figures / "dcgan_samples.png")
        plot_losses(r["info"]["history"]["passes"], f"{r['variant']}, fold {r['fold']}, "
                    f"seed {r['seed']}, {r['fraction']:.0%} labels", figures / "dcgan_losses.png",
                    r["info"]["history"].get("pretrain"))
    text += generator_health(order, ok)
    failed = [r for r in runs if "failed" in r]
    text += ["", f"Runs stopped by the GAN failure check: {len(failed)}"
             + "".join(f"\n- {r['key']}: {r['failed']}" for r in failed)]
    body = "\n".join(text) + "\n"
    atomic_write_text(out / "summary.md", "# DCGAN study\n\n" + body)
    print(body)
    return body


def paired_units(keys: list[tuple[int, int]], deltas: list[float]) -> tuple[str, str]:
    """The mean Δ of each seed over its folds ("a / b / c"), and the two-sided Wilcoxon
    signed-rank p of the per-fold Δ averaged over seeds ("—" under 6 folds)."""
    from scipy.stats import wilcoxon

    by_seed: dict[int, list[float]] = {}
    by_fold: dict[int, list[float]] = {}
    for (fold, seed), d in zip(keys, deltas, strict=True):
        by_seed.setdefault(seed, []).append(d)
        by_fold.setdefault(fold, []).append(d)
    seeds = " / ".join(f"{np.mean(v):+.3f}" for _, v in sorted(by_seed.items()))
    folds = [np.mean(v) for v in by_fold.values()]
    p = f"{wilcoxon(folds).pvalue:.2f}" if len(folds) >= 6 and any(folds) else "—"
    return seeds, p


def changes_table(ok: dict[tuple, list[dict]]) -> list[str]:
    """Each method change (``variant+tag``) against the same variant without it, paired on
    (fold, seed): the validation difference is what keeps or drops the change, the test
    difference is reported after the fact; plus the discriminator / generator losses over the
    last three passes (how much the adversarial game still runs)."""
    lines = ["", "Method changes against the same variant without them, paired on the same "
             "(fold, seed) runs (3-class UA; chosen on **validation**, test after the fact):",
             "", "| change | labels kept | pairs | Δ valid 3-class UA | Δ test 3-class UA | "
             "D / G loss, last 3 passes (without: D / G) | CPU s / run (without) |",
             "|---" * 7 + "|"]

    def tail(rs: list[dict], key: str) -> float:
        return float(np.mean([np.mean([p.get(key, np.nan) for p in
                                       r["info"]["history"]["passes"][-3:]]) for r in rs]))

    def cpu(rs: list[dict]) -> str:
        timed = [r["cpu_seconds"] for r in rs if "cpu_seconds" in r]
        return f"{np.mean(timed):.0f}" if timed else "—"

    rows = 0
    for (variant, fraction), rs in sorted(ok.items()):
        if "+" not in variant or not rs:
            continue
        a = {(r["fold"], r["seed"]): r for r in rs}
        b = {(r["fold"], r["seed"]): r for r in ok.get((variant.split("+")[0], fraction), [])}
        common = sorted(set(a) & set(b))
        if not common:
            continue
        ra, rb = [a[k] for k in common], [b[k] for k in common]
        dv = [x["info"]["history"]["best_score"] - y["info"]["history"]["best_score"]
              for x, y in zip(ra, rb, strict=True)]
        dt = [x["metrics"]["ua3"] - y["metrics"]["ua3"] for x, y in zip(ra, rb, strict=True)]
        losses = " / ".join(f"{tail(ra, k):.2f}" for k in ("loss_d", "loss_g"))
        without = " / ".join(f"{tail(rb, k):.2f}" for k in ("loss_d", "loss_g"))
        lines.append(f"| {variant} | {fraction:.0%} | {len(common)} | {cell(dv)} | {cell(dt)} | "
                     f"{losses} ({without}) | {cpu(ra)} ({cpu(rb)}) |")
        rows += 1
    return lines if rows else []


def plot_curve(curve: dict, deltas: dict, path: Path) -> None:
    """Left: 3-class UA (mean ± std over runs) against the labelled share, one line per model.
    Right: the paired difference semi-supervised minus supervised twin (mean ± std over the
    same (fold, seed) runs); above zero, the unlabelled audio helped."""
    import matplotlib.pyplot as plt

    from emovox.evaluation.plots import save_figure

    fig, (ax, dx) = plt.subplots(1, 2, figsize=(10, 3.8))
    order = {v: i for i, v in enumerate(sorted(curve))}  # one colour per model in both panels
    for variant, points in sorted(curve.items()):
        i = order[variant]
        counts = points.pop("n")
        xs = sorted(points)
        n = "/".join(str(counts[x]) for x in xs)
        ax.errorbar([100 * x * (1 + 0.02 * (i - 1)) for x in xs], [points[x][0] for x in xs],
                    yerr=[points[x][1] for x in xs], marker="o", capsize=3, color=f"C{i}",
                    label=f"{variant} (runs {n})",
                    linestyle="--" if "cnn" in variant else "-")
    for pair, points in sorted(deltas.items()):
        i, xs = order[pair.split(" − ")[0]], sorted(points)
        dx.errorbar([100 * x * (1 + 0.02 * (i - 1)) for x in xs],
                    [np.mean(points[x]) for x in xs], yerr=[np.std(points[x]) for x in xs],
                    marker="o", capsize=3, color=f"C{i}",
                    label=f"{pair} (pairs {'/'.join(str(len(points[x])) for x in xs)})")
    dx.axhline(0, color="grey", lw=0.8)
    for a in (ax, dx):
        a.set_xscale("log")
        a.set_xticks([10, 25, 100], ["10", "25", "100"])
        a.set_xlabel("labelled share of training utterances (%)")
        a.legend(fontsize=7)
    ax.set_ylabel("test 3-class valence UA (derived)")
    dx.set_ylabel("Δ test 3-class UA, paired")
    fig.tight_layout()
    save_figure(fig, path)


if __name__ == "__main__":
    main()
