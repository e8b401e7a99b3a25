"""The DCGAN method's pieces: spectrogram input, fuzzy labels and metrics, networks, crops,
oversampling, the stop rule, resumption, GAN failure detection and the unlabelled pool."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import speech_like

from emovox.audio import load_audio
from emovox.corpora.manifest import Manifest, Word
from emovox.errors import EmovoxError
from emovox.evaluation.valence import fuzzy_label, fuzzy_ua, rating_metrics, ratings_label
from emovox.experiments.methods.dcgan import PAPER_PICKS, keep_labels, unlabelled_pool
from emovox.features import make_extractor
from emovox.models.dcgan import Discriminator, Generator
from emovox.training.semi import (
    AdversarialGame,
    CropSet,
    GANFailure,
    SemiConfig,
    balanced_draw,
    build,
    crop,
    draw_crops,
    eval_crops,
    fit_semi,
    generator_loss,
    voiced_centres,
    word_centres,
)


def test_stft_spectrogram_has_128_rows_at_100_frames_per_second():
    ex = make_extractor("stft_spectrogram")
    rate = 16000
    t = np.arange(rate) / rate
    spec = ex(0.3 * np.sin(2 * np.pi * 1000 * t).astype(np.float32))
    assert spec.shape[1] == 128 and ex.frame_rate == 100.0
    assert abs(len(spec) - 100) <= 10
    assert spec[len(spec) // 2].argmax() == 16  # 1 kHz / 62.5 Hz per row


def test_fuzzy_labels_split_half_ratings():
    np.testing.assert_allclose(fuzzy_label(4.5), [0, 0, 0, 0.5, 0.5])
    np.testing.assert_allclose(fuzzy_label(3.0), [0, 0, 1, 0, 0])
    np.testing.assert_allclose(fuzzy_label(5.0), [0, 0, 0, 0, 1])
    np.testing.assert_allclose(ratings_label([4, 5]), [0, 0, 0, 0.5, 0.5])
    np.testing.assert_allclose(fuzzy_label(1.25), [0.75, 0.25, 0, 0, 0])


def test_split_labels_count_either_side_and_one_hot_ua_is_standard():
    labels = np.stack([fuzzy_label(4.5), fuzzy_label(4.5), fuzzy_label(1.0)])
    assert fuzzy_ua(labels, np.array([3, 4, 0])) == 1.0
    assert fuzzy_ua(labels, np.array([2, 4, 0])) == pytest.approx(
        np.mean([1.0, 0.5 / 1.0, 0.5 / 1.0]))
    one_hot = np.eye(5)[[0, 0, 2, 2, 2]]
    assert fuzzy_ua(one_hot, np.array([0, 1, 2, 2, 0])) == pytest.approx((0.5 + 2 / 3) / 2)


def test_three_class_pooling_and_pearson():
    means = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    labels = np.stack([fuzzy_label(m) for m in means])
    proba = np.array([[0, .6, .4, 0, 0], [.5, .4, .1, 0, 0], [0, .3, .4, .3, 0],
                      [0, 0, .1, .5, .4], [0, 0, 0, .2, .8]])
    m = rating_metrics(labels, proba, means)
    assert m["ua3"] == 1.0  # 1–2 negative, 3 neutral, 4–5 positive, pooled probabilities
    assert m["ua5"] < 1.0
    assert m["pearson_r"] == pytest.approx(np.corrcoef(proba @ np.arange(1, 6), means)[0, 1])
    assert np.sum(m["confusion5"]) == pytest.approx(5)


@pytest.mark.parametrize("variant", sorted(PAPER_PICKS))
def test_networks_for_the_paper_picks(variant):
    pick = PAPER_PICKS[variant]
    disc = Discriminator(pick["width"], pick["filters"], pick["kernel"])
    x = torch.randn(2, 128, pick["width"])
    feats = disc.features(x)
    assert feats.shape == (2, pick["filters"] * 8 * pick["width"] // 16)
    val, aro = disc.heads(feats)
    assert val.shape == aro.shape == (2, 5)
    assert disc.real_fake(feats).shape == (2, 1)
    convs = [m for m in disc.trunk if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 4 and all(c.stride == (2, 2) for c in convs)
    assert not any(isinstance(m, torch.nn.modules.pooling._MaxPoolNd) for m in disc.modules())
    fake = Generator(pick["width"], 8).sample(2)
    assert fake.shape == (2, 128, pick["width"]) and fake.abs().max() <= 1


def test_crops_are_centred_inside_words():
    words = [Word("a", 0.50, 0.60), Word("b", 1.50, 1.70)]
    segments = word_centres(words, 250, 0.01, 0.064)
    assert [(s[0], s[-1]) for s in segments] == [(47, 56), (147, 166)]
    spec = np.tile(np.arange(250, dtype=np.float32)[:, None], (1, 128))
    data = CropSet([spec], [segments])
    rng = np.random.default_rng(0)
    centres = [int(draw_crops(data, np.array([0]), 64, rng)[0, 0, 32]) for _ in range(50)]
    assert all(47 <= c <= 56 or 147 <= c <= 166 for c in centres)
    short = crop(spec[:40], 20, 64)
    assert short.shape == (64, 128) and (short == -1).sum() == 24 * 128
    assert eval_crops(spec, segments, 64).shape[1:] == (128, 64)


def test_voice_activity_fallback_finds_the_speech():
    wave = speech_like(2.0, seed=5)
    padded = np.concatenate([np.zeros(16000, np.float32), wave, np.zeros(16000, np.float32)])
    frames = voiced_centres(padded, len(padded) // 160, 0.01, 0.064)[0]
    assert frames.min() >= 90 and frames.max() <= 100 + len(wave) // 160 + 10
    assert len(frames) > 0.3 * len(wave) / 160


def test_oversampling_balances_valence_classes():
    labels = np.stack([fuzzy_label(1.0)] * 90 + [fuzzy_label(5.0)] * 10)
    draw = balanced_draw(labels, 4000, np.random.default_rng(0))
    assert 0.45 < np.mean(draw >= 90) < 0.55


def toy_sets(n: int = 24, seed: int = 0) -> tuple[CropSet, CropSet]:
    """Crops whose brightness encodes valence: learnable in a few passes."""
    rng = np.random.default_rng(seed)

    def make(k: int) -> CropSet:
        points = rng.choice([1.0, 3.0, 5.0], size=k)
        specs = [np.clip(rng.normal((p - 3) / 3, 0.2, (80, 128)), -1, 1).astype(np.float32)
                 for p in points]
        labels = np.stack([fuzzy_label(p) for p in points])
        return CropSet(specs, [[np.arange(80)]] * k, labels, labels, points)

    return make(n), make(12)


SMALL = SemiConfig(width=32, kernel=3, filters=8, gen_filters=8, batch_size=8, lr=1e-3,
                   max_passes=6, patience=2, threads=1)


def test_stop_rule_restores_the_best_pass():
    train, valid = toy_sets()
    trained = fit_semi(replace(SMALL, variant="multitask_cnn"), train, valid, None)
    h = trained.history
    assert len(h.passes) <= SMALL.max_passes
    assert h.best_pass == 1 + int(np.argmax([p["valid_ua3"] for p in h.passes]))
    if len(h.passes) < SMALL.max_passes:  # stopped by patience
        assert len(h.passes) - h.best_pass == SMALL.patience
    val, _ = trained.predict(valid)
    assert rating_metrics(valid.valence, val, valid.means)["ua3"] == pytest.approx(h.best_score)


def test_gan_resumes_from_its_checkpoint(tmp_path):
    train, valid = toy_sets()
    config = replace(SMALL, variant="basic_dcgan", patience=10)
    first = fit_semi(replace(config, max_passes=2), train, valid, train, 0, tmp_path)
    resumed = fit_semi(replace(config, max_passes=3), train, valid, train, 0, tmp_path)
    assert resumed.history.passes[:2] == first.history.passes
    assert len(resumed.history.passes) == 3
    assert {"loss_d", "loss_g", "loss_valence"} <= set(resumed.history.passes[0])


def test_collapsed_or_diverged_gan_stops_with_a_message():
    train, valid = toy_sets()
    with pytest.raises(GANFailure, match="collapsed"):
        fit_semi(replace(SMALL, variant="basic_dcgan", collapse_loss=1e9, collapse_steps=2),
                 train, valid, train)
    with pytest.raises(GANFailure, match="non-finite"):
        broken = CropSet([np.full_like(s, np.nan) for s in train.specs], train.centres)
        fit_semi(replace(SMALL, variant="basic_dcgan"), train, valid, broken)


def test_mode_collapse_is_measured_every_pass_and_stops_a_run_when_asked():
    """gen_diversity ≈ 0 for a generator with one output, logged every pass; a run whose
    generator stays under collapse_diversity for collapse_passes passes is stopped."""
    train, valid = toy_sets()
    trained = fit_semi(replace(SMALL, variant="basic_dcgan", max_passes=2, patience=10),
                       train, valid, train)
    assert all(p["gen_diversity"] > 0 for p in trained.history.passes)
    disc, gen = build(replace(SMALL, variant="basic_dcgan"))
    with torch.no_grad():
        for layer in gen.deconv:
            if isinstance(layer, torch.nn.ConvTranspose2d):
                layer.weight.zero_()   # output = tanh(bias): the same crop for every z
    game = AdversarialGame(SMALL, disc, gen, None, None, train, np.random.default_rng(0), 8)
    assert game.diversity() < 1e-6
    with pytest.raises(GANFailure, match="mode collapse, pass 3"):
        fit_semi(replace(SMALL, variant="basic_dcgan", max_passes=6, patience=10,
                         collapse_diversity=100.0, collapse_passes=3), train, valid, train)


def test_feature_matching_pulls_generated_features_towards_real_ones():
    torch.manual_seed(0)
    disc, gen = Discriminator(32, 8, 3), Generator(32, 8)
    real = torch.rand(6, 128, 32) * 2 - 1
    f_real = disc.features(real).detach()
    bce = torch.nn.BCEWithLogitsLoss()
    loss = generator_loss("feature_matching", disc, gen.sample(6), f_real, bce)
    loss.backward()
    assert loss.item() > 0 and gen.project[0].weight.grad.abs().sum() > 0
    same = generator_loss("feature_matching", disc, real, f_real, bce)
    assert same.item() == pytest.approx(0.0, abs=1e-6)


def test_gan_options_train_and_unknown_loss_is_refused():
    train, valid = toy_sets()
    config = replace(SMALL, variant="basic_dcgan", max_passes=2, gen_loss="feature_matching",
                     real_label=0.9)
    trained = fit_semi(config, train, valid, train)
    assert all(np.isfinite(p["loss_g"]) for p in trained.history.passes)
    with pytest.raises(EmovoxError, match="generator loss"):
        fit_semi(replace(config, gen_loss="wasserstein"), train, valid, train)


def test_adversarial_steps_repeat_the_real_fake_game_per_labelled_step(monkeypatch):
    """k discriminator + generator updates per labelled step: k times the generator samples,
    the same number of head steps, and k = 0 is refused."""
    train, valid = toy_sets()
    calls = {"sample": 0, "heads": 0}
    sample, heads = Generator.sample, Discriminator.heads

    def count(name, fn):
        def wrapped(self, *a, **kw):
            calls[name] += self.training  # training steps only, not validation scoring
            return fn(self, *a, **kw)
        return wrapped

    monkeypatch.setattr(Generator, "sample", count("sample", sample))
    monkeypatch.setattr(Discriminator, "heads", count("heads", heads))
    config = replace(SMALL, variant="basic_dcgan", max_passes=2, patience=10)
    steps = 2 * -(-len(train) // config.batch_size)
    counts = {}
    for k in (1, 3):
        calls.update(sample=0, heads=0)
        trained = fit_semi(replace(config, adversarial_steps=k), train, valid, train)
        counts[k] = dict(calls)
        assert all(np.isfinite(p["loss_d"]) and np.isfinite(p["loss_g"])
                   for p in trained.history.passes)
    assert counts[1] == {"sample": steps, "heads": steps}
    assert counts[3] == {"sample": 3 * steps, "heads": steps}
    with pytest.raises(EmovoxError, match="adversarial_steps"):
        fit_semi(replace(config, adversarial_steps=0), train, valid, train)


def test_pretraining_plays_the_game_before_the_first_pass_and_resumes_past_it(tmp_path,
                                                                            monkeypatch):
    """pretrain_steps generator samples happen before any head step, their losses are logged
    every 50 steps, and a resumed run does not pre-train again."""
    train, valid = toy_sets()
    order: list[str] = []
    sample, heads = Generator.sample, Discriminator.heads

    def log(name, fn):
        def wrapped(self, *a, **kw):
            if self.training:
                order.append(name)
            return fn(self, *a, **kw)
        return wrapped

    monkeypatch.setattr(Generator, "sample", log("sample", sample))
    monkeypatch.setattr(Discriminator, "heads", log("heads", heads))
    config = replace(SMALL, variant="basic_dcgan", max_passes=1, patience=10, pretrain_steps=120)
    first = fit_semi(config, train, valid, train, 0, tmp_path)
    assert order[:120] == ["sample"] * 120 and order[120] == "sample" and "heads" in order
    assert [p["step"] for p in first.history.pretrain] == [50, 100, 120]
    assert all(np.isfinite(p["loss_d"]) for p in first.history.pretrain)
    order.clear()
    resumed = fit_semi(replace(config, max_passes=2), train, valid, train, 0, tmp_path)
    assert order.count("sample") == order.count("heads")  # one pass, no second pre-training
    assert resumed.history.pretrain == first.history.pretrain
    with pytest.raises(EmovoxError, match="pretrain_steps"):
        fit_semi(replace(config, pretrain_steps=-1), train, valid, train)


def test_nemo_held_out_speakers_never_enter_a_nemo_pool(nemo):
    """nEMO as its own pool directory (no word timings, files named by speaker): the fold's
    validation and test speakers' files are all removed, by path."""
    from pathlib import Path

    from emovox.corpora import load_corpus

    manifest = load_corpus("nemo", nemo, check_files=False)
    held_out = manifest.with_speakers(["EB0", "WR0"])
    pool = unlabelled_pool([str(nemo / "samples")], held_out, 0, 0)
    assert len(pool) == len(manifest) - len(held_out) > 0
    assert not {Path(u.path).name.split("_")[0] for u in pool} & {"EB0", "WR0"}


