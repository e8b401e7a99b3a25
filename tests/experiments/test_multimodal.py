"""Cross-modal attention method: text handling, the network's masks, MELD, transcription."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import ROOT

from emovox.corpora import Manifest, Utterance
from emovox.errors import CorpusError
from emovox.experiments.dataset import Dataset
from emovox.experiments.methods.base import RunContext, Split
from emovox.experiments.methods.multimodal import MultimodalMethod, PairedSet
from emovox.models.multimodal import MultimodalCMA
from emovox.text import WordVectors, embed_texts, tokenize
from emovox.training.trainer import TrainConfig


def test_tokenize_splits_clitics_and_punctuation_like_glove():
    assert tokenize("No don’t I beg of you!") == ["no", "do", "n't", "i", "beg", "of", "you",
                                                  "!"]
    assert tokenize("") == []


def test_embeddings_count_oov_empty_and_truncated():
    vectors = WordVectors.from_package()
    assert vectors.dim == 50 and "happy" in vectors
    feats, stats = embed_texts(["a", "b", "c", "d"],
                               ["I am happy", "", "qzxv wvvq", " ".join(["yes"] * 60)], vectors)
    assert [len(f) for f in feats] == [3, 1, 2, 50]
    assert not feats[1].any()                       # empty transcript: one zero word
    assert stats.empty == ["b"] and stats.all_oov == ["c"] and stats.truncated == ["d"]
    assert stats.oov_tokens == 2 and stats.tokens == 3 + 2 + 50
    # hashed OOV vectors: fixed per word, different between words
    again, _ = embed_texts(["c"], ["qzxv wvvq"], vectors)
    np.testing.assert_array_equal(again[0], feats[2])
    assert not np.allclose(feats[2][0], feats[2][1])
    with pytest.raises(CorpusError, match="^d: transcript has 60 words"):
        embed_texts(["d"], [" ".join(["yes"] * 60)], vectors, long="error")


def _inputs(lengths_a, lengths_t, dim=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(len(lengths_a), max(lengths_a), dim, generator=g)
    t = torch.randn(len(lengths_t), max(lengths_t), 50, generator=g)
    for i, (la, lt) in enumerate(zip(lengths_a, lengths_t, strict=True)):
        a[i, la:] = 0
        t[i, lt:] = 0
    return (a, t), (torch.tensor(lengths_a), torch.tensor(lengths_t))


def test_padding_of_frames_and_words_does_not_change_the_output():
    torch.manual_seed(0)
    net = MultimodalCMA(4).eval()
    (a, t), (la, lt) = _inputs([16000], [5])
    alone = net((a, t), (la, lt))
    padded = net((torch.nn.functional.pad(a, (0, 0, 0, 8000)),
                  torch.nn.functional.pad(t, (0, 0, 0, 7))), (la, lt))
    torch.testing.assert_close(alone, padded, atol=1e-5, rtol=1e-4)
    # unmasked (the paper's zero-padded 10 s): padding is part of the signal
    net.mask_audio = False
    assert not torch.allclose(net((a, t), (la, lt)), net(
        (torch.nn.functional.pad(a, (0, 0, 0, 8000)), t), (la, lt)))


def test_attention_maps_have_audio_queries_and_word_keys():
    net = MultimodalCMA(3)
    maps = net.attention(*_inputs([32000, 16000], [7, 3]))
    steps = int(net.audio.out_lengths(torch.tensor([32000])))
    assert [m.shape for m in maps["cma1"]] == [(2, steps, 7)] * 2
    assert [m.shape for m in maps["cma2"]] == [(2, 7, steps)] * 2
    # padded words of the second utterance get no attention
    assert torch.all(maps["cma1"][0][1, :, 3:] == 0)
    torch.testing.assert_close(maps["cma1"][0].sum(-1), torch.ones(2, steps))


def test_audio_shorter_than_the_receptive_field_is_padded_to_one_step():
    net = MultimodalCMA(2, modality="audio").eval()
    assert net.audio.min_length > 100
    out = net(*_inputs([40], [1]))
    assert out.shape == (1, 2) and torch.isfinite(out).all()


def test_unimodal_variants_build_only_their_encoder():
    assert MultimodalCMA(2, modality="text", audio_dim=0).audio is None
    assert MultimodalCMA(2, modality="audio").text is None
    net = MultimodalCMA(2, modality="text")
    x, lengths = _inputs([10], [4])
    assert net((None, x[1]), (None, lengths[1])).shape == (1, 2)


def _method(**params) -> MultimodalMethod:
    training = TrainConfig(epochs=25, batch_size=8, lr=3e-3, patience=25, progress=False,
                           select_on="uar")
    return MultimodalMethod(SimpleNamespace(
        method=SimpleNamespace(params=MultimodalMethod.Params(**params)), training=training))


def _text_manifest(n: int, seed: int) -> Manifest:
    rng = np.random.default_rng(seed)
    words = {"joy": ["great", "wonderful", "happy", "love"],
             "anger": ["hate", "stupid", "angry", "damn"]}
    filler = ["the", "you", "it", "was", "so", "what", "i"]
    utts = []
    for i in range(n):
        label = ["joy", "anger"][i % 2]
        text = " ".join(list(rng.choice(filler, 4)) + [rng.choice(words[label])])
        utts.append(Utterance(id=f"s{seed}_{i}", path="", speaker=f"spk{seed}", label=label,
                              transcript=text))
    return Manifest(utts)


def test_text_only_learns_words_that_carry_emotion():
    train, valid, test = _text_manifest(64, 0), _text_manifest(16, 1), _text_manifest(32, 2)
    dataset = Dataset(Manifest([*train, *valid, *test]), {}, ["anger", "joy"], None)
    method = _method(modality="text")
    trained, info = method.fit(dataset, Split(train, valid, test), RunContext())
    scores = method.score(trained, dataset, test)
    assert scores.metrics["uar"] >= 0.9, scores.metrics
    assert {"weighted_f1", "recall_joy", "recall_anger"} <= set(scores.metrics)
    assert trained.text_stats["train"]["oov_tokens"] == 0


def test_transcripts_file_missing_and_extra_utterances(tmp_path, caplog):
    manifest = _text_manifest(4, 0)
    path = tmp_path / "t.tsv"
    path.write_text("s0_0\thello\ns0_1\tbye\ns0_2\tyes\nghost\tboo\n")
    method = _method(modality="text", transcripts=str(path))
    with pytest.raises(CorpusError, match="no transcript for utterance s0_3$"):
        method.texts(manifest)
    with caplog.at_level(logging.WARNING):
        assert method.texts(Manifest(manifest[:3])) == ["hello", "bye", "yes"]
    assert "e.g. ghost" in caplog.text


def test_paired_set_pads_to_the_crop_when_asked():
    data = PairedSet([np.ones((5, 1), np.float32), np.ones((3, 1), np.float32)],
                     [np.ones((2, 50), np.float32)] * 2, np.array([0, 1]), pad_to=8)
    (a, t), (la, lt), y = data.batch(np.array([0, 1]))
    assert a.shape == (2, 8, 1) and la.tolist() == [5, 3] and t.shape == (2, 2, 50)


def test_meld_loader_and_its_own_split(meld):
    from emovox.corpora import load_corpus
    from emovox.experiments.protocols import make_folds

    meld = load_corpus("meld", meld)
    assert len(meld) == 9989 + 1109 + 2610
    assert meld.labels == ["anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise"]
    (fold,) = make_folds(meld, "split")
    sizes = [len(meld.with_speakers(s)) for s in (fold.train, fold.valid, fold.test)]
    assert sizes == [9989, 1109, 2610]
    first = meld[0]
    assert first.id == "train_dia0_utt0" and first.speaker == "train:Chandler"
    assert "company’s" in first.transcript and first.path == ""


def test_transcription_runs_offline_on_real_emodb_audio(emodb_manifest, tmp_path):
    from emovox.asr.transcribe import Transcriber

    utts = list(emodb_manifest)[:2]
    transcriber = Transcriber("tiny.en", cache=tmp_path)
    first = transcriber.manifest(utts, progress=False)
    assert all(t.text and t.words for t in first.values())
    assert all(0 <= w.start <= w.end <= 2.5 for t in first.values() for w in t.words)
    assert len(list(tmp_path.rglob("*.json"))) == 2
    again = transcriber.manifest(utts, progress=False)   # from the cache
    assert {k: v.text for k, v in again.items()} == {k: v.text for k, v in first.items()}


@pytest.mark.e2e
def test_paper4_config_on_an_iemocap_fixture_then_train_and_predict(emodb, tmp_path, capsys):
    """The IEMOCAP study config end to end on a fixture in IEMOCAP's layout (transcripts from
    its transcription files), then a model directory that transcribes new audio first."""
    import json

    from iemocap_fixture import write_iemocap

    from emovox.cli import main

    root = write_iemocap(tmp_path, emodb)
    fast = [f"corpus.path={root}", "training.epochs=1", "training.progress=false",
            f"features.cache={tmp_path / 'cache'}", "training.threads=1"]
    config = ROOT / "configs" / "paper4_multimodal_iemocap.yaml"
    out = tmp_path / "study"
    assert main(["-q", "study", str(config), "--out", str(out), "--only", "cma_raw", *fast,
                 "protocol.folds=[0]"]) == 0
    metrics = json.loads((out / "cma_raw" / "metrics.json").read_text())
    assert metrics["method"] == "multimodal" and "weighted_f1" in metrics
    assert metrics["model"] == "cma_both"  # the method's network, not the unused `model:`
    assert "model `cma_both`" in (out / "cma_raw" / "report.md").read_text()
    assert metrics["text_test"]["tokens"] > 0
    assert (out / "cma_raw" / "attention.png").exists()
    example = json.loads((out / "cma_raw" / "attention.json").read_text())
    assert len(example["cma1"][0][0]) == len(example["words"])

    single = tmp_path / "single.yaml"
    single.write_text(yaml_dump_variant(config))
    model = tmp_path / "model"
    assert main(["-q", "train", str(single), "--out", str(model), *fast]) == 0
    capsys.readouterr()
    wav = sorted((emodb / "wav").glob("*.wav"))[0]
    assert main(["-q", "predict", str(wav), "--model", str(model)]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["label"] in ["anger", "happiness", "neutral", "sadness"]


def yaml_dump_variant(study) -> str:
    """The study's base as a plain experiment config."""
    import yaml

    return yaml.safe_dump(yaml.safe_load(study.read_text())["base"] | {"name": "p4"})
