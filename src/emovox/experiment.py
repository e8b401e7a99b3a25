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
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch
import yaml
from tqdm import tqdm

from emovox.config import ExperimentConfig, to_dict
from emovox.evaluation.metrics import classification_metrics
from emovox.evaluation.report import write_report
from emovox.io import atomic_write_json, atomic_write_text
from emovox.models import build_model
from emovox.pipeline import Dataset, fit_normaliser, load_dataset
from emovox.protocols import Fold, make_folds, write_folds
from emovox.training import fit, predict
from emovox.training.trainer import seed_everything

log = logging.getLogger(__name__)


class Ensemble(list):
    """Models of one fold trained from different seeds; their probabilities are averaged."""


def train_model(config: ExperimentConfig, dataset: Dataset, train, valid, seed: int,
                checkpoint_dir: Path | None = None):
    """Build, normalise and train ``config.model.ensemble`` models; returns (model or
    Ensemble, normaliser, training info). EmoRL trains its baseline, then the agent."""
    if config.model.name == "emorl":
        from emovox.early.study import train_emorl_model

        agent, _, normaliser, info, _, _ = train_emorl_model(config, dataset, train, valid, seed,
                                                             checkpoint_dir)
        return agent, normaliser, info
    normaliser = fit_normaliser(dataset, train, config.features.normalise)
    train_set = dataset.sequences(train, normaliser)
    valid_set = dataset.sequences(valid, normaliser)
    members, infos = Ensemble(), []
    for member in range(config.model.ensemble):
        member_seed = seed * 1000 + member
        seed_everything(member_seed)
        model = build_model(config.model.name, dataset.input_dim, len(dataset.labels),
                            **config.model.params)
        if isinstance(model, torch.nn.Module):
            ckpt = checkpoint_dir / f"checkpoint{member}.pt" if checkpoint_dir else None
            history = fit(model, train_set, valid_set, config.training, member_seed, ckpt)
            infos.append({"best_epoch": history.best_epoch, "epochs": history.epoch + 1,
                          "history": history.records})
        else:
            infos.append(model.fit((train_set.feats, train_set.targets),
                                   (valid_set.feats, valid_set.targets)))
        members.append(model)
    if len(members) == 1:
        return members[0], normaliser, infos[0]
    return members, normaliser, {"members": infos}


def model_proba(model, data) -> np.ndarray:
    if isinstance(model, Ensemble):
        return np.mean([model_proba(m, data) for m in model], axis=0)
    if isinstance(model, torch.nn.Module):
        return predict(model, data)
    return model.predict_proba(data.feats)


def run_fold(config: ExperimentConfig, dataset: Dataset, fold: Fold, seed: int,
             fold_dir: Path) -> dict:
    """Train on the fold's training speakers, select on validation, score the test speakers."""
    start = time.time()
    train, valid, test = (dataset.split(s) for s in (fold.train, fold.valid, fold.test))
    model, normaliser, info = train_model(config, dataset, train, valid, seed, fold_dir)
    test_set = dataset.sequences(test, normaliser)
    proba = model_proba(model, test_set)
    result = {
        "seed": seed,
        "fold": fold.index,
        "test_speakers": list(fold.test),
        "valid_speakers": list(fold.valid),
        "metrics": classification_metrics(test_set.targets, proba),
        "training": info,
        "seconds": time.time() - start,
        "predictions": [
            {"id": u.id, "speaker": u.speaker, "true": dataset.labels[t],
             "pred": dataset.labels[int(p.argmax())], "proba": [round(float(v), 6) for v in p]}
            for u, t, p in zip(test, test_set.targets, proba, strict=True)
        ],
    }
    atomic_write_json(fold_dir / "result.json", result)
    for checkpoint in fold_dir.glob("checkpoint*.pt"):
        checkpoint.unlink()
    return result


def fold_runner(config: ExperimentConfig):
    """Models with their own study (EmoRL) run their own fold procedure and extra report."""
    if config.model.name == "emorl":
        from emovox.early.study import run_emorl_fold

        return run_emorl_fold
    return run_fold


def _run_fold_job(args: tuple) -> dict:
    config, dataset, fold, seed, fold_dir = args
    logging.basicConfig(level=logging.WARNING)
    return fold_runner(config)(config, dataset, fold, seed, fold_dir)


def run_experiment(config: ExperimentConfig, out: Path, command: str = "",
                   progress: bool = True) -> dict:
    """Run (or resume) every fold of every seed and write the report; returns metrics.json."""
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.yaml", yaml.safe_dump(to_dict(config), sort_keys=False))
    started = time.time()
    dataset = load_dataset(config, progress)
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
                jobs.append((config, dataset, fold, seed, fold_dir))
    if results:
        log.info("resuming: %d fold(s) already done, %d to go", len(results), len(jobs))
    bar = tqdm(total=len(jobs) + len(results), initial=len(results), desc=config.name,
               unit="fold", disable=not progress)
    if config.workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(config.workers, mp_context=get_context("spawn")) as pool:
            for result in pool.map(_run_fold_job, jobs):
                results.append(result)
                bar.update()
    else:
        for job in jobs:
            results.append(_run_fold_job(job))
            bar.update()
    bar.close()
    results.sort(key=lambda r: (r["seed"], r["fold"]))
    metrics = write_report(out, config, dataset.labels, results, time.time() - started, command)
    if "early" in results[0]:
        from emovox.early.report import write_early_report

        metrics["early"] = write_early_report(out, config, results)
    return metrics
