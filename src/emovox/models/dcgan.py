"""Chang & Scherer's (2017) multitask DCGAN: a generator of spectrogram crops and a
discriminator whose convolutional trunk also feeds valence and arousal heads.

The trunk is four convolutions with stride 2 and no pooling (batch norm after all but the first,
leaky ReLU), so a [128, width] crop becomes [filters, 8, width/16]. On its flattened output sit
the real/generated logit and a fully connected layer feeding two 5-way heads (valence, arousal).
The four models of the paper share this trunk and differ only in which losses are trained
(:data:`VARIANTS`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

ROWS = 128
N_POINTS = 5


@dataclass(frozen=True)
class Variant:
    adversarial: bool  # generator + real/fake task on labelled and unlabelled audio
    arousal: bool      # the secondary arousal head


VARIANTS = {
    "basic_cnn": Variant(adversarial=False, arousal=False),
    "multitask_cnn": Variant(adversarial=False, arousal=True),
    "basic_dcgan": Variant(adversarial=True, arousal=False),
    "multitask_dcgan": Variant(adversarial=True, arousal=True),
}


def _same_halving_padding(kernel: int) -> int:
    """Padding that makes a stride-2 convolution exactly halve an even input."""
    return (kernel - 1) // 2


class Discriminator(nn.Module):
    def __init__(self, width: int, filters: int, kernel: int, hidden: int = 256,
                 dropout: float = 0.3):
        super().__init__()
        if width % 16:
            raise ValueError(f"crop width {width} must be a multiple of 16")
        layers: list[nn.Module] = []
        channels = 1
        for i in range(4):
            layers.append(nn.Conv2d(channels, filters, kernel, stride=2,
                                    padding=_same_halving_padding(kernel)))
            if i:
                layers.append(nn.BatchNorm2d(filters))
            layers.append(nn.LeakyReLU(0.2))
            channels = filters
        self.trunk = nn.Sequential(*layers)
        flat = filters * (ROWS // 16) * (width // 16)
        self.real_fake = nn.Linear(flat, 1)
        self.shared = nn.Sequential(nn.Dropout(dropout), nn.Linear(flat, hidden), nn.ReLU(),
                                    nn.Dropout(dropout))
        self.valence = nn.Linear(hidden, N_POINTS)
        self.arousal = nn.Linear(hidden, N_POINTS)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 128, width] crops → flattened last-convolution activations."""
        return self.trunk(x.unsqueeze(1)).flatten(1)

    def heads(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.shared(feats)
        return self.valence(h), self.arousal(h)


class Generator(nn.Module):
    """Noise → a [128, width] crop in [-1, 1] (DCGAN: transposed convolutions, batch norm,
    ReLU, tanh output)."""

    def __init__(self, width: int, filters: int, noise_dim: int = 100):
        super().__init__()
        self.noise_dim = noise_dim
        self.start = (filters * 4, ROWS // 16, width // 16)
        self.project = nn.Sequential(nn.Linear(noise_dim, int(torch.tensor(self.start).prod())),
                                     nn.BatchNorm1d(int(torch.tensor(self.start).prod())),
                                     nn.ReLU())
        chans = [filters * 4, filters * 2, filters, filters // 2]
        layers: list[nn.Module] = []
        for c_in, c_out in zip(chans[:-1], chans[1:], strict=True):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1),
                       nn.BatchNorm2d(c_out), nn.ReLU()]
        layers += [nn.ConvTranspose2d(chans[-1], 1, 4, stride=2, padding=1), nn.Tanh()]
        self.deconv = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.deconv(self.project(z).view(len(z), *self.start)).squeeze(1)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        device = self.project[0].weight.device
        if generator is not None:  # a seeded CPU generator: draw there, then move
            return self(torch.randn(n, self.noise_dim, generator=generator).to(device))
        return self(torch.randn(n, self.noise_dim, device=device))