def test_test_speakers_never_enter_the_unlabelled_pool(synthetic_corpus, synthetic_manifest):
    """The pool directory is the corpus itself: the fold's held-out speakers' files are
    removed, everything else stays."""
    corpus_dir = synthetic_corpus.parent
    held_out = synthetic_manifest.with_speakers(["s1", "s2"])
    pool = unlabelled_pool([str(corpus_dir)], held_out, 0, 0)
    held_names = {u.path.rsplit("/", 1)[-1] for u in held_out}
    names = {u.path.rsplit("/", 1)[-1] for u in pool}
    assert not names & held_names
    assert len(pool) == len(list(corpus_dir.glob("*.wav"))) - len(held_out) > 0
    assert len(unlabelled_pool([str(corpus_dir)], held_out, 5, 0)) == 5


def test_label_fraction_keeps_labels_per_training_speaker(synthetic_manifest):
    train = synthetic_manifest.with_speakers(["s1", "s2", "s3"])
    labelled, rest = keep_labels(train, 0.25, 0)
    assert len(labelled) + len(rest) == len(train)
    for s in train.speakers:
        n = sum(u.speaker == s for u in train)
        assert sum(u.speaker == s for u in labelled) == max(1, round(0.25 * n))
    assert keep_labels(train, 0.25, 0)[0] == labelled


