"""The DCGAN study driver: cells trained in parallel processes equal the same cells trained in
one process, and their runs are merged into the study's runs.jsonl."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TINY = {"max_passes": 1, "patience": 1, "width": 64, "kernel": 3, "filters": 8,
        "gen_filters": 8, "batch_size": 64, "adversarial_batch": 16, "lr": 0.001, "threads": 1}


def study(out: Path, corpus: Path, *extra: str) -> dict[str, float]:
    cmd = [sys.executable, str(ROOT / "benchmarks" / "dcgan_study.py"), "--corpus", str(corpus),
           "--out", str(out), "--folds", "0", "--variants", "basic_cnn", "--no-summary",
           "--params", json.dumps(TINY), *extra]
    env = os.environ | {"PYTHONPATH": str(ROOT / "src")}
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    return {r["key"]: r["metrics"]["ua3"]
            for r in map(json.loads, (out / "runs.jsonl").read_text().splitlines())}


def test_parallel_cells_equal_sequential_ones_and_are_merged(tmp_path, emodb):
    parallel = study(tmp_path / "par", emodb, "--seeds", "0", "1", "--workers", "2")
    assert set(parallel) == {"basic_cnn/f1.0/s0/fold0", "basic_cnn/f1.0/s1/fold0"}
    sequential = study(tmp_path / "seq", emodb, "--seeds", "1")
    assert sequential["basic_cnn/f1.0/s1/fold0"] == parallel["basic_cnn/f1.0/s1/fold0"]
    again = study(tmp_path / "par", emodb, "--seeds", "0", "1", "--workers", "2")
    assert again == parallel  # finished cells are not trained or appended twice
