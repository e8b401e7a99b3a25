"""Continuous sessions (issue 27): stream settings chosen on a validation speaker, then models
streamed through ``StreamingRecognizer`` in every condition on the test speakers.

Two families of models, each the recipe with and without augmentation, trained without the
test speakers emodb_03 and nemo_EB0 (its section of benchmarks/RESULTS.md):

- ``default`` (section ``sessions_default``): the bundled default's recipe, the recogniser-layer
  model that adapts to its speaker as it listens (``configs/default_model_v2.yaml``), trained
  without the test speakers (``configs/default_model_v2_heldout.yaml``: the bundled one trained
  on every speaker); ``default_augmented``: the same with one augmented copy of every training
  utterance (the GRU's transforms);
- ``gru`` (section ``sessions``): the bundled GRU (``--model gru``, global normalisation: it
  does not adapt); ``gru_unaugmented``: its recipe without augmentation.

Choice, on sessions of the models' validation speaker (nEMO MK0 for all four; ``emovox sessions
build --validation``), by the rule of docs/sessions.md ("Choosing the stream setting"): the
gate over a grid, deciding at the utterance's end — streamed with the GRU, the cheaper model:
where utterances are found and which get a decision depends on the gate alone, not the model
(checked: identical segmentation and event decisions for both at the chosen gate) — then, on
that gate, a confidence threshold per family, streamed with its reference model (``gru``,
``default``); its other model streams the same settings.

    emovox train configs/default_model_v2_heldout.yaml --out runs/sessions/models/default_v2_heldout
    .venv/bin/python benchmarks/sessions.py [--work runs/sessions] [--max-sessions-per-speaker 12]
        [--models default default_augmented gru gru_unaugmented]
        [--streams defaults chosen chosen_gate pause300_music_check]

Everything is resumable (rerun the same command); a model directory that is missing is skipped
and its training command printed.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, replace
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
STREAMS = ("defaults", "chosen", "chosen_gate", "pause300_music_check")
#: The previous fixed setting (--pause-ms 300, the gate's defaults) with the music check:
#: what the check alone changes on the test speakers.
PAUSE300 = StreamSettings(pause_ms=300.0, max_steady_fraction=0.4, aggressiveness=2,
                          margin_db=6.0)


@dataclass(frozen=True)
class Model:
    """A model the benchmark streams: its directory (under ``--work`` unless bundled), the
    command that trains it there, its family, and whether it trained with augmentation."""

    directory: str
    train: str | None
    family: str
    augmented: bool


MODELS = {
    "default": Model("models/default_v2_heldout",
                     "emovox train configs/default_model_v2_heldout.yaml --out {dir}",
                     "default", augmented=False),
    "default_augmented": Model("models/default_v2_heldout_augmented",
                               "emovox train configs/default_model_v2_heldout.yaml "
                               "augment.copies=1 --out {dir}", "default", augmented=True),
    "gru": Model("gru", None, "gru", augmented=True),
    "gru_unaugmented": Model("models/default_unaugmented",
                             "emovox train configs/default_model.yaml augment.copies=0 "
                             "--out {dir}", "gru", augmented=False),
}
#: Each family's section of RESULTS.md and the model its targets are for.
FAMILIES = {"default": ("sessions_default", "default"), "gru": ("sessions", "gru")}


def model_dir(work: Path, model: Model) -> Path:
    return bundled_model_dir(model.directory) if model.train is None else work / model.directory


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


def validate(work: Path, family: str, model: Path, settings: list[StreamSettings]
             ) -> dict[StreamSettings, dict]:
    """Each setting streamed by ``model`` over the validation sessions: per condition."""
    return {s: score_model(work / "validation", work / "validation_runs" / f"{family}_{name(s)}",
                           model, s, figures=0, progress=False)["conditions"]
            for s in settings}


def choose_gate(work: Path, gru: Path) -> tuple[StreamSettings, dict[StreamSettings, dict]]:
    """The gate with the fewest decisions during the events condition's door/music/tone, then
    the highest mean segmentation F1 over clean and 10 dB, deciding at the utterance's end."""
    manifest, corpus = held_out_corpus(gru, validation=True)
    build_sessions(manifest, work / "validation", VALIDATION, corpus)
    scored = validate(work, "gru", gru, GATES)

    def rank(gate: StreamSettings) -> tuple:
        c = scored[gate]
        return (c["events"]["non_speech_decisions"],
                -(c["clean"]["f1"] + c["room_noise_10db"]["f1"]) / 2)

    return min(GATES, key=rank), scored


