"""``emovox experiment``, ``study`` and ``train``: the commands that run a YAML config."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from emovox.cli.common import EXIT_OK, Command, default, emit

#: The metrics an experiment's JSON line carries (those the run reports).
HEADLINE = ("uar", "wa", "macro_f1", "auc", "ccc", "arousal_ccc", "valence_ccc")


def cmd_experiment(args: argparse.Namespace) -> int:
    from emovox.experiments.config import load_config
    from emovox.experiments.runner import run_experiment

    config = load_config(args.config, args.overrides)
    config.training.progress = config.training.progress and not args.quiet
    out = Path(args.out or Path("runs") / config.name)
    command = " ".join(shlex.quote(a) for a in ["emovox", "experiment", args.config,
                                                 *(["--out", args.out] if args.out else []),
                                                 *args.overrides])
    metrics = run_experiment(config, out, command, progress=not args.quiet)
    summary = {k: metrics[k]["mean"] for k in HEADLINE if k in metrics}
    line = {"experiment": config.name, "out": str(out),
            "protocol": metrics["protocol_description"], **summary,
            **{f"{k}_std": metrics[k]["std"] for k in summary}}
    if "tests" in metrics:
        line["tests"] = {name: {k: m[k]["mean"] for k in HEADLINE if k in m}
                         for name, m in metrics["tests"].items()}
    emit(line)
    return EXIT_OK


def cmd_study(args: argparse.Namespace) -> int:
    from emovox.experiments.study import run_study

    out = Path(args.out or Path("runs") / Path(args.config).stem)
    # key=value items written after --only VARIANT ... are overrides, not variant names
    only = [o for o in args.only or () if "=" not in o] or None
    overrides = [*args.overrides, *(o for o in args.only or () if "=" in o)]
    summary = run_study(args.config, out, only, overrides, progress=not args.quiet)
    for name, tests in summary["variants"].items():
        emit({"variant": name, "out": str(out / name),
              **{test: {k: v[0] for k, v in m.items()} for test, m in tests.items()}})
    return EXIT_OK


def cmd_train(args: argparse.Namespace) -> int:
    from emovox.experiments.config import load_config
    from emovox.serving.model_dir import train_and_save

    config = load_config(args.config, args.overrides)
    config.training.progress = config.training.progress and not args.quiet
    meta = train_and_save(config, Path(args.out), n_valid=args.valid_speakers,
                          progress=not args.quiet)
    emit({"model_dir": args.out, "labels": meta["labels"], "valid_speakers":
          meta["valid_speakers"], "valid_metrics": meta["valid_metrics"]})
    return EXIT_OK


def _experiment_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="override config entries, e.g. training.lr=0.0003")
    p.add_argument("--out", help="output directory (default runs/<name>); reruns resume")
    p.set_defaults(run=cmd_experiment)


def _study_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="override the base config of every variant")
    p.add_argument("--out", help="output directory (default runs/<config stem>); reruns resume")
    p.add_argument("--only", nargs="+", metavar="VARIANT", help="run just these variants")
    p.set_defaults(run=cmd_study)


def _train_arguments(p: argparse.ArgumentParser) -> None:
    from emovox.serving.model_dir import train_and_save

    p.add_argument("config")
    p.add_argument("overrides", nargs="*", metavar="key=value")
    p.add_argument("--out", required=True, help="model directory to write")
    p.add_argument("--valid-speakers", type=int, default=default(train_and_save, "n_valid"),
                   help="speakers held out for validation (default %(default)s)")
    p.set_defaults(run=cmd_train)


COMMANDS: dict[str, Command] = {
    "experiment": ("run a cross-validated experiment from a YAML config", _experiment_arguments),
    "study": ("run every variant of a study config and compare them", _study_arguments),
    "train": ("train one model on a whole corpus and save it", _train_arguments),
}
