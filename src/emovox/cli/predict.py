"""``emovox predict`` (label audio files) and ``emovox export`` (ONNX)."""

from __future__ import annotations

import argparse

from emovox.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_OK,
    Command,
    default,
    emit,
    positive,
    report_error,
)
from emovox.errors import EmovoxError


def cmd_predict(args: argparse.Namespace) -> int:
    """Every file gets its line, a result or an ``error``; exit 2 if any file was bad."""
    from emovox.serving.model_dir import default_model_dir, open_recognizer

    recognizer = open_recognizer(args.model or default_model_dir(), args.runtime)
    failed = 0
    for path in args.audio:
        try:
            emit(recognizer.predict_file(path, max_seconds=args.max_seconds))
        except EmovoxError as exc:
            failed += 1
            emit({"path": path, "error": str(exc)})
            report_error(str(exc))
    return EXIT_BAD_INPUT if failed else EXIT_OK


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

    p.add_argument("audio", nargs="+")
    p.add_argument("--model", help="model directory from `emovox train` (default: the bundled "
                   "model, see `emovox models`)")
    p.add_argument("--runtime", choices=RUNTIMES, default=default(open_recognizer, "runtime"),
                   help="onnxruntime on an `emovox export` directory or on the model "
                        "directory's own current export (its onnx/, as the bundled model has), "
                        "PyTorch otherwise (auto, the default; starts without importing "
                        "PyTorch when an export is there); torch or onnx to insist")
    p.add_argument("--max-seconds", type=positive(float), default=MAX_SECONDS,
                   help="refuse longer files (default %(default)g s; memory stays bounded: "
                        "frame features are extracted in 60 s chunks)")
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
