"""``emovox corpus info`` (counts, duration, problems) and ``emovox corpus degrade`` (a copy of a
corpus played through a simulated channel)."""

from __future__ import annotations

import argparse
from pathlib import Path

from emovox.cli.common import EXIT_BAD_INPUT, EXIT_OK, Command, default, emit


def cmd_corpus_info(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from emovox.audio import SAMPLE_RATE, load_audio
    from emovox.corpora import load_corpus
    from emovox.errors import AudioError

    manifest = load_corpus(args.format, args.path, on_error="skip")
    seconds, usable, problems = 0.0, [], list(manifest.problems)
    for utt in tqdm(manifest, desc="reading audio", unit="utt", disable=args.quiet,
                    leave=False):
        try:  # read every sample: silent, NaN or cut-off files are not usable
            wave = load_audio(utt.path, start=utt.start, end=utt.end)
        except AudioError as exc:
            problems.append(str(exc))
            continue
        seconds += len(wave) / SAMPLE_RATE
        usable.append(utt)
    manifest = type(manifest)(usable, problems)
    emit({
        "path": args.path,
        "format": args.format,
        "utterances": len(manifest),
        "speakers": len(manifest.speakers),
        "hours": round(seconds / 3600, 4),
        "labels": dict(sorted(manifest.label_counts().items())),
        "per_speaker": dict(sorted(manifest.speaker_counts().items())),
        "problems": manifest.problems,
    })
    if args.manifest:
        write_manifest(manifest, Path(args.manifest))
    return EXIT_OK


def write_manifest(manifest, out: Path) -> None:
    """``--manifest``: audio paths relative to the manifest's own folder, which is what its
    readers (``--format manifest``, ``csv``) resolve them against, wherever it is written."""
    import os
    from dataclasses import replace

    folder = out.resolve().parent
    relative = type(manifest)([replace(u, path=os.path.relpath(Path(u.path).resolve(), folder))
                               for u in manifest], manifest.problems)
    (relative.to_csv if out.suffix == ".csv" else relative.to_jsonl)(out)


def cmd_corpus_degrade(args: argparse.Namespace) -> int:
    """Every readable utterance is degraded; exit 2 if any could not be."""
    from emovox.channels import degrade_corpus, make_channel
    from emovox.corpora import load_corpus

    manifest = load_corpus(args.format, args.path, on_error="skip")
    channel = make_channel(args.channel, seed=args.seed)
    degraded = degrade_corpus(manifest, channel, Path(args.out), workers=args.workers,
                              progress=not args.quiet)
    emit({"source": args.path, "channel": args.channel, "seed": args.seed, "out": args.out,
          "manifest": str(Path(args.out) / "manifest.jsonl"), "utterances": len(degraded),
          "problems": degraded.problems})
    return EXIT_BAD_INPUT if degraded.problems else EXIT_OK


def _arguments(p: argparse.ArgumentParser) -> None:
    from emovox.channels import RobotChannelConfig, degrade_corpus
    from emovox.corpora import CORPORA

    formats = CORPORA.names()
    tools = p.add_subparsers(dest="corpus_command", required=True)
    info = tools.add_parser("info", help="counts per label and speaker, duration, problems")
    info.add_argument("path")
    info.add_argument("--format", required=True, choices=formats)
    info.add_argument("--manifest", help="also write the manifest (.jsonl or .csv)")
    info.set_defaults(run=cmd_corpus_info)
    degrade = tools.add_parser(
        "degrade", help="write a copy of a corpus played through a simulated channel")
    degrade.add_argument("path")
    degrade.add_argument("--format", required=True, choices=formats)
    degrade.add_argument("--channel", default="robot",
                         help="a registered channel (`emovox list channels`; default robot)")
    degrade.add_argument("--out", required=True, help="directory for wav/, manifest.jsonl")
    degrade.add_argument("--seed", type=int, default=default(RobotChannelConfig, "seed"),
                         help="the channel's seed (default %(default)s)")
    degrade.add_argument("--workers", type=int, default=default(degrade_corpus, "workers"),
                         help="processes (default %(default)s)")
    degrade.set_defaults(run=cmd_corpus_degrade)


COMMANDS: dict[str, Command] = {
    "corpus": ("corpus tools", _arguments),
}
