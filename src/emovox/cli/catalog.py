"""``emovox list`` (what is registered) and ``emovox models`` (the model directories)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from emovox.cli.common import EXIT_BAD_INPUT, EXIT_OK, Command, emit

KINDS = ("methods", "models", "features", "corpora", "protocols", "augmentations", "channels")


def _registries() -> dict:
    """Every pluggable kind by name; registries load their providers lazily."""
    from emovox.augment import TRANSFORMS
    from emovox.channels import CHANNELS
    from emovox.corpora import CORPORA
    from emovox.experiments.methods import METHODS
    from emovox.experiments.protocols import PROTOCOLS
    from emovox.features import EXTRACTORS
    from emovox.models import MODELS

    return {"methods": METHODS, "models": MODELS, "features": EXTRACTORS, "corpora": CORPORA,
            "protocols": PROTOCOLS, "augmentations": TRANSFORMS, "channels": CHANNELS}


def cmd_list(args: argparse.Namespace) -> int:
    registries = _registries()
    for kind in [args.kind] if args.kind else KINDS:
        for name, description in registries[kind].describe().items():
            emit({"kind": kind, "name": name, "description": description})
    return EXIT_OK


def cmd_models(args: argparse.Namespace) -> int:
    from emovox.serving.catalog import list_models

    roots = args.paths or [Path(p) for p in os.environ.get("EMOVOX_MODELS", "models").split(
        os.pathsep) if Path(p).exists()]
    found = list_models([Path(p) for p in roots])
    for line in found:
        emit(line)
    return EXIT_BAD_INPUT if any("error" in line for line in found) else EXIT_OK


def _list_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("kind", nargs="?", choices=KINDS)
    p.set_defaults(run=cmd_list)


def _models_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="*", type=Path, metavar="PATH",
                   help="model directories or folders holding them (default: $EMOVOX_MODELS, "
                   "else ./models if present)")
    p.set_defaults(run=cmd_models)


COMMANDS: dict[str, Command] = {
    "list": ("what is registered: methods, models, features, corpora, protocols, "
             "augmentations, channels (JSON lines)", _list_arguments),
    "models": ("list the bundled model and model directories (JSON lines)", _models_arguments),
}