def test_method_fit_excludes_held_out_speakers_from_the_pool(synthetic_corpus,
                                                             synthetic_manifest, monkeypatch):
    """Through DCGANMethod.fit itself: what reaches the discriminator never holds a
    validation or test speaker's file, even when the pool directory is the corpus."""
    from emovox.experiments.methods import dcgan
    from emovox.experiments.methods.base import RunContext, Split

    seen = {}

    def fake_fit(config, train, valid, unlab, seed=0, work_dir=None, **_):
        seen["n_unlab"] = len(unlab)
        raise RuntimeError("stop after the data is built")

    monkeypatch.setattr(dcgan, "fit_semi", fake_fit)
    pool_calls = []
    real_pool = dcgan.unlabelled_pool
    monkeypatch.setattr(dcgan, "unlabelled_pool",
                        lambda *a: pool_calls.append(real_pool(*a)) or pool_calls[-1])
    emotion = {"low": "sadness", "high": "anger"}  # categories with a derived valence
    manifest = Manifest(replace(u, label=emotion[u.label])
                        for u in synthetic_manifest.with_speakers(["s1", "s2", "s3"]))
    ex = make_extractor("stft_spectrogram")
    feats = {u.id: ex(load_audio(u.path)) for u in manifest}
    dataset = SimpleNamespace(feats=feats, extractor=ex)
    params = dcgan.DCGANMethod.Params(variant="basic_dcgan",
                                      unlabelled=[str(synthetic_corpus.parent)],
                                      unlabelled_limit=0)
    config = SimpleNamespace(method=SimpleNamespace(params=params),
                             task=SimpleNamespace(derived=True),
                             features=SimpleNamespace(cache="auto"))
    split = Split(manifest.with_speakers(["s1"]), manifest.with_speakers(["s2"]),
                  manifest.with_speakers(["s3"]))
    with pytest.raises(RuntimeError, match="stop after"):
        dcgan.DCGANMethod(config).fit(dataset, split, RunContext())
    held = {u.path.rsplit("/", 1)[-1] for u in Manifest(list(split.valid) + list(split.test))}
    assert not {u.path.rsplit("/", 1)[-1] for u in pool_calls[0]} & held
    assert seen["n_unlab"] == len(split.train) + len(pool_calls[0])


