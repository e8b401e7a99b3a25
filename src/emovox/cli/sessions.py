"""``emovox sessions build`` (continuous sessions with a ground-truth timeline, in every
condition) and ``emovox sessions score`` (stream them, score segmentation, latency and accuracy,
write figures and an HTML report). docs/sessions.md."""

from __future__ import annotations

import argparse
from pathlib import Path

from emovox.cli.common import EXIT_OK, Command, default, emit

#: Per-condition figures printed by ``score`` (the rest are in summary.json and the report).
HEADLINE = ("f1", "non_speech_decisions", "uar", "offline_uar", "latency_median", "undecided")


def cmd_build(args: argparse.Namespace) -> int:
    from emovox.corpora import load_corpus
    from emovox.errors import ConfigError
    from emovox.schema import build
    from emovox.serving.model_dir import resolve_model
    from emovox.sessions.build import BuildSettings, build_sessions, held_out_corpus

    settings = build(BuildSettings, {
        "utterances": args.utterances, "min_pause_s": args.min_pause_s,
        "max_pause_s": args.max_pause_s, "conditions": args.conditions, "seed": args.seed,
        "max_sessions_per_speaker": args.max_sessions_per_speaker}, "sessions")
    if args.path or args.format:
        if not (args.path and args.format):
            raise ConfigError("--format and --path go together (a corpus and its format)")
        manifest = load_corpus(args.format, args.path, labels=args.labels)
        if args.speakers:
            manifest = manifest.with_speakers(args.speakers)
            if not len(manifest):
                raise ConfigError(f"{args.path}: none of the speakers {args.speakers}")
        corpus = {"format": args.format, "path": args.path, "labels": args.labels,
                  "speakers": manifest.speakers}
    else:
        manifest, corpus = held_out_corpus(resolve_model(args.model), args.speakers,
                                           validation=args.validation)
    result = build_sessions(manifest, Path(args.out), settings, corpus,
                            progress=not args.quiet)
    clean = [s for s in result.sessions if s.condition == result.conditions[0]]
    emit({"sessions": args.out, "manifest": str(Path(args.out) / result.NAME),
          "speakers": corpus["speakers"], "per_condition": len(clean),
          "conditions": result.conditions,
          "minutes_per_condition": round(sum(s.duration for s in clean) / 60, 2)})
    return EXIT_OK


def cmd_score(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from emovox.schema import build
    from emovox.serving.model_dir import resolve_model
    from emovox.sessions.run import CHOSEN, StreamSettings, score_model

    base = StreamSettings() if args.stream_defaults else CHOSEN
    given = {"vad": args.vad or None, "threshold": args.threshold, "pause_ms": args.pause_ms,
             "max_steady_fraction": args.max_steady_fraction,
             "aggressiveness": args.aggressiveness, "margin_db": args.margin_db,
             "chunk_ms": args.chunk_ms}
    settings = build(StreamSettings, {**asdict(base), **{k: v for k, v in given.items()
                                                         if v is not None}}, "stream")
    summary = score_model(args.sessions, Path(args.out), resolve_model(args.model),
                          settings, figures=args.figures, progress=not args.quiet)
    for condition, metrics in summary["conditions"].items():
        emit({"condition": condition, **{k: metrics.get(k) for k in HEADLINE}})
    emit({"summary": str(Path(args.out) / "summary.json"),
          "report": str(Path(args.out) / "report.html")})
    return EXIT_OK


def _arguments(p: argparse.ArgumentParser) -> None:
    from emovox.corpora import CORPORA
    from emovox.sessions.build import CONDITIONS, BuildSettings
    from emovox.sessions.run import StreamSettings, score_model

    tools = p.add_subparsers(dest="sessions_command", required=True)
    b = tools.add_parser("build", help="sessions of one speaker's utterances with pauses, in "
                         "every condition, with their ground-truth timeline")
    b.add_argument("--out", required=True, help="directory for sessions.json and audio/ "
                   "(a rerun resumes)")
    b.add_argument("--model", help="take the corpus and its held-out speakers from this model "
                   "directory or bundled model (default: the bundled default)")
    b.add_argument("--format", choices=CORPORA.names(), help="or a corpus of this format ...")
    b.add_argument("--path", help="... at this path")
    b.add_argument("--labels", nargs="+", help="keep only these labels (with --path)")
    b.add_argument("--speakers", nargs="+", help="only these speakers")
    b.add_argument("--validation", action="store_true", help="the model's validation speakers "
                   "instead of its held-out ones: sessions for choosing stream settings")
    b.add_argument("--utterances", type=int, default=default(BuildSettings, "utterances"),
                   help="utterances per session (default %(default)s)")
    b.add_argument("--max-sessions-per-speaker", type=int,
                   default=default(BuildSettings, "max_sessions_per_speaker"),
                   help="default: as many as the speaker's utterances make")
    b.add_argument("--min-pause-s", type=float, default=default(BuildSettings, "min_pause_s"),
                   help="shortest pause between utterances (default %(default)g s)")
    b.add_argument("--max-pause-s", type=float, default=default(BuildSettings, "max_pause_s"),
                   help="longest pause (default %(default)g s)")
    b.add_argument("--conditions", nargs="+", choices=CONDITIONS, default=list(CONDITIONS),
                   help="default: all")
    b.add_argument("--seed", type=int, default=default(BuildSettings, "seed"))
    b.set_defaults(run=cmd_build)

    s = tools.add_parser("score", help="stream every session through StreamingRecognizer and "
                         "score segmentation, latency and accuracy (summary.json, report.html)")
    s.add_argument("sessions", help="a directory from `emovox sessions build`")
    s.add_argument("--out", required=True, help="directory for results (a rerun resumes)")
    s.add_argument("--model", help="a streamable model directory or bundled model's name (default: "
                   "the bundled default; gru)")
    s.add_argument("--stream-defaults", action="store_true", help="start from `emovox "
                   "stream`'s defaults, not the setting chosen on the validation speaker "
                   "(docs/sessions.md); the flags below change either")
    s.add_argument("--vad", action="store_true", help="as `emovox stream --vad`")
    s.add_argument("--threshold", type=float, help="as `emovox stream --threshold`")
    s.add_argument("--pause-ms", type=float, help="as `emovox stream --pause-ms`")
    s.add_argument("--max-steady-fraction", type=float, help="the speech gate's music check "
                   "(GateConfig; 1: off)")
    s.add_argument("--aggressiveness", type=int, help="webrtcvad's, 0–3 (GateConfig)")
    s.add_argument("--margin-db", type=float, help="speech above the noise floor (GateConfig)")
    s.add_argument("--chunk-ms", type=float, help="push size (default "
                   f"{default(StreamSettings, 'chunk_ms'):g} ms)")
    s.add_argument("--figures", type=int, default=default(score_model, "figures"),
                   help="sessions pictured per condition (default %(default)s)")
    s.set_defaults(run=cmd_score)


COMMANDS: dict[str, Command] = {
    "sessions": ("continuous sessions in rooms and noise: build them, stream and score them",
                 _arguments),
}
