"""Training the DCGAN family (Chang & Scherer 2017) on word-centred spectrogram crops.

One *pass* draws as many labelled crops as there are training utterances (labelled or not),
with under-represented valence classes oversampled (weights 1 / class count, with replacement).
Each step trains, in order, the discriminator (real = unlabelled-pool crops, which include every
training utterance; BCE) and the generator (−log D(G(z))), ``adversarial_steps`` times each
(1 in the paper), then the valence head and the arousal head
(cross-entropy against fuzzy labels), each back-propagating its own loss through the shared
trunk. Supervised variants train the heads only. After every pass the validation utterances are
scored (crop predictions averaged); the best pass is kept, training stops after ``patience``
passes without a new best and the best weights are restored. Optionally the game first runs
``pretrain_steps`` updates on the pool alone. A collapsed or diverged GAN (discriminator loss ≈ 0
for many steps, a non-finite loss, and, when asked, generated crops that stopped varying)
raises :class:`GANFailure` instead of returning numbers.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from emovox.corpora.manifest import Word
from emovox.errors import EmovoxError
from emovox.evaluation.valence import rating_metrics
from emovox.models.dcgan import VARIANTS, Discriminator, Generator
from emovox.training.checkpoint import Checkpoint
from emovox.training.trainer import seed_everything

log = logging.getLogger(__name__)


GEN_LOSSES = ("nonsaturating", "feature_matching")


class GANFailure(EmovoxError):
    """The adversarial game collapsed or diverged; the run's numbers must not be reported."""


@dataclass
class SemiConfig:
    variant: str = "multitask_dcgan"
    width: int = 64
    kernel: int = 6
    filters: int = 88
    batch_size: int = 128
    lr: float = 1e-4
    gen_filters: int = 32
    #: Crops per step for the real/fake task (None: batch_size); smaller bounds the GAN's cost.
    adversarial_batch: int | None = None
    max_passes: int = 60
    patience: int = 5
    select_on: str = "ua3"          # validation metric that picks the pass: ua3 | ua5 | pearson_r
    collapse_steps: int = 100       # D loss below collapse_loss this many steps in a row → stop
    collapse_loss: float = 1e-3
    #: Mode collapse: stop when generated crops vary less than this share of real crops'
    #: variation (``gen_diversity``, logged every pass) for ``collapse_passes`` passes in a
    #: row. 0 (default) only logs it; 0.2 separates the collapsed generators seen on Emo-DB.
    collapse_diversity: float = 0.0
    collapse_passes: int = 3
    #: Generator loss: "nonsaturating" (the paper's −log D(G(z))) or "feature_matching"
    #: (Salimans et al. 2016: match the mean trunk features of real crops, the usual choice
    #: when the discriminator's features, not the samples, are what is wanted).
    gen_loss: str = "nonsaturating"
    #: Target of real crops in the discriminator's BCE (0.9: one-sided label smoothing).
    real_label: float = 1.0
    #: Discriminator + generator updates per labelled step (1: the paper's alternation). More
    #: lets the adversarial game run longer than the heads' task, which the stop rule ends
    #: after a few hundred labelled steps.
    adversarial_steps: int = 1
    #: Discriminator + generator updates on the unlabelled pool alone before the first
    #: labelled pass (adversarial variants; 0 in the paper). The stop rule ends a run after a
    #: few hundred labelled steps, too few for the game to shape the trunk on its own.
    pretrain_steps: int = 0
    threads: int = 2
    #: torch device for training ("cpu", "cuda"); the trained model is returned on the CPU.
    device: str = "cpu"


@dataclass
class CropSet:
    """Normalised spectrograms [T, 128] in [-1, 1] and, per utterance, the segments a crop may
    be centred in: one frame array per word, or one array of voiced frames."""

    specs: list[np.ndarray]
    centres: list[list[np.ndarray]]
    valence: np.ndarray | None = None   # [N, 5] fuzzy labels
    arousal: np.ndarray | None = None
    means: np.ndarray | None = None     # [N] mean valence ratings (for Pearson r)

    def __len__(self) -> int:
        return len(self.specs)