def test_iemocap_word_timings_and_fuzzy_labels(tmp_path):
    """IEMOCAP layout: forced-alignment words become crop centres, the annotators' mean
    valence becomes the fuzzy label (2.5 → half 2, half 3)."""
    from iemocap_fixture import write_iemocap

    from emovox.corpora import load_corpus
    from emovox.experiments.methods.dcgan import crop_set
    from emovox.training.semi import SpecScaler

    manifest = load_corpus("iemocap", write_iemocap(tmp_path))
    utt = next(u for u in manifest if u.id == "Ses01F_impro01_F000")
    assert [w.text for w in utt.words] == ["excuse", "me"]
    assert utt.words[0].start == pytest.approx(0.2)
    assert not next(u for u in manifest if u.id == "Ses01F_impro01_M000").words
    ex = make_extractor("stft_spectrogram")
    feats = {u.id: ex(load_audio(u.path)) for u in manifest}
    data = crop_set(list(manifest), feats, SpecScaler.fit(list(feats.values())), ex, False, {})
    i = [u.id for u in manifest].index(utt.id)
    np.testing.assert_allclose(data.valence[i], [0, 0.5, 0.5, 0, 0])
    assert len(data.centres[i]) == 2  # one segment per word; VAD for the others
    assert all(len(c) == 1 for j, c in enumerate(data.centres) if not manifest[j].words)


