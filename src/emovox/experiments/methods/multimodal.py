"""Audio + text with cross-modal attention (paper 4): one method for the full model and its
unimodal variants, with transcripts from the corpus, a file, or the offline recogniser.

``method.params.modality``: ``both`` (CMA-1 audio→text, CMA-2 text→audio), ``audio`` (audio on
both sides: the paper's audio-only row) or ``text`` (text on both sides; the only choice for
MELD, which has no audio). The audio input is whatever ``features`` gives: ``waveform`` (raw
16 kHz samples) or a spectrogram extractor (``log_mel``, ``power_spectrogram``) with smaller
``strides``/``pools``. Decisions are per utterance: on a live stream, one at the end of each
gated utterance (VAD segment, pause, maximum length or end of stream), no steps.

Text per utterance (``text``): ``corpus`` (the loader's transcript, or the ``transcripts`` file
``id<TAB>text``), ``asr`` (always the recogniser), ``corpus_or_asr`` (the recogniser fills the
gaps). New audio (``predict_wave``) is always transcribed first. Bad input: an empty transcript
is one zero word vector (counted); all-OOV words get hashed vectors (counted); more than
``max_words`` words are truncated (counted) or refused naming the utterance
(``long_text: error``); a ``transcripts`` file that lacks a corpus utterance is an error naming
it (unless ``corpus_or_asr``), rows for utterances not in the experiment are ignored with a
warning naming the first; audio shorter than the encoder's receptive field is zero-padded to it.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from emovox.corpora import Manifest
from emovox.errors import ConfigError, CorpusError
from emovox.evaluation.metrics import per_class_recall, weighted_f1
from emovox.experiments.methods.base import (
    METHODS,
    FoldResult,
    Method,
    RunContext,
    Scores,
    Split,
    scores_from_outputs,
)
from emovox.experiments.streamers import UtteranceStreamer
from emovox.features import Extractor, Normaliser
from emovox.io import atomic_write, atomic_write_json
from emovox.models.multimodal import MODALITIES, MultimodalCMA
from emovox.text import TextStats, WordVectors, embed_texts, tokenize
from emovox.training import fit, predict
from emovox.training.tasks import Classification
from emovox.training.trainer import class_weight_tensor, seed_everything

log = logging.getLogger(__name__)
TEXT_SOURCES = ("corpus", "asr", "corpus_or_asr")


class PairedSet:
    """Audio sequences and word-vector sequences of the same utterances, batched together in
    the shape :func:`emovox.training.fit` expects (``batch`` → inputs, lengths, targets)."""

    def __init__(self, audio: list[np.ndarray] | None, text: list[np.ndarray] | None,
                 targets: np.ndarray, pad_to: int | None = None):
        self.audio, self.text, self.pad_to = audio, text, pad_to
        self.targets = np.asarray(targets)
        first = audio if audio is not None else text
        if first is None:
            raise ValueError("a paired set needs audio or text")
        self.lengths = np.array([len(x) for x in first])

    def __len__(self) -> int:
        return len(self.targets)

    @staticmethod
    def _pad(seqs: list[np.ndarray], indices: np.ndarray, at_least: int = 0):
        lengths = np.array([len(seqs[i]) for i in indices])
        x = np.zeros((len(indices), max(lengths.max(), at_least), seqs[0].shape[1]), np.float32)
        for row, i in enumerate(indices):
            x[row, : lengths[row]] = seqs[i]
        return torch.from_numpy(x), torch.from_numpy(lengths)

    def batch(self, indices: np.ndarray):
        a = a_len = t = t_len = None
        if self.audio is not None:
            a, a_len = self._pad(self.audio, indices, self.pad_to or 0)
        if self.text is not None:
            t, t_len = self._pad(self.text, indices)
        return (a, t), (a_len, t_len), torch.from_numpy(self.targets[indices])

    def for_epoch(self, epoch: int, seed: int) -> PairedSet:
        return self


@dataclass
class CMATrained:
    net: MultimodalCMA
    labels: list[str]
    normaliser: Normaliser | None
    #: The audio front end (kept for a text-only model too: serving reads its sample rate).
    extractor: Extractor
    text_stats: dict[str, Any] = field(default_factory=dict)


@METHODS.register
class MultimodalMethod(Method):
    """Cross-modal attention over a raw-waveform (or spectrogram) CNN-BiLSTM and a GloVe
    text encoder; audio-only, text-only or both."""

    name = "multimodal"
    needs = ("waveform", "transcripts")

    @property
    def model_name(self) -> str:
        return f"cma_{self.params.modality}"

    @dataclass
    class Params:
        modality: str = "both"
        #: Audio: the first ``max_seconds`` of each utterance; ``pad_full`` pads every one to
        #: that length (the paper); ``mask_audio`` hides the padding from attention and pooling.
        max_seconds: float = 10.0
        pad_full: bool = False
        mask_audio: bool = True
        #: Conv strides and pool sizes of the three audio blocks (waveform defaults: 1,024×).
        strides: list[int] = field(default_factory=lambda: [4, 2, 2])
        pools: list[int] = field(default_factory=lambda: [4, 4, 4])
        #: Normalisation of the audio input (``none`` for the waveform, ``global`` for spectra).
        normalise: str = "none"
        text: str = "corpus"
        transcripts: str | None = None
        #: Recogniser for ``asr`` text and new audio: ``tiny.en`` (English only), ``base``
        #: (multilingual) or a CTranslate2 directory; ``asr_language`` a Whisper code (de, pl)
        #: or None (detected per utterance); ``asr_beam_size`` 1 is greedy. All three are part
        #: of the transcript cache's key.
        asr_model: str = "tiny.en"
        asr_language: str | None = None
        asr_beam_size: int = 1
        vectors: str = "glove-6b-50d"
        max_words: int = 50
        oov: str = "hash"
        long_text: str = "truncate"
        width: int = 100
        heads: int = 10
        layers: int = 2
        dropout: float = 0.2

    def __init__(self, config: Any):
        super().__init__(config)
        p = self.params
        if p.modality not in MODALITIES:
            raise ConfigError(f"method.params.modality must be one of {MODALITIES}, "
                              f"not {p.modality!r}")
        if p.text not in TEXT_SOURCES:
            raise ConfigError(f"method.params.text must be one of {TEXT_SOURCES}, "
                              f"not {p.text!r}")
        self._texts: dict[str, str | None] = {}

    @property
    def uses_audio(self) -> bool:
        return self.params.modality in ("both", "audio")

    @property
    def uses_text(self) -> bool:
        return self.params.modality in ("both", "text")

    # -- inputs ---------------------------------------------------------------------------
    def transcriber(self):
        from emovox.asr.transcribe import Transcriber

        p = self.params
        return Transcriber(p.asr_model, p.asr_language, p.asr_beam_size)

    def texts(self, manifest: Manifest) -> list[str | None]:
        """Each utterance's text per ``params.text`` (recognised once, cached on disk)."""
        todo = [u for u in manifest if u.id not in self._texts]
        if todo:
            given = self._given_texts(todo)
            need_asr = [u for u in todo if given.get(u.id) is None] if self.params.text != \
                "corpus" else []
            if self.params.text == "asr":
                need_asr = todo
            recognised = self.transcriber().manifest(need_asr) if need_asr else {}
            for u in todo:
                self._texts[u.id] = (recognised[u.id].text if u.id in recognised
                                     else given.get(u.id))
        return [self._texts[u.id] for u in manifest]

    def _given_texts(self, utterances: list) -> dict[str, str | None]:
        if self.params.transcripts is None:
            return {u.id: u.transcript for u in utterances}
        table = read_transcripts(Path(self.params.transcripts))
        ids = {u.id for u in utterances}
        extra = sorted(set(table) - ids - set(self._texts))
        if extra:
            log.warning("%s: %d transcript(s) for utterances not in this experiment "
                        "(ignored), e.g. %s", self.params.transcripts, len(extra), extra[0])
        if self.params.text == "corpus":
            for u in utterances:
                if u.id not in table:
                    raise CorpusError(f"{self.params.transcripts}: no transcript for "
                                      f"utterance {u.id}")
        return {u.id: table.get(u.id) for u in utterances}

    def word_vectors(self, ids: list[str], texts: list[str | None]
                     ) -> tuple[list[np.ndarray], TextStats]:
        p = self.params
        return embed_texts(ids, texts, WordVectors.from_package(p.vectors), p.max_words, p.oov,
                           p.long_text)

    def crop(self, extractor: Extractor | None) -> int | None:
        rate = extractor.frame_rate if extractor is not None else None
        return int(round(self.params.max_seconds * rate)) if rate else None

    def paired(self, feats: list[np.ndarray] | None, manifest: Manifest, targets: np.ndarray,
               normaliser: Normaliser | None, extractor: Extractor | None,
               texts: list[str | None] | None = None) -> tuple[PairedSet, TextStats | None]:
        audio = text = stats = None
        crop = self.crop(extractor)
        if self.uses_audio:
            assert feats is not None and normaliser is not None
            audio = normaliser.apply([f[:crop] for f in feats], [u.speaker for u in manifest])
        if self.uses_text:
            texts = texts if texts is not None else self.texts(manifest)
            text, stats = self.word_vectors([u.id for u in manifest], texts)
        return PairedSet(audio, text, targets, crop if self.params.pad_full else None), stats

    def build(self, n_outputs: int, audio_dim: int) -> MultimodalCMA:
        p = self.params
        return MultimodalCMA(
            n_outputs, p.modality, audio_dim=audio_dim,
            text_dim=WordVectors.from_package(p.vectors).dim if self.uses_text else 0,
            width=p.width, heads=p.heads, layers=p.layers, dropout=p.dropout,
            mask_audio=p.mask_audio, audio={"strides": tuple(p.strides),
                                            "pools": tuple(p.pools)})

    # -- training and scoring -------------------------------------------------------------
    def _set(self, trained: CMATrained, dataset: Any, manifest: Manifest):
        feats = [dataset.feats[u.id] for u in manifest] if self.uses_audio else None
        return self.paired(feats, manifest, dataset.targets(manifest), trained.normaliser,
                           trained.extractor)

    def fit(self, dataset: Any, split: Split, run: RunContext
            ) -> tuple[CMATrained, dict]:
        normaliser = None
        crop = self.crop(dataset.extractor)
        if self.uses_audio:
            normaliser = Normaliser(self.params.normalise).fit(
                [dataset.feats[u.id][:crop] for u in split.train])
        trained = CMATrained(None, list(dataset.labels), normaliser,  # type: ignore[arg-type]
                             dataset.extractor)
        train_set, train_stats = self._set(trained, dataset, split.train)
        valid_set, valid_stats = self._set(trained, dataset, split.valid)
        seed_everything(run.seed)
        trained.net = self.build(len(dataset.labels),
                                 dataset.extractor.dim if self.uses_audio else 0)
        weights = (class_weight_tensor(train_set.targets, len(dataset.labels))
                   if self.config.training.class_weights else None)
        task = Classification(len(dataset.labels), weights)
        history = fit(trained.net, train_set, valid_set, self.config.training, run.seed,
                      run.checkpoint("checkpoint.pt"), task)
        trained.net.eval()
        if train_stats is not None:
            trained.text_stats = {"train": train_stats.summary(), "valid": valid_stats.summary()}
        return trained, {"best_epoch": history.best_epoch, "epochs": history.epoch + 1,
                         "history": history.records}

    def outputs(self, trained: CMATrained, dataset: Any, manifest: Manifest) -> np.ndarray:
        data, stats = self._set(trained, dataset, manifest)
        if stats is not None:
            trained.text_stats["scored"] = stats.summary()
        return predict(trained.net, data, task=Classification(len(trained.labels)))

    def score(self, trained: CMATrained, dataset: Any, manifest: Manifest) -> Scores:
        """The shared metrics plus weighted F1 (MELD's metric) and per-class recall."""
        scores = scores_from_outputs(dataset, manifest, self.outputs(trained, dataset, manifest))
        targets = dataset.targets(manifest)
        pred = np.array([trained.labels.index(row["pred"]) for row in scores.predictions])
        n = len(trained.labels)
        scores.metrics["weighted_f1"] = weighted_f1(targets, pred, n)
        for label, r in zip(trained.labels, per_class_recall(targets, pred, n), strict=True):
            scores.metrics[f"recall_{label}"] = float(r)
        return scores

    def attention_example(self, trained: CMATrained, dataset: Any, manifest: Manifest,
                          index: int = 0) -> dict[str, Any]:
        """CMA-1's head-averaged attention (audio steps × words) of one utterance, per layer."""
        sub = Manifest([manifest[index]])
        data, _ = self._set(trained, dataset, sub)
        x, lengths, _ = data.batch(np.array([0]))
        maps = trained.net.attention(x, lengths)
        q, k = (int(n[0]) for n in maps["lengths"])
        words = (tokenize(self.texts(sub)[0] or "")[: self.params.max_words] if self.uses_text
                 else [])
        return {"id": sub[0].id, "label": sub[0].label, "words": words,
                "cma1": [w[0, :q, :k].numpy().round(4).tolist() for w in maps["cma1"]]}

    def extra(self, trained: CMATrained, dataset: Any, split: Split) -> dict[str, Any]:
        out: dict[str, Any] = {"text_stats": trained.text_stats}
        if len(split.test):
            out["attention"] = self.attention_example(trained, dataset, split.test)
        return out

    def report(self, results: list[FoldResult], out: Path) -> tuple[dict[str, Any], str]:
        block: dict[str, Any] = {"modality": self.params.modality}
        lines = [f"## Cross-modal attention ({self.params.modality})", ""]
        stats = [r.extra.get("text_stats", {}).get("scored") for r in results]
        stats = [s for s in stats if s]
        if stats:
            total = {k: sum(s[k] for s in stats) for k in ("tokens", "oov_tokens", "empty",
                                                           "all_oov", "truncated")}
            total["oov_rate"] = round(total["oov_tokens"] / max(total["tokens"], 1), 4)
            block["text_test"] = total
            lines += [f"Test words ({self.params.vectors}): {total['tokens']} tokens, "
                      f"{total['oov_tokens']} out of vocabulary ({total['oov_rate']:.1%}); "
                      f"{total['empty']} empty, {total['all_oov']} all-OOV and "
                      f"{total['truncated']} truncated transcripts.", ""]
        example = next((r.extra["attention"] for r in results if r.extra.get("attention")),
                       None)
        if example and example["words"] and self.params.modality == "both":
            plot_attention(example, out / "attention.png")
            atomic_write_json(out / "attention.json", example)
            lines += [f"![CMA-1 attention of {example['id']}](attention.png)", ""]
        return block, "\n".join(lines)

    # -- serving and model directories ----------------------------------------------------
    def predict_wave(self, trained: CMATrained, wave: np.ndarray) -> np.ndarray:
        """Transcribe first, then classify the whole utterance."""
        text = [self.transcriber().transcribe(wave).text] if self.uses_text else None
        feats = [trained.extractor(wave)] if self.uses_audio else None
        manifest = Manifest([_lone()])
        data, _ = self.paired(feats, manifest, np.zeros(1, np.int64), trained.normaliser,
                              trained.extractor, text)
        return predict(trained.net, data, task=Classification(len(trained.labels)))[0]

    def streamer(self, trained: CMATrained) -> UtteranceStreamer:
        """Utterance-level: the gated utterance's audio, transcribed and classified at its end."""
        return UtteranceStreamer(lambda wave: self.predict_wave(trained, wave),
                                 trained.extractor.sample_rate)

    def save(self, trained: CMATrained, out: Path) -> dict[str, Any]:
        buf = io.BytesIO()
        torch.save(trained.net.state_dict(), buf)
        atomic_write(out / "weights.pt", lambda fh: fh.write(buf.getvalue()))
        meta: dict[str, Any] = {"labels": trained.labels, "text_stats": trained.text_stats}
        if trained.normaliser is not None:
            meta["normaliser"] = {k: (v.tolist() if isinstance(v, np.ndarray) else v)
                                  for k, v in trained.normaliser.state().items()}
        return meta

    def load(self, model_dir: Path, meta: dict[str, Any]) -> CMATrained:
        from emovox.features import make_extractor

        extractor = make_extractor(meta["features"]["name"], **meta["features"]["params"])
        normaliser = None
        if self.uses_audio:
            normaliser = Normaliser.from_state(meta["normaliser"])
            if normaliser.mode == "speaker":  # a lone file has no speaker statistics
                normaliser.mode = "global"
        net = self.build(len(meta["labels"]), extractor.dim)
        net.load_state_dict(torch.load(model_dir / "weights.pt", weights_only=True))
        return CMATrained(net.eval(), list(meta["labels"]), normaliser, extractor,
                          meta.get("text_stats", {}))