@dataclass
class History:
    passes: list[dict] = field(default_factory=list)
    best_pass: int = -1
    best_score: float = -np.inf
    seconds: float = 0.0
    #: Mean discriminator / generator losses over each 50 pre-training steps.
    pretrain: list[dict] = field(default_factory=list)


# ---- where crops may be centred ---------------------------------------------------------
def frame_of(seconds: float, hop_s: float, win_s: float) -> int:
    """Index of the frame whose window centre is nearest ``seconds``."""
    return max(0, int(round((seconds - win_s / 2) / hop_s)))


def word_centres(words: list[Word], n_frames: int, hop_s: float, win_s: float
                 ) -> list[np.ndarray]:
    """The frames of each word (a crop is centred on a random point of a random word)."""
    spans = [(frame_of(w.start, hop_s, win_s), frame_of(w.end, hop_s, win_s)) for w in words]
    return [np.arange(a, min(max(b, a + 1), n_frames)) for a, b in spans if a < n_frames]


def voiced_centres(wave: np.ndarray, n_frames: int, hop_s: float, win_s: float,
                   aggressiveness: int = 2, sample_rate: int = 16000) -> list[np.ndarray]:
    """Frames whose centre falls in a 30 ms block webrtcvad calls speech (the fallback when an
    utterance has no word timings); all frames when it finds none."""
    import webrtcvad

    vad = webrtcvad.Vad(aggressiveness)
    block = int(0.03 * sample_rate)
    pcm = (np.clip(wave, -1, 1) * 32767).astype(np.int16)
    speech = np.array([vad.is_speech(pcm[i:i + block].tobytes(), sample_rate)
                       for i in range(0, len(pcm) - block + 1, block)], dtype=bool)
    centre_s = np.arange(n_frames) * hop_s + win_s / 2
    idx = np.minimum((centre_s / 0.03).astype(int), max(len(speech) - 1, 0))
    keep = np.flatnonzero(speech[idx]) if len(speech) else np.zeros(0, dtype=np.int64)
    return [keep if len(keep) else np.arange(n_frames)]


