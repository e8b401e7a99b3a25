"""A cross-validated experiment: every fold of every seed, resumable, then one report.

Output directory::

    config.yaml        resolved configuration
    folds.json         train/valid/test speakers of every fold and seed
    runs/seed{S}/fold{K}/result.json   one finished fold (the unit of resumption)
    runs/seed{S}/fold{K}/checkpoint.pt training state of an unfinished fold
    metrics.json  predictions.csv  confusion.png  report.md
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from tqdm import tqdm

from emovox.errors import ConfigError
from emovox.evaluation.metrics import classification_metrics, dimensional_metrics
from emovox.evaluation.report import write_reports
from emovox.experiments.config import ExperimentConfig, to_dict
from emovox.experiments.dataset import Dataset, load_dataset, load_test_sets
from emovox.experiments.protocols import Fold, make_folds, write_folds
from emovox.io import atomic_write_json, atomic_write_text, run_lock
from emovox.models import build_model
from emovox.parallel import imap
from emovox.training import fit, predict
from emovox.training.tasks import Classification, Regression
from emovox.training.trainer import class_weight_tensor, seed_everything

log = logging.getLogger(__name__)


class Ensemble(list):
    """Models of one fold trained from different seeds; their probabilities are averaged."""


def make_task(config: ExperimentConfig, dataset: Dataset, targets: np.ndarray):
    if dataset.dimensional:
        return Regression(config.task.loss, targets)
    weights = (class_weight_tensor(targets, len(dataset.labels)) if config.training.class_weights
               else None)
    return Classification(len(dataset.labels), weights)


def train_model(config: ExperimentConfig, dataset: Dataset, train, valid, seed: int,
                checkpoint_dir: Path | None = None):
    """Build, normalise and train ``config.model.ensemble`` models; returns (model or
    Ensemble, normaliser, training info). EmoRL trains its baseline, then the agent."""
    if config.model.name == "emorl":
        from emovox.experiments.methods.emorl import train_emorl_model

        agent, _, normaliser, info, _, _ = train_emorl_model(config, dataset, train, valid, seed,
                                                             checkpoint_dir)
        return agent, normaliser, info
    normaliser = dataset.fit_normaliser(train, config.features.normalise)
    train_set = dataset.training_set(train, normaliser)
    valid_set = dataset.sequences(valid, normaliser)
    task = make_task(config, dataset, train_set.targets)
    members, infos = Ensemble(), []
    for member in range(config.model.ensemble):
        member_seed = seed * 1000 + member
        seed_everything(member_seed)
        model = build_model(config.model.name, dataset.input_dim, dataset.n_outputs,
                            **config.model.params)
        if isinstance(model, torch.nn.Module):
            ckpt = checkpoint_dir / f"checkpoint{member}.pt" if checkpoint_dir else None
            history = fit(model, train_set, valid_set, config.training, member_seed, ckpt, task)
            infos.append({"best_epoch": history.best_epoch, "epochs": history.epoch + 1,
                          "history": history.records})
        else:
            if dataset.dimensional or dataset.augmented:
                raise ConfigError(f"{config.model.name} supports neither dimensional targets "
                                  "nor augmentation")
            infos.append(model.fit((train_set.feats, train_set.targets),
                                   (valid_set.feats, valid_set.targets)))
        members.append(model)
    if len(members) == 1:
        return members[0], normaliser, infos[0]
    return members, normaliser, {"members": infos}


def model_proba(model, data, task=None) -> np.ndarray:
    """Class probabilities (or dimensional values, given a Regression task) of ``data``."""
    if isinstance(model, Ensemble):
        return np.mean([model_proba(m, data, task) for m in model], axis=0)
    if isinstance(model, torch.nn.Module):
        return predict(model, data, task=task)
    return model.predict_proba(data.feats)


def score_test(dataset: Dataset, model, normaliser, task, test) -> dict:
    """Metrics and per-utterance predictions of ``model`` on the utterances ``test``."""
    data = dataset.sequences(test, normaliser)
    if dataset.dimensional:
        values = model_proba(model, data, task)
        return {
            "metrics": dimensional_metrics(data.targets, values, dataset.task.dimensions),
            "predictions": [
                {"id": u.id, "speaker": u.speaker, "label": u.label,
                 "true": [float(v) for v in t], "pred": [round(float(v), 6) for v in p]}
                for u, t, p in zip(test, data.targets, values, strict=True)
            ],
        }
    proba = model_proba(model, data)
    return {
        "metrics": classification_metrics(data.targets, proba),
        "predictions": [
            {"id": u.id, "speaker": u.speaker, "true": dataset.labels[t],
             "pred": dataset.labels[int(p.argmax())], "proba": [round(float(v), 6) for v in p]}
            for u, t, p in zip(test, data.targets, proba, strict=True)
        ],
    }


def run_fold(config: ExperimentConfig, dataset: Dataset, fold: Fold, seed: int,
             fold_dir: Path, test_sets: dict[str, Dataset] | None = None) -> dict:
    """Train on the fold's training speakers, select on validation, score the test speakers
    (and the same utterances in every extra test set)."""
    start = time.time()
    train, valid, test = (dataset.split(s) for s in (fold.train, fold.valid, fold.test))
    model, normaliser, info = train_model(config, dataset, train, valid, seed, fold_dir)
    task = make_task(config, dataset, dataset.targets(train))  # the one the model trained on
    result = {
        "seed": seed,
        "fold": fold.index,
        "test_speakers": list(fold.test),
        "valid_speakers": list(fold.valid),
        **score_test(dataset, model, normaliser, task, test),
        "training": info,
    }
    ids = {u.id for u in test}
    result["tests"] = {
        name: score_test(other, model, normaliser, task,
                         other.manifest.filter(lambda u: u.id in ids))
        for name, other in (test_sets or {}).items()
    }
    result["seconds"] = time.time() - start
    atomic_write_json(fold_dir / "result.json", result)
    for checkpoint in fold_dir.glob("checkpoint*.pt"):
        checkpoint.unlink()
    return result


def _run_fold_job(args: tuple) -> dict:
    config, dataset, fold, seed, fold_dir, test_sets = args
    logging.basicConfig(level=logging.WARNING)
    if config.model.name == "emorl":
        from emovox.experiments.methods.emorl import run_emorl_fold

        return run_emorl_fold(config, dataset, fold, seed, fold_dir)
    return run_fold(config, dataset, fold, seed, fold_dir, test_sets)


#: Settings that change how a run goes, not what it computes: free to differ on resumption.
RUN_SETTINGS = {("name",), ("workers",), ("training", "progress"), ("training", "threads"),
                ("features", "workers"), ("features", "cache"), ("protocol", "folds")}


def _results_part(data: dict, path: tuple = ()) -> dict:
    return {k: _results_part(v, (*path, k)) if isinstance(v, dict) else v
            for k, v in data.items() if (*path, k) not in RUN_SETTINGS}


def check_same_config(path: Path, config: ExperimentConfig) -> None:
    """Refuse to resume into a directory whose finished folds came from another config."""
    if not path.exists():
        return
    before = _results_part(yaml.safe_load(path.read_text()) or {})
    now = _results_part(yaml.safe_load(yaml.safe_dump(to_dict(config))))
    if before != now:
        changed = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
        raise ConfigError(f"{path.parent}: holds a run with a different config (differs in "
                          f"{', '.join(changed)}); use another --out or delete it")


def run_experiment(config: ExperimentConfig, out: Path, command: str = "",
                   progress: bool = True) -> dict:
    """Run (or resume) every fold of every seed and write the report; returns metrics.json."""
    _lock = run_lock(out)  # held until return: one run (and its workers) per directory
    out.mkdir(parents=True, exist_ok=True)
    check_same_config(out / "config.yaml", config)
    atomic_write_text(out / "config.yaml", yaml.safe_dump(to_dict(config), sort_keys=False))
    started = time.time()
    dataset = load_dataset(config, progress)
    test_sets = load_test_sets(config, dataset, progress)
    folds_by_seed = {
        seed: make_folds(dataset.manifest, config.protocol.name, seed, config.protocol.k)
        for seed in config.protocol.seeds
    }
    write_folds(out / "folds.json", config.protocol.name, folds_by_seed)
    jobs, results = [], []
    for seed, folds in folds_by_seed.items():
        for fold in folds:
            if config.protocol.folds is not None and fold.index not in config.protocol.folds:
                continue
            fold_dir = out / "runs" / f"seed{seed}" / f"fold{fold.index}"
            done = fold_dir / "result.json"
            if done.exists():
                results.append(json.loads(done.read_text()))
            else:
                jobs.append((config, dataset, fold, seed, fold_dir, test_sets))
    if results:
        log.info("resuming: %d fold(s) already done, %d to go", len(results), len(jobs))
    bar = tqdm(total=len(jobs) + len(results), initial=len(results), desc=config.name,
               unit="fold", disable=not progress)
    for result in imap(_run_fold_job, jobs, config.workers):
        results.append(result)
        bar.update()
    bar.close()
    results.sort(key=lambda r: (r["seed"], r["fold"]))
    metrics = write_reports(out, config, dataset, results, time.time() - started, command)
    if "early" in results[0]:
        from emovox.early.report import write_early_report

        metrics["early"] = write_early_report(out, config, results)
    return metrics
