"""Emo-DB 7-class, leave-one-speaker-out (10 folds): the SVM anchors and the neural models,
side by side in one run, each from a clean output directory so wall times are honest.

    .venv/bin/python benchmarks/emodb_models.py [--only NAME ...]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

from results import machine, write_section

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = [
    ("svm_functionals", "ComParE 2016 functionals", "configs/emodb_svm_compare.yaml"),
    ("svm_functionals", "eGeMAPSv02 functionals", "configs/emodb_svm_egemaps.yaml"),
    ("bigru", "egemaps_lld", "configs/emodb_bigru.yaml"),
    ("cnn1d", "egemaps_lld", "configs/emodb_cnn1d.yaml"),
    ("gru_baseline", "mfcc_prosody", "configs/emodb_gru_baseline.yaml"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="config file stems to run")
    args = parser.parse_args()
    rows = []
    for model, features, config in CONFIGS:
        stem = Path(config).stem
        if args.only and stem not in args.only:
            continue
        out = ROOT / "runs" / "bench" / stem
        shutil.rmtree(out, ignore_errors=True)
        command = [sys.executable, "-m", "emovox.cli", "-q", "experiment", config, "--out",
                   str(out.relative_to(ROOT))]
        print("running", " ".join(command[2:]), flush=True)
        subprocess.run(command, cwd=ROOT, check=True)
        m = json.loads((out / "metrics.json").read_text())
        rows.append((model, features, m, f"emovox experiment {config}"))

    def cell(m: dict, key: str) -> str:
        return f"{m[key]['mean']:.3f} ± {m[key]['std']:.3f}"

    lines = [
        "## Emo-DB 7-class, leave-one-speaker-out",
        "",
        "Protocol: speaker-independent leave-one-speaker-out, 10 folds (each speaker tests once; "
        "another held-out speaker validates: checkpoint / SVM C chosen on it), seed 0. "
        f"Mean ± std over the 10 test speakers. Wall time includes feature extraction "
        f"(cache warm if an earlier run filled it); 2 folds trained in parallel; {machine()}.",
        "",
        "```",
        ".venv/bin/python benchmarks/emodb_models.py",
        "```",
        "",
        "| model | features | UAR | WA | macro-F1 | wall time | command |",
        "|---|---|---|---|---|---|---|",
        *[f"| {model} | {feats} | {cell(m, 'uar')} | {cell(m, 'wa')} | {cell(m, 'macro_f1')} "
          f"| {m['wall_seconds']:.0f} s | `{cmd}` |" for model, feats, m, cmd in rows],
    ]
    write_section("emodb_models" if not args.only else "emodb_models_partial", "\n".join(lines))


if __name__ == "__main__":
    main()
