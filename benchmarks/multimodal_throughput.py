"""Cross-modal attention throughput on real Emo-DB audio (2 threads by default).

Training and inference utterances per second of the full model (raw waveform and spectrogram
input; the utterances' own lengths and the paper's 10 s padding), the share of a forward pass
spent in the convolution blocks. Transcription (Whisper tiny.en vs base): transcription.py.

    .venv/bin/python benchmarks/multimodal_throughput.py [--files 64] [--batches 4]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch
from results import machine, write_section

from emovox.audio import load_audio
from emovox.features import make_extractor
from emovox.models.multimodal import MultimodalCMA
from emovox.text import WordVectors, embed_texts

EMODB = Path(__file__).resolve().parents[2] / "shared" / "data" / "emodb"
TEXT = "Der Lappen liegt auf dem Eisschrank."
BATCH = 16
NEMO_FOLD_UTTS = 3500  # nEMO: ~4,481 utterances over 9 speakers; a fold trains on ~7 of them
SETUPS = {  # name: (features, extractor params, strides, pools, pad to samples/frames)
    "raw waveform, own length": ("waveform", {}, (4, 2, 2), (4, 4, 4), None),
    "raw waveform, padded to 10 s": ("waveform", {}, (4, 2, 2), (4, 4, 4), 160_000),
    "log-mel 64, own length": ("log_mel", {"n_mels": 64}, (1, 1, 1), (2, 2, 2), None),
}


def batch(feats: list[np.ndarray], words: list[np.ndarray], idx: np.ndarray,
          pad_to: int | None):
    def pad(seqs, at_least=0):
        n = np.array([len(seqs[i]) for i in idx])
        x = np.zeros((len(idx), max(n.max(), at_least), seqs[0].shape[1]), np.float32)
        for r, i in enumerate(idx):
            x[r, : n[r]] = seqs[i]
        return torch.from_numpy(x), torch.from_numpy(n)

    (a, la), (t, lt) = pad(feats, pad_to or 0), pad(words)
    return (a, t), (la, lt)


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def measure(setup: tuple, waves: list[np.ndarray], words: list[np.ndarray], n_batches: int
            ) -> tuple[float, float, float | None]:
    """Training and inference utterances/s, and the conv blocks' share of a forward pass
    (raw waveform only)."""
    feature, params, strides, pools, pad_to = setup
    extractor = make_extractor(feature, **params)
    feats = [extractor(w) for w in waves]
    torch.manual_seed(0)
    net = MultimodalCMA(7, audio_dim=extractor.dim, audio={"strides": strides, "pools": pools})
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    order = [np.arange(i, min(i + BATCH, len(waves)))
             for i in range(0, len(waves), BATCH)][:n_batches]
    y = torch.zeros(BATCH, dtype=torch.long)

    def train_step():
        net.train()
        for idx in order:
            x, n = batch(feats, words, idx, pad_to)
            loss = torch.nn.functional.cross_entropy(net(x, n), y[: len(idx)])
            opt.zero_grad()
            loss.backward()
            opt.step()

    @torch.no_grad()
    def infer():
        net.eval()
        for idx in order:
            net(*batch(feats, words, idx, pad_to))

    n_utts = sum(len(i) for i in order)
    train, test = n_utts / timed(train_step, 1), n_utts / timed(infer, 2)
    share = None
    if feature == "waveform":
        x, n = batch(feats, words, order[0], pad_to)
        net.train()
        with torch.no_grad():
            share = (timed(lambda: net.audio.convs(x[0].transpose(1, 2)), 2)
                     / timed(lambda: net(x, n), 2))
    return train, test, share


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=64)
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2,
                        help="torch threads (1 on a machine crowded by other jobs: two threads "
                             "that wait for each other at every operation are slower there)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    paths = sorted((EMODB / "wav").glob("*.wav"))[:: max(1, 535 // args.files)][: args.files]
    waves = [load_audio(p) for p in paths]
    seconds = sum(len(w) for w in waves) / 16000
    words, _ = embed_texts([p.stem for p in paths], [TEXT] * len(paths),
                           WordVectors.from_package())
    rows, parts = [], []
    for name, setup in SETUPS.items():
        train, test, conv_share = measure(setup, waves, words, args.batches)
        rows.append((name, train, test))
        print(f"{name:32s} train {train:7.1f} utt/s   inference {test:7.1f} utt/s")
        if conv_share is not None:
            parts.append((name, conv_share))
    raw = rows[0][1]
    lines = [
        "## Multimodal (cross-modal attention) throughput",
        "",
        f"Full model (audio + text, CMA-1 and CMA-2), {len(waves)} real Emo-DB files "
        f"({seconds:.0f} s; each ≤ 2 s in this copy), the same German sentence's GloVe vectors, "
        f"batches of {BATCH}, Adam, {args.threads} thread(s); {machine()}; the machine was shared "
        "with other jobs (load ≈ 20 on 2 cores), so absolute rates are lower bounds. "
        "Estimated time of one epoch of an nEMO fold "
        f"(~{NEMO_FOLD_UTTS} training utterances of about 2.5 s) from the own-length rows.",
        "",
        "```",
        f".venv/bin/python benchmarks/multimodal_throughput.py --files {args.files} "
        f"--batches {args.batches} --threads {args.threads}",
        "```",
        "",
        "| audio input | training utt/s | inference utt/s | training vs raw own length | "
        "nEMO fold epoch (est.) |",
        "|---|---|---|---|---|",
        *[f"| {n} | {tr:.1f} | {te:.1f} | {tr / raw:.2f}× | "
          f"{NEMO_FOLD_UTTS * (1.0 if '10 s' in n else 1.25) / tr / 60:.1f} min |"
          for n, tr, te in rows],
        "",
        *[f"Forward pass, {n}: the three convolution blocks take {share:.0%} of the time."
          for n, share in parts],
        "",
        "Transcription: see the transcription_rtf section (`benchmarks/transcription.py rtf`).",
    ]
    write_section("multimodal", "\n".join(lines))


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    main()
