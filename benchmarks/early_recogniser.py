"""Early decisions with the recogniser-layer model (MP-2: Whisper tiny.en layer 2, mean-pooled,
linear head), leave-one-speaker-out on Emo-DB (7 classes) or nEMO (6): how much of an utterance
it must hear, with and without its speaker's statistics.

Each fold of ``make_folds(manifest, "loso", 0)`` (a validation and a test speaker) trains the
``mp_2_long`` row of configs/recogniser_transfer_emodb.yaml (``--corpus`` swaps the corpus,
``--set`` overrides anything, e.g. the ``prefix`` augmentation) through the Supervised method,
checkpoint chosen on the validation speaker. Every utterance is streamed once through the
deployed ``WindowStreamer`` (``early_steps.py``: the mean raw layer-2 frame heard at each 300 ms
step and at the end); a step's class probabilities are the head on that mean, normalised:

- ``training``: with the training speakers' statistics (the ``Normaliser`` fallback of a stream
  that knows nothing of its speaker);
- ``enrolled``: with the statistics of the same speaker's OTHER utterances (whole recordings, no
  labels, never the utterance being decided: ``features.normalise.leave_one_out``): a stream
  that enrolled its speaker beforehand.

The first fold checks this against the real streamer built by ``Method.streamer`` on the enrolled
model (``experiments.streamers.enrol``): the largest probability difference is reported. Then,
per normalisation, on the test speakers (mean ± std over folds): the whole-utterance UAR; UAR on
the first 10 … 100 %; two confidence-threshold exits with θ from 0.30 … 0.99 chosen on the
fold's validation speaker only ((c) the smallest θ within 0.02 of validation whole-utterance UAR,
else the best; (d) θ maximising validation UAR − 0.1 · fraction heard); and with ``--emorl``
EmoRL's agent (``models.emorl.StepAgent``, REINFORCE of ``early.reinforce``) trained on the
training speakers' step states under four rewards, its checkpoint chosen on the validation
speaker. Folds resume from ``--work``.

    .venv/bin/python benchmarks/early_recogniser.py --corpus emodb --emorl
    .venv/bin/python benchmarks/early_recogniser.py --corpus emodb --emorl --tag prefix \\
        --set 'augment={transforms: {prefix: {}}, copies: 4}'
    .venv/bin/python benchmarks/early_recogniser.py --corpus nemo --emorl
"""

from __future__ import annotations

import argparse
import copy
import json
import os
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from early_steps import corpus_steps  # noqa: E402
from results import machine, write_section  # noqa: E402

from emovox.audio import load_audio  # noqa: E402
from emovox.early.reinforce import EmoRLConfig, greedy_decisions, train_emorl  # noqa: E402
from emovox.evaluation.metrics import uar  # noqa: E402
from emovox.experiments.config import apply_overrides, build_config, read_yaml  # noqa: E402
from emovox.experiments.dataset import load_dataset  # noqa: E402
from emovox.experiments.methods.base import RunContext, Split, make_method  # noqa: E402
from emovox.experiments.protocols import make_folds  # noqa: E402
from emovox.experiments.streamers import enrol  # noqa: E402
from emovox.features.normalise import leave_one_out  # noqa: E402
from emovox.io import atomic_write_json  # noqa: E402
from emovox.models.emorl import StepAgent  # noqa: E402
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


def config(corpus: str, overrides: list[str]):
    study = read_yaml(STUDY)
    data = apply_overrides(copy.deepcopy(study["base"]), study["variants"][VARIANT])
    data["corpus"] = dict(CORPORA[corpus][1])
    data["corpus"]["path"] = str(ROOT / data["corpus"]["path"])
    data["name"] = f"early_recogniser/{corpus}"
    return build_config(apply_overrides(data, overrides))