def choose_threshold(work: Path, family: str, model: Path, gate: StreamSettings
                     ) -> tuple[StreamSettings, dict[StreamSettings, dict]]:
    """On ``gate``, the threshold with the lowest median latency (clean) whose UAR (clean) is
    within UAR_TOLERANCE of the offline UAR; the gate alone (decide at the end) if none is."""
    scored = validate(work, family, model,
                      [gate, *(replace(gate, threshold=t) for t in THRESHOLDS)])
    allowed = [s for s in scored if s.threshold is not None
               and scored[s]["clean"]["uar_minus_offline"] >= -UAR_TOLERANCE]
    return min(allowed, key=lambda s: scored[s]["clean"]["latency_median"], default=gate), scored


GRID_HEADER = ["| streamed with | setting | seg. F1 clean | seg. F1 10 dB | decisions during "
               "events | UAR − offline, clean | latency median, clean |",
               "|---|---|---|---|---|---|---|"]


def grid_rows(scored: dict[StreamSettings, dict], chosen: StreamSettings, model: str,
              mark: str) -> list[str]:
    """The validation grid's rows, ``chosen`` marked with ``mark``."""
    rows = []
    for setting, c in scored.items():
        tag = f" **{mark}**" if setting == chosen else ""
        rows.append(f"| {model} | `{flags(setting)}`{tag} | {cell(c['clean']['f1'], '{:.3f}')} | "
                    f"{cell(c['room_noise_10db']['f1'], '{:.3f}')} | "
                    f"{c['events']['non_speech_decisions']} | "
                    f"{cell(c['clean']['uar_minus_offline'], '{:+.3f}')} | "
                    f"{cell(c['clean']['latency_median'], '{:.2f} s')} |")
    return rows


def targets(runs: dict[tuple[str, str], dict], streams: dict[str, StreamSettings],
            reference: str) -> list[str]:
    """The issue's targets, per stream setting, for the family's ``reference`` model; the drop
    compares the family's augmented and unaugmented models on the same stream."""
    lines = ["| stream | seg. F1 clean (≥ 0.95) | seg. F1 10 dB (≥ 0.90) | decisions during "
             "events (events condition; 0) | UAR stream − offline, clean (within 0.03) | "
             "UAR drop clean → 10 dB: augmented / unaugmented (≤ half) | "
             "latency median / p90, clean (median ≤ 1.0 s) | running adaptation: UAR utt. "
             "1–3 / ≥ 10, clean |",
             "|---|---|---|---|---|---|---|---|"]
    family = MODELS[reference].family
    for (model, stream), summary in runs.items():
        if model != reference:
            continue
        c = summary["conditions"]
        drops = {MODELS[m].augmented: _drop(s["conditions"]) for (m, st), s in runs.items()
                 if st == stream and MODELS[m].family == family}
        lines.append(" | ".join([
            f"| `{flags(streams[stream]) or 'defaults'}`", cell(c["clean"]["f1"], "{:.3f}"),
            cell(c["room_noise_10db"]["f1"], "{:.3f}"),
            str(c["events"]["non_speech_decisions"]),
            cell(c["clean"]["uar_minus_offline"], "{:+.3f}"),
            f"{cell(drops.get(True), '{:+.3f}')} / {cell(drops.get(False), '{:+.3f}')}",
            f"{cell(c['clean']['latency_median'], '{:.2f}')} / "
            f"{cell(c['clean']['latency_p90'], '{:.2f} s')}",
            f"{cell(c['clean']['uar_first'], '{:.3f}')} / "
            f"{cell(c['clean']['uar_late'], '{:.3f}')} "
            f"({c['clean']['n_first']} / {c['clean']['n_late']} utt.)"]) + " |")
    return lines


