from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

from emovox.early.decisions import decide, early_metrics
from emovox.early.reinforce import EmoRLConfig, episode_rewards
from emovox.models.emorl import EmoRL, prefix_means
from emovox.models.recurrent import GruBaseline


def test_prefix_means_are_running_means_at_step_ends():
    h = torch.arange(10, dtype=torch.float32).reshape(1, 10, 1).repeat(2, 1, 1)
    lengths = torch.tensor([10, 7])
    states, read, exists = prefix_means(h, lengths, step=3)
    assert read.tolist() == [[3, 6, 9, 10], [3, 6, 7, 7]]
    assert exists.tolist() == [[True] * 4, [True, True, True, False]]
    assert states[0, :, 0].tolist() == pytest.approx([1.0, 2.5, 4.0, 4.5])
    assert states[1, 2, 0].item() == pytest.approx(3.0)  # mean of 0..6


def test_emorl_starts_from_the_baseline():
    torch.manual_seed(0)
    base = GruBaseline(5, 2, hidden=8)
    agent = EmoRL.from_baseline(base)
    x, lengths = torch.randn(3, 12, 5), torch.tensor([12, 9, 4])
    torch.testing.assert_close(agent(x, lengths), base(x, lengths))
    out = agent.steps(x, lengths, step=4)
    assert out["action_logits"].shape == (3, 3, 2)
    out["baseline"].sum().backward()  # the BRE's gradient stops before the GRU
    assert all(p.grad is None for p in agent.gru.parameters())


def test_reward_table_and_latency():
    cfg = EmoRLConfig(r_tp=2, r_tn=1, r_fp=-3, r_fn=-4, r_no_decision=-5, latency_weight=1)
    y = torch.tensor([0, 1, 1, 0, 0])
    pred = torch.tensor([0, 1, 0, 1, 0])
    step = torch.tensor([0, 1, 3, 0, 4])
    forced = torch.tensor([False, False, False, False, True])
    r = episode_rewards(cfg, y, pred, step, forced, positive=0, n_classes=2)
    assert r.tolist() == pytest.approx([2 + 1, 1 + 1 / 2, -3 + 1 / 4, -4 + 1, -5 + 1 / 5])


def test_latency_cost_can_start_later():
    cfg = EmoRLConfig(latency_weight=1.0, latency_delay_steps=2)
    y = torch.tensor([0, 0, 0, 0])
    step = torch.tensor([0, 2, 3, 5])
    r = episode_rewards(cfg, y, y, step, torch.zeros(4, dtype=torch.bool), 0, 2)
    # steps 0..2 all earn the full bonus; after that it decays as 1 / (step − 2 + 1)
    assert r.tolist() == pytest.approx([2.0, 2.0, 1.5, 1.25])


def test_decide_first_stop_or_forced():
    proba = np.tile(np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6]]), (2, 1, 1))
    stop = np.array([[False, True, True], [False, False, False]])
    exists = np.array([[True, True, True], [True, True, False]])
    read = np.array([[3, 6, 9], [3, 5, 5]])
    d = decide(proba, stop, exists, read, np.array([9, 5]), frame_rate=10)
    assert d.step.tolist() == [1, 1] and d.forced.tolist() == [False, True]
    assert d.fraction.tolist() == pytest.approx([6 / 9, 1.0])
    m = early_metrics(np.array([1, 1]), d)
    assert m["speedup"] == pytest.approx(1 / np.mean([6 / 9, 1.0]))


@pytest.mark.e2e
def test_emorl_experiment_writes_the_comparison(tmp_path, emodb):
    config = {
        "name": "emorl_smoke",
        "corpus": {"format": "emodb", "path": str(emodb), "labels": ["anger", "neutral"],
                   "speakers": ["03", "08", "09"]},
        "features": {"name": "mfcc_prosody", "normalise": "global", "stack": 3,
                     "cache": str(tmp_path / "cache"), "workers": 1},
        "model": {"name": "gru_baseline", "params": {"hidden": 16}},
        "training": {"epochs": 3, "lr": 0.005},
        "method": {"name": "emorl", "params": {"episodes": 300, "freeze_episodes": 100,
                                               "eval_every": 100}},
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    proc = subprocess.run([sys.executable, "-m", "emovox.cli", "-q", "experiment",
                           str(tmp_path / "c.yaml"), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    methods = metrics["early"]["methods"]
    assert set(methods) == {"emorl", "gru_full", "threshold_reward", "threshold_matched"}
    for m in methods.values():
        assert 0 < m["fraction"]["mean"] <= 1 and len(m["auc"]["values"]) == 3
    assert methods["gru_full"]["fraction"]["mean"] == pytest.approx(1.0)
    assert [c["p"] for c in metrics["early"]["prefix_curve"]] == pytest.approx(
        [0.1 * i for i in range(1, 11)])
    assert (tmp_path / "out" / "early.png").stat().st_size > 1000
    table = (tmp_path / "out" / "early.md").read_text()
    assert "leave-one-speaker-out" in table and "EmoRL" in table
    speedups = [float(line.split("|")[6].split()[0]) for line in table.splitlines()
                if line.startswith("| ") and "method" not in line]
    assert speedups == sorted(speedups, reverse=True)
