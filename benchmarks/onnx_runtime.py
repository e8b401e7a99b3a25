"""onnxruntime against PyTorch on the same trained models, side by side in one run, one thread:

1. one streaming decision step (the network part: GRU on the step's frames from the carried
   state, running mean, classifier, agent): ``step.onnx`` vs what ``StreamingRecognizer`` runs;
2. one 100 ms chunk of audio through the whole streaming path (features, z-score, stacking,
   network): ``OnnxStream.push`` vs ``StreamingRecognizer.push`` (which also runs its speech
   gate, so this row is not like for like);
3. whole-utterance inference on Emo-DB utterances (the network on ready features):
   ``model.onnx`` vs the model directory's PyTorch model.

    .venv/bin/python benchmarks/onnx_runtime.py --stream-model models/emodb_emorl \
        --models models/emodb_bigru

Each model directory is exported to a temporary directory first.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from results import machine, write_section  # noqa: E402

from emovox.audio import load_audio  # noqa: E402
from emovox.early.decisions import stop_rule  # noqa: E402
from emovox.serving.model_dir import Recognizer  # noqa: E402
from emovox.serving.onnx_export import export_onnx  # noqa: E402
from emovox.serving.onnx_runtime import OnnxRecognizer, OnnxStream  # noqa: E402
from emovox.serving.streaming import StreamingRecognizer  # noqa: E402
from emovox.training import SequenceSet, predict  # noqa: E402

EMODB = Path(__file__).resolve().parents[2] / "shared" / "data" / "emodb"
CHUNK = 1600  # 100 ms at 16 kHz


def waves(n: int) -> list[np.ndarray]:
    return [load_audio(p) for p in sorted((EMODB / "wav").glob("*.wav"))[:n]]


def timed(fn, repeats: int = 1) -> list[float]:
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def pct(times: list[float]) -> tuple[float, float]:
    return float(np.percentile(times, 50)), float(np.percentile(times, 99))


def step_times(rec: Recognizer, onnx: OnnxRecognizer, rows: list[np.ndarray]):
    """Per decision step: the network part of both streams, fed the same step frames."""
    stream = StreamingRecognizer(rec)
    gru, classifier, policy = stream.model.gru, stream.model.classifier, stream.model.policy
    ort_stream = OnnxStream(onnx)
    n = ort_stream.step_frames
    torch_t, ort_t = [], []
    for feats in rows:
        hidden, total, count = None, torch.zeros(gru.hidden_size), 0
        ort_stream.reset()
        for start in range(0, len(feats) - n + 1, n):
            x = torch.from_numpy(feats[start : start + n])

            def torch_step(x=x):
                nonlocal hidden, total, count
                with torch.no_grad():
                    out, hidden = gru(x[None], hidden)
                    total = total + out[0].sum(0)
                    count += len(x)
                    state = total / count
                    proba = torch.softmax(classifier(state), -1).numpy()
                    stop_rule(proba, None, policy(state).numpy() if policy is not None else None)

            torch_t += timed(torch_step)
            ort_t += timed(lambda x=x: ort_stream.push_rows(x.numpy()))
    return torch_t, ort_t


def chunk_times(rec: Recognizer, onnx: OnnxRecognizer, audio: list[np.ndarray]):
    torch_t, ort_t = [], []
    for wave in audio:
        a, b = StreamingRecognizer(rec), OnnxStream(onnx)
        for start in range(0, len(wave), CHUNK):
            piece = wave[start : start + CHUNK]
            torch_t += timed(lambda p=piece, s=a: s.push(p))
            ort_t += timed(lambda p=piece, s=b: s.push(p))
    return torch_t, ort_t


def utterance_times(rec: Recognizer, onnx: OnnxRecognizer, feats: list[np.ndarray]):
    """The whole-utterance probabilities (an ensemble's members averaged), as ``model.onnx``
    computes them."""
    torch_t, ort_t = [], []
    members = rec.trained.members
    for f in feats:
        data = SequenceSet([f], np.zeros(1, dtype=np.int64))
        torch_t += timed(lambda d=data: np.mean([predict(m, d) for m in members], 0), 3)[1:]
        ort_t += timed(lambda f=f: onnx.run(f), 3)[1:]
    return torch_t, ort_t


def row(what: str, torch_t: list[float], ort_t: list[float]) -> str:
    (tp50, tp99), (op50, op99) = pct(torch_t), pct(ort_t)
    return (f"| {what} | {len(torch_t)} | {tp50:.3f} / {tp99:.3f} ms | {op50:.3f} / {op99:.3f} ms "
            f"| **{tp50 / op50:.2f}×** / {tp99 / op99:.2f}× |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stream-model", required=True, help="an emorl or gru_baseline dir")
    parser.add_argument("--models", nargs="*", default=[], help="more dirs (whole utterances)")
    parser.add_argument("--utterances", type=int, default=60)
    args = parser.parse_args()
    torch.set_num_threads(1)
    audio = waves(args.utterances)
    table = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, model_dir in enumerate([args.stream_model, *args.models]):
            rec = Recognizer(model_dir)
            export_onnx(model_dir, Path(tmp) / str(i))
            onnx = OnnxRecognizer(Path(tmp) / str(i), threads=1)
            feats = [rec.trained.sequences([rec.trained.extractor(w)])[0] for w in audio]
            name = f"`{rec.meta['method']}` / `{rec.config.model.name}` (`{model_dir}`)"
            utterance_times(rec, onnx, feats[:3])  # warm-up
            if i == 0:
                step_times(rec, onnx, feats[:3])
                chunk_times(rec, onnx, audio[:3])
                table.append(row(f"{name}: one decision step, network only",
                                 *step_times(rec, onnx, feats)))
                table.append(row(f"{name}: one 100 ms chunk, whole streaming path (PyTorch's "
                                 "includes its speech gate; OnnxStream has none)",
                                 *chunk_times(rec, onnx, audio)))
            table.append(row(f"{name}: whole utterance, network only",
                             *utterance_times(rec, onnx, feats)))
            print(table[-1], flush=True)
    seconds = sum(len(w) for w in audio) / 16000
    lines = [
        "## ONNX runtime vs PyTorch",
        "",
        f"Same trained models, exported with `emovox export`; one thread each (torch "
        f"`set_num_threads(1)`, onnxruntime intra-op 1); the first {len(audio)} Emo-DB files "
        f"({seconds:.0f} s of audio); times are p50 / p99 per call, ratio = PyTorch ÷ "
        f"onnxruntime (> 1: onnxruntime faster); {machine()}, onnxruntime "
        f"{__import__('onnxruntime').__version__}; load average at the end "
        f"{os.getloadavg()[0]:.1f} (a shared machine: p99 is the noisy column).",
        "",
        "```",
        f".venv/bin/python benchmarks/onnx_runtime.py --stream-model {args.stream_model}"
        + "".join(f" --models {m}" for m in args.models[:1])
        + "".join(f" {m}" for m in args.models[1:]),
        "```",
        "",
        "| what | calls | PyTorch p50 / p99 | onnxruntime p50 / p99 | ratio p50 / p99 |",
        "|---|---|---|---|---|",
        *table,
    ]
    write_section("onnx_runtime", "\n".join(lines))


if __name__ == "__main__":
    main()
