"""``emovox predict`` (label audio files) and ``emovox export`` (ONNX)."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from pathlib import Path

from emovox.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_OK,
    Command,
    add_speaker_arguments,
    default,
    emit,
    positive,
    report_error,
)
from emovox.errors import ConfigError, EmovoxError

#: ``--speaker-from`` value that groups files by the name of their folder.
PARENT_DIR = "parent-dir"


def cmd_predict(args: argparse.Namespace) -> int:
    """Every file gets its line, a result or an ``error``; exit 2 if any file was bad."""
    from emovox.serving.adaptation import Adaptation, enrolment, label_files, one_speaker
    from emovox.serving.model_dir import open_recognizer, resolve_model

    if args.enrol and args.speaker_from:
        raise ConfigError("--enrol is one speaker's audio; with --speaker-from's several "
                          "speakers use --enrol on each speaker's files")
    speaker_of = speaker_rule(args.speaker_from) if args.speaker_from else None
    recognizer = open_recognizer(resolve_model(args.model), args.runtime)
    adaptation = Adaptation(
        enrolment(recognizer, args.enrol, args.max_seconds) if args.enrol else None,
        one_speaker if args.adapt else speaker_of, args.tau)
    failed = 0
    for path, result in label_files(recognizer, args.audio, adaptation, args.max_seconds):
        if isinstance(result, EmovoxError):
            failed += 1
            emit({"path": path, "error": str(result)})
            report_error(str(result))
        else:
            emit(result)
    return EXIT_BAD_INPUT if failed else EXIT_OK


def speaker_rule(spec: str) -> Callable[[str], str]:
    """``--speaker-from``: a file's speaker is its folder's name (``parent-dir``) or the first
    capture group of a regular expression searched in its file name."""
    if spec == PARENT_DIR:
        return lambda path: Path(path).absolute().parent.name
    try:
        pattern = re.compile(spec)
    except re.error as exc:
        raise ConfigError(f"--speaker-from {spec!r}: not a regular expression ({exc})") from None
    if not pattern.groups:
        raise ConfigError(f"--speaker-from {spec!r}: needs a capture group for the speaker, "
                          r"e.g. '^(\w+?)_'")

    def speaker(path: str) -> str:
        match = pattern.search(Path(path).name)
        if match is None or match.group(1) is None:
            raise EmovoxError(f"{path}: --speaker-from {spec!r} does not match its file name")
        return match.group(1)

    return speaker


def cmd_export(args: argparse.Namespace) -> int:
    from emovox.serving.onnx_export import export_onnx

    frontend = export_onnx(args.model_dir, args.out)
    streams = bool(frontend["streaming"] or frontend.get("recogniser_streaming"))
    emit({"model_dir": args.model_dir, "format": args.format, "out": args.out,
          "graphs": sorted(frontend["graphs"]), "streaming": streams,
          "max_abs_diff": frontend["export_check_max_abs_diff"]})
    return EXIT_OK


def _predict_arguments(p: argparse.ArgumentParser) -> None:
    from emovox.audio import MAX_SECONDS
    from emovox.serving.model_dir import RUNTIMES, open_recognizer
    from emovox.serving.streaming import SHRINKAGE_FRAMES

    p.add_argument("audio", nargs="+")
    p.add_argument("--model", help="model directory from `emovox train`, or a bundled model's "
                   "name: default (the default) or gru; see `emovox models`")
    p.add_argument("--runtime", choices=RUNTIMES, default=default(open_recognizer, "runtime"),
                   help="onnxruntime on an `emovox export` directory or on the model "
                        "directory's own current export (its onnx/, as the bundled model has), "
                        "PyTorch otherwise (auto, the default; starts without importing "
                        "PyTorch when an export is there); torch or onnx to insist")
    p.add_argument("--max-seconds", type=positive(float), default=MAX_SECONDS,
                   help="refuse longer files (default %(default)g s; memory stays bounded: "
                        "frame features are extracted in 60 s chunks)")
    add_speaker_arguments(p, SHRINKAGE_FRAMES)
    group = p.add_mutually_exclusive_group()
    group.add_argument("--adapt", action="store_true",
                       help="the files are one speaker: each is normalised with the statistics "
                       "of the OTHER files (no labels; leave-one-out)")
    group.add_argument("--speaker-from", metavar=f"{PARENT_DIR}|REGEX",
                       help="group the files by speaker — their folder's name, or the first "
                       "capture group of REGEX in the file name — and adapt within each group "
                       "as --adapt does")
    p.set_defaults(run=cmd_predict)


def _export_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model_dir", help="a trained model directory (from `emovox train`)")
    p.add_argument("--format", choices=["onnx"], default="onnx", help="export format (onnx)")
    p.add_argument("--out", required=True, help="directory for model.onnx, step.onnx, *.json")
    p.set_defaults(run=cmd_export)


COMMANDS: dict[str, Command] = {
    "predict": ("label audio files with a trained model (JSON lines)", _predict_arguments),
    "export": ("export a trained model directory (ONNX graphs + front end)", _export_arguments),
}
