"""A scored run as a picture per session (PNG) and one self-contained HTML page.

The picture of a session: its waveform with the true speech shaded; the timeline — true
utterances (coloured by emotion) and non-speech events above, the stream's utterances below,
each decision at the moment it was emitted with an arrow from the true onset (its latency);
and the running class probabilities of every decision step.
"""

from __future__ import annotations

import base64
import html
import json
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import soundfile as sf

from emovox.evaluation.plots import save_figure
from emovox.io import atomic_write_text
from emovox.sessions.score import SessionScore, decided_utterances, match
from emovox.sessions.timeline import Session, SessionSet

#: (summary key, column heading, format) of the tables, in order.
COLUMNS = (
    ("sessions", "sessions", "{:d}"),
    ("utterances", "utterances", "{:d}"),
    ("precision", "seg. precision", "{:.3f}"),
    ("recall", "seg. recall", "{:.3f}"),
    ("f1", "seg. F1", "{:.3f}"),
    ("non_speech_per_hour", "non-speech decisions / h", "{:.1f}"),
    ("uar", "UAR stream", "{:.3f}"),
    ("uar_decided", "UAR decided", "{:.3f}"),
    ("offline_uar", "UAR offline, clean cut", "{:.3f}"),
    ("latency_median", "latency median (s)", "{:.2f}"),
    ("latency_p90", "latency p90 (s)", "{:.2f}"),
    ("fraction_median", "latency / utterance, median", "{:.2f}"),
    ("undecided", "undecided", "{:d}"),
    ("uar_first", "UAR utt. 1–3", "{:.3f}"),
    ("uar_late", "UAR utt. ≥ 10", "{:.3f}"),
)


def cell(value, fmt: str) -> str:
    return "–" if value is None else fmt.format(value)


def markdown_table(rows: dict[str, dict], first: str = "condition") -> str:
    """One row per entry of ``rows`` (name → summary), the columns of :data:`COLUMNS`."""
    lines = ["| " + " | ".join([first, *(c[1] for c in COLUMNS)]) + " |",
             "|---" * (len(COLUMNS) + 1) + "|"]
    for name, summary in rows.items():
        lines.append("| " + " | ".join([name, *(cell(summary.get(k), f)
                                                 for k, _, f in COLUMNS)]) + " |")
    return "\n".join(lines)


