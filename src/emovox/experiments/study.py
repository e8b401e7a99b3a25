"""A study: one base experiment, named variants of it, and the tables that compare them.

A study YAML holds ``name``, ``base`` (an experiment config, inline), ``variants`` (name →
dotted overrides of the base; a mapping value replaces that whole entry, so change single
settings with dotted keys such as ``features.name``) and ``tables`` (title → variant names,
one row each, all of one task kind; without it, one table per kind). Each variant runs as an
ordinary, resumable experiment in ``OUT/<variant>``; ``OUT/study.md`` and ``OUT/study.json``
put every variant's metrics on every test set side by side, with the relative drop from the
clean test to each other test set.
"""

from __future__ import annotations

import copy
import json
import shlex
from pathlib import Path

from emovox.errors import ConfigError
from emovox.evaluation.metrics import format_summary
from emovox.experiments.config import apply_overrides, build_config, read_yaml
from emovox.experiments.runner import run_experiment
from emovox.io import atomic_write_json, atomic_write_text

CATEGORICAL = ("uar", "wa", "macro_f1")
DIMENSIONAL = ("arousal_ccc", "valence_ccc", "arousal_pearson", "valence_pearson",
               "arousal_mae", "valence_mae")


def load_study(path: str | Path) -> dict:
    data = read_yaml(path)
    unknown = set(data) - {"name", "base", "variants", "tables"}
    if unknown:
        raise ConfigError(f"{path}: unknown study key(s) {sorted(unknown)}")
    if not data.get("variants"):
        raise ConfigError(f"{path}: a study needs variants")
    kinds = {name: build_config(apply_overrides(copy.deepcopy(data.get("base") or {}),
                                                overrides or {})).task.kind
             for name, overrides in data["variants"].items()}  # fail before anything runs
    for title, rows in (data.get("tables") or {}).items():
        missing = set(rows) - set(data["variants"])
        if missing:
            raise ConfigError(f"{path}: table {title!r} names unknown variant(s) {sorted(missing)}")
        if len({kinds[row] for row in rows}) > 1:
            raise ConfigError(f"{path}: table {title!r} mixes categorical and dimensional "
                              "variants (different columns); give each kind its own table")
    return data


def run_study(path: str | Path, out: Path, only: list[str] | None = None,
              overrides: list[str] = (), progress: bool = True) -> dict:
    """Run (or resume) the variants (all, or ``only`` these); ``overrides`` apply to the base
    of every variant (e.g. ``protocol.folds=[0]`` for a smoke run)."""
    study = load_study(path)
    unknown = set(only or ()) - set(study["variants"])
    if unknown:
        raise ConfigError(f"{path}: no variant(s) {sorted(unknown)}")
    names = [n for n in study["variants"] if not only or n in only]
    results = {}
    for name in names:
        base = apply_overrides(copy.deepcopy(study.get("base") or {}), list(overrides))
        data = apply_overrides(base, study["variants"][name] or {})
        data["name"] = f"{study.get('name', 'study')}/{name}"
        config = build_config(data)
        config.training.progress = config.training.progress and progress
        command = f"emovox study {shlex.quote(str(path))} --out {shlex.quote(str(out))} " \
                  f"--only {name}"
        results[name] = run_experiment(config, out / name, command, progress, out / "shared")
    for name in study["variants"]:  # variants finished by earlier (e.g. --only) runs
        done = out / name / "metrics.json"
        if name not in results and done.exists():
            results[name] = json.loads(done.read_text())
    results = {n: results[n] for n in study["variants"] if n in results}
    summary = {"name": study.get("name"), "command": f"emovox study {path} --out {out}",
               "variants": {n: _headline(m) for n, m in results.items()}}
    atomic_write_json(out / "study.json", summary)
    atomic_write_text(out / "study.md", markdown(study, summary))
    return summary


def _headline(metrics: dict) -> dict:
    """{test set: {metric: [mean, std]}} with the clean test first."""
    keys = DIMENSIONAL if metrics.get("task") == "dimensional" else CATEGORICAL
    tests = {"clean": metrics, **metrics.get("tests", {})}
    return {test: {k: [m[k]["mean"], m[k]["std"]] for k in keys if k in m}
            for test, m in tests.items()}


def _tables_by_kind(variants: dict) -> dict[str, list[str]]:
    """Without ``tables``: every variant in one table, or one table per task kind (their
    columns differ)."""
    kinds = {n: "Dimensional" if set(v["clean"]) <= set(DIMENSIONAL) else "Categorical"
             for n, v in variants.items()}
    if len(set(kinds.values())) == 1:
        return {"All variants": list(variants)}
    return {f"{kind} variants": [n for n in variants if kinds[n] == kind]
            for kind in ("Categorical", "Dimensional")}


def markdown(study: dict, summary: dict) -> str:
    lines = [f"# {study.get('name', 'study')}", "", "Reproduce with:", "", "```",
             summary["command"], "```", "",
             "Each cell: mean ± std over the leave-one-speaker-out folds (the protocol is in "
             "each variant's report.md). 'drop' is the relative loss from the clean test: "
             "(clean − other) / clean.", ""]
    tables = study.get("tables") or _tables_by_kind(summary["variants"])
    for title, rows in tables.items():
        rows = [r for r in rows if r in summary["variants"]]
        if not rows:
            continue
        first = summary["variants"][rows[0]]
        tests = list(first)
        keys = list(first["clean"])
        header = ["variant"] + [f"{k} ({t})" for t in tests for k in keys]
        header += [f"{keys[0]} drop ({t})" for t in tests[1:]]
        lines += [f"## {title}", "", "| " + " | ".join(header) + " |",
                  "|---" * len(header) + "|"]
        for row in rows:
            cells = summary["variants"][row]
            values = [format_summary(*cells[t][k]) for t in tests for k in keys
                      if k in cells.get(t, {})]
            clean = cells["clean"][keys[0]][0]
            drops = [f"{100 * (clean - cells[t][keys[0]][0]) / clean:.1f} %" for t in tests[1:]
                     if t in cells]
            lines.append(f"| {row} | " + " | ".join(values + drops) + " |")
        lines.append("")
    return "\n".join(lines)
