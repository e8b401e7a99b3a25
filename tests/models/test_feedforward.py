"""The feed-forward model on utterance-level features."""

from __future__ import annotations

import torch

from emovox.models.base import build_model


def test_mlp_learns_what_a_linear_head_cannot():
    """XOR of two features, as one-frame "functionals": the hidden layer must carry it."""
    torch.manual_seed(0)
    x = torch.randint(0, 2, (256, 1, 2)).float()
    y = (x[:, 0, 0] != x[:, 0, 1]).long()
    lengths = torch.ones(256, dtype=torch.long)
    accuracy = {}
    for layers in (0, 1):
        model = build_model("mlp", 2, 2, hidden=16, layers=layers, dropout=0.0,
                            input_dropout=0.0)
        optimiser = torch.optim.Adam(model.parameters(), lr=0.05)
        for _ in range(300):
            loss = torch.nn.functional.cross_entropy(model(x + 0.05 * torch.randn_like(x),
                                                           lengths), y)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        model.eval()
        accuracy[layers] = (model(x, lengths).argmax(1) == y).float().mean().item()
    assert accuracy[1] > 0.95 and accuracy[0] < 0.8, accuracy