def _drop(conditions: dict) -> float | None:
    a, b = conditions["clean"]["uar"], conditions["room_noise_10db"]["uar"]
    return None if a is None or b is None else a - b


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("runs/sessions"))
    parser.add_argument("--max-sessions-per-speaker", type=int, default=12)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--streams", nargs="+", default=list(STREAMS), choices=list(STREAMS))
    args = parser.parse_args()
    start = time.time()
    gru = model_dir(args.work, MODELS["gru"])
    gate, gate_scored = choose_gate(args.work, gru)
    if gate != replace(CHOSEN, threshold=None):
        print(f"note: chosen gate {gate} differs from emovox.sessions.run.CHOSEN {CHOSEN}: "
              "update CHOSEN and docs/sessions.md")
    settings = build(BuildSettings, {"max_sessions_per_speaker": args.max_sessions_per_speaker},
                     "sessions")
    validation = ", ".join(held_out_corpus(gru, validation=True)[1]["speakers"])
    manifest, corpus = held_out_corpus(gru)
    set_dir = args.work / "set"
    build_sessions(manifest, set_dir, settings, corpus)
    for family, (section, reference) in FAMILIES.items():
        members = [m for m in args.models if MODELS[m].family == family]
        if not members:
            continue
        ref_dir = model_dir(args.work, MODELS[reference])
        if not (ref_dir / "model.json").exists():
            print(f"skipped {family}: train {MODELS[reference].train.format(dir=ref_dir)}")
            continue
        chosen, scored = choose_threshold(args.work, family, ref_dir, gate)
        streams = {"defaults": StreamSettings(), "chosen": chosen, "chosen_gate": gate,
                   "pause300_music_check": PAUSE300}
        streams = {k: streams[k] for k in args.streams}
        if chosen == gate:
            streams.pop("chosen_gate", None)
        runs, skipped = {}, []
        for model in members:
            spec = MODELS[model]
            directory = model_dir(args.work, spec)
            if not (directory / "model.json").exists():
                skipped.append(spec.train.format(dir=directory))
                continue
            for stream, setting in streams.items():
                runs[model, stream] = score_model(
                    set_dir, args.work / f"{model}_{name(setting)}", directory, setting)
        body = report(args, runs, streams, family, reference, section, chosen, settings,
                      validation, [*GRID_HEADER, *grid_rows(gate_scored, gate, "gru", "gate"),
                                   *grid_rows(scored, chosen, reference, "chosen")],
                      skipped, time.time() - start)
        write_section(section, body)
        print(body)


def report(args: argparse.Namespace, runs: dict, streams: dict[str, StreamSettings],
           family: str, reference: str, section: str, chosen: StreamSettings,
           settings: BuildSettings, validation: str, grid: list[str], skipped: list[str],
           seconds: float) -> str:
    """The family's section of RESULTS.md."""
    first = runs[reference, next(iter(streams))]["conditions"]["clean"]
    models = " ".join(m for m in args.models if MODELS[m].family == family)
    lines = [
        f"## Continuous sessions, {family} models ({section})", "",
        f"{machine()}; {seconds:.0f} s (resumed runs count only what was left).", "", "```",
        f".venv/bin/python benchmarks/sessions.py --work {args.work} "
        f"--max-sessions-per-speaker {args.max_sessions_per_speaker} --models {models} "
        f"--streams {' '.join(streams)}", "```", "",
        f"Stream setting chosen on the validation speaker ({validation}; "
        f"{VALIDATION.max_sessions_per_speaker} sessions, conditions "
        f"{', '.join(VALIDATION.conditions)}) by the rule of docs/sessions.md: the gate "
        f"streamed with the GRU, the threshold (on that gate) with the `{reference}` model "
        f"(the last {len(THRESHOLDS) + 1} rows; segmentation depends on the gate alone): "
        f"`{flags(chosen)}`.", "", *grid, "",
        f"Test: held-out speakers emodb_03, nemo_EB0: {first['sessions']} sessions of "
        f"{settings.utterances} utterances ({first['utterances']} utterances, "
        f"{first['hours'] * 60:.1f} min) per condition, pauses "
        f"{settings.min_pause_s:g}–{settings.max_pause_s:g} s. Definitions: docs/sessions.md. "
        "Each table: `emovox sessions score runs/sessions/set --model MODEL --out OUT "
        "[stream flags]`.", "", f"Targets (`{reference}` model):", "",
        *targets(runs, streams, reference), ""]
    for (model, stream), summary in runs.items():
        lines += [f"### {model} model, stream `{flags(streams[stream]) or 'defaults'}`", "",
                  markdown_table(summary["conditions"]), ""]
    for command in skipped:
        lines += [f"Not run (no model directory): `{command}`, then rerun.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
