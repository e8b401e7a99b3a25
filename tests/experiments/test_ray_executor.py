"""Ray as the executor: the same metrics as the process pool on real Emo-DB speakers, resumption,
and a cluster that cannot be reached."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import yaml

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.e2e  # runs experiments on real corpus speakers

CONFIG = {
    "name": "ray_smoke",
    "corpus": {"format": "emodb", "path": None, "speakers": ["03", "08", "09"],
               "labels": ["anger", "neutral", "sadness"]},
    "features": {"name": "mfcc_prosody", "normalise": "speaker", "stack": 3, "cache": None,
                 "workers": 1},
    "protocol": {"name": "loso", "seeds": [0, 1]},
    "model": {"name": "gru_baseline", "params": {"hidden": 16}},
    "training": {"epochs": 2, "batch_size": 16, "lr": 0.005, "progress": False},
    "workers": 2,
}


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _config(emodb, tmp_path, **changes):
    config = {**CONFIG, "corpus": {**CONFIG["corpus"], "path": str(emodb)},
              "features": {**CONFIG["features"], "cache": str(tmp_path / "cache")}, **changes}
    return config


def _run(config: dict, out):
    from emovox.experiments.config import build_config
    from emovox.experiments.runner import run_experiment

    return run_experiment(build_config(config), out, progress=False)


def _per_fold(out):
    return {p.parent.name + p.parent.parent.name: json.loads(p.read_text())["test"]["metrics"]
            for p in sorted(out.glob("runs/seed*/fold*/result.json"))}


def test_ray_equals_process_pool_and_resumes(local_ray, emodb, tmp_path):
    pool = _run(_config(emodb, tmp_path), tmp_path / "pool")
    spec = {"backend": "ray", "address": "auto"}
    on_ray = _run(_config(emodb, tmp_path, workers=spec,
                          features={**CONFIG["features"], "cache": None, "workers": spec}),
                  tmp_path / "ray")
    for key in ("uar", "wa", "macro_f1"):
        assert on_ray[key]["values"] == pool[key]["values"]
    assert _per_fold(tmp_path / "ray") == _per_fold(tmp_path / "pool")
    assert len(_per_fold(tmp_path / "ray")) == 6  # 3 folds × 2 seeds
    # a driver killed after some folds: the rest run on Ray, the finished ones are read back
    resumed = tmp_path / "resumed"
    shutil.copytree(tmp_path / "ray", resumed)
    for path in list(resumed.glob("runs/seed1/fold*/result.json")) + [resumed / "metrics.json"]:
        path.unlink()
    again = _run(_config(emodb, tmp_path, workers=spec), resumed)
    assert again["uar"]["values"] == pool["uar"]["values"]


def test_unreachable_cluster_is_one_line(emodb, tmp_path):
    config = _config(emodb, tmp_path, workers={"backend": "ray", "address": "127.0.0.1:9"},
                     protocol={"name": "loso", "seeds": [0], "folds": [0, 1]})
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = subprocess.run([sys.executable, "-m", "emovox.cli", "-q", "experiment", str(path),
                           "--out", str(tmp_path / "out")], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot reach the Ray cluster at '127.0.0.1:9'" in lines[0]


def test_bad_workers_mapping(emodb, tmp_path):
    from emovox.errors import ConfigError

    with pytest.raises(ConfigError, match="workers: expected a count or"):
        _run(_config(emodb, tmp_path, workers={"backend": "dask"}), tmp_path / "x")
