"""Accuracy against audio heard: a recogniser-layer head that adapts to its speaker (issue 26).

A mean-pooled head on a recogniser's layers (``mp``, ``layer_mix``; rows of
``benchmarks/cross_corpus.yaml``) trained with per-speaker normalisation. Each test utterance is
normalised with statistics of its speaker's OTHER utterances (never itself, never a label),
shrunk toward the training statistics by ``tau`` frames
(``SpeakerStatistics.normaliser(prior, tau)``):

- ``training``: nothing heard of the speaker, the training statistics (no adaptation);
- ``heard X s``: the speaker's other utterances in a seeded order (per decided utterance),
  whole ones, as many as fit in X seconds;
- ``adapted``: all of the speaker's other utterances (leave-one-out);
- ``offline``: all of the speaker's utterances, itself included (``cross_corpus.py``'s
  ``speaker`` normalisation, for comparison).

Normalisation and both heads are linear up to the mean over frames, so an utterance enters only
as its frame count, sum and sum of squares per version (clean and each augmented copy; pooled
once from the shared feature cache into ``OUT/stats``, a ``whisper_layers`` subset sliced from
the ``layers: all`` statistics when those exist). Heads are built and trained by emovox's own
``build_model`` and ``fit`` (the row's training settings, checkpoint on the validation speaker
normalised by its own statistics) on one-frame sequences of normalised utterance means: the same
outputs as on frame sequences; only SortaGrad's first-epoch order and the length buckets differ.

    python benchmarks/adaptation_curve.py select --models mix_base_all mix_base_123 mp_base_3 \
        mp_base_2 [--cached-only]
    python benchmarks/adaptation_curve.py select --models mp_base_3 mp_base_3_augmented1 \
        mp_base_3_augmented --channel robot
    python benchmarks/adaptation_curve.py card --models mp_base_3 --tau 500

``select`` scores on validation speakers only (two per corpus, seeded; one more speaker picks
the checkpoint; the other 14 train, with their augmented copies where the row augments): every
candidate and every tau; with ``--channel`` also the validation speakers heard through a test
channel (a degraded copy in ``OUT/<channel>``: audio and running statistics). ``card`` gives
the chosen recipe's figures: leave-one-speaker-out over all 19 speakers and cross-corpus both
ways, each condition above; tables go to ``OUT/*.md`` and a section of ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import sys
import time
import zlib
from collections import defaultdict
from pathlib import Path

import numpy as np
from cross_corpus import model_config
from results import machine, write_section

from emovox.augment import variants
from emovox.channels import degrade_corpus, make_channel
from emovox.corpora import Manifest, load_corpus
from emovox.corpora.combined import part_of
from emovox.evaluation.metrics import uar
from emovox.experiments.config import ExperimentConfig, build_config, read_yaml
from emovox.experiments.protocols import make_folds
from emovox.features import FeatureCache, Normaliser, SpeakerStatistics, make_extractor
from emovox.features.store import audio_hash
from emovox.io import atomic_write_json, atomic_write_text
from emovox.models import build_model
from emovox.training import AugmentedSet, SequenceSet, fit, predict
from emovox.training.tasks import Classification
from emovox.training.trainer import seed_everything

ROOT = Path(__file__).resolve().parents[1]
HEARD_S = (0, 5, 10, 30, 60)
#: Shrinkage candidates in frames (Whisper layers: 50 frames/s).
TAUS = (0, 50, 100, 250, 500, 1000, 2500)
SEED = 0
NAMES = {"emodb": "Emo-DB", "nemo": "nEMO"}


@dataclasses.dataclass
class Pooled:
    """One version (clean or augmented) of every utterance: frame count, sum, sum of squares."""

    count: np.ndarray
    sum: np.ndarray
    sumsq: np.ndarray

    def statistics(self, rows: np.ndarray) -> SpeakerStatistics:
        stats = SpeakerStatistics(self.sum.shape[1])
        stats.count = int(self.count[rows].sum())
        stats.sum, stats.sumsq = self.sum[rows].sum(0), self.sumsq[rows].sum(0)
        return stats

    def means(self, rows: np.ndarray, normaliser: Normaliser) -> np.ndarray:
        """The normalised frame means of ``rows``: what a mean-pooled head reads."""
        mean = self.sum[rows] / self.count[rows, None]
        return ((mean - normaliser.mean) / normaliser.std).astype(np.float32)


@dataclasses.dataclass
class Corpus:
    manifest: Manifest
    ids: list[str]
    speakers: np.ndarray
    targets: np.ndarray
    labels: list[str]
    frame_rate: float
    #: The clean version first, then each augmented copy.
    versions: list[Pooled]

    def rows(self, speakers) -> np.ndarray:
        return np.flatnonzero(np.isin(self.speakers, list(speakers)))


def recipe(name: str, config_path: Path) -> ExperimentConfig:
    spec = read_yaml(config_path)
    return build_config(model_config(spec["models"][name], spec["base"], name))


def pooled_version(config: ExperimentConfig, manifest, variant, stats_dir: Path,
                   tag: str | None = None, only: set[str] | None = None) -> Pooled:
    """One version's pooled statistics, from ``stats_dir`` or the shared feature cache.
    ``tag`` names a version that is not a variant (a degraded copy); ``only``: pool just those
    utterances (the others keep a zero count and must not be read)."""
    extractor = make_extractor(config.features.name, **config.features.params)
    tag = tag or (variant.key if variant is not None else "clean")
    ids = [u.id for u in manifest]
    if only is not None and not set(ids) <= only:
        tag += f"-{zlib.crc32(' '.join(sorted(only)).encode()):08x}"
    source, columns = extractor, slice(None)
    if extractor.name == "whisper_layers" and extractor.params["layers"] != "all":
        whole = make_extractor("whisper_layers", **{**extractor.params, "layers": "all"})
        if (stats_dir / f"{whole.key()}-{tag}.npz").exists():
            width = whole.dim // len(whole.layer_indices)
            source, columns = whole, np.concatenate(
                [np.arange(i * width, (i + 1) * width) for i in extractor.layer_indices])
    path = stats_dir / f"{source.key()}-{tag}.npz"
    if not path.exists():
        cache = FeatureCache(config.features.cache)
        count, total, squares = np.zeros(len(ids)), np.zeros((len(ids), source.dim)), \
            np.zeros((len(ids), source.dim))
        for i, utt in enumerate(manifest):
            if only is None or utt.id in only:
                frames = cache.get(source, utt, variant).astype(np.float64)
                count[i], total[i], squares[i] = len(frames), frames.sum(0), \
                    np.square(frames).sum(0)
            if i % 500 == 0:
                print(f"pooling {path.name}: {i}/{len(ids)}", file=sys.stderr, flush=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, ids=np.array(ids), count=count, sum=total, sumsq=squares)
    data = np.load(path)
    if list(data["ids"]) != ids:
        raise SystemExit(f"{path}: utterances differ from the corpus; delete it to recompute")
    return Pooled(data["count"], data["sum"][:, columns], data["sumsq"][:, columns])


def manifest_of(config: ExperimentConfig) -> Manifest:
    c = config.corpus
    return load_corpus(c.format, c.path, labels=c.labels, on_error=c.on_error, **c.options)


def cached_ids(configs: list[ExperimentConfig]) -> set[str]:
    """Utterances whose clean features every config's extractor (or, for a ``whisper_layers``
    subset, its ``layers: all``) already has in the feature cache."""
    keep = None
    for config in configs:
        extractor = make_extractor(config.features.name, **config.features.params)
        sources = [extractor]
        if extractor.name == "whisper_layers":
            sources.append(make_extractor("whisper_layers",
                                          **{**extractor.params, "layers": "all"}))
        cache = FeatureCache(config.features.cache)
        have = {u.id for u in manifest_of(config)
                if any(cache.path(e, audio_hash(u)).exists() for e in sources)}
        keep = have if keep is None else keep & have
    return keep or set()


def load(config: ExperimentConfig, stats_dir: Path, keep: set[str] | None = None,
         augmented: list[str] | None = None) -> Corpus:
    """``augmented``: the speakers whose augmented versions are pooled (default all; only
    training speakers' are ever read)."""
    c = config.corpus
    manifest = manifest_of(config)
    if keep is not None:
        manifest = manifest.filter(lambda u: u.id in keep)
    labels = list(c.labels or manifest.labels)
    extractor = make_extractor(config.features.name, **config.features.params)
    only = None if augmented is None else {u.id for u in manifest.with_speakers(augmented)}
    versions = [pooled_version(config, manifest, None, stats_dir)]
    versions += [pooled_version(config, manifest, v, stats_dir, only=only)
                 for v in variants(config.augment)]
    return Corpus(manifest, [u.id for u in manifest], np.array([u.speaker for u in manifest]),
                  np.array([labels.index(u.label) for u in manifest]), labels,
                  float(extractor.frame_rate), versions)


def channel_version(config: ExperimentConfig, corpus: Corpus, speakers: list[str], channel: str,
                    out: Path) -> Pooled:
    """``speakers``' utterances heard through a test channel (``emovox.channels``; a degraded
    copy written once to ``OUT/<channel>``), on the corpus's rows (the others zero)."""
    degrade_corpus(corpus.manifest.with_speakers(speakers), make_channel(channel), out / channel,
                   progress=False)
    degraded = load_corpus("manifest", out / channel)  # its paths resolved
    pooled = pooled_version(config, degraded, None, out / "stats", tag=channel)
    index = {u: i for i, u in enumerate(corpus.ids)}
    rows = np.array([index[u.id] for u in degraded])
    full = Pooled(np.zeros(len(corpus.ids)), np.zeros((len(corpus.ids), pooled.sum.shape[1])),
                  np.zeros((len(corpus.ids), pooled.sum.shape[1])))
    full.count[rows], full.sum[rows], full.sumsq[rows] = pooled.count, pooled.sum, pooled.sumsq
    return full


def speaker_means(version: Pooled, corpus: Corpus, rows: np.ndarray) -> np.ndarray:
    """``rows`` normalised by their own speakers' statistics (per-speaker normalisation)."""
    out = np.zeros((len(rows), version.sum.shape[1]), dtype=np.float32)
    for speaker in np.unique(corpus.speakers[rows]):
        mine = corpus.speakers[rows] == speaker
        out[mine] = version.means(rows[mine], version.statistics(rows[mine]).normaliser())
    return out


def sequences(means: np.ndarray, targets: np.ndarray) -> SequenceSet:
    return SequenceSet([m[None] for m in means], targets)


@dataclasses.dataclass
class Head:
    members: list
    prior: Normaliser  # the training frames' statistics: what a new speaker starts from

    def proba(self, means: np.ndarray) -> np.ndarray:
        data = sequences(means, np.zeros(len(means), dtype=np.int64))
        return np.mean([predict(m, data) for m in self.members], axis=0)


def train_head(config: ExperimentConfig, corpus: Corpus, train: np.ndarray,
               valid: np.ndarray, seed: int = SEED) -> Head:
    """As the supervised method trains: statistics of every training version, each version
    normalised per speaker, one version drawn per utterance and epoch."""
    versions = corpus.versions if config.augment.include_clean else corpus.versions[1:]
    everything = SpeakerStatistics(corpus.versions[0].sum.shape[1])
    for version in corpus.versions:
        stats = version.statistics(train)
        everything.count += stats.count
        everything.sum = everything.sum + stats.sum
        everything.sumsq = everything.sumsq + stats.sumsq
    targets = corpus.targets[train]
    normalised = [speaker_means(v, corpus, train) for v in versions]
    train_set = (AugmentedSet([sequences(n, targets) for n in normalised])
                 if len(normalised) > 1 else sequences(normalised[0], targets))
    valid_set = sequences(speaker_means(corpus.versions[0], corpus, valid),
                          corpus.targets[valid])
    task = Classification(len(corpus.labels))
    settings = dataclasses.replace(config.training, progress=False)
    members = []
    for member in range(config.model.ensemble):
        member_seed = seed * 1000 + member
        seed_everything(member_seed)
        model = build_model(config.model.name, corpus.versions[0].sum.shape[1],
                            len(corpus.labels), **config.model.params)
        fit(model, train_set, valid_set, settings, member_seed, None, task)
        members.append(model.eval())
    return Head(members, everything.normaliser())


def heard_rows(corpus: Corpus, row: int, others: np.ndarray, seconds: float) -> np.ndarray:
    """The speaker's other utterances heard before ``row``: a seeded order, whole utterances
    while their total (clean frames: a channel keeps the length) stays within ``seconds``."""
    order = np.random.default_rng([SEED, zlib.crc32(corpus.ids[row].encode())]).permutation(
        others)
    frames = np.cumsum(corpus.versions[0].count[order])
    return order[frames <= seconds * corpus.frame_rate]


def conditions(taus: list[float]) -> list[tuple[str, str, float, float]]:
    """(name, kind, seconds, tau) of every test condition."""
    out = [("training", "training", 0.0, 0.0), ("offline", "offline", 0.0, 0.0)]
    for tau in taus:
        out.append((f"adapted tau={tau:g}", "adapted", 0.0, tau))
        out += [(f"heard {s}s tau={tau:g}", "heard", s, tau) for s in HEARD_S if s]
    return out


def test(head: Head, corpus: Corpus, rows: np.ndarray, taus: list[float],
         heard: Pooled | None = None) -> dict:
    """Predicted class and seconds heard of every row under every condition; the speakers
    heard as ``heard`` holds them (default clean), their statistics included."""
    clean = heard if heard is not None else corpus.versions[0]
    out: dict[str, dict[str, np.ndarray]] = {
        name: {"pred": np.zeros(len(rows), np.int64), "heard": np.zeros(len(rows))}
        for name, *_ in conditions(taus)}
    for speaker in np.unique(corpus.speakers[rows]):
        mine = np.flatnonzero(corpus.speakers[rows] == speaker)
        own = corpus.rows([speaker])
        total = clean.statistics(own)
        offline = total.normaliser()
        means: dict[str, list[np.ndarray]] = defaultdict(list)
        for i, r in zip(mine, rows[mine], strict=True):
            others = own[own != r]
            # what the running statistics hold before row r (the same for every tau)
            held = {("adapted", 0.0): clean.statistics(others)}
            held |= {("heard", s): clean.statistics(heard_rows(corpus, r, others, s))
                     for s in HEARD_S if s}
            for name, kind, seconds, tau in conditions(taus):
                if kind == "training":
                    norm, n = head.prior, 0
                elif kind == "offline":
                    norm, n = offline, total.count
                else:
                    stats = held[(kind, seconds)]
                    norm, n = stats.normaliser(head.prior, tau), stats.count
                means[name].append(clean.means(np.array([r]), norm)[0])
                out[name]["heard"][i] = n / corpus.frame_rate
        for name, m in means.items():
            out[name]["pred"][mine] = head.proba(np.array(m)).argmax(1)
    return out


def summary(corpus: Corpus, rows: np.ndarray, result: dict) -> dict:
    """Per condition and corpus: UAR over the utterances, per-speaker UAR mean ± std, mean
    seconds heard."""
    out: dict = {}
    parts = np.array([part_of(corpus.ids[r]) for r in rows])
    y = corpus.targets[rows]
    for name, r in result.items():
        out[name] = {}
        for part in np.unique(parts):
            mine = parts == part
            spk = [uar(y[mine & (corpus.speakers[rows] == s)],
                       r["pred"][mine & (corpus.speakers[rows] == s)], len(corpus.labels))
                   for s in np.unique(corpus.speakers[rows][mine])]
            out[name][str(part)] = {
                "uar": uar(y[mine], r["pred"][mine], len(corpus.labels)),
                "speaker_mean": float(np.mean(spk)), "speaker_std": float(np.std(spk)),
                "speakers": len(spk), "seconds_heard": float(r["heard"][mine].mean())}
    return out


def merge(results: list[dict]) -> dict:
    return {name: {k: np.concatenate([r[name][k] for r in results]) for k in results[0][name]}
            for name in results[0]}


# ---- select: validation speakers only ---------------------------------------------------------
def selection_split(speakers: list[str]) -> tuple[list[str], list[str], list[str]]:
    """Two validation speakers per corpus (seeded), one more picks the checkpoint, the rest
    train."""
    by_part: dict[str, list[str]] = defaultdict(list)
    for s in sorted(set(speakers)):
        by_part[part_of(s)].append(s)
    rng = random.Random(SEED)
    chosen = sorted(s for part in sorted(by_part) for s in rng.sample(by_part[part], 2))
    rest = sorted(set(speakers) - set(chosen))
    checkpoint = rng.sample(rest, 1)
    return [s for s in rest if s not in checkpoint], checkpoint, chosen


def select(names: list[str], config_path: Path, out: Path, cached_only: bool = False,
           channel: str | None = None, tau: float = 500.0) -> str:
    """``cached_only``: only the utterances every candidate already has features for (a
    quicker comparison while extraction runs; its own statistics and results directories).
    ``channel``: the validation speakers are also scored heard through that test channel
    (their statistics too), the same head."""
    suffix = "-cached" if cached_only else ""
    keep = None
    if cached_only:  # fixed at the first run, so later candidates see the same utterances
        kept = out / f"select{suffix}" / "utterances.json"
        if not kept.exists():
            atomic_write_json(kept, sorted(cached_ids([recipe(n, config_path) for n in names])))
        keep = set(json.loads(kept.read_text()))
    rows_md = []
    for name in names:
        done = out / f"select{suffix}" / f"{name}.json"
        if not done.exists() or (channel and channel not in json.loads(
                done.read_text()).get("channels", {})):
            config = recipe(name, config_path)
            start = time.time()
            train, checkpoint, chosen = selection_split(manifest_of(config).speakers)
            corpus = load(config, out / f"stats{suffix}", keep, augmented=train)
            head = train_head(config, corpus, corpus.rows(train), corpus.rows(checkpoint))
            rows = corpus.rows(chosen)
            result = summary(corpus, rows, test(head, corpus, rows, list(TAUS)))
            heard = {channel: summary(corpus, rows, test(
                head, corpus, rows, list(TAUS), channel_version(config, corpus, chosen,
                                                                 channel, out)))
                     for channel in [channel] if channel}
            net = head.members[0]
            weights = ([round(float(w), 3) for w in net.layer_weights().detach()]
                       if hasattr(net, "layer_weights") else None)
            atomic_write_json(done, {"model": name, "utterances": len(corpus.ids),
                                     "layer_weights": weights,
                                     "validation_utterances": len(rows),
                                     "validation_speakers": chosen,
                                     "checkpoint_speaker": checkpoint, "train_speakers": train,
                                     "seconds": time.time() - start, "conditions": result,
                                     "channels": heard})
        rows_md.append(json.loads(done.read_text()))
    return selection_table(rows_md, channel, tau)


def score(cell: dict) -> float:
    """Validation score: mean over the validation speakers of their UAR (equal weight)."""
    return float(np.mean([c["speaker_mean"] for c in cell.values()]))


def criterion(conds: dict, tau: float) -> float:
    """The validation criterion at ``tau``: the mean score over adapted and heard 5–60 s."""
    return float(np.mean([score(conds[f"adapted tau={tau:g}"])] +
                         [score(conds[f"heard {s}s tau={tau:g}"]) for s in HEARD_S if s]))


def best_tau(conds: dict) -> tuple[float, float]:
    """The tau with the best criterion."""
    tau = max(TAUS, key=lambda t: (criterion(conds, t), -t))
    return tau, criterion(conds, tau)


def condition_tables(results: list[dict], key: str) -> list[str]:
    """Every candidate's scores under one audio condition (clean or a channel)."""
    lines = ["| model | training stats | " + " | ".join(f"heard {s} s" for s in HEARD_S if s)
             + " | adapted (LOO) | offline | best tau | mean over heard + adapted |",
             "|---|---|" + "---|" * (len(HEARD_S) - 1) + "---|---|---|---|"]
    for r in results:
        c = r["conditions"] if key == "clean" else r["channels"][key]
        tau, mean = best_tau(c)
        cells = [score(c["training"])] + [score(c[f"heard {s}s tau={tau:g}"])
                                          for s in HEARD_S if s]
        cells += [score(c[f"adapted tau={tau:g}"]), score(c["offline"])]
        lines.append(f"| {r['model']} | " + " | ".join(f"{v:.3f}" for v in cells) +
                     f" | {tau:g} | {mean:.3f} |")
    lines += ["", f"Every tau (mean over heard 5–60 s and adapted, validation, {key}):", "",
              "| model | " + " | ".join(f"tau {t}" for t in TAUS) + " |",
              "|---|" + "---|" * len(TAUS)]
    for r in results:
        c = r["conditions"] if key == "clean" else r["channels"][key]
        lines.append(f"| {r['model']} | " +
                     " | ".join(f"{criterion(c, t):.3f}" for t in TAUS) + " |")
    return lines


#: The augmentation rule's margin (docs/default-model.md, stated before the run).
MARGIN = 0.01


def adopt(both: dict[str, tuple[float, float]]) -> str:
    """The rule: the first candidate (the baseline) unless another loses at most ``MARGIN``
    clean and gains at least ``MARGIN`` through the channel; of those the best mean of the two
    (ties: the one listed first, the fewer copies)."""
    (base, (clean, channel)), *others = both.items()
    fit = [(name, (c + d) / 2) for name, (c, d) in others
           if c >= clean - MARGIN - 1e-9 and d >= channel + MARGIN - 1e-9]
    return max(fit, key=lambda f: f[1])[0] if fit else base


def selection_table(results: list[dict], channel: str | None = None, tau: float = 500.0
                    ) -> str:
    speakers = ", ".join(results[0]["validation_speakers"])
    lines = [f"Validation speakers {speakers} ({results[0]['validation_utterances']} "
             f"utterances of {results[0]['utterances']}; checkpoint: "
             f"{results[0]['checkpoint_speaker'][0]}); UAR = mean over the four speakers "
             "(chance 0.200); heard/adapted at each row's best tau (frames, 50/s).", ""]
    for key in ["clean", *([channel] if channel else [])]:
        lines += ([f"Heard through the `{key}` channel (the speakers' statistics too):", ""]
                  if key != "clean" else []) + condition_tables(results, key) + [""]
    if channel:
        both = {r["model"]: (criterion(r["conditions"], tau),
                             criterion(r["channels"][channel], tau)) for r in results}
        lines += [f"Criterion at tau {tau:g}, clean and through `{channel}`:", "",
                  f"| model | clean | {channel} | mean |", "|---|---|---|---|"]
        lines += [f"| {name} | {c:.3f} | {d:.3f} | {(c + d) / 2:.3f} |"
                  for name, (c, d) in both.items()]
        lines += ["", f"Rule (docs/default-model.md): an alternative to {results[0]['model']} "
                  f"only if clean ≥ its − {MARGIN} and {channel} ≥ its + {MARGIN}; of those "
                  f"the best mean (ties: listed first). Chosen: **{adopt(both)}**."]
    return "\n".join(lines).rstrip() + "\n"


# ---- card: the chosen recipe on every speaker ---------------------------------------------------
def card(name: str, tau: float, config_path: Path, out: Path) -> dict:
    config = recipe(name, config_path)
    corpus = load(config, out / "stats")
    taus = sorted({0.0, float(tau)})
    cells = {}
    # leave-one-speaker-out over all 19 speakers, the protocol's own folds
    path = out / name / "loso.json"
    if not path.exists():
        start, results, tested = time.time(), [], []
        for fold in make_folds(corpus.manifest, "loso", SEED):
            head = train_head(config, corpus, corpus.rows(fold.train), corpus.rows(fold.valid))
            rows = corpus.rows(fold.test)
            results.append(test(head, corpus, rows, taus))
            tested.append(rows)
            print(f"{name} loso fold {fold.index}: {fold.test}", file=sys.stderr, flush=True)
        rows = np.concatenate(tested)
        atomic_write_json(path, {"seconds": time.time() - start,
                                 "conditions": summary(corpus, rows, merge(results))})
    cells["loso"] = json.loads(path.read_text())
    for train_part, test_part in (("emodb", "nemo"), ("nemo", "emodb")):
        path = out / name / f"{train_part}_to_{test_part}.json"
        if not path.exists():
            start = time.time()
            speakers = sorted(s for s in set(corpus.speakers) if part_of(s) == train_part)
            valid = sorted(random.Random(SEED).sample(speakers, 1))  # as `emovox train` picks
            head = train_head(config, corpus, corpus.rows(set(speakers) - set(valid)),
                              corpus.rows(valid))
            rows = corpus.rows(s for s in set(corpus.speakers) if part_of(s) == test_part)
            atomic_write_json(path, {"valid_speakers": valid, "seconds": time.time() - start,
                                     "conditions": summary(corpus, rows,
                                                           test(head, corpus, rows, taus))})
        cells[f"{train_part}_to_{test_part}"] = json.loads(path.read_text())
    return cells


def card_tables(name: str, tau: float, cells: dict) -> str:
    t = f"tau={tau:g}"
    loso = cells["loso"]["conditions"]
    rows = [("no adaptation (training statistics)", "training"),
            (f"adapted: the speaker's other utterances, shrunk (tau {tau:g} frames)",
             f"adapted {t}"),
            ("offline: all of the speaker's utterances, itself included", "offline")]
    lines = [f"`{name}`, five emotions (chance UAR 0.200), seed 0.", "",
             "| normalisation of a test speaker | LOSO 19: Emo-DB speakers | LOSO 19: nEMO "
             "speakers | Emo-DB → all of nEMO | nEMO → all of Emo-DB |", "|---|---|---|---|---|"]
    for label, key in rows:
        lo = [f"{loso[key][p]['speaker_mean']:.3f} ± {loso[key][p]['speaker_std']:.3f}"
              for p in ("emodb", "nemo")]
        cross = [f"{cells[c]['conditions'][key][p]['uar']:.3f}"
                 for c, p in (("emodb_to_nemo", "nemo"), ("nemo_to_emodb", "emodb"))]
        lines.append(f"| {label} | " + " | ".join(lo + cross) + " |")
    lines += ["", "Accuracy against audio heard (UAR; LOSO: mean over the corpus's speakers; "
              "cross-corpus: over all test utterances; in brackets the mean seconds actually "
              "heard: whole utterances within the budget):", "",
              "| heard before each decided utterance | shrinkage | LOSO Emo-DB | LOSO nEMO | "
              "Emo-DB → nEMO | nEMO → Emo-DB |", "|---|---|---|---|---|---|"]
    for seconds in HEARD_S:
        for shrink in sorted({0.0, float(tau)}, reverse=True):
            key = "training" if not seconds else f"heard {seconds}s tau={shrink:g}"
            if not seconds and shrink != max(0.0, float(tau)):
                continue
            vals = [loso[key][p] for p in ("emodb", "nemo")]
            vals += [cells[c]["conditions"][key][p]
                     for c, p in (("emodb_to_nemo", "nemo"), ("nemo_to_emodb", "emodb"))]
            text = [f"{v['speaker_mean'] if i < 2 else v['uar']:.3f} "
                    f"({v['seconds_heard']:.1f} s)" for i, v in enumerate(vals)]
            what = "—" if not seconds else (f"tau {shrink:g}" if shrink else "none (tau 0)")
            lines.append(f"| {seconds} s | {what} | " + " | ".join(text) + " |")
    vals = [loso[f"adapted {t}"][p] for p in ("emodb", "nemo")]
    vals += [cells[c]["conditions"][f"adapted {t}"][p]
             for c, p in (("emodb_to_nemo", "nemo"), ("nemo_to_emodb", "emodb"))]
    lines.append(f"| all other utterances | tau {tau:g} | " + " | ".join(
        f"{v['speaker_mean'] if i < 2 else v['uar']:.3f} ({v['seconds_heard']:.0f} s)"
        for i, v in enumerate(vals)) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("select", "card"))
    parser.add_argument("--models", nargs="+", required=True,
                        help="rows of the config (card: one)")
    parser.add_argument("--cached-only", action="store_true",
                        help="select: only utterances whose features are all cached already")
    parser.add_argument("--tau", type=float, default=500.0,
                        help="card: shrinkage, frames; select: the criterion's with --channel")
    parser.add_argument("--channel", help="select: also score the validation speakers heard "
                                          "through this test channel (`emovox list channels`)")
    parser.add_argument("--config", type=Path, default=ROOT / "benchmarks" / "cross_corpus.yaml")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "adaptation")
    parser.add_argument("--section", help="select: the RESULTS.md section to write (default "
                        "adaptation_select; another name keeps that one)")
    args = parser.parse_args()
    if args.what == "select":
        text = select(args.models, args.config, args.out, args.cached_only, args.channel,
                      args.tau)
        suffix = ("-cached" if args.cached_only else "") + (
            f"-{args.channel}" if args.channel else "")
        atomic_write_text(args.out / f"select{suffix}.md", text)
        flag = (" --cached-only" if args.cached_only else "") + (
            f" --channel {args.channel}" if args.channel else "") + (
            f" --tau {args.tau:g}" if args.channel and args.tau != 500 else "") + (
            f" --section {args.section}" if args.section else "")
        title = ("augmentation, clean and through a test channel" if args.channel else
                 "recipe and shrinkage")
        body = (f"## Recogniser-layer default: {title} on validation speakers "
                "(issue 26)\n\n```\npython benchmarks/adaptation_curve.py select --models "
                f"{' '.join(args.models)}{flag}\n```\n\n{machine()}.\n\n{text}")
        write_section(args.section or f"adaptation_select{suffix}", body)
    else:
        name = args.models[0]
        text = card_tables(name, args.tau, card(name, args.tau, args.config, args.out))
        atomic_write_text(args.out / f"{name}.md", text)
        body = ("## Accuracy against audio heard: the recogniser-layer default (issue 26)\n\n"
                f"```\npython benchmarks/adaptation_curve.py card --models {name} --tau "
                f"{args.tau:g}\n```\n\n{machine()}.\n\n{text}")
        write_section(f"adaptation_curve-{name}", body)
    print(text)


if __name__ == "__main__":
    main()
