"""Continuous sessions (issue 27): the default recipe with and without augmentation, streamed
through ``StreamingRecognizer`` in every condition, under a few stream settings.

Sessions come from the bundled default model's held-out speakers only (emodb_03, nemo_EB0: in
neither its training nor its selection); the model without augmentation is the same recipe
(``configs/default_model.yaml augment.copies=0``), trained on the same speakers:

    emovox train configs/default_model.yaml augment.copies=0 \
        --out runs/sessions/models/default_unaugmented
    .venv/bin/python benchmarks/sessions.py [--work runs/sessions] [--max-sessions-per-speaker 12]
        [--models default unaugmented] [--streams defaults vad pause300 pause300_t06]

Everything is resumable (rerun the same command); a model directory that is missing is skipped
and its training command printed. Writes the ``sessions`` section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from results import machine, write_section

from emovox.schema import build
from emovox.serving.model_dir import default_model_dir
from emovox.sessions.build import BuildSettings, build_sessions, held_out_corpus
from emovox.sessions.report import cell, markdown_table
from emovox.sessions.run import StreamSettings, score_model

#: Stream settings compared: `emovox stream`'s defaults, its --vad, and a short pause (the
#: sessions' pauses start at 0.2 s) deciding at the end of the utterance or at confidence 0.6.
STREAMS = {
    "defaults": (StreamSettings(), ""),
    "vad": (StreamSettings(vad=True), "--vad"),
    "pause300": (StreamSettings(pause_ms=300.0), "--pause-ms 300"),
    "pause300_t06": (StreamSettings(pause_ms=300.0, threshold=0.6),
                     "--pause-ms 300 --threshold 0.6"),
}
UNAUGMENTED = "runs/sessions/models/default_unaugmented"


def targets(runs: dict[tuple[str, str], dict]) -> list[str]:
    """The issue's targets, per stream setting, for the bundled model."""
    lines = ["| stream | seg. F1 clean (≥ 0.95) | seg. F1 10 dB (≥ 0.90) | decisions during "
             "events, clean (0) | UAR stream − offline, clean (within 0.03) | UAR drop clean → "
             "10 dB: augmented / unaugmented (≤ half) | latency median (≤ 1.0 s) |",
             "|---|---|---|---|---|---|---|"]
    for (model, stream), summary in runs.items():
        if model != "default":
            continue
        c = summary["conditions"]
        drop = _drop(c)
        other = runs.get(("unaugmented", stream))
        unaug = _drop(other["conditions"]) if other else None
        lines.append(" | ".join([
            f"| {stream}", cell(c["clean"]["f1"], "{:.3f}"),
            cell(c["room_noise_10db"]["f1"], "{:.3f}"),
            str(c["events"]["non_speech_decisions"]),
            cell(c["clean"]["uar_minus_offline"], "{:+.3f}"),
            f"{cell(drop, '{:+.3f}')} / {cell(unaug, '{:+.3f}')}",
            cell(c["clean"]["latency_median"], "{:.2f} s")]) + " |")
    return lines


def _drop(conditions: dict) -> float | None:
    a, b = conditions["clean"]["uar"], conditions["room_noise_10db"]["uar"]
    return None if a is None or b is None else a - b


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("runs/sessions"))
    parser.add_argument("--max-sessions-per-speaker", type=int, default=12)
    parser.add_argument("--models", nargs="+", default=["default", "unaugmented"],
                        choices=["default", "unaugmented"])
    parser.add_argument("--unaugmented", default=UNAUGMENTED, help="its model directory")
    parser.add_argument("--streams", nargs="+", default=list(STREAMS), choices=list(STREAMS))
    args = parser.parse_args()
    start = time.time()
    model_dirs = {"default": default_model_dir(), "unaugmented": Path(args.unaugmented)}
    settings = build(BuildSettings, {"max_sessions_per_speaker": args.max_sessions_per_speaker},
                     "sessions")
    manifest, corpus = held_out_corpus(model_dirs["default"])
    set_dir = args.work / "set"
    build_sessions(manifest, set_dir, settings, corpus)
    runs, skipped = {}, []
    for model in args.models:
        if not (model_dirs[model] / "model.json").exists():
            skipped.append("emovox train configs/default_model.yaml augment.copies=0 "
                           f"--out {model_dirs[model]}")
            continue
        for stream in args.streams:
            runs[model, stream] = score_model(set_dir, args.work / f"{model}_{stream}",
                                              model_dirs[model], STREAMS[stream][0])
    speakers = ", ".join(corpus["speakers"])
    first = next(iter(runs.values()))["conditions"]["clean"]
    lines = [
        "## Continuous sessions (sessions)", "",
        f"{machine()}; {time.time() - start:.0f} s (resumed runs count only what was left).",
        "", "```",
        f".venv/bin/python benchmarks/sessions.py --work {args.work} "
        f"--max-sessions-per-speaker {args.max_sessions_per_speaker}",
        "```", "",
        f"Held-out speakers {speakers}: {first['sessions']} sessions of "
        f"{settings.utterances} utterances ({first['utterances']} utterances, "
        f"{first['hours'] * 60:.1f} min) per condition, pauses "
        f"{settings.min_pause_s:g}–{settings.max_pause_s:g} s. Definitions: docs/sessions.md. "
        "Each table: `emovox sessions score runs/sessions/set --model MODEL --out OUT "
        "[stream flags]`.", "",
        "Targets (bundled model):", "", *targets(runs), ""]
    for (model, stream), summary in runs.items():
        lines += [f"### {model} model, stream `{STREAMS[stream][1] or 'defaults'}`", "",
                  markdown_table(summary["conditions"]), ""]
    for command in skipped:
        lines += [f"Not run (no model directory): `{command}`, then rerun.", ""]
    body = "\n".join(lines)
    write_section("sessions", body)
    print(body)


if __name__ == "__main__":
    main()
