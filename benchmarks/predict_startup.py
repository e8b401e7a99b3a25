"""`emovox predict` wall time from a cold start with the bundled model: PyTorch against the
ONNX export that ships beside its weights (the default), side by side in one run.

Every measurement is a new Python process (`python -m emovox.cli predict ...`), so each pays
the interpreter's start-up, every import and loading the model; the two runtimes alternate,
repetition by repetition, so that load on the machine hits both alike. "Cold" is a new process,
not a cold disk: after the first repetition the OS page cache holds the libraries and the model
(the first repetition is dropped as a warm-up). Per further file: (10 files − 1 file) / 9 in
the same call.

    .venv/bin/python benchmarks/predict_startup.py [--repeat 7]
    .venv/bin/python benchmarks/predict_startup.py --model DIR --section predict_startup_recogniser

``--model DIR``: another model directory holding its own export in ``DIR/onnx`` (``emovox export
DIR --format onnx --out DIR/onnx``), e.g. a recogniser-layer model (MP-2).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from results import machine, write_section

EMODB = Path(__file__).resolve().parents[2] / "shared" / "data" / "emodb"
ONE = "03a01Wa"  # 1.9 s
TEN = ["03a01Wa", "03a02Ta", "08a02Na", "09b03Fd", "11b03Nb", "13a01Ec", "16b10Wb",
       "15a01La", "08a01Ab", "03a04Wc"]
RUNTIMES = {"torch": "PyTorch (`--runtime torch`, the old default)",
            "auto": "onnxruntime on the export in the model directory (`onnx/`, the default)"}


def wall(argv: list[str]) -> tuple[float, list[dict]]:
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    elapsed = time.perf_counter() - start
    if proc.returncode:
        sys.exit(f"{' '.join(argv)} failed: {proc.stderr.strip()}")
    return elapsed, [json.loads(line) for line in proc.stdout.splitlines()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--model", help="a model directory with its export in DIR/onnx "
                        "(default: the bundled model)")
    parser.add_argument("--section", default="predict_startup")
    args = parser.parse_args()
    model = ["--model", args.model] if args.model else []
    one = [str(EMODB / "wav" / f"{ONE}.wav")]
    ten = [str(EMODB / "wav" / f"{f}.wav") for f in TEN]
    cli = [sys.executable, "-m", "emovox.cli", "-q", "predict"]
    times: dict[tuple[str, str], list[float]] = {}
    labels: dict[str, list[str]] = {}
    imports: list[float] = []
    load_start = os.getloadavg()
    for rep in range(args.repeat + 1):
        for runtime in RUNTIMES:
            for name, files in (("one", one), ("ten", ten)):
                elapsed, out = wall([*cli, *files, *model, "--runtime", runtime])
                if rep:
                    times.setdefault((runtime, name), []).append(elapsed)
                labels[runtime] = [o["label"] for o in out]
        elapsed, _ = wall([sys.executable, "-c", "import torch"])
        if rep:
            imports.append(elapsed)
        print(f"repetition {rep}: " + ", ".join(f"{k[0]}/{k[1]} {v[-1]:.2f} s"
                                               for k, v in times.items()), flush=True)
    load_end = os.getloadavg()
    med = {k: statistics.median(v) for k, v in times.items()}
    lines = [
        f"## `emovox predict` start-up ({args.section})",
        "",
        f"{machine()}; load average (1 / 5 / 15 min) {' / '.join(f'{x:.2f}' for x in load_start)}"
        f" at the start, {' / '.join(f'{x:.2f}' for x in load_end)} at the end. "
        f"{'Model `' + args.model + '` with its export' if args.model else 'The bundled model'}"
        f"; {args.repeat} repetitions after one warm-up, the two runtimes alternating; "
        "median wall time of a new process (`python -m emovox.cli predict`), so interpreter "
        "start-up, imports and model loading are included. The OS page cache is warm (the "
        "warm-up run read every library and the model). Target: < 2 s for one file, < 0.2 s "
        "per further file.",
        "",
        "```",
        ".venv/bin/python benchmarks/predict_startup.py" + (
            f" --model {args.model} --section {args.section}" if args.model else ""),
        "```",
        "",
        "| runtime | one file (1.9 s of audio) | ten files | per further file | min / max, one |",
        "|---|---|---|---|---|",
    ]
    for runtime, what in RUNTIMES.items():
        a, b = med[(runtime, "one")], med[(runtime, "ten")]
        runs = times[(runtime, "one")]
        lines.append(f"| {what} | **{a:.2f} s** | {b:.2f} s | {(b - a) / 9:.3f} s | "
                     f"{min(runs):.2f} / {max(runs):.2f} s |")
    ratio = med[("torch", "one")] / med[("auto", "one")]
    same = labels["torch"] == labels["auto"]
    lines += ["", f"One file: {ratio:.1f}× faster on onnxruntime. `python -c \"import torch\"` "
              f"alone: {statistics.median(imports):.2f} s (median). The ten files' labels are "
              f"{'identical' if same else 'NOT identical'} under both runtimes."]
    write_section(args.section, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