def _lone():
    from emovox.corpora import Utterance

    return Utterance(id="input", path="", speaker="input")


def read_transcripts(path: Path) -> dict[str, str]:
    """``id<TAB>text`` lines; a malformed line is an error naming the file and line."""
    if not path.exists():
        raise CorpusError(f"{path}: transcripts file not found")
    table = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        if "\t" not in line:
            raise CorpusError(f"{path}:{n}: expected 'id<TAB>text'")
        utt_id, text = line.split("\t", 1)
        table[utt_id.strip()] = text.strip()
    return table


def plot_attention(example: dict[str, Any], path: Path) -> None:
    """CMA-1's attention of one utterance: which words each audio step attends to."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    maps = [np.asarray(m) for m in example["cma1"]]
    fig, axes = plt.subplots(1, len(maps), figsize=(4 + 3 * len(maps), 4), squeeze=False)
    for i, (ax, m) in enumerate(zip(axes[0], maps, strict=True)):
        image = ax.imshow(m, aspect="auto", cmap="viridis", origin="lower")
        ax.set_xticks(range(len(example["words"])), example["words"], rotation=60, fontsize=8)
        ax.set_xlabel("word (key)")
        ax.set_ylabel("audio step (query)")
        ax.set_title(f"CMA-1 layer {i + 1}")
        fig.colorbar(image, ax=ax, fraction=0.046)
    fig.suptitle(f"{example['id']} ({example['label']})")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, dpi=110)
    plt.close(fig)
    atomic_write(path, lambda fh: fh.write(buf.getvalue()))