class Heads:
    """A trained fold's MP members as (normalised mean frame → class probabilities)."""

    def __init__(self, trained):
        self.linears = [m.head[-1] for m in trained.members]

    @torch.no_grad()
    def __call__(self, states: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(states.astype(np.float32))
        return np.mean([torch.softmax(lin(x), -1).numpy() for lin in self.linears], axis=0)


def step_states(steps, manifest, normalisers) -> list[np.ndarray]:
    """Normalised mean frame heard at every step, per utterance: [K, D]; ``normalisers`` maps
    an utterance id to its normaliser."""
    return [((steps[u.id][2] - normalisers(u.id).mean) / normalisers(u.id).std)
            .astype(np.float32) for u in manifest]


def parity(method, trained, stats, steps, heads, manifest, n: int = 3) -> float:
    """Largest difference between the real enrolled streamer and the cached path."""
    worst = 0.0
    for u in list(manifest)[:n]:
        streamer = method.streamer(enrol(trained, "speaker", stats[u.id]))
        stream = streamer.start(10**9)
        with torch.no_grad():
            got = np.stack([s.proba for s in stream.push(load_audio(u.path)) + stream.finish()])
        want = heads(step_states(steps, [u], lambda i: stats[i].normaliser())[0])
        worst = max(worst, float(np.abs(got - want).max()))
    return worst


def agent_decisions(heads, train_states, train_y, valid_states, valid_y, test_states,
                    work: Path, steps_per_s: float) -> dict[str, dict[str, list[int]]]:
    """EmoRL on the step states under every reward: the decision step of each file."""
    out = {}
    train = SequenceSet(train_states, train_y)
    valid = SequenceSet(valid_states, valid_y)
    test = SequenceSet(test_states, np.zeros(len(test_states), dtype=np.int64))
    for name, reward in REWARDS.items():
        cfg = EmoRLConfig(**EMORL, **reward)
        agent = StepAgent.from_head(heads.linears[0])
        train_emorl(agent, train, valid, cfg, steps_per_s, 0, seed=0,
                    checkpoint=work / f"emorl_{name}.pt", progress=False)
        out[name] = {part: greedy_decisions(agent, data, 1, steps_per_s).step.tolist()
                     for part, data in (("valid", valid), ("test", test))}
    return out


def run_fold(cfg, dataset, steps, fold, work: Path, emorl: bool) -> dict:
    done = work / "streams.json"
    if done.exists():
        result = json.loads(done.read_text())
        if not emorl or "emorl" in result:
            return result
    method = make_method(cfg)
    split = Split(dataset.split(fold.train), dataset.split(fold.valid), dataset.split(fold.test))
    trained, _ = method.fit(dataset, split, RunContext(seed=0, fold=fold.index, work_dir=work))
    heads = Heads(trained)
    stats = leave_one_out(dataset.feats, {u.id: u.speaker for u in dataset.manifest})
    enrolled = {u: st.normaliser() for u, st in stats.items()}
    result = {"valid_speaker": fold.valid, "test_speaker": fold.test,
              "offline_test_uar": method.score(trained, dataset, split.test).metrics["uar"]}
    if fold.index == 0:
        result["parity_max_diff"] = parity(method, trained, stats, steps, heads, split.test)
    norms = {"training": lambda _: trained.normaliser, "enrolled": enrolled.get}
    for part, manifest in (("valid", split.valid), ("test", split.test)):
        probas = {k: [heads(s) for s in step_states(steps, manifest, norms[k])] for k in NORMS}
        result[part] = [{"label": dataset.labels.index(u.label), "duration": steps[u.id][0],
                         "seconds": steps[u.id][1].round(4).tolist(),
                         **{f"proba_{k}": probas[k][i].round(6).tolist() for k in NORMS}}
                        for i, u in enumerate(manifest)]
    if emorl:
        targets = {p: dataset.targets(m) for p, m in (("train", split.train),
                                                      ("valid", split.valid))}
        result["emorl"] = agent_decisions(
            heads, step_states(steps, split.train, enrolled.get), targets["train"],
            step_states(steps, split.valid, enrolled.get), targets["valid"],
            step_states(steps, split.test, enrolled.get), work, 1000 / EmoRLConfig().step_ms)
    atomic_write_json(done, result)
    return result


# ---- scoring ---------------------------------------------------------------------------------
def exits(files: list[dict], norm: str, theta: float | None = None,
          fraction: float | None = None, at: list[int] | None = None
          ) -> tuple[np.ndarray, np.ndarray]:
    """Predicted class and fraction heard per file: at the step closest to ``fraction`` of the
    file, at the first step whose top probability reaches ``theta`` (else the end), at the given
    step indices ``at`` (an agent's), or at the end."""
    preds, heard = [], []
    for n, f in enumerate(files):
        proba, seconds = np.array(f[f"proba_{norm}"]), np.array(f["seconds"])
        if fraction is not None:
            i = int(np.argmin(np.abs(seconds - fraction * f["duration"])))
        elif theta is not None:
            sure = np.flatnonzero(proba.max(1) >= theta)
            i = int(sure[0]) if len(sure) else len(seconds) - 1
        elif at is not None:
            i = at[n]
        else:
            i = len(seconds) - 1
        preds.append(int(proba[i].argmax()))
        heard.append(min(seconds[i] / f["duration"], 1.0))
    return np.array(preds), np.array(heard)


def score(files: list[dict], norm: str, n_classes: int, **how) -> tuple[float, float]:
    preds, heard = exits(files, norm, **how)
    return uar(np.array([f["label"] for f in files]), preds, n_classes), float(heard.mean())


def choose(valid: list[dict], norm: str, n_classes: int) -> tuple[float, float, bool]:
    """θ by rule (c) and by rule (d), on the validation speaker's files only, and whether any θ
    came within the tolerance (else rule (c) takes the θ of the best validation UAR)."""
    whole = score(valid, norm, n_classes)[0]
    grid = [(t, *score(valid, norm, n_classes, theta=t)) for t in THETAS]
    near = [t for t, u, _ in grid if u >= whole - TOLERANCE]
    rule_c = near[0] if near else max(grid, key=lambda g: g[1])[0]
    rule_d = max(grid, key=lambda g: g[1] - LATENCY_COST * g[2])[0]
    return rule_c, rule_d, bool(near)


def pm(values: np.ndarray, fmt: str = ".3f") -> str:
    return f"{np.mean(values):{fmt}} ± {np.std(values):{fmt}}"


def hit(u: np.ndarray, frac: np.ndarray, whole: np.ndarray, most: float) -> bool:
    """The issue's target: mean UAR within 0.02 of whole-utterance, mean fraction ≤ most."""
    return bool(u.mean() >= whole.mean() - TOLERANCE and frac.mean() <= most + 1e-9)


def summarise(results: list[dict], norm: str, n_classes: int) -> dict:
    whole = np.array([score(r["test"], norm, n_classes)[0] for r in results])
    curve = np.array([[score(r["test"], norm, n_classes, fraction=x) for x in FRACTIONS]
                      for r in results])  # [folds, fractions, (uar, heard)]
    thetas = [choose(r["valid"], norm, n_classes) for r in results]
    ops = {}
    for k, name in enumerate(("threshold (c), smallest θ within 0.02 on validation",
                              "threshold (d), θ max. validation UAR − 0.1·fraction")):
        got = np.array([score(r["test"], norm, n_classes, theta=t[k])
                        for r, t in zip(results, thetas, strict=True)])
        ops[name] = (got[:, 0], got[:, 1], ", ".join(f"{t[k]:.2f}" for t in thetas))
    if norm == "enrolled" and all("emorl" in r for r in results):
        for reward in REWARDS:
            got = np.array([score(r["test"], norm, n_classes, at=r["emorl"][reward]["test"])
                            for r in results])
            ops[f"EmoRL, reward `{reward}`"] = (got[:, 0], got[:, 1], "")
    return {"whole": whole, "curve": curve, "ops": ops,
            "no_theta_near": sum(not t[2] for t in thetas)}


def plot(path: Path, title: str, summaries: dict[str, dict], n_classes: int, most: float
         ) -> None:
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
        for name, (u, frac, _) in s["ops"].items():
            ax.errorbar(frac.mean(), u.mean(), xerr=frac.std(), yerr=u.std(), fmt=next(markers),
                        color=colour, capsize=2, ms=5,
                        label=f"{norm}: {name.split(',')[0]}"
                        + (f" {name.split('`')[1]}" if "`" in name else ""))
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", choices=sorted(CORPORA), default="emodb")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override (values parsed as YAML)")
    parser.add_argument("--tag", default="whole", help="names this run's folder and section")
    parser.add_argument("--folds", type=int, nargs="*", help="fold indices (default: all)")
    parser.add_argument("--emorl", action="store_true", help="also train EmoRL agents")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "early_recogniser")
    args = parser.parse_args()
    torch.set_num_threads(1)
    load = os.getloadavg()[0]
    cfg = config(args.corpus, args.set)
    dataset = load_dataset(cfg)
    steps = corpus_steps(dataset.manifest, dataset.extractor,
                         args.work / f"{args.corpus}_steps.npz")
    folds = make_folds(dataset.manifest, "loso", 0)
    folds = [f for f in folds if args.folds is None or f.index in args.folds]
    work = args.work / args.corpus / args.tag
    results = [run_fold(cfg, dataset, steps, f, work / f"fold{f.index}", args.emorl)
               for f in folds]
    n_classes = len(dataset.labels)
    summaries = {norm: summarise(results, norm, n_classes) for norm in NORMS}
    offline = np.array([r["offline_test_uar"] for r in results])
    corpus_name, _, most = CORPORA[args.corpus]
    suffix = "" if (args.corpus, args.tag) == ("emodb", "whole") else \
        f"_{args.corpus}_{args.tag}"
    figure = ROOT / "docs" / "figures" / f"early_recogniser{suffix}.png"
    plot(figure, f"MP-2 streamed, {corpus_name} LOSO ({len(folds)} folds), `{args.tag}`: "
         "mean ± std over test speakers", summaries, n_classes, most)
    durations = [f["duration"] for r in results for f in r["test"]]
    command = (".venv/bin/python benchmarks/early_recogniser.py --corpus "
               f"{args.corpus}{' --emorl' if args.emorl else ''}"
               + (f" --tag {args.tag}" if args.tag != "whole" else "")
               + "".join(f" --set '{s}'" for s in args.set)
               + (f" --folds {' '.join(map(str, args.folds))}" if args.folds else ""))
    lines = [
        f"## Early decisions, recogniser-layer model (MP-2): {corpus_name}, {n_classes} classes,"
        f" `{args.tag}`",
        "",
        f"{corpus_name}, {n_classes} classes, leave-one-speaker-out ({len(folds)} folds: test "
        f"speakers {', '.join('+'.join(r['test_speaker']) for r in results)}; seed 0; one "
        "validation speaker per fold picks the checkpoint and every θ and agent); the "
        "`mp_2_long` row of configs/recogniser_transfer_emodb.yaml (Whisper tiny.en layer 2, "
        "mean-pooled, linear head, per-speaker normalisation)"
        + (f" with `{'`, `'.join(args.set)}`" if args.set else "") + ". Every utterance "
        "streamed through the deployed `WindowStreamer` (fed from its first sample: no gate, "
        f"no pre-roll; test files {min(durations):.2f}–{max(durations):.2f} s, mean "
        f"{np.mean(durations):.2f} s; steps every 300 ms and at the end). Statistics: "
        "**training** = the training speakers' (a stream that knows nothing of its speaker), "
        "**enrolled** = the test speaker's other utterances (whole recordings, no labels, never "
        "the decided one). Offline whole-utterance test UAR with per-speaker statistics (all "
        f"the speaker's utterances): {pm(offline)}. Real enrolled streamer against this "
        "benchmark's cached path, fold 0, 3 files: largest probability difference "
        + (f"{results[0]['parity_max_diff']:.1e}" if "parity_max_diff" in results[0] else "–")
        + ". Threshold exits: first step whose top probability reaches θ, else the end; θ in "
        "0.30 … 0.99 chosen on validation, (c) smallest θ within 0.02 of validation "
        "whole-utterance UAR (else the best), (d) max. validation UAR − 0.1 · fraction. EmoRL: "
        "`StepAgent` on the enrolled step states, REINFORCE 20,000 episodes (5,000 with the "
        "classifier frozen), lr 1e-4, rewards as configs/emodb_early_7class.yaml; checkpoint "
        f"of best validation reward. {machine()}; load average {load:.2f} at the start "
        "(accuracy only, nothing timed). Test speakers, mean ± std over folds.",
        "",
        "```",
        command,
        "```",
        "",
    ]
    for norm, s in summaries.items():
        whole = s["whole"]
        lines += [
            f"**{norm} statistics**: whole utterance (streamed) test UAR {pm(whole)}; (c) found "
            f"no θ within 0.02 on validation in {s['no_theta_near']} of {len(folds)} folds.",
            "",
            "| first x of the utterance | " + " | ".join(f"{x:.0%}" for x in FRACTIONS) + " |",
            "|---" * (len(FRACTIONS) + 1) + "|",
            "| fraction heard | " + " | ".join(f"{h:.2f}" for h in
                                              s["curve"][:, :, 1].mean(0)) + " |",
            "| test UAR | " + " | ".join(f"{m:.3f}" for m in s["curve"][:, :, 0].mean(0)) + " |",
            "",
            "| operating point | θ per fold | test UAR | − whole | fraction heard | speed-up | "
            f"target (within 0.02 of whole, ≥ {1 / most:.2f}× speed-up) |",
            "|---|---|---|---|---|---|---|",
            *[f"| {n} | {th} | {pm(u)} | {u.mean() - whole.mean():+.3f} | {pm(frac, '.2f')} | "
              f"{1 / frac.mean():.2f}× | "
              f"{'met' if hit(u, frac, whole, most) else 'missed'} |"
              for n, (u, frac, th) in s["ops"].items()],
            "",
        ]
    lines.append(f"Speed-up = 1 / mean fraction heard. Curve: docs/figures/{figure.name}.")
    section = "early_recogniser" + suffix
    write_section(section, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