TINY = ["method.params.width=32", "method.params.kernel=3", "method.params.filters=8",
        "method.params.gen_filters=8", "method.params.batch_size=4", "method.params.max_passes=2",
        "method.params.threads=1"]


@pytest.mark.e2e
def test_iemocap_paper_config_end_to_end(tmp_path, emodb, capsys):
    """configs/paper5_dcgan_iemocap.yaml on an IEMOCAP-layout fixture: leave-one-session-out
    experiment, then a model directory that `emovox predict` reads (valence/arousal
    distributions)."""
    import json

    import yaml
    from conftest import ROOT
    from iemocap_fixture import write_iemocap

    from emovox.cli import main

    root = write_iemocap(tmp_path, emodb)
    data = yaml.safe_load((ROOT / "configs" / "paper5_dcgan_iemocap.yaml").read_text())
    config = tmp_path / "iemocap.yaml"
    config.write_text(yaml.safe_dump({"name": "paper5_iemocap_fixture", **data["base"]}))
    overrides = [f"corpus.path={root}", f"features.cache={tmp_path / 'cache'}", *TINY]
    out = tmp_path / "out"
    assert main(["-q", "experiment", str(config), "--out", str(out), *overrides]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["method"] == "dcgan" and metrics["n_folds"] == 4
    assert metrics["model"] == data["base"]["method"]["params"]["variant"]
    assert {"valence_ua5", "valence_ua3", "valence_pearson", "arousal_ua3"} <= set(metrics)
    assert np.sum(metrics["valence_confusion5"]) == pytest.approx(
        sum(len(json.loads((d / "result.json").read_text())["test"]["predictions"])
            for d in (out / "runs" / "seed0").iterdir()))
    report = (out / "report.md").read_text()
    assert "multitask_dcgan" in report and (out / "dcgan_samples.png").exists()
    assert (out / "dcgan_losses.png").exists()
    capsys.readouterr()
    model = tmp_path / "model"
    assert main(["-q", "train", str(config), "--out", str(model), *overrides]) == 0
    wav = next(root.rglob("*.wav"))
    capsys.readouterr()
    assert main(["-q", "predict", str(wav), "--model", str(model)]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert len(line["valence_proba"]) == len(line["arousal_proba"]) == 5
    assert sum(line["valence_proba"]) == pytest.approx(1, abs=1e-4)
    assert 1 <= line["valence"] <= 5 and line["valence_class"] in ("negative", "neutral",
                                                                    "positive")


def test_random_search_is_bounded_resumable_and_scored_on_validation(tmp_path, monkeypatch):
    from emovox.experiments.methods import dcgan
    from emovox.training.semi import History

    calls = []

    def fake_fit(config, train, valid, unlab, seed=0, work_dir=None, **_):
        calls.append(config)
        assert valid is valid_set  # trials are scored on the validation speakers only
        h = History(best_score=config.filters / 100)
        return SimpleNamespace(history=h)

    monkeypatch.setattr(dcgan, "fit_semi", fake_fit)
    train, valid_set = toy_sets()
    params = dcgan.DCGANMethod.Params(variant="basic_dcgan", search_trials=3, search_passes=4)
    config = SimpleNamespace(method=SimpleNamespace(params=params),
                             task=SimpleNamespace(derived=True))
    method = dcgan.DCGANMethod(config)
    best, trials = method.search(train, valid_set, train, 0, tmp_path)
    assert len(calls) == 3 and all(c.max_passes == 4 for c in calls)
    assert best.filters == max(t["filters"] for t in trials)
    for c in calls:
        assert c.width in (64, 128) and 2 <= c.kernel <= c.width // 8
        assert 32 <= c.filters <= 90 and c.filters % 4 == 0
        assert c.batch_size in (64, 128, 256) and c.lr in (1e-3, 1e-4, 1e-5)
    calls.clear()
    again, _ = method.search(train, valid_set, train, 0, tmp_path)  # read back, nothing rerun
    assert not calls and again == best
    params.search_trials = 4
    method.search(train, valid_set, train, 0, tmp_path)
    assert len(calls) == 1  # only the new trial


@pytest.mark.parametrize("bad, match", [({"device": "gpu"}, "device"),
                                        ({"collapse_passes": 0}, "collapse_passes"),
                                        ({"collapse_diversity": -1.0}, "collapse_diversity"),
                                        ({"pretrain_steps": -5}, "pretrain_steps")])
def test_bad_gan_settings_are_refused_with_their_name(bad, match):
    from emovox.errors import ConfigError
    from emovox.experiments.methods import dcgan

    params = dcgan.DCGANMethod.Params(variant="basic_dcgan", **bad)
    config = SimpleNamespace(method=SimpleNamespace(params=params),
                             task=SimpleNamespace(derived=True))
    with pytest.raises(ConfigError, match=match):
        dcgan.DCGANMethod(config)


def test_method_passes_every_shared_setting_to_training():
    from emovox.experiments.methods import dcgan

    params = dcgan.DCGANMethod.Params(variant="basic_dcgan", pretrain_steps=7, threads=1,
                                      collapse_diversity=0.2, width=64)
    config = SimpleNamespace(method=SimpleNamespace(params=params),
                             task=SimpleNamespace(derived=True))
    semi = dcgan.DCGANMethod(config).semi_config()
    assert (semi.pretrain_steps, semi.threads, semi.collapse_diversity, semi.width) == (
        7, 1, 0.2, 64)
    assert semi.lr == dcgan.PAPER_PICKS["basic_dcgan"]["lr"]  # unset → the paper's pick
