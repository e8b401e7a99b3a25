"""Semi-supervised valence (and arousal) with a multitask DCGAN (Chang & Scherer 2017).

The method behind ``method: {name: dcgan, params: {...}}``: the four models of the paper
(``variant``: basic_cnn, multitask_cnn, basic_dcgan, multitask_dcgan) on word-centred crops of
the ``stft_spectrogram`` features, fuzzy 5-point labels (annotators' mean rating, or the point
a category is mapped to with ``task.derived``), a bounded, resumable random search over the
paper's space on the validation speakers, and the label-fraction protocol: only ``label_fraction``
of each training speaker's utterances keep their labels, the rest (and every file of the
``unlabelled`` directories) feeds only the discriminator. Nothing of a fold's validation or test
speakers ever enters its unlabelled pool (:func:`unlabelled_pool`).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch

from emovox.audio import load_audio
from emovox.corpora.dimensions import DERIVED, DIMENSIONS
from emovox.corpora.manifest import Manifest, Utterance
from emovox.errors import ConfigError, CorpusError
from emovox.evaluation.valence import CLASSES3, POINTS, fuzzy_label, rating_metrics
from emovox.experiments.methods.base import METHODS, FoldResult, Method, RunContext, Scores, Split
from emovox.features import Extractor, FeatureCache, extract_all, make_extractor
from emovox.io import atomic_write_json
from emovox.models.dcgan import VARIANTS
from emovox.training.checkpoint import save_checkpoint
from emovox.training.semi import (
    GEN_LOSSES,
    CropSet,
    History,
    SemiConfig,
    SpecScaler,
    Trained,
    build,
    fit_semi,
    voiced_centres,
    word_centres,
)

if TYPE_CHECKING:
    from emovox.experiments.config import ExperimentConfig
    from emovox.experiments.dataset import Dataset

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = {".wav", ".flac", ".mp3", ".ogg", ".opus", ".aiff", ".aif"}
#: The paper's picks (crop width, lr, batch, filter size, filters), the defaults per variant.
PAPER_PICKS: dict[str, dict[str, Any]] = {
    "basic_cnn": {"width": 128, "lr": 1e-4, "batch_size": 64, "kernel": 15, "filters": 84},
    "multitask_cnn": {"width": 64, "lr": 1e-3, "batch_size": 128, "kernel": 8, "filters": 32},
    "basic_dcgan": {"width": 128, "lr": 1e-4, "batch_size": 64, "kernel": 9, "filters": 72},
    "multitask_dcgan": {"width": 64, "lr": 1e-4, "batch_size": 128, "kernel": 6, "filters": 88},
}


def sample_space(rng: np.random.Generator) -> dict[str, Any]:
    """One draw from the paper's search space."""
    width = int(rng.choice([64, 128]))
    return {"width": width, "kernel": int(rng.integers(2, width // 8 + 1)),
            "filters": int(rng.choice(np.arange(32, 91, 4))),
            "batch_size": int(rng.choice([64, 128, 256])),
            "lr": float(rng.choice([1e-3, 1e-4, 1e-5]))}


# ---- data -------------------------------------------------------------------------------
def point(utt: Utterance, dim: str, derived: bool) -> float:
    """The utterance's mean rating on 1–5, or its category's derived point."""
    if derived:
        if utt.label not in DERIVED:
            raise CorpusError(f"{utt.path}: no derived {dim} for label {utt.label!r}")
        return DERIVED[utt.label][DIMENSIONS.index(dim)]
    value = getattr(utt, dim)
    if value is None:
        raise CorpusError(f"{utt.path}: no {dim} rating; set task.derived: true to derive it")
    return float(value)


def crop_centres(utt: Utterance, n_frames: int, extractor: Extractor, vad_cache: dict
                 ) -> list[np.ndarray]:
    """Word spans from the manifest's word timings; voiced frames (webrtcvad) otherwise."""
    hop_s = 1.0 / extractor.frame_rate
    win_s = extractor.win / extractor.sample_rate
    if utt.words:
        spans = word_centres(utt.words, n_frames, hop_s, win_s)
        if spans:
            return spans
    if utt.id not in vad_cache:
        wave = load_audio(utt.path, extractor.sample_rate, utt.start, utt.end)
        vad_cache[utt.id] = voiced_centres(wave, n_frames, hop_s, win_s)
    return vad_cache[utt.id]


def crop_set(utts: list[Utterance], feats: dict[str, np.ndarray], scaler: SpecScaler,
             extractor: Extractor, derived: bool | None, vad_cache: dict) -> CropSet:
    """Crops and (unless ``derived`` is None: unlabelled) fuzzy valence/arousal labels."""
    specs = [scaler(feats[u.id]) for u in utts]
    centres = [crop_centres(u, len(s), extractor, vad_cache) for u, s in zip(utts, specs,
                                                                             strict=True)]
    if derived is None:
        return CropSet(specs, centres)
    val = np.array([point(u, "valence", derived) for u in utts])
    aro = np.array([point(u, "arousal", derived) for u in utts])
    return CropSet(specs, centres, np.stack([fuzzy_label(v) for v in val]),
                   np.stack([fuzzy_label(a) for a in aro]), val)


def keep_labels(train: Manifest, fraction: float, seed: int) -> tuple[list, list]:
    """(labelled, unlabelled): ``fraction`` of each training speaker's utterances keep their
    labels (at least one per speaker), chosen with ``seed``."""
    rng = np.random.default_rng(seed)
    labelled, rest = [], []
    for speaker in train.speakers:
        utts = [u for u in train if u.speaker == speaker]
        order = rng.permutation(len(utts))
        n = max(1, int(round(fraction * len(utts))))
        labelled += [utts[i] for i in sorted(order[:n])]
        rest += [utts[i] for i in sorted(order[n:])]
    return labelled, rest


def audio_files(directories: list[str]) -> list[Path]:
    files = []
    for d in directories:
        root = Path(d).expanduser()
        if not root.is_dir():
            raise ConfigError(f"method.params.unlabelled: {root} is not a directory")
        files += sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
    return files


def unlabelled_pool(directories: list[str], held_out: Manifest, limit: int, seed: int
                    ) -> list[Utterance]:
    """Utterances for every audio file in ``directories`` except the held-out (validation and
    test) speakers' own files, compared by resolved path; at most ``limit`` (0: all), drawn
    with ``seed``."""
    banned = {str(Path(u.path).resolve()) for u in held_out}
    files = [p for p in audio_files(directories) if str(p.resolve()) not in banned]
    if limit and len(files) > limit:
        keep = np.random.default_rng(seed).choice(len(files), limit, replace=False)
        files = [files[i] for i in sorted(keep)]
    return [Utterance(id="pool-" + hashlib.sha1(str(p.resolve()).encode()).hexdigest()[:16],
                      path=str(p), speaker="unlabelled-pool") for p in files]


# ---- plots ------------------------------------------------------------------------------
def plot_losses(passes: list[dict], title: str, path: Path,
                pretrain: list[dict] | None = None) -> None:
    """Mean losses per pass; with GAN pre-training, its losses in a panel to the left."""
    import matplotlib.pyplot as plt

    from emovox.evaluation.plots import save_figure

    panels = 2 if pretrain else 1
    fig, axes = plt.subplots(1, panels, figsize=(6 * panels, 3.2), squeeze=False)
    if pretrain:
        ax = axes[0, 0]
        for key, name in (("loss_d", "discriminator"), ("loss_g", "generator")):
            ax.plot([p["step"] for p in pretrain], [p[key] for p in pretrain], label=name)
        ax.set_xlabel("pre-training step (unlabelled pool only)")
        ax.set_ylabel("mean loss")
        ax.legend(fontsize=8)
    ax = axes[0, -1]
    x = [p["pass"] for p in passes]
    for key, name in (("loss_d", "discriminator"), ("loss_g", "generator"),
                      ("loss_valence", "valence head"), ("loss_arousal", "arousal head")):
        if key in passes[0]:
            ax.plot(x, [p[key] for p in passes], label=name)
    ax.set_xlabel("pass over the training set")
    ax.set_ylabel("mean loss")
    ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


def plot_grid(real: np.ndarray, fake: np.ndarray, path: Path) -> None:
    """Real crops (top row) over generated ones (bottom row), frequency upwards."""
    import matplotlib.pyplot as plt

    from emovox.evaluation.plots import save_figure

    n = len(real)
    fig, axes = plt.subplots(2, n, figsize=(1.6 * n, 3.6), squeeze=False)
    for row, (name, crops) in enumerate((("real", real), ("generated", fake))):
        for i in range(n):
            axes[row, i].imshow(crops[i], origin="lower", aspect="auto", cmap="magma",
                                vmin=-1, vmax=1)
            axes[row, i].set_xticks([])
            axes[row, i].set_yticks([])
        axes[row, 0].set_ylabel(name)
    save_figure(fig, path)


# ---- the method -------------------------------------------------------------------------
@dataclass
class DCGANModel:
    """What a fold trains: the networks, the spectrogram scaling and the extractor."""

    model: Trained
    scaler: SpecScaler
    extractor: Extractor


@METHODS.register
class DCGANMethod(Method):
    """Chang & Scherer's four models; outputs are valence distributions over 1–5."""

    name = "dcgan"
    needs = ("frames", "word_timings", "unlabelled", "waveform")

    @property
    def model_name(self) -> str:
        return self.params.variant

    @dataclass
    class Params:
        variant: str = "multitask_dcgan"
        #: Crop width, lr, batch, filter size, filters: None takes the paper's pick.
        width: int | None = None
        lr: float | None = None
        batch_size: int | None = None
        kernel: int | None = None
        filters: int | None = None
        gen_filters: int = 32
        adversarial_batch: int | None = None
        max_passes: int = 60
        patience: int = 5
        select_on: Literal["ua3", "ua5", "pearson_r"] = "ua3"
        #: "nonsaturating" (the paper's) or "feature_matching"; real-crop target (0.9: smoothing).
        gen_loss: str = "nonsaturating"
        real_label: float = 1.0
        #: Discriminator + generator updates per labelled step (1: the paper's alternation).
        adversarial_steps: int = 1
        #: Stop a run whose generated crops vary less than this share of real ones' for
        #: collapse_passes passes (mode collapse; 0 only logs ``gen_diversity``).
        collapse_diversity: float = 0.0
        collapse_passes: int = 3
        #: GAN updates on the unlabelled pool before the first labelled pass (0: the paper's).
        pretrain_steps: int = 0
        #: Share of each training speaker's utterances that keep their labels.
        label_fraction: float = 1.0
        #: Directories of any audio for the discriminator (besides the training speakers').
        unlabelled: list[str] = field(default_factory=list)
        unlabelled_limit: int = 0
        #: Random-search trials on the validation speakers (0: the paper's picks).
        search_trials: int = 0
        search_passes: int = 15
        threads: int = 2
        #: torch device for training: "cpu" or "cuda" (inference runs on the CPU).
        device: str = "cpu"

    def __init__(self, config: ExperimentConfig):
        super().__init__(config)
        p = self.params
        if p.variant not in VARIANTS:
            raise ConfigError(f"method.params.variant: {p.variant!r} is not one of "
                              f"{sorted(VARIANTS)}")
        if p.gen_loss not in GEN_LOSSES:
            raise ConfigError(f"method.params.gen_loss: {p.gen_loss!r} is not one of "
                              f"{', '.join(GEN_LOSSES)}")
        if p.adversarial_steps < 1:
            raise ConfigError("method.params.adversarial_steps must be at least 1")
        if p.pretrain_steps < 0:
            raise ConfigError("method.params.pretrain_steps must not be negative")
        if p.collapse_diversity < 0 or p.collapse_passes < 1:
            raise ConfigError("method.params: collapse_diversity must be ≥ 0 and "
                              "collapse_passes ≥ 1")
        if p.device != "cpu" and not (p.device.startswith("cuda") and torch.cuda.is_available()):
            raise ConfigError(f"method.params.device: {p.device!r} is not usable here (\"cpu\", "
                              "or \"cuda\" where torch sees a GPU)")
        if not 0 < p.label_fraction <= 1:
            raise ConfigError("method.params.label_fraction must be in (0, 1]")
        self._vad: dict = {}

    @property
    def derived(self) -> bool:
        return bool(self.config.task.derived)

    def semi_config(self, **overrides: Any) -> SemiConfig:
        p = self.params
        picks = {k: (getattr(p, k) if getattr(p, k) is not None else v)
                 for k, v in PAPER_PICKS[p.variant].items()}
        # Every training setting the params share with SemiConfig by name; the picks fill
        # what the params leave unset.
        settings = {f.name: getattr(p, f.name) for f in fields(SemiConfig) if hasattr(p, f.name)}
        return SemiConfig(**{**settings, **picks, **overrides})

    # -- training -----------------------------------------------------------------------
    def pool_features(self, dataset: Dataset, utts: list[Utterance]) -> dict[str, np.ndarray]:
        return extract_all(utts, dataset.extractor, FeatureCache(self.config.features.cache),
                           progress=False)

    def fit(self, dataset: Dataset, split: Split, run: RunContext) -> tuple[Any, dict]:
        p = self.params
        labelled, rest = keep_labels(split.train, p.label_fraction, run.seed)
        held_out = Manifest(list(split.valid) + list(split.test))
        pool = unlabelled_pool(p.unlabelled, held_out, p.unlabelled_limit, run.seed)
        feats = dict(dataset.feats)
        feats.update(self.pool_features(dataset, pool))
        pool = [u for u in pool if u.id in feats]
        scaler = SpecScaler.fit([feats[u.id] for u in split.train])
        ex = dataset.extractor
        train = crop_set(labelled, feats, scaler, ex, self.derived, self._vad)
        valid = crop_set(list(split.valid), feats, scaler, ex, self.derived, self._vad)
        unlab = crop_set(list(split.train) + pool, feats, scaler, ex, None, self._vad)
        info = {"labelled": len(labelled), "unlabelled_train": len(rest), "pool": len(pool)}
        if p.search_trials:
            config, search = self.search(train, valid, unlab, run.seed, run.work_dir,
                                         len(split.train))
            info["search"] = search
        else:
            config = self.semi_config()
        trained = fit_semi(config, train, valid, unlab, run.seed, run.work_dir,
                           pass_size=len(split.train))
        info.update(semi=asdict(config), history=asdict(trained.history))
        return DCGANModel(trained, scaler, ex), info

    def search(self, train: CropSet, valid: CropSet, unlab: CropSet, seed: int,
               work_dir: Path | None, pass_size: int | None = None
               ) -> tuple[SemiConfig, list[dict]]:
        """Random search on the validation speakers, ``search_trials`` draws of at most
        ``search_passes`` passes each; finished trials are read back from ``search.json``."""
        p = self.params
        path = work_dir / "search.json" if work_dir else None
        done = json.loads(path.read_text()) if path and path.exists() else []
        rng = np.random.default_rng(seed + 7919)
        draws = [sample_space(rng) for _ in range(p.search_trials)]
        for i, draw in enumerate(draws[len(done):], start=len(done)):
            config = self.semi_config(**draw, max_passes=p.search_passes)
            trained = fit_semi(config, train, valid, unlab, seed, pass_size=pass_size)
            done.append({"trial": i, **draw, "valid": trained.history.best_score,
                         "passes": len(trained.history.passes)})
            if path:
                atomic_write_json(path, done)
        best = max(done, key=lambda t: t["valid"])
        keys = ("width", "kernel", "filters", "batch_size", "lr")
        return self.semi_config(**{k: best[k] for k in keys}), done

    # -- scoring ------------------------------------------------------------------------
    def distributions(self, trained: Any, dataset: Dataset, manifest: Manifest
                      ) -> tuple[np.ndarray, np.ndarray]:
        data = crop_set(list(manifest), dataset.feats, trained.scaler, dataset.extractor, None,
                        self._vad)
        return trained.model.predict(data)

    def outputs(self, trained: Any, dataset: Dataset, manifest: Manifest) -> np.ndarray:
        return self.distributions(trained, dataset, manifest)[0]

    def score(self, trained: Any, dataset: Dataset, manifest: Manifest) -> Scores:
        """Valence and arousal: 5-class UA, 3-class UA and Pearson r each; the rows carry the
        true points, the expected values (``pred``, in ``task.dimensions`` order) and both
        distributions."""
        probas = dict(zip(("valence", "arousal"), self.distributions(trained, dataset, manifest),
                          strict=True))
        points = {d: np.array([point(u, d, self.derived) for u in manifest]) for d in probas}
        metrics = {}
        for dim, proba in probas.items():
            labels = np.stack([fuzzy_label(v) for v in points[dim]])
            m = rating_metrics(labels, proba, points[dim])
            metrics |= {f"{dim}_ua5": m["ua5"], f"{dim}_ua3": m["ua3"],
                        f"{dim}_pearson": m["pearson_r"]}
        dims = [d for d in self.config.task.dimensions if d in probas]
        rows = [{"id": u.id, "speaker": u.speaker, "label": u.label,
                 "true": [float(points[d][i]) for d in dims],
                 "pred": [float(probas[d][i] @ POINTS) for d in dims],
                 **{f"{d}_proba": probas[d][i].round(4).tolist() for d in probas}}
                for i, u in enumerate(manifest)]
        return Scores(metrics, rows)

    def extra(self, trained: Any, dataset: Dataset, split: Split) -> dict[str, Any]:
        """Four real validation crops and four generated ones (for the sanity grid)."""
        model = trained.model
        if model.gen is None:
            return {}
        data = crop_set(list(split.valid)[:4], dataset.feats, trained.scaler, dataset.extractor,
                        None, self._vad)
        from emovox.training.semi import draw_crops

        real = draw_crops(data, np.arange(len(data)), model.config.width,
                          np.random.default_rng(0)).numpy()
        model.gen.eval()
        with torch.no_grad():
            fake = model.gen.sample(4, torch.Generator().manual_seed(0)).numpy()
        return {"real": real.round(3).tolist(), "fake": fake.round(3).tolist()}

    def report(self, results: list[FoldResult], out: Path) -> tuple[dict[str, Any], str]:
        """Table 3 (5- and 3-class valence confusion summed over runs, from the predictions),
        the loss curves of the first run and its real-vs-generated grid."""
        dims = self.config.task.dimensions
        preds = [p for r in results for p in r.test.predictions]
        labels = np.stack([fuzzy_label(p["true"][dims.index("valence")]) for p in preds])
        proba = np.array([p["valence_proba"] for p in preds])
        m = rating_metrics(labels, proba, labels @ POINTS)
        block = {"valence_confusion5": m["confusion5"], "valence_confusion3": m["confusion3"],
                 "valence_targets": "derived from the category" if self.derived else
                 "annotators' mean rating"}
        lines = [f"## {self.params.variant}: valence on the 1–5 scale ("
                 f"{block['valence_targets']})", "",
                 "5-class confusion summed over runs (rows: label mass, split labels half in "
                 "each row; columns: predicted point):", "",
                 "| | " + " | ".join(str(i) for i in range(1, 6)) + " |", "|---" * 6 + "|"]
        lines += [f"| {i + 1} | " + " | ".join(f"{v:.1f}" for v in row) + " |"
                  for i, row in enumerate(m["confusion5"])]
        lines += ["", "| 3-class | " + " | ".join(CLASSES3) + " |", "|---" * 4 + "|"]
        lines += [f"| {CLASSES3[i]} | " + " | ".join(f"{v:.1f}" for v in row) + " |"
                  for i, row in enumerate(m["confusion3"])]
        first = results[0]
        if first.training.get("history", {}).get("passes"):
            plot_losses(first.training["history"]["passes"],
                        f"{self.params.variant}, fold {first.fold}", out / "dcgan_losses.png",
                        first.training["history"].get("pretrain"))
            lines += ["", "![losses](dcgan_losses.png)"]
        if first.extra.get("real"):
            plot_grid(np.array(first.extra["real"]), np.array(first.extra["fake"]),
                      out / "dcgan_samples.png")
            lines += ["", "![real vs generated](dcgan_samples.png)"]
        return block, "\n".join(lines) + "\n"

    # -- model directories ----------------------------------------------------------------
    def save(self, trained: DCGANModel, out: Path) -> dict[str, Any]:
        model = trained.model
        save_checkpoint(out / "dcgan.pt", {
            "disc": model.disc.state_dict(),
            "gen": model.gen.state_dict() if model.gen else None,
            "mean": trained.scaler.mean, "std": trained.scaler.std})
        return {"semi": asdict(model.config)}

    def load(self, model_dir: Path, meta: dict[str, Any]) -> DCGANModel:
        config = SemiConfig(**meta["semi"])
        state = torch.load(model_dir / "dcgan.pt", weights_only=False)
        disc, gen = build(config)
        disc.load_state_dict(state["disc"])
        if gen is not None:
            gen.load_state_dict(state["gen"])
        extractor = make_extractor(meta["features"]["name"], **meta["features"]["params"])
        return DCGANModel(Trained(config, disc, gen, History()),
                          SpecScaler(state["mean"], state["std"]), extractor)

    def predict_wave(self, trained: DCGANModel, wave: np.ndarray) -> np.ndarray:
        """[valence p1..p5, arousal p1..p5] of one 16 kHz utterance: the predictions of its
        voiced crops (webrtcvad) averaged."""
        ex = trained.extractor
        spec = trained.scaler(ex(wave))
        centres = voiced_centres(wave, len(spec), 1.0 / ex.frame_rate, ex.win / ex.sample_rate)
        val, aro = trained.model.predict(CropSet([spec], [centres]))
        return np.concatenate([val[0], aro[0]])

    def describe(self, values: np.ndarray, labels: list[str]) -> dict[str, Any]:
        """``emovox predict``'s record: expected valence/arousal on 1–5, the 3-class valence
        and both distributions."""
        val, aro = values[:5], values[5:]
        pooled = [val[:2].sum(), val[2], val[3:].sum()]
        return {"valence": round(float(val @ POINTS), 4), "arousal": round(float(aro @ POINTS), 4),
                "valence_class": CLASSES3[int(np.argmax(pooled))],
                "valence_proba": [round(float(v), 6) for v in val],
                "arousal_proba": [round(float(v), 6) for v in aro]}
