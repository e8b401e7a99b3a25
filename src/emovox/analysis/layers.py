"""What a frozen recogniser's layers know about emotion (the transfer paper's Figs. 4 and 6).

- :func:`tsne_by_layer`: t-SNE of each layer's mean-pooled utterance vectors, coloured by
  emotion — do emotions separate, and in which layer?
- :func:`loudness_units`: the unit of each layer whose activation correlates most with
  perceptual loudness over all frames (Pearson r), and a plot of both over time.
"""

from __future__ import annotations

import numpy as np

from emovox.audio import load_audio
from emovox.corpora import Manifest
from emovox.evaluation.plots import save_figure
from emovox.features import FeatureCache, extract_all, make_extractor
from emovox.features.dsp import frame_signal, loudness, mel_filterbank, power_spectrum


def layer_features(manifest: Manifest, model: str, cache: FeatureCache, workers: int = 1,
                   progress: bool = True) -> tuple[dict[str, np.ndarray], int, int]:
    """{id: [frames, (layers+1)·width]} for every layer, and (layer count + 1, width)."""
    extractor = make_extractor("whisper_layers", model=model, layers="all")
    feats = extract_all(manifest, extractor, cache, workers=workers, progress=progress)
    width = extractor.encoder.width
    return feats, extractor.dim // width, width


def frame_loudness(wave: np.ndarray, frames: int, hop: int = 320, win: int = 400) -> np.ndarray:
    """Loudness (Stevens' power law on 26 mel bands) every 20 ms, the recogniser's frame rate."""
    padded = np.concatenate([wave, np.zeros(win + hop * frames, dtype=np.float32)])
    spectrum = power_spectrum(frame_signal(padded, win, hop, frames), 512)
    return loudness(spectrum @ mel_filterbank(26, 512, 16000))


def tsne_by_layer(feats: dict[str, np.ndarray], manifest: Manifest, n_layers: int, width: int,
                  path, seed: int = 0) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.manifold import TSNE

    labels = manifest.labels
    colours = plt.get_cmap("tab10")
    y = np.array([labels.index(u.label) for u in manifest])
    fig, axes = plt.subplots(1, n_layers, figsize=(3.2 * n_layers, 3.4), squeeze=False)
    for layer, ax in enumerate(axes[0]):
        pooled = np.stack([feats[u.id][:, layer * width : (layer + 1) * width].mean(0)
                           for u in manifest])
        pooled = (pooled - pooled.mean(0)) / (pooled.std(0) + 1e-6)
        points = TSNE(2, perplexity=30, random_state=seed, init="pca").fit_transform(pooled)
        for k, label in enumerate(labels):
            ax.scatter(*points[y == k].T, s=5, color=colours(k), label=label)
        ax.set_title("front end" if layer == 0 else f"layer {layer}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0][-1].legend(fontsize=7, markerscale=2, loc="best")
    fig.suptitle("t-SNE of mean-pooled recogniser states, coloured by emotion", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


def loudness_units(feats: dict[str, np.ndarray], manifest: Manifest, n_layers: int, width: int
                   ) -> tuple[list[dict], dict[str, np.ndarray]]:
    """Per layer: the unit with the largest |Pearson r| against frame loudness over all frames."""
    states, loud = [], []
    per_utt = {}
    for utt in manifest:
        x = feats[utt.id]
        wave = load_audio(utt.path, 16000, utt.start, utt.end)
        per_utt[utt.id] = frame_loudness(wave, len(x))
        states.append(x)
        loud.append(per_utt[utt.id])
    x = np.concatenate(states).astype(np.float64)
    y = np.concatenate(loud).astype(np.float64)
    xc, yc = x - x.mean(0), y - y.mean()
    r = (xc * yc[:, None]).sum(0) / (np.sqrt((xc**2).sum(0) * (yc**2).sum()) + 1e-12)
    best = []
    for layer in range(n_layers):
        block = r[layer * width : (layer + 1) * width]
        unit = int(np.argmax(np.abs(block)))
        best.append({"layer": layer, "unit": unit, "pearson_r": float(block[unit]),
                     "column": layer * width + unit})
    return best, per_utt


def plot_loudness_unit(feats: dict[str, np.ndarray], loud: dict[str, np.ndarray],
                       best: dict, ids: list[str], path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def z(v: np.ndarray) -> np.ndarray:
        return (v - v.mean()) / (v.std() + 1e-9)

    fig, axes = plt.subplots(len(ids), 1, figsize=(8, 2.4 * len(ids)), squeeze=False)
    for ax, utt_id in zip(axes[:, 0], ids, strict=True):
        unit = feats[utt_id][:, best["column"]]
        t = np.arange(len(unit)) / 50.0
        ax.plot(t, z(loud[utt_id]), label="loudness", lw=1.2)
        ax.plot(t, np.sign(best["pearson_r"]) * z(unit),
                label=f"layer {best['layer']} unit {best['unit']}", lw=1.2)
        ax.set_title(utt_id, fontsize=9)
        ax.set_xlabel("seconds")
        ax.set_ylabel("z-score")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(f"the unit most correlated with loudness (r = {best['pearson_r']:.2f})",
                 fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
