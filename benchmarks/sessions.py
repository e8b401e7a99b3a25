"""Continuous sessions (issue 27): the stream setting chosen on the bundled model's validation
speaker, then the default recipe with and without augmentation streamed through
``StreamingRecognizer`` in every condition on the test speakers, with `emovox stream`'s
defaults and with the chosen setting.

Choice: sessions of the validation speaker (nEMO MK0; ``emovox sessions build --validation``),
a grid of gates then of thresholds, the rule of docs/sessions.md ("Choosing the stream
setting"). Test: sessions of the bundled model's held-out speakers only (emodb_03, nemo_EB0: in
neither its training nor its selection); the model without augmentation is the same recipe
(``configs/default_model.yaml augment.copies=0``), trained on the same speakers:

    emovox train configs/default_model.yaml augment.copies=0 \
        --out runs/sessions/models/default_unaugmented
    .venv/bin/python benchmarks/sessions.py [--work runs/sessions] [--max-sessions-per-speaker 12]
        [--models default unaugmented] [--streams defaults chosen chosen_gate pause300_music_check]

Everything is resumable (rerun the same command); a model directory that is missing is skipped
and its training command printed. Writes the ``sessions`` section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

from results import machine, write_section

from emovox.schema import build
from emovox.serving.model_dir import bundled_model_dir
from emovox.sessions.build import BuildSettings, build_sessions, held_out_corpus
from emovox.sessions.report import cell, markdown_table
from emovox.sessions.run import CHOSEN, StreamSettings, score_model

#: The validation grid (docs/sessions.md, "Choosing the stream setting"): the gate first —
#: the pause that ends an utterance, the margin over the noise floor, the music check (1: off),
#: webrtcvad's aggressiveness — deciding at the utterance's end; then, on the chosen gate, a
#: confidence threshold.
GATES = [
    *(StreamSettings(pause_ms=pause, max_steady_fraction=0.4, aggressiveness=2, margin_db=margin)
      for pause in (300.0, 450.0) for margin in (6.0, 10.0, 14.0)),
    *(StreamSettings(pause_ms=300.0, max_steady_fraction=steady, aggressiveness=2,
                     margin_db=6.0) for steady in (0.5, 1.0)),
    StreamSettings(pause_ms=300.0, max_steady_fraction=0.4, aggressiveness=3, margin_db=6.0),
]
THRESHOLDS = (0.5, 0.6, 0.7, 0.8)
#: A threshold is allowed only if UAR (clean) stays within this of the offline UAR.
UAR_TOLERANCE = 0.03
VALIDATION = BuildSettings(max_sessions_per_speaker=8,
                           conditions=("clean", "room_noise_10db", "events"))
UNAUGMENTED = "runs/sessions/models/default_unaugmented"
STREAMS = ("defaults", "chosen", "chosen_gate", "pause300_music_check")
#: The previous fixed setting (--pause-ms 300, the gate's defaults) with the music check:
#: what the check alone changes on the test speakers.
PAUSE300 = StreamSettings(pause_ms=300.0, max_steady_fraction=0.4, aggressiveness=2,
                          margin_db=6.0)


def name(s: StreamSettings) -> str:
    """A run directory's name for a stream setting."""
    if s.pause_ms is None:
        return "stream_defaults" + ("" if s.threshold is None else f"_t{s.threshold:g}")
    return (f"pause{s.pause_ms:g}_margin{s.margin_db:g}_steady{s.max_steady_fraction:g}"
            f"_vad{s.aggressiveness}" + ("" if s.threshold is None else f"_t{s.threshold:g}"))


def flags(s: StreamSettings) -> str:
    """``emovox sessions score``'s flags for a stream setting."""
    pairs = [("--pause-ms", s.pause_ms), ("--max-steady-fraction", s.max_steady_fraction),
             ("--aggressiveness", s.aggressiveness), ("--margin-db", s.margin_db),
             ("--threshold", s.threshold)]
    return " ".join(f"{flag} {value:g}" for flag, value in pairs if value is not None)