def crop(spec: np.ndarray, centre: int, width: int) -> np.ndarray:
    """A [width, 128] window centred on ``centre``, shifted to stay inside the utterance;
    utterances shorter than ``width`` are padded with silence (-1)."""
    if len(spec) < width:
        out = np.full((width, spec.shape[1]), -1.0, dtype=np.float32)
        start = (width - len(spec)) // 2
        out[start:start + len(spec)] = spec
        return out
    start = int(np.clip(centre - width // 2, 0, len(spec) - width))
    return spec[start:start + width]


def draw_crops(data: CropSet, index: np.ndarray, width: int, rng: np.random.Generator
               ) -> torch.Tensor:
    """Random crops [B, 128, width], one per index, centred on a random frame of a random
    segment (word)."""
    out = []
    for i in index:
        segments = [s for s in data.centres[i] if len(s)]
        centre = (int(rng.choice(segments[rng.integers(len(segments))])) if segments
                  else int(rng.integers(len(data.specs[i]))))
        out.append(crop(data.specs[i], centre, width).T)
    return torch.from_numpy(np.stack(out))


def eval_crops(spec: np.ndarray, centres: list[np.ndarray], width: int) -> np.ndarray:
    """Deterministic crops for inference: windows every width/2 frames, those holding at least
    one allowed centre (all of them when none does)."""
    starts = list(range(0, max(len(spec) - width, 0) + 1, width // 2))
    if len(spec) > width and starts[-1] != len(spec) - width:
        starts.append(len(spec) - width)
    allowed = {int(f) for segment in centres for f in segment}
    keep = [s for s in starts if any(f in allowed for f in range(s, s + width))] or starts
    return np.stack([crop(spec, s + width // 2, width).T for s in keep])


def balanced_draw(valence: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """n indices drawn with replacement, each valence class (argmax of the fuzzy label) equally
    likely: oversampling of the under-represented classes."""
    key = valence.argmax(1)
    counts = np.bincount(key, minlength=valence.shape[1])
    weights = 1.0 / counts[key]
    return rng.choice(len(key), size=n, replace=True, p=weights / weights.sum())


# ---- normalisation ---------------------------------------------------------------------
@dataclass
class SpecScaler:
    """Per-row z-score with training statistics, divided by 3 and clipped to [-1, 1] (the
    generator's tanh range)."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, specs: list[np.ndarray]) -> SpecScaler:
        frames = np.concatenate(specs)
        return cls(frames.mean(0), frames.std(0) + 1e-5)

    def __call__(self, spec: np.ndarray) -> np.ndarray:
        return np.clip((spec - self.mean) / (3 * self.std), -1, 1).astype(np.float32)


# ---- training --------------------------------------------------------------------------
class Trained:
    """A trained discriminator (with heads) and generator, and how they were trained."""

    def __init__(self, config: SemiConfig, disc: Discriminator, gen: Generator | None,
                 history: History):
        self.config, self.disc, self.gen, self.history = config, disc, gen, history

    @torch.no_grad()
    def predict(self, data: CropSet) -> tuple[np.ndarray, np.ndarray]:
        """Valence and arousal distributions [N, 5] per utterance: crop predictions averaged."""
        self.disc.eval()
        device = next(self.disc.parameters()).device
        val, aro = [], []
        for spec, centres in zip(data.specs, data.centres, strict=True):
            x = torch.from_numpy(eval_crops(spec, centres, self.config.width)).to(device)
            v, a = self.disc.heads(self.disc.features(x))
            val.append(torch.softmax(v, -1).mean(0).cpu().numpy())
            aro.append(torch.softmax(a, -1).mean(0).cpu().numpy())
        return np.stack(val), np.stack(aro)


def build(config: SemiConfig) -> tuple[Discriminator, Generator | None]:
    variant = VARIANTS[config.variant]
    disc = Discriminator(config.width, config.filters, config.kernel)
    gen = Generator(config.width, config.gen_filters) if variant.adversarial else None
    return disc, gen


def soft_ce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return -(target * F.log_softmax(logits, -1)).sum(-1).mean()


def generator_loss(kind: str, disc: Discriminator, fake: torch.Tensor, f_real: torch.Tensor,
                   bce: torch.nn.Module) -> torch.Tensor:
    """−log D(G(z)), or the squared distance between the mean trunk features of the real
    batch and of the generated one (feature matching)."""
    f_fake = disc.features(fake)
    if kind == "feature_matching":
        return (f_real.mean(0) - f_fake.mean(0)).pow(2).mean()
    d_gen = disc.real_fake(f_fake).squeeze(1)
    return bce(d_gen, torch.ones_like(d_gen))


def crop_diversity(fake: np.ndarray, real: np.ndarray) -> float:
    """Std across generated crops over std across real crops, each averaged over the pixels:
    about 1 for a healthy generator, near 0 for one that collapsed to a single output."""
    return float(fake.std(0).mean() / max(real.std(0).mean(), 1e-8))


class AdversarialGame:
    """One discriminator update (real = unlabelled-pool crops, fake = generated; BCE) and one
    generator update per :meth:`step`, watching for a collapsed discriminator."""

    def __init__(self, config: SemiConfig, disc: Discriminator, gen: Generator,
                 opt_d: torch.optim.Optimizer, opt_g: torch.optim.Optimizer,
                 pool: CropSet, rng: np.random.Generator, batch: int):
        self.config, self.disc, self.gen, self.opt_d, self.opt_g = config, disc, gen, opt_d, opt_g
        self.pool, self.rng, self.batch = pool, rng, batch
        self.device = torch.device(config.device)
        self.bce = torch.nn.BCEWithLogitsLoss()
        self.low_d = 0

    def step(self) -> dict[str, float]:
        config, disc = self.config, self.disc
        # The pool holds every training utterance (labelled or not) and the extra unlabelled
        # audio, so labelled speech reaches the real/fake task through it.
        index = self.rng.integers(len(self.pool), size=self.batch)
        real = draw_crops(self.pool, index, config.width, self.rng).to(self.device)
        fake = self.gen.sample(self.batch)
        self.opt_d.zero_grad()
        f_real = disc.features(real)
        d_real = disc.real_fake(f_real).squeeze(1)
        d_fake = disc.real_fake(disc.features(fake.detach())).squeeze(1)
        loss_d = (self.bce(d_real, torch.full_like(d_real, config.real_label))
                  + self.bce(d_fake, torch.zeros_like(d_fake)))
        loss_d.backward()
        self.opt_d.step()
        self.opt_g.zero_grad()
        loss_g = generator_loss(config.gen_loss, disc, fake, f_real.detach(), self.bce)
        loss_g.backward()
        self.opt_g.step()
        d, g = loss_d.item(), loss_g.item()
        self.low_d = self.low_d + 1 if d < config.collapse_loss else 0
        if self.low_d >= config.collapse_steps:
            raise GANFailure(f"{config.variant}: discriminator loss below {config.collapse_loss} "
                             f"for {self.low_d} steps: the generator collapsed; no numbers "
                             "reported")
        if not (np.isfinite(d) and np.isfinite(g)):
            raise GANFailure(f"{config.variant}: non-finite GAN loss (d {d}, g {g}): training "
                             "diverged; no numbers reported")
        return {"d": d, "g": g}

    @torch.no_grad()
    def diversity(self, n: int = 64, seed: int = 12345) -> float:
        """Std across n generated crops over std across n real pool crops (mean over the
        pixels): about 1 for a healthy generator, near 0 for one that collapsed to a single
        output. Drawn with its own seeds, so training's random streams are unchanged."""
        rng = np.random.default_rng(seed)
        real = draw_crops(self.pool, rng.integers(len(self.pool), size=n), self.config.width, rng)
        self.gen.eval()
        fake = self.gen.sample(n, torch.Generator().manual_seed(seed)).cpu()
        self.gen.train()
        return crop_diversity(fake.numpy(), real.numpy())

    def pretrain(self, steps: int, history: History, every: int = 50) -> None:
        """``steps`` updates on the pool alone, their mean losses logged every ``every``."""
        sums = {"d": 0.0, "g": 0.0}
        for i in range(1, steps + 1):
            for k, v in self.step().items():
                sums[k] += v
            if i % every == 0 or i == steps:
                n = every if i % every == 0 else i % every
                history.pretrain.append({"step": i, **{f"loss_{k}": v / n
                                                        for k, v in sums.items()}})
                sums = {"d": 0.0, "g": 0.0}


def fit_semi(config: SemiConfig, train: CropSet, valid: CropSet, unlabelled: CropSet | None,
             seed: int = 0, work_dir: Path | None = None, progress: bool = False,
             pass_size: int | None = None) -> Trained:
    """Train one variant; resumable from ``work_dir/semi_checkpoint.pt`` (saved after every
    pass; the runner deletes it once the fold is done)."""
    if config.variant not in VARIANTS:
        raise EmovoxError(f"unknown DCGAN variant {config.variant!r}; choose from "
                          f"{sorted(VARIANTS)}")
    if config.gen_loss not in GEN_LOSSES:
        raise EmovoxError(f"unknown generator loss {config.gen_loss!r}; choose from {GEN_LOSSES}")
    if config.adversarial_steps < 1:
        raise EmovoxError(f"adversarial_steps must be at least 1, not {config.adversarial_steps}")
    if config.pretrain_steps < 0:
        raise EmovoxError(f"pretrain_steps must not be negative, not {config.pretrain_steps}")
    variant = VARIANTS[config.variant]
    if variant.adversarial and (unlabelled is None or len(unlabelled) == 0):
        raise EmovoxError(f"{config.variant}: the adversarial variants need unlabelled audio")
    torch.set_num_threads(config.threads)
    seed_everything(seed)
    rng = np.random.default_rng(seed)
    device = torch.device(config.device)
    disc, gen = build(config)
    disc.to(device)
    if gen:
        gen.to(device)
    opt_d = torch.optim.Adam(disc.parameters(), lr=config.lr, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(gen.parameters(), lr=config.lr, betas=(0.5, 0.999)) if gen else None
    history, best_state, bad = History(), None, 0
    parts = {"disc": disc, "opt_d": opt_d} | ({"gen": gen, "opt_g": opt_g} if gen else {})
    saver = Checkpoint(work_dir / "semi_checkpoint.pt" if work_dir else None, **parts)
    resumed = saver.restore()
    if resumed:
        history, best_state, bad = History(**resumed["history"]), resumed["best"], resumed["bad"]
        rng.bit_generator.state = resumed["rng"]
    start = time.perf_counter() - history.seconds
    game = (AdversarialGame(config, disc, gen, opt_d, opt_g, unlabelled, rng,
                            config.adversarial_batch or config.batch_size) if gen else None)

    def save() -> None:
        saver.save({"history": asdict(history), "best": best_state, "bad": bad,
                    "rng": rng.bit_generator.state})

    if game and config.pretrain_steps and not resumed:
        disc.train()
        gen.train()
        game.pretrain(config.pretrain_steps, history)
        history.seconds = time.perf_counter() - start
        save()
    # A pass covers the whole training set, labelled or not (``pass_size``), so models with
    # 10 % of the labels take as many steps between validations as those with all of them.
    steps = max(1, -(-(pass_size or len(train)) // config.batch_size))
    while len(history.passes) < config.max_passes and bad < config.patience:
        disc.train()
        if gen:
            gen.train()
        order = balanced_draw(train.valence, steps * config.batch_size, rng)
        sums: dict[str, float] = {}
        for step in range(steps):
            index = order[step * config.batch_size:(step + 1) * config.batch_size]
            x = draw_crops(train, index, config.width, rng).to(device)
            losses = {}
            for _ in range(config.adversarial_steps if gen else 0):
                for k, v in game.step().items():
                    losses[k] = losses.get(k, 0.0) + v / config.adversarial_steps
            heads = [("valence", train.valence, 0)]
            if variant.arousal:
                heads.append(("arousal", train.arousal, 1))
            for name, labels, which in heads:
                opt_d.zero_grad()
                logits = disc.heads(disc.features(x))[which]
                loss = soft_ce(logits, torch.from_numpy(labels[index]).float().to(device))
                loss.backward()
                opt_d.step()
                losses[name] = loss.item()
            if not all(np.isfinite(v) for v in losses.values()):
                raise GANFailure(f"{config.variant}: non-finite loss {losses} at pass "
                                 f"{len(history.passes) + 1}, step {step}: training diverged; "
                                 "no numbers reported")
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + v / steps
        trained = Trained(config, disc, gen, history)
        val_p, aro_p = trained.predict(valid)
        metrics = {k: v for k, v in rating_metrics(valid.valence, val_p, valid.means).items()
                   if not k.startswith("confusion")}
        score = float(metrics[config.select_on])
        record = {"pass": len(history.passes) + 1, **{f"loss_{k}": v for k, v in sums.items()},
                  **{f"valid_{k}": v for k, v in metrics.items()}}
        if game:
            record["gen_diversity"] = game.diversity()
        history.passes.append(record)
        recent = [p.get("gen_diversity", np.inf) for p in history.passes[-config.collapse_passes:]]
        if (config.collapse_diversity and len(recent) == config.collapse_passes
                and max(recent) < config.collapse_diversity):
            raise GANFailure(f"{config.variant}: generated crops vary less than "
                             f"{config.collapse_diversity:.0%} as much as real ones for "
                             f"{config.collapse_passes} passes (mode collapse, pass "
                             f"{record['pass']}); no numbers reported")
        if np.isfinite(score) and score > history.best_score:
            history.best_score, history.best_pass, bad = score, record["pass"], 0
            best_state = {"disc": copy.deepcopy(disc.state_dict()),
                          "gen": copy.deepcopy(gen.state_dict()) if gen else None}
        else:
            bad += 1
        history.seconds = time.perf_counter() - start
        if progress:
            log.warning("%s pass %d %s", config.variant, record["pass"],
                        {k: round(v, 3) for k, v in record.items() if k != "pass"})
        save()
    if best_state is not None:
        disc.load_state_dict(best_state["disc"])
        if gen:
            gen.load_state_dict(best_state["gen"])
    disc.cpu()
    if gen:
        gen.cpu()
    return Trained(config, disc, gen, history)
