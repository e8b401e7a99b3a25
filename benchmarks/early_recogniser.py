"""Early decisions with a recogniser-layer model, leave-one-speaker-out: how much of an utterance
it must hear, with and without its speaker's statistics. Two setups:

- ``--corpus emodb|nemo``: MP-2 (Whisper tiny.en layer 2, mean-pooled, linear head; the
  ``mp_2_long`` row of configs/recogniser_transfer_emodb.yaml) on one corpus, 7 or 6 classes
  (issue 15), each utterance streamed from its first sample;
- ``--config configs/default_model_v2.yaml``: any recipe, here the default (Whisper base block 3,
  mean-pooled, Emo-DB + nEMO, five emotions; issue 26), each utterance streamed as the deployed
  ``StreamingRecognizer`` feeds it (``early_steps.gate_bounds``: from the speech gate's onset
  less its pre-roll, no decision before ``min_speech_ms`` of speech) and reported per corpus of
  the test speaker, with the decision time in seconds after the onset.

Each fold of ``make_folds(manifest, "loso", 0)`` (a validation and a test speaker) trains the
recipe (``--set`` overrides anything, e.g. the ``prefix`` augmentation) through the Supervised
method, checkpoint chosen on the validation speaker. Every utterance is streamed once through
the deployed ``WindowStreamer`` (``early_steps.py``: the mean raw frame heard at each 300 ms step
and at the end); a step's class probabilities are the head on that mean, normalised:

- ``training``: with the training speakers' statistics (the ``Normaliser`` fallback of a stream
  that knows nothing of its speaker);
- ``enrolled``: with the statistics of the same speaker's OTHER utterances (whole recordings, no
  labels, never the utterance being decided: ``features.normalise.leave_one_out``), with
  ``--config`` shrunk toward the training statistics by ``SHRINKAGE_FRAMES`` as the recipe's
  streams do: a stream that enrolled its speaker beforehand.

The first fold checks this against the real streamer built by ``Method.streamer`` on the enrolled
model (``experiments.streamers.enrol``): the largest probability difference is reported. Then,
per normalisation, on the test speakers (mean ± std over folds): the whole-utterance UAR; UAR on
the first 10 … 100 %; two confidence-threshold exits with θ from 0.30 … 0.99 chosen on the
fold's validation speaker only ((c) the smallest θ within 0.02 of validation whole-utterance UAR,
else the best; (d) θ maximising validation UAR − 0.1 · fraction heard); and with ``--emorl``
EmoRL's agent (``models.emorl.StepAgent``, REINFORCE of ``early.reinforce``) trained on the
training speakers' step states under four rewards (``--rewards``: some), its checkpoint chosen
on the validation speaker. Folds resume from ``--work``.

    .venv/bin/python benchmarks/early_recogniser.py --corpus emodb --emorl
    .venv/bin/python benchmarks/early_recogniser.py --corpus emodb --emorl --tag prefix \\
        --set 'augment={transforms: {prefix: {}}, copies: 4}'
    .venv/bin/python benchmarks/early_recogniser.py --corpus nemo --emorl
    .venv/bin/python benchmarks/early_recogniser.py --config configs/default_model_v2.yaml
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from early_steps import Heard, corpus_steps  # noqa: E402
from results import machine, write_section  # noqa: E402

from emovox.audio import load_audio  # noqa: E402
from emovox.corpora import Manifest  # noqa: E402
from emovox.corpora.combined import part_of  # noqa: E402
from emovox.early.reinforce import EmoRLConfig, greedy_decisions, train_emorl  # noqa: E402
from emovox.evaluation.metrics import uar  # noqa: E402
from emovox.experiments.config import (  # noqa: E402
    ExperimentConfig,
    apply_overrides,
    build_config,
    read_yaml,
)
from emovox.experiments.dataset import load_dataset  # noqa: E402
from emovox.experiments.methods.base import RunContext, Split, make_method  # noqa: E402
from emovox.experiments.protocols import make_folds  # noqa: E402
from emovox.experiments.streamers import enrol  # noqa: E402
from emovox.features.normalise import SHRINKAGE_FRAMES, leave_one_out  # noqa: E402
from emovox.io import atomic_write_json  # noqa: E402
from emovox.models.emorl import StepAgent  # noqa: E402
from emovox.serving.streaming import GateConfig  # noqa: E402
from emovox.training import SequenceSet  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "configs" / "recogniser_transfer_emodb.yaml"
VARIANT = "mp_2_long"
#: Name, corpus config and the issue's target: the most of an utterance an exit may hear on
#: average (Emo-DB: ≥ 2× speed-up; nEMO: ≥ 1.75×).
CORPORA = {"emodb": ("Emo-DB", {"format": "emodb", "path": "../shared/data/emodb"}, 1 / 2),
           "nemo": ("nEMO", {"format": "nemo", "path": "../shared/data/nemo"}, 1 / 1.75)}
NORMS = ("training", "enrolled")
FRACTIONS = np.round(np.arange(0.1, 1.01, 0.1), 1)
THETAS = np.round(np.arange(0.30, 0.995, 0.01), 2)
TOLERANCE = 0.02  # rule (c), and the target
LATENCY_COST = 0.1  # rule (d)
#: EmoRL's rewards, as configs/emodb_early_7class.yaml's variants.
REWARDS = {"default": {}, "harsh": {"r_fp": -3.0, "r_no_decision": -3.0},
           "late_latency": {"latency_delay_steps": 3}, "low_latency": {"latency_weight": 0.2}}
EMORL = {"episodes": 20_000, "freeze_episodes": 5_000, "lr": 1e-4, "weight_decay": 1e-5}


@dataclass
class Setup:
    """What a run studies: the recipe, how its streams are fed and what enrolment shrinks by."""

    cfg: ExperimentConfig
    key: str  # names the steps cache, the work folder and the section
    title: str  # the model in words
    gate: GateConfig | None  # None: fed from the file's first sample, decisions from step 0
    tau: float  # frames the enrolled statistics are shrunk toward the training ones by
    most: float | None  # issue 15's target for a one-corpus run (None: none)


def corpus_setup(corpus: str, overrides: list[str]) -> Setup:
    study = read_yaml(STUDY)
    data = apply_overrides(copy.deepcopy(study["base"]), study["variants"][VARIANT])
    data["corpus"] = dict(CORPORA[corpus][1])
    data["corpus"]["path"] = str(ROOT / data["corpus"]["path"])
    data["name"] = f"early_recogniser/{corpus}"
    return Setup(build_config(apply_overrides(data, overrides)), corpus, "MP-2", None, 0.0,
                 CORPORA[corpus][2])


def recipe_setup(path: Path, overrides: list[str]) -> Setup:
    """A model config (e.g. configs/default_model_v2.yaml), fed as the deployed stream feeds."""
    data = read_yaml(path)
    data["corpus"]["path"] = str(ROOT / data["corpus"]["path"])
    cfg = build_config(apply_overrides(data, overrides))
    params = ", ".join(f"{k} {v}" for k, v in cfg.features.params.items())
    title = f"`{path.stem}` ({cfg.model.name} on {cfg.features.name}: {params})"
    return Setup(cfg, path.stem, title, GateConfig(), SHRINKAGE_FRAMES, None)


def group_name(setup: Setup, speaker: str) -> str:
    """The corpus a test speaker belongs to."""
    if setup.cfg.corpus.format == "combined":
        part = part_of(speaker)
        return CORPORA[part][0] if part in CORPORA else part
    return CORPORA[setup.key][0] if setup.key in CORPORA else setup.key


class Heads:
    """A trained fold's MP members as (normalised mean frame → class probabilities)."""

    def __init__(self, trained):
        self.linears = [m.head[-1] for m in trained.members]

    @torch.no_grad()
    def __call__(self, states: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(states.astype(np.float32))
        return np.mean([torch.softmax(lin(x), -1).numpy() for lin in self.linears], axis=0)


def step_states(steps: dict[str, Heard], manifest, normalisers) -> list[np.ndarray]:
    """Normalised mean frame heard at every step, per utterance: [K, D]; ``normalisers`` maps
    an utterance id to its normaliser."""
    return [((steps[u.id].means - normalisers(u.id).mean) / normalisers(u.id).std)
            .astype(np.float32) for u in manifest]


def parity(method, trained, stats, tau, steps, heads, manifest, n: int = 3) -> float:
    """Largest difference between the real enrolled streamer fed the same audio and the
    cached path."""
    worst = 0.0
    for u in list(manifest)[:n]:
        streamer = method.streamer(enrol(trained, "speaker", stats[u.id], tau))
        rate, heard = streamer.sample_rate, steps[u.id]
        wave = load_audio(u.path, rate)[int(round(heard.start * rate)) :
                                        int(round(heard.end * rate))]
        stream = streamer.start(10**9)
        with torch.no_grad():
            got = np.stack([s.proba for s in stream.push(wave) + stream.finish()])
        want = heads(step_states(steps, [u], lambda i: stats[i].normaliser(trained.normaliser,
                                                                           tau))[0])
        worst = max(worst, float(np.abs(got - want).max()))
    return worst


def agent_decisions(heads, train_states, train_y, valid_states, valid_y, test_states,
                    work: Path, steps_per_s: float, rewards: list[str]
                    ) -> dict[str, dict[str, list[int]]]:
    """EmoRL on the step states under each of ``rewards``: the decision step of each file."""
    out = {}
    train = SequenceSet(train_states, train_y)
    valid = SequenceSet(valid_states, valid_y)
    test = SequenceSet(test_states, np.zeros(len(test_states), dtype=np.int64))
    for name in rewards:
        cfg = EmoRLConfig(**EMORL, **REWARDS[name])
        agent = StepAgent.from_head(heads.linears[0])
        train_emorl(agent, train, valid, cfg, steps_per_s, 0, seed=0,
                    checkpoint=work / f"emorl_{name}.pt", progress=False)
        out[name] = {part: greedy_decisions(agent, data, 1, steps_per_s).step.tolist()
                     for part, data in (("valid", valid), ("test", test))}
    return out


def file_record(label: int, heard: Heard, min_speech: float) -> dict:
    """A file's timing: the audio the stream got (``heard`` s), the onset's place in it
    (``lag`` s; None: the gate never opened) and the first step allowed to decide."""
    speech = np.flatnonzero(heard.speech >= min_speech - 1e-9)
    return {"label": label, "duration": heard.duration, "heard": round(heard.end - heard.start, 4),
            "lag": None if np.isnan(heard.onset) else round(heard.onset - heard.start, 4),
            "first": int(speech[0]) if len(speech) else len(heard.seconds) - 1,
            "enough_speech": bool(len(speech)), "seconds": heard.seconds.round(4).tolist()}


def run_fold(setup: Setup, dataset, steps, own, fold, work: Path, rewards: list[str]) -> dict:
    """One fold's validation and test files with their step probabilities (``own()``: every
    utterance's leave-one-out speaker statistics, the same in every fold)."""
    done = work / "streams.json"
    result = json.loads(done.read_text()) if done.exists() else None
    if result is not None and all(r in result.get("emorl", {}) for r in rewards):
        return result
    cfg, tau = setup.cfg, setup.tau
    method = make_method(cfg)
    split = Split(dataset.split(fold.train), dataset.split(fold.valid), dataset.split(fold.test))
    trained, _ = method.fit(dataset, split, RunContext(seed=0, fold=fold.index, work_dir=work))
    heads = Heads(trained)
    stats = own()
    enrolled = {u: st.normaliser(trained.normaliser, tau) for u, st in stats.items()}
    streamed = {"train": split.train, "valid": split.valid, "test": split.test}
    streamed = {k: m.filter(lambda u: u.id in steps) for k, m in streamed.items()}
    if result is None:
        result = {"valid_speaker": fold.valid, "test_speaker": fold.test,
                  "offline_test_uar": method.score(trained, dataset, split.test).metrics["uar"]}
        if fold.index == 0:
            result["parity_max_diff"] = parity(method, trained, stats, tau, steps, heads,
                                               streamed["test"])
        norms = {"training": lambda _: trained.normaliser, "enrolled": enrolled.get}
        min_speech = setup.gate.min_speech_ms / 1000 if setup.gate else 0.0
        for part in ("valid", "test"):
            manifest = streamed[part]
            probas = {k: [heads(s) for s in step_states(steps, manifest, norms[k])]
                      for k in NORMS}
            result[part] = [{**file_record(dataset.labels.index(u.label), steps[u.id],
                                           min_speech),
                             **{f"proba_{k}": probas[k][i].round(6).tolist() for k in NORMS}}
                            for i, u in enumerate(manifest)]
    missing = [r for r in rewards if r not in result.get("emorl", {})]
    if missing:
        states = {p: step_states(steps, m, enrolled.get) for p, m in streamed.items()}
        result.setdefault("emorl", {}).update(agent_decisions(
            heads, states["train"], dataset.targets(streamed["train"]), states["valid"],
            dataset.targets(streamed["valid"]), states["test"], work,
            1000 / EmoRLConfig().step_ms, missing))
    atomic_write_json(done, result)
    return result


# ---- scoring ---------------------------------------------------------------------------------
class Scored(NamedTuple):
    uar: float
    heard: float  # mean fraction of the stream's audio heard at the decision
    after: np.ndarray  # per file: seconds of audio after the speech onset at the decision


def exits(files: list[dict], norm: str, theta: float | None = None,
          fraction: float | None = None, at: list[int] | None = None
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Predicted class, fraction heard and seconds after the onset per file: at the step
    closest to ``fraction`` of the file, at the first step allowed to decide whose top
    probability reaches ``theta`` (else the end), at the given step indices ``at`` (an
    agent's; not before the first allowed), or at the end. A file whose gate never opened
    counts from the start of its audio."""
    preds, heard, after = [], [], []
    for n, f in enumerate(files):
        proba, seconds = np.array(f[f"proba_{norm}"]), np.array(f["seconds"])
        first, length = f.get("first", 0), f.get("heard", f["duration"])
        if fraction is not None:
            i = int(np.argmin(np.abs(seconds - fraction * length)))
        elif theta is not None:
            sure = np.flatnonzero(proba[first:].max(1) >= theta)
            i = first + int(sure[0]) if len(sure) else len(seconds) - 1
        elif at is not None:
            i = max(at[n], first)
        else:
            i = len(seconds) - 1
        preds.append(int(proba[i].argmax()))
        heard.append(min(seconds[i] / length, 1.0))
        after.append(seconds[i] - (f.get("lag") or 0.0))
    return np.array(preds), np.array(heard), np.array(after)


def score(files: list[dict], norm: str, n_classes: int, **how) -> Scored:
    preds, heard, after = exits(files, norm, **how)
    return Scored(uar(np.array([f["label"] for f in files]), preds, n_classes),
                  float(heard.mean()), after)


def choose(valid: list[dict], norm: str, n_classes: int) -> tuple[float, float, bool]:
    """θ by rule (c) and by rule (d), on the validation speaker's files only, and whether any θ
    came within the tolerance (else rule (c) takes the θ of the best validation UAR)."""
    whole = score(valid, norm, n_classes).uar
    grid = [(t, *score(valid, norm, n_classes, theta=t)[:2]) for t in THETAS]
    near = [t for t, u, _ in grid if u >= whole - TOLERANCE]
    rule_c = near[0] if near else max(grid, key=lambda g: g[1])[0]
    rule_d = max(grid, key=lambda g: g[1] - LATENCY_COST * g[2])[0]
    return rule_c, rule_d, bool(near)


def pm(values: np.ndarray, fmt: str = ".3f") -> str:
    return f"{np.mean(values):{fmt}} ± {np.std(values):{fmt}}"


def hit(u: np.ndarray, frac: np.ndarray, whole: np.ndarray, most: float) -> bool:
    """Issue 15's target: mean UAR within 0.02 of whole-utterance, mean fraction ≤ most."""
    return bool(u.mean() >= whole.mean() - TOLERANCE and frac.mean() <= most + 1e-9)


class Operating(NamedTuple):
    """An exit over the folds: test UAR and fraction heard per fold, θ per fold (words), and
    the seconds after onset of every test file."""

    uar: np.ndarray
    heard: np.ndarray
    thetas: str
    after: np.ndarray


def operating(results: list[dict], norm: str, n_classes: int, thetas: str = "", **how
              ) -> Operating:
    """``how`` per fold: the same keyword for every fold, or a list with one value per fold."""
    got = [score(r["test"], norm, n_classes,
                 **{k: v[n] if isinstance(v, list) else v for k, v in how.items()})
           for n, r in enumerate(results)]
    return Operating(np.array([g.uar for g in got]), np.array([g.heard for g in got]), thetas,
                     np.concatenate([g.after for g in got]))


def summarise(results: list[dict], norm: str, n_classes: int, rewards: list[str]) -> dict:
    curve = np.array([[score(r["test"], norm, n_classes, fraction=x)[:2] for x in FRACTIONS]
                      for r in results])  # [folds, fractions, (uar, heard)]
    thetas = [choose(r["valid"], norm, n_classes) for r in results]
    ops = {"whole utterance (the last step)": operating(results, norm, n_classes)}
    for k, name in enumerate(("threshold (c), smallest θ within 0.02 on validation",
                              "threshold (d), θ max. validation UAR − 0.1·fraction")):
        ops[name] = operating(results, norm, n_classes, ", ".join(f"{t[k]:.2f}" for t in thetas),
                              theta=[t[k] for t in thetas])
    if norm == "enrolled":
        for reward in rewards:
            ops[f"EmoRL, reward `{reward}`"] = operating(
                results, norm, n_classes, at=[r["emorl"][reward]["test"] for r in results])
    return {"whole": ops["whole utterance (the last step)"].uar, "curve": curve, "ops": ops,
            "no_theta_near": sum(not t[2] for t in thetas)}


def plot(path: Path, title: str, summaries: dict[str, dict], n_classes: int,
         most: float | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    markers = iter("sDv^<>ph*")
    for (norm, s), colour in zip(summaries.items(), ("tab:grey", "tab:blue"), strict=True):
        mean, std = s["curve"][:, :, 0].mean(0), s["curve"][:, :, 0].std(0)
        heard = s["curve"][:, :, 1].mean(0)
        ax.plot(heard, mean, "o-", color=colour, label=f"{norm} statistics: first 10 … 100 %")
        ax.fill_between(heard, mean - std, mean + std, color=colour, alpha=0.15)
        ax.axhline(s["whole"].mean() - TOLERANCE, color=colour, lw=0.8, ls=":")
        for name, op in list(s["ops"].items())[1:]:
            ax.errorbar(op.heard.mean(), op.uar.mean(), xerr=op.heard.std(), yerr=op.uar.std(),
                        fmt=next(markers), color=colour, capsize=2, ms=5,
                        label=f"{norm}: {name.split(',')[0]}"
                        + (f" {name.split('`')[1]}" if "`" in name else ""))
    if most is not None:
        ax.axvline(most, color="k", lw=0.6, ls="--")
    ax.set_xlabel("fraction of the utterance heard")
    ax.set_ylabel(f"test UAR ({n_classes} classes)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=6, loc="lower right", ncol=2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=120)
    os.replace(tmp, path)


def operating_table(s: dict, most: float | None) -> list[str]:
    """One row per exit: UAR, its gap to whole, fraction heard, seconds after onset."""
    whole = s["whole"]
    target = f" target (within 0.02 of whole, ≥ {1 / most:.2f}× speed-up) |" if most else ""
    rows = ["| operating point | θ per fold | test UAR | − whole | fraction heard | speed-up | "
            "decision, s after onset: median (mean) |" + target,
            "|---|---|---|---|---|---|---|" + ("---|" if most else "")]
    for n, op in s["ops"].items():
        met = (" met |" if hit(op.uar, op.heard, whole, most) else " missed |") if most else ""
        rows.append(f"| {n} | {op.thetas or '–'} | {pm(op.uar)} | "
                    f"{op.uar.mean() - whole.mean():+.3f} | {pm(op.heard, '.2f')} | "
                    f"{1 / op.heard.mean():.2f}× | {np.median(op.after):.2f} "
                    f"({op.after.mean():.2f}) |" + met)
    return rows


def headline(groups: dict[str, dict[str, dict]]) -> list[str]:
    """Enrolled exits per corpus of the test speakers, whole utterance first."""
    rows = ["| test speakers | decision | test UAR | fraction heard | decision, s after onset: "
            "median |", "|---|---|---|---|---|"]
    for group, summaries in groups.items():
        for n, op in summaries["enrolled"]["ops"].items():
            short = n.split(",")[0] + (f" `{n.split('`')[1]}`" if "`" in n else "")
            rows.append(f"| {group} | {short} | {pm(op.uar)} | {op.heard.mean():.2f} "
                        f"| {np.median(op.after):.2f} |")
    return rows


def describe(setup: Setup, args, results: list[dict], load: float) -> list[str]:
    """What was run: corpus, folds, model, how streams were fed, statistics, exits."""
    cfg = setup.cfg
    durations = [f["duration"] for r in results for f in r["test"]]
    files = [f for r in results for f in r["test"]]
    if setup.gate is None:
        feeding = (f"streamed through the deployed `WindowStreamer` from its first sample (no "
                   f"gate, no pre-roll; onset = the file's start; test files "
                   f"{min(durations):.2f}–{max(durations):.2f} s, mean "
                   f"{np.mean(durations):.2f} s; steps every 300 ms and at the end)")
        model = ("the `mp_2_long` row of configs/recogniser_transfer_emodb.yaml (Whisper "
                 "tiny.en layer 2, mean-pooled, linear head, per-speaker normalisation)")
    else:
        g = setup.gate
        lags = [f["lag"] for f in files if f["lag"] is not None]
        feeding = (
            "streamed through the deployed `WindowStreamer` as the deployed "
            "`StreamingRecognizer` feeds it: its `SpeechGate` (webrtcvad aggressiveness "
            f"{g.aggressiveness}, energy floor {g.energy_floor_db:g} dBFS, margin "
            f"{g.margin_db:g} dB) judges the file's 30 ms frames; the **onset** is the first "
            f"frame of the first {g.start_ms:g} ms run of speech; the stream is fed from "
            f"{g.preroll_ms:g} ms before it to {g.postroll_ms:g} ms after the last speech frame "
            f"and may decide only once it holds {g.min_speech_ms:g} ms of gated speech (else it "
            "decides at the end); steps every 300 ms of fed audio and at the end. Test files "
            f"{min(durations):.2f}–{max(durations):.2f} s (mean {np.mean(durations):.2f} s), "
            f"onset at a median {np.median(lags):.2f} s into the file; "
            f"{sum(f['lag'] is None for f in files)} of {len(files)} test files never opened "
            "the gate (counted from their first sample), "
            f"{sum(not f['enough_speech'] for f in files)} never held "
            f"{g.min_speech_ms:g} ms of speech (decided at the end; the live stream would say "
            "`no_speech`). Not reproduced: pauses are fed as they come (the live stream holds "
            "them back until speech resumes, the same audio later) and a 1.5 s pause does not "
            "split a file")
        model = (f"{setup.title}, {cfg.model.name} head, `normalise: {cfg.features.normalise}`,"
                 f" {len(cfg.corpus.labels or [])} emotions"
                 f" ({', '.join(cfg.corpus.labels or [])})")
    offline = np.array([r["offline_test_uar"] for r in results])
    if args.per_speaker:
        feeding += (f"; streamed and decided: each speaker's first {args.per_speaker} "
                    "utterances in the corpus's order (corpus files list them with emotions "
                    f"mixed), {len(files)} test files in all")
    shrink = (f", shrunk toward the training statistics by tau = {setup.tau:g} frames "
              "(`SHRINKAGE_FRAMES`)" if setup.tau else "")
    return [
        f"Leave-one-speaker-out ({len(results)} folds: test speakers "
        f"{', '.join('+'.join(r['test_speaker']) for r in results)}; seed 0; one validation "
        "speaker per fold picks the checkpoint and every θ and agent); " + model
        + (f" with `{'`, `'.join(args.set)}`" if args.set else "") + ". Every utterance "
        + feeding + ". Statistics: **training** = the training speakers' (a stream that "
        "knows nothing of its speaker), **enrolled** = the test speaker's other utterances "
        "(whole recordings, no labels, never the decided one)" + shrink + ". Offline "
        "whole-utterance test UAR with per-speaker statistics (all the speaker's utterances): "
        f"{pm(offline)}. Real enrolled streamer against this benchmark's cached path, fold 0, "
        "3 files: largest probability difference "
        + (f"{results[0]['parity_max_diff']:.1e}" if "parity_max_diff" in results[0] else "–")
        + ". Threshold exits: first step allowed to decide whose top probability reaches θ, "
        "else the end; θ in 0.30 … 0.99 chosen on validation, (c) smallest θ within 0.02 of "
        "validation whole-utterance UAR (else the best), (d) max. validation UAR − 0.1 · "
        "fraction. EmoRL: `StepAgent` on the enrolled step states, REINFORCE 20,000 episodes "
        "(5,000 with the classifier frozen), lr 1e-4, rewards as "
        "configs/emodb_early_7class.yaml; checkpoint of best validation reward. Decision time: "
        "seconds of audio after the onset at the deciding step, median over the test files "
        f"of all folds. {machine()}; load average {load:.2f} at the start (accuracy only, "
        "nothing timed). Test UAR and fraction heard: mean ± std over test speakers.",
    ]


def streamed(manifest, folds, per_speaker: int | None, training: bool):
    """The utterances to stream: the folds' validation and test speakers' (and training
    speakers' for agents), at most ``per_speaker`` each, in fold order so that a run stopped
    early has whole folds."""
    order: list[str] = []
    for f in folds:
        order += [s for s in (*f.test, *f.valid, *(f.train if training else ()))
                  if s not in order]
    out = []
    for speaker in order:
        out += [u for u in manifest if u.speaker == speaker][:per_speaker]
    return Manifest(out, [])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--corpus", choices=sorted(CORPORA), help="MP-2 on one corpus "
                       "(default: emodb)")
    which.add_argument("--config", type=Path, help="a model config, e.g. "
                       "configs/default_model_v2.yaml, streamed through the speech gate")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override (values parsed as YAML)")
    parser.add_argument("--tag", default="whole", help="names this run's folder and section")
    parser.add_argument("--folds", type=int, nargs="*",
                        help="fold indices, run in the order given (default: all)")
    parser.add_argument("--emorl", action="store_true", help="also train EmoRL agents")
    parser.add_argument("--rewards", nargs="+", choices=sorted(REWARDS), default=list(REWARDS),
                        help="the EmoRL rewards to train (with --emorl)")
    parser.add_argument("--per-speaker", type=int, metavar="N", help="stream and decide only "
                        "each speaker's first N utterances in the corpus's order (default: all)")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "early_recogniser")
    args = parser.parse_args()
    torch.set_num_threads(1)
    load = os.getloadavg()[0]
    setup = recipe_setup(args.config, args.set) if args.config else \
        corpus_setup(args.corpus or "emodb", args.set)
    rewards = args.rewards if args.emorl else []
    dataset = load_dataset(setup.cfg)
    folds = make_folds(dataset.manifest, "loso", 0)
    folds = [folds[i] for i in args.folds] if args.folds else folds  # in the order given
    gated = "_gated" if setup.gate else ""
    steps = corpus_steps(streamed(dataset.manifest, folds, args.per_speaker, bool(rewards)),
                         dataset.extractor, args.work / f"{setup.key}{gated}_steps.npz",
                         setup.gate)
    work = args.work / setup.key / args.tag
    own = functools.cache(lambda: leave_one_out(dataset.feats, {u.id: u.speaker
                                                                for u in dataset.manifest}))
    results = [run_fold(setup, dataset, steps, own, f, work / f"fold{f.index}", rewards)
               for f in folds]
    n_classes = len(dataset.labels)
    by_group: dict[str, list[dict]] = {}
    for r in results:
        by_group.setdefault(group_name(setup, r["test_speaker"][0]), []).append(r)
    summaries = {g: {norm: summarise(rs, norm, n_classes, rewards) for norm in NORMS}
                 for g, rs in by_group.items()}
    suffix = "" if (setup.key, args.tag) == ("emodb", "whole") else f"_{setup.key}_{args.tag}"
    command = (".venv/bin/python benchmarks/early_recogniser.py "
               + (f"--config {args.config}" if args.config else f"--corpus {setup.key}")
               + (" --emorl" if args.emorl else "")
               + (f" --rewards {' '.join(args.rewards)}" if args.emorl and
                  args.rewards != list(REWARDS) else "")
               + (f" --tag {args.tag}" if args.tag != "whole" else "")
               + "".join(f" --set '{s}'" for s in args.set)
               + (f" --folds {' '.join(map(str, args.folds))}" if args.folds else "")
               + (f" --per-speaker {args.per_speaker}" if args.per_speaker else ""))
    model = "MP-2" if setup.gate is None else f"`{setup.key}`"
    title = ", ".join(by_group) if len(by_group) > 1 else next(iter(by_group))
    lines = [f"## Early decisions, recogniser-layer model ({model}): {title}, {n_classes} "
             f"classes, `{args.tag}`", "", *describe(setup, args, results, load), "", "```",
             command, "```", ""]
    if len(by_group) > 1:
        lines += ["Enrolled statistics, per corpus of the test speakers:", "",
                  *headline(summaries), ""]
    for group, group_summaries in summaries.items():
        part = f"_{group.lower().replace('-', '')}" if len(by_group) > 1 else ""
        figure = ROOT / "docs" / "figures" / f"early_recogniser{suffix}{part}.png"
        plot(figure, f"{model} streamed, {group} test speakers ({len(by_group[group])} LOSO "
             f"folds), `{args.tag}`: mean ± std over them",
             group_summaries, n_classes, setup.most)
        if len(by_group) > 1:
            lines += [f"### {group} test speakers ({len(by_group[group])} folds)", ""]
        for norm, s in group_summaries.items():
            lines += [
                f"**{norm} statistics**: whole utterance (streamed) test UAR {pm(s['whole'])}; "
                f"(c) found no θ within 0.02 on validation in {s['no_theta_near']} of "
                f"{len(by_group[group])} folds.",
                "",
                "| first x of the utterance | " + " | ".join(f"{x:.0%}" for x in FRACTIONS)
                + " |",
                "|---" * (len(FRACTIONS) + 1) + "|",
                "| fraction heard | " + " | ".join(f"{h:.2f}" for h in
                                                  s["curve"][:, :, 1].mean(0)) + " |",
                "| test UAR | " + " | ".join(f"{m:.3f}" for m in s["curve"][:, :, 0].mean(0))
                + " |",
                "",
                *operating_table(s, setup.most),
                "",
            ]
        lines.append(f"Curve: docs/figures/{figure.name}.")
        lines.append("")
    lines.append("Speed-up = 1 / mean fraction heard.")
    write_section("early_recogniser" + suffix, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