def choose(work: Path, model: Path) -> tuple[StreamSettings, list[str]]:
    """The stream setting chosen on the model's validation speaker(s), by the stated rule:
    (1) the gate with the fewest decisions during the events condition's door/music/tone,
    then the highest mean segmentation F1 over clean and 10 dB; (2) on it, the threshold with
    the lowest median latency (clean) whose UAR (clean) is within UAR_TOLERANCE of the
    offline UAR; none if no threshold qualifies. Returns it and the grid's table."""
    manifest, corpus = held_out_corpus(model, validation=True)
    set_dir = work / "validation"
    build_sessions(manifest, set_dir, VALIDATION, corpus)
    rows, scored = [], {}
    for gate in GATES:
        scored[gate] = score_model(set_dir, work / "validation_runs" / name(gate), model, gate,
                                   figures=0, progress=False)["conditions"]

    def gate_rank(gate: StreamSettings) -> tuple:
        c = scored[gate]
        return (c["events"]["non_speech_decisions"],
                -(c["clean"]["f1"] + c["room_noise_10db"]["f1"]) / 2)

    best = min(GATES, key=gate_rank)
    timed = {t: replace(best, threshold=t) for t in THRESHOLDS}
    for setting in timed.values():
        scored[setting] = score_model(set_dir, work / "validation_runs" / name(setting), model,
                                      setting, figures=0, progress=False)["conditions"]
    allowed = [s for s in timed.values()
               if scored[s]["clean"]["uar_minus_offline"] >= -UAR_TOLERANCE]
    chosen = min(allowed, key=lambda s: scored[s]["clean"]["latency_median"], default=best)
    rows = ["| setting | seg. F1 clean | seg. F1 10 dB | decisions during events | "
            "UAR − offline, clean | latency median, clean |", "|---|---|---|---|---|---|"]
    for setting, c in scored.items():
        mark = " **chosen**" if setting == chosen else ""
        rows.append(f"| `{flags(setting)}`{mark} | {cell(c['clean']['f1'], '{:.3f}')} | "
                    f"{cell(c['room_noise_10db']['f1'], '{:.3f}')} | "
                    f"{c['events']['non_speech_decisions']} | "
                    f"{cell(c['clean']['uar_minus_offline'], '{:+.3f}')} | "
                    f"{cell(c['clean']['latency_median'], '{:.2f} s')} |")
    return chosen, rows


def targets(runs: dict[tuple[str, str], dict], streams: dict[str, StreamSettings]
            ) -> list[str]:
    """The issue's targets, per stream setting, for the bundled model."""
    lines = ["| stream | seg. F1 clean (≥ 0.95) | seg. F1 10 dB (≥ 0.90) | decisions during "
             "events (events condition; 0) | UAR stream − offline, clean (within 0.03) | "
             "UAR drop clean → 10 dB: augmented / unaugmented (≤ half) | "
             "latency median (≤ 1.0 s) |",
             "|---|---|---|---|---|---|---|"]
    for (model, stream), summary in runs.items():
        if model != "default":
            continue
        c = summary["conditions"]
        drop = _drop(c)
        other = runs.get(("unaugmented", stream))
        unaug = _drop(other["conditions"]) if other else None
        lines.append(" | ".join([
            f"| `{flags(streams[stream]) or 'defaults'}`", cell(c["clean"]["f1"], "{:.3f}"),
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
    model_dirs = {"default": bundled_model_dir("gru"), "unaugmented": Path(args.unaugmented)}
    chosen, grid = choose(args.work, model_dirs["default"])
    print("\n".join(grid))
    if chosen != CHOSEN:
        print(f"note: chosen {chosen} differs from emovox.sessions.run.CHOSEN {CHOSEN}: "
              "update CHOSEN and docs/sessions.md")
    streams = {"defaults": StreamSettings(), "chosen": chosen,
               "chosen_gate": replace(chosen, threshold=None), "pause300_music_check": PAUSE300}
    streams = {k: streams[k] for k in args.streams}
    if chosen.threshold is None:
        streams.pop("chosen_gate", None)
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
        for stream, setting in streams.items():
            runs[model, stream] = score_model(set_dir, args.work / f"{model}_{name(setting)}",
                                              model_dirs[model], setting)
    speakers = ", ".join(corpus["speakers"])
    first = next(iter(runs.values()))["conditions"]["clean"]
    lines = [
        "## Continuous sessions (sessions)", "",
        f"{machine()}; {time.time() - start:.0f} s (resumed runs count only what was left).",
        "", "```",
        f".venv/bin/python benchmarks/sessions.py --work {args.work} "
        f"--max-sessions-per-speaker {args.max_sessions_per_speaker}",
        "```", "",
        f"Stream setting chosen on the bundled model's validation speaker "
        f"({', '.join(held_out_corpus(model_dirs['default'], validation=True)[1]['speakers'])}"
        f"; {VALIDATION.max_sessions_per_speaker} sessions, conditions "
        f"{', '.join(VALIDATION.conditions)}) by the rule of docs/sessions.md: "
        f"`{flags(chosen)}`.", "", *grid, "",
        f"Test: held-out speakers {speakers}: {first['sessions']} sessions of "
        f"{settings.utterances} utterances ({first['utterances']} utterances, "
        f"{first['hours'] * 60:.1f} min) per condition, pauses "
        f"{settings.min_pause_s:g}–{settings.max_pause_s:g} s. Definitions: docs/sessions.md. "
        "Each table: `emovox sessions score runs/sessions/set --model MODEL --out OUT "
        "[stream flags]`. The bundled model uses global normalisation: no running adaptation.",
        "", "Targets (bundled model):", "", *targets(runs, streams), ""]
    for (model, stream), summary in runs.items():
        lines += [f"### {model} model, stream `{flags(streams[stream]) or 'defaults'}`", "",
                  markdown_table(summary["conditions"]), ""]
    for command in skipped:
        lines += [f"Not run (no model directory): `{command}`, then rerun.", ""]
    body = "\n".join(lines)
    write_section("sessions", body)
    print(body)


if __name__ == "__main__":
    main()
