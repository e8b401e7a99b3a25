"""A cross-validated experiment: every fold of every seed, resumable, then one report.

Output directory::

    config.yaml        resolved configuration
    folds.json         train/valid/test speakers of every fold and seed
    runs/seed{S}/fold{K}/result.json   one finished fold (the unit of resumption)
    runs/seed{S}/fold{K}/checkpoint.pt training state of an unfinished fold
    metrics.json  predictions.csv  confusion.png  report.md
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from pathlib import Path

import yaml
from tqdm import tqdm

from emovox.errors import ConfigError
from emovox.experiments.config import ExperimentConfig, build_config, to_dict
from emovox.experiments.dataset import Dataset, check_corpus, load_dataset, load_test_sets
from emovox.experiments.methods.base import FoldResult, RunContext, Split, fold_dir, make_method
from emovox.experiments.protocols import Fold, make_folds, write_folds
from emovox.experiments.report import write_reports
from emovox.io import atomic_write_json, atomic_write_text, run_lock
from emovox.parallel import imap

log = logging.getLogger(__name__)


def run_fold(config: ExperimentConfig, dataset: Dataset, fold: Fold, run: RunContext,
             test_sets: dict[str, Dataset] | None = None) -> FoldResult:
    """Train on the fold's training speakers, select on validation, score the test speakers
    (and the same utterances in every extra test set)."""
    start = time.time()
    method = make_method(config)
    split = Split(*(dataset.split(s) for s in (fold.train, fold.valid, fold.test)))
    trained, info = method.fit(dataset, split, run)
    ids = {u.id for u in split.test}
    result = FoldResult(
        seed=run.seed, fold=fold.index, test_speakers=list(fold.test),
        valid_speakers=list(fold.valid),
        test=method.score(trained, dataset, split.test),
        tests={name: method.score(trained, other,
                                  other.manifest.filter(lambda u: u.id in ids))
               for name, other in (test_sets or {}).items()},
        training=info, extra=method.extra(trained, dataset, split))
    result.seconds = time.time() - start
    atomic_write_json(run.work_dir / "result.json", result.to_json())
    for checkpoint in run.work_dir.glob("*checkpoint*.pt"):
        checkpoint.unlink()
    return result


def _run_fold_job(args: tuple) -> FoldResult:
    logging.basicConfig(level=logging.WARNING)
    return run_fold(*args)


#: Settings that change how a run goes, not what it computes: free to differ on resumption.
RUN_SETTINGS = {("name",), ("workers",), ("training", "progress"), ("training", "threads"),
                ("features", "workers"), ("features", "cache"), ("protocol", "folds")}


def _results_part(data: dict, path: tuple = ()) -> dict:
    return {k: _results_part(v, (*path, k)) if isinstance(v, dict) else v
            for k, v in data.items() if (*path, k) not in RUN_SETTINGS}


def _comparable(data: dict) -> dict:
    """The results part of a config with every default filled in, so that a run written
    before a setting existed compares equal when the setting keeps its default."""
    with contextlib.suppress(ConfigError):  # one this version cannot read: compare as written
        data = to_dict(build_config(data))
    return _results_part(yaml.safe_load(yaml.safe_dump(data)))


def check_same_config(path: Path, config: ExperimentConfig) -> None:
    """Refuse to resume into a directory whose finished folds came from another config."""
    if not path.exists():
        return
    before = _comparable(yaml.safe_load(path.read_text()) or {})
    now = _comparable(to_dict(config))
    if before != now:
        changed = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
        raise ConfigError(f"{path.parent}: holds a run with a different config (differs in "
                          f"{', '.join(changed)}); use another --out or delete it")


def run_experiment(config: ExperimentConfig, out: Path, command: str = "",
                   progress: bool = True, shared_dir: Path | None = None) -> dict:
    """Run (or resume) every fold of every seed and write the report; returns metrics.json.
    ``shared_dir`` holds what runs side by side may reuse (``emovox study`` passes
    ``OUT/shared`` to its variants); a run on its own shares nothing."""
    check_corpus(config.corpus)  # a missing corpus leaves no output directory behind
    _lock = run_lock(out)  # held until return: one run (and its workers) per directory
    out.mkdir(parents=True, exist_ok=True)
    check_same_config(out / "config.yaml", config)
    atomic_write_text(out / "config.yaml", yaml.safe_dump(to_dict(config), sort_keys=False))
    started = time.time()
    dataset = load_dataset(config, progress)
    test_sets = load_test_sets(config, dataset, progress)
    folds_by_seed = {
        seed: make_folds(dataset.manifest, config.protocol.name, seed, config.protocol.k,
                         config.protocol.train_only)
        for seed in config.protocol.seeds
    }
    n_folds = min(len(f) for f in folds_by_seed.values())
    outside = sorted(set(config.protocol.folds or ()) - set(range(n_folds)))
    if outside:
        raise ConfigError(f"protocol.folds: {outside} out of range: this corpus has folds "
                          f"0..{n_folds - 1} under {config.protocol.name}")
    write_folds(out / "folds.json", config.protocol.name, folds_by_seed)
    jobs, results = [], []
    for seed, folds in folds_by_seed.items():
        for fold in folds:
            if config.protocol.folds is not None and fold.index not in config.protocol.folds:
                continue
            work_dir = fold_dir(out, seed, fold.index)
            done = work_dir / "result.json"
            if done.exists():
                results.append(FoldResult.from_json(json.loads(done.read_text())))
            else:
                run = RunContext(seed, fold.index, work_dir, shared_dir)
                jobs.append((config, dataset, fold, run, test_sets))
    if results:
        log.info("resuming: %d fold(s) already done, %d to go", len(results), len(jobs))
    bar = tqdm(total=len(jobs) + len(results), initial=len(results), desc=config.name,
               unit="fold", disable=not progress)
    for result in imap(_run_fold_job, jobs, config.workers):
        done = fold_dir(out, result.seed, result.fold) / "result.json"
        if not done.exists():  # the fold ran on another machine (Ray): keep it here too
            atomic_write_json(done, result.to_json())
        results.append(result)
        bar.update()
    bar.close()
    results.sort(key=lambda r: (r.seed, r.fold))
    return write_reports(out, config, dataset.labels, results, time.time() - started, command,
                         make_method(config).report(results, out), dataset.manifest.problems)
