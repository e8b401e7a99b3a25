"""The robot channel: disjoint from training material, degrades real audio, writes a copy."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from conftest import ROOT, speech_like

from emovox.augment import build_augmentation
from emovox.channels import RobotChannel, RobotChannelConfig, degrade_corpus, make_channel
from emovox.cli import main
from emovox.corpora import load_corpus
from emovox.errors import ConfigError
from emovox.experiments.config import load_config
from emovox.experiments.dataset import load_dataset, load_test_sets

PAPER3 = ROOT / "configs" / "paper3_robustness.yaml"


def test_robot_sources_disjoint_from_training_augmentation(synthetic_noise):
    """Same seed on both sides: still no shared room or noise."""
    study = yaml.safe_load(PAPER3.read_text())
    transforms = dict(study["base"]["augment"]["transforms"])
    transforms["noise"] = {**transforms["noise"], "directory": str(synthetic_noise)}
    training = build_augmentation(transforms).sources()
    robot = make_channel("robot", seed=0).sources()
    assert any(s.startswith("noise:") for s in training)
    assert any(s.startswith("rir:") for s in training) and any(s.startswith("rir:") for s in robot)
    assert training.isdisjoint(robot)


def test_robot_channel_degrades_and_is_reproducible():
    wave = speech_like(2.0, seed=4)
    channel = RobotChannel(RobotChannelConfig(seed=0, rooms=5))
    a = channel(wave, channel.rng_for("x"))
    b = channel(wave, channel.rng_for("x"))
    assert np.array_equal(a, b) and len(a) == len(wave) and np.max(np.abs(a)) <= 0.9 + 1e-6
    corr = np.corrcoef(a, wave)[0, 1]
    assert corr < 0.8  # colouring, reverberation and noise: far from the clean signal
    residual = a - wave * (np.dot(a, wave) / np.dot(wave, wave))
    assert np.sqrt(np.mean(residual**2)) > 0.1 * np.sqrt(np.mean(a**2))


def test_degrade_writes_same_ids_and_manifest(synthetic_manifest, tmp_path):
    subset = synthetic_manifest.filter(
        lambda u: u.id in {synthetic_manifest[i].id for i in range(3)})
    out = tmp_path / "robot"
    channel = RobotChannel(RobotChannelConfig(rooms=5))
    degrade_corpus(subset, channel, out, progress=False)
    copy = load_corpus("manifest", out)
    assert [u.id for u in copy] == [u.id for u in subset]
    assert [u.label for u in copy] == [u.label for u in subset]
    info = json.loads((out / "channel.json").read_text())
    assert info["settings"]["channel"] == "robot" and info["sources"]
    first = (out / "wav" / f"{subset[0].id}.wav").stat().st_mtime_ns
    degrade_corpus(subset, channel, out, progress=False)  # resumes: keeps finished files
    assert (out / "wav" / f"{subset[0].id}.wav").stat().st_mtime_ns == first
    with pytest.raises(ConfigError, match="other settings"):
        degrade_corpus(subset, RobotChannel(RobotChannelConfig(rooms=6)), out, progress=False)


def test_cli_degrade(synthetic_manifest, tmp_path, capsys):
    source = tmp_path / "two.jsonl"
    synthetic_manifest.filter(lambda u: u.id in ("s1_low_0", "s2_high_1")).to_jsonl(source)
    out = tmp_path / "copy"
    assert main(["-q", "corpus", "degrade", str(source), "--format", "manifest", "--out",
                 str(out), "--seed", "3"]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["utterances"] == 2 and line["seed"] == 3 and not line["problems"]
    assert sorted(p.name for p in (out / "wav").iterdir()) == ["s1_low_0.wav", "s2_high_1.wav"]
    assert main(["-q", "corpus", "degrade", synthetic_manifest[0].path, "--format",
                 "emodb", "--out", str(out)]) == 2  # a file, not a corpus directory
    assert "emovox: error" in capsys.readouterr().err


@pytest.mark.e2e
def test_experiment_refuses_test_set_sharing_training_sources(tmp_path, emodb, noise_dir):
    """A 'robot' copy whose channel used a training noise clip must be refused."""
    noise_source = sorted(build_augmentation(
        {"noise": {"directory": str(noise_dir)}}).sources())[0]
    fake = tmp_path / "leaky"
    fake.mkdir()
    (fake / "channel.json").write_text(json.dumps({"settings": {}, "sources": [noise_source]}))
    config = load_config(None, [
        f"corpus.path={emodb}", "corpus.speakers=['03', '08']", "corpus.labels=[anger, neutral]",
        "features.name=mfcc_prosody", "features.cache=null", "features.workers=1",
        "augment.copies=1", f"augment.transforms={{noise: {{directory: {noise_dir}}}}}",
        f"test_sets={{leaky: {{path: {fake}}}}}"])
    dataset = load_dataset(config, progress=False)
    with pytest.raises(ConfigError, match="shares 1 noise/room source"):
        load_test_sets(config, dataset, progress=False)
