"""The EmoRL study's report: a table sorted by speed-up and AUC against the fraction heard."""

from __future__ import annotations

import io
from pathlib import Path

from emovox.evaluation.metrics import format_summary, summarise
from emovox.io import atomic_write, atomic_write_text

NAMES = {
    "emorl": "EmoRL (REINFORCE agent)",
    "gru_full": "gru_baseline, whole utterance",
    "threshold_reward": "confidence threshold (θ max. validation reward)",
    "threshold_matched": "confidence threshold (θ matching EmoRL's validation speed-up)",
}
KEYS = ("auc", "accuracy", "uar", "fraction", "speedup", "latency_s")


def _curve(extras: list[dict], name: str, x: str) -> list[dict]:
    """Mean over runs of each point of a curve (points are aligned by position)."""
    points = zip(*(e["curves"][name] for e in extras), strict=True)
    return [{k: s["mean"] for k, s in summarise(list(group)).items()} | {x: group[0][x]}
            for group in points]


def early_report(out: Path, name: str, protocol: str, step_ms: float, extras: list[dict]
                 ) -> tuple[dict, str]:
    """The ``early`` block of metrics.json and the section of report.md (also written alone as
    ``early.md``), with ``early.png``, from each fold's early-decision results."""
    methods = {m: summarise([e["early"][m] for e in extras]) for m in extras[0]["early"]}
    prefix, threshold = _curve(extras, "prefix", "p"), _curve(extras, "threshold", "theta")
    early = {"methods": methods, "prefix_curve": prefix, "threshold_curve": threshold,
             "step_ms": step_ms}
    _plot(out / "early.png", name, methods, prefix, threshold)

    rows = [(NAMES.get(m, m), s) for m, s in methods.items()]
    rows += [(f"gru_baseline, first {int(round(c['p'] * 100))} %", {k: {"mean": c[k], "std": 0}
              for k in KEYS if k in c}) for c in prefix[:-1]]
    rows.sort(key=lambda r: -r[1]["speedup"]["mean"])
    has_auc = "auc" in methods["emorl"]
    cols = [k for k in KEYS if has_auc or k != "auc"]
    lines = [
        "## Early decisions",
        "",
        f"**Protocol:** {protocol}. Decisions every {step_ms:.0f} ms; thresholds and "
        "checkpoints chosen on validation speakers only. Prefix rows are mean over runs (std "
        "omitted).",
        "",
        "| method | " + " | ".join(cols) + " |",
        "|---" * (len(cols) + 1) + "|",
    ]
    for label, s in rows:
        cells = [format_summary(s[k]["mean"], s[k]["std"]) if s[k]["std"] else
                 f"{s[k]['mean']:.3f}" for k in cols]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "![AUC against fraction heard](early.png)", ""]
    section = "\n".join(lines)
    atomic_write_text(out / "early.md", f"# {name}: early decisions\n\n" + section)
    return {"early": early}, section


def _plot(path: Path, name: str, methods: dict, prefix: list[dict],
          threshold: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = "auc" if "auc" in methods["emorl"] else "uar"
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    ax.plot([c["fraction"] for c in prefix], [c[metric] for c in prefix], "o-",
            label="gru_baseline on first p %")
    ax.plot([c["fraction"] for c in threshold], [c[metric] for c in threshold], "s--",
            alpha=0.6, label="confidence threshold (θ sweep, test)")
    markers = {"emorl": ("*", 16), "threshold_reward": ("D", 8), "threshold_matched": ("P", 9),
               "gru_full": ("X", 9)}
    for name, (marker, size) in markers.items():
        s = methods[name]
        ax.errorbar(s["fraction"]["mean"], s[metric]["mean"], xerr=s["fraction"]["std"],
                    yerr=s[metric]["std"], marker=marker, markersize=size, capsize=3,
                    linestyle="none", label=NAMES[name])
    ax.set_xlabel("fraction of the utterance heard")
    ax.set_ylabel(metric.upper())
    ax.set_title(f"{name}: {metric.upper()} against the fraction heard", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write(path, lambda fh: fh.write(buf.getvalue()))