def _envelope(path: Path, width: int = 4000) -> tuple[np.ndarray, np.ndarray, float]:
    """Peak envelope of an audio file in about ``width`` points (times, peaks, duration)."""
    wave, rate = sf.read(str(path), dtype="float32")
    hop = max(1, len(wave) // width)
    n = len(wave) // hop
    peaks = np.abs(wave[: n * hop]).reshape(n, hop).max(axis=1)
    return (np.arange(n) + 0.5) * hop / rate, peaks, len(wave) / rate


def _steps(events: Sequence[dict]) -> list[tuple[float, dict]]:
    """(stream time, probabilities) of every decision step: a step's ``time`` counts the
    utterance's audio, which runs contiguously from the utterance's start."""
    start, out = 0.0, []
    for e in events:
        if e["type"] == "utterance_start":
            start = e["time"]
        elif e["type"] == "step":
            out.append((start + e["time"], e["probabilities"]))
    return out


def plot_session(session: Session, audio: Path, events: Sequence[dict], labels: Sequence[str],
                 path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {label: plt.cm.tab10(k % 10) for k, label in enumerate(labels)}
    fig, (wave_ax, time_ax, prob_ax) = plt.subplots(
        3, 1, figsize=(14, 7), sharex=True, gridspec_kw={"height_ratios": [1.2, 1.4, 1.4]})
    times, peaks, duration = _envelope(audio)
    wave_ax.fill_between(times, -peaks, peaks, color="0.3", linewidth=0)
    for u in session.utterances:
        wave_ax.axvspan(u.start, u.end, color=colours[u.label], alpha=0.2, linewidth=0)
    wave_ax.set_ylabel("waveform")
    wave_ax.set_title(f"{session.key} — {session.speaker}, {session.condition}")

    found = decided_utterances(events)
    pairs = match(session.utterances, found)
    for u in session.utterances:
        time_ax.barh(1.0, u.end - u.start, left=u.start, height=0.5, color=colours[u.label])
        time_ax.text((u.start + u.end) / 2, 1.0, u.label[:3], ha="center", va="center",
                     fontsize=7)
    for e in session.events:
        time_ax.barh(1.0, e.end - e.start, left=e.start, height=0.5, color="0.85",
                     hatch="//", edgecolor="0.5")
        time_ax.text((e.start + e.end) / 2, 1.35, e.kind, ha="center", fontsize=7)
    matched_to = {j: i for i, j in pairs.items()}
    for j, d in enumerate(found):
        time_ax.barh(0.0, d.end - d.start, left=d.start, height=0.5, color="0.75")
        truth = session.utterances[matched_to[j]] if j in matched_to else None
        mark = "0.4" if truth is None else ("green" if truth.label == d.label else "red")
        time_ax.plot([d.emitted_at], [0.0], marker="v", color=mark, markersize=8)
        time_ax.text(d.emitted_at, -0.42, d.label[:3], ha="center", fontsize=7, color=mark)
        if truth is not None:
            time_ax.annotate("", xy=(d.emitted_at, 0.5), xytext=(truth.start, 0.7),
                             arrowprops={"arrowstyle": "->", "color": mark, "lw": 0.8})
            time_ax.text(d.emitted_at, 0.55, f"{d.emitted_at - truth.start:.2f} s",
                         fontsize=6, color=mark)
    time_ax.set_yticks([0.0, 1.0], ["stream", "truth"])
    time_ax.set_ylim(-0.6, 1.6)

    steps = _steps(events)
    if steps:
        t = np.array([s for s, _ in steps])
        for label in labels:
            prob_ax.plot(t, [p[label] for _, p in steps], ".", markersize=3,
                         color=colours[label], label=label)
        prob_ax.legend(loc="upper right", fontsize=7, ncol=len(labels))
    for d in found:
        prob_ax.axvline(d.emitted_at, color="0.5", linewidth=0.6, linestyle="--")
    prob_ax.set_ylim(0, 1)
    prob_ax.set_ylabel("running probabilities")
    prob_ax.set_xlabel("session time (s)")
    prob_ax.set_xlim(0, duration)
    fig.tight_layout()
    save_figure(fig, path)


def _pick(sessions: Sequence[Session], per_condition: int) -> list[Session]:
    """The first sessions of each speaker in turn, ``per_condition`` per condition."""
    chosen = []
    for condition in dict.fromkeys(s.condition for s in sessions):
        turn: Counter[str] = Counter()
        ranked = []
        for s in (s for s in sessions if s.condition == condition):
            ranked.append((turn[s.speaker], s.speaker, s))
            turn[s.speaker] += 1
        chosen += [s for *_, s in sorted(ranked, key=lambda r: r[:2])[:per_condition]]
    return chosen


def _html_table(rows: dict[str, dict], first: str) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in [first, *(c[1] for c in COLUMNS)])
    body = "".join(
        "<tr><td>" + html.escape(name) + "</td>" +
        "".join(f"<td>{cell(summary.get(k), f)}</td>" for k, _, f in COLUMNS) + "</tr>"
        for name, summary in rows.items())
    return f"<table><tr>{head}</tr>{body}</table>"


def write_report(out: Path, set_dir: Path, sessions: SessionSet,
                 scores: Sequence[SessionScore], summary: dict, figures: int,
                 events: Callable[[Session], Sequence[dict]]) -> Path:
    """``out/figures/<condition>/<session>.png`` for the chosen sessions (``events``: a
    session's stream events) and ``out/report.html`` with the tables and those figures
    inlined."""
    labels = summary["labels"]
    images = []
    for session in _pick(sessions.sessions, figures):
        png = out / "figures" / session.condition / f"{session.id}.png"
        if not png.exists():
            plot_session(session, set_dir / session.audio, events(session), labels, png)
        data = base64.b64encode(png.read_bytes()).decode()
        images.append(f"<h3>{html.escape(session.key)}</h3>"
                      f'<img alt="{html.escape(session.key)}" src="data:image/png;base64,'
                      f'{data}">')
    groups = {
        group: "".join(f"<h3>{html.escape(condition)}</h3>" + _html_table(rows, heading)
                       for condition, rows in summary[group].items())
        for group, heading in (("speakers", "speaker"), ("noises", "background noise"))}
    build = html.escape(json.dumps(summary["build"], indent=1))
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>emovox sessions: {html.escape(out.name)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #bbb;padding:3px 6px;text-align:right;font-size:13px}}
td:first-child{{text-align:left}}img{{max-width:100%}}</style></head><body>
<h1>Sessions scored: {html.escape(str(out))}</h1>
<p>{len(scores)} sessions from {html.escape(str(set_dir))}. Definitions: docs/sessions.md.</p>
<h2>Per condition</h2>{_html_table(summary["conditions"], "condition")}
<h2>Per speaker</h2>{groups["speakers"]}
<h2>Per background noise</h2>{groups["noises"]}
<h2>Sessions</h2>{"".join(images)}
<h2>How the sessions were built</h2><pre>{build}</pre>
</body></html>
"""
    path = out / "report.html"
    atomic_write_text(path, page)
    return path
