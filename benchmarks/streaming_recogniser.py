"""Streaming a recogniser-layer model (MP-2: Whisper tiny.en layer 2, mean-pooled, linear head):
what one decision step costs and how many streams fit in real time, per way of encoding.

Every 300 ms step re-encodes either the whole utterance heard so far (``growing``: exactly the
offline features of the prefix) or only its last W seconds (``window W s``: the frames that
slid out keep the states of the last window that held them; exact while the utterance is no
longer than W). For each, on one thread pinned to one core:

1. the cost of one step when the utterance holds 2, 5 and 10 s (p50, p99 over steps at that
   point of different audio);
2. the cost per second of audio of a whole utterance of 2, 5 and 10 s streamed through
   ``StreamingRecognizer.push`` in 100 ms chunks (speech gate, every step, the decision), and
   from it the streams that 2 cores keep in real time (2 / that cost);
3. what a window costs in accuracy: the label at the last step of 2, 5 and 10 s utterances
   against their emotion, and the share of labels equal to the growing window's.

Utterances: the two held-out speakers' (15, 16) Emo-DB files of one emotion back to back
(files are 2 s in this copy), cut to 2, 5 or 10 s. The model is trained once (``emovox train``
on configs/paper2_emodb.yaml's ``mp_2`` row, speakers 03–14, one of them for validation) into
``--work``, then reused.

    .venv/bin/python benchmarks/streaming_recogniser.py [--work runs/streaming_recogniser]

``--blocks``: instead, what one block of ``experiments.recogniser_streams.BlockStreamer`` costs
the encoder (CPU time, one thread): a 300 ms step after 0.3 or 1 s of context, alone or 16
streams' blocks in one call, on PyTorch, on onnxruntime (the export's ``features.onnx``) and on
onnxruntime with the MatMuls quantised to int8; and what that makes per stream and second of
audio (3.33 steps).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import yaml  # noqa: E402
from results import machine, write_section  # noqa: E402

from emovox.audio import load_audio  # noqa: E402
from emovox.corpora.emodb import EMOTIONS  # noqa: E402
from emovox.experiments.config import build_config  # noqa: E402
from emovox.experiments.recogniser_streams import WindowStreamer  # noqa: E402
from emovox.serving.model_dir import Recognizer, train_and_save  # noqa: E402
from emovox.serving.streaming import StreamingRecognizer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EMODB = ROOT.parent / "shared" / "data" / "emodb"
LENGTHS = (2, 5, 10)
HELD_OUT = ("15", "16")
WINDOWS = (None, 3.0, 2.0, 1.5)
CHUNK = 1600  # 100 ms


def model_dir(work: Path) -> Path:
    out = work / "mp_2"
    if not (out / "model.json").exists():
        study = yaml.safe_load((ROOT / "configs" / "paper2_emodb.yaml").read_text())
        config = study["base"] | {"name": "streaming_recogniser_mp_2"}
        speakers = sorted({p.name[:2] for p in (EMODB / "wav").glob("*.wav")} - set(HELD_OUT))
        config["corpus"] = {**config["corpus"], "path": str(EMODB), "speakers": speakers}
        for key, value in study["variants"]["mp_2"].items():
            section, field = key.split(".")
            config[section] = {**config.get(section, {}), field: value}
        train_and_save(build_config(config), out)
    return out


def utterances(seconds: float) -> list[tuple[str, np.ndarray]]:
    """(emotion code, ``seconds`` of speech) for each held-out speaker and emotion with enough
    files, the files back to back."""
    groups: dict[tuple[str, str], list[Path]] = {}
    for path in sorted((EMODB / "wav").glob("*.wav")):
        if path.name[:2] in HELD_OUT:
            groups.setdefault((path.name[:2], path.name[5]), []).append(path)
    out = []
    for (_, emotion), paths in sorted(groups.items()):
        wave = np.concatenate([load_audio(p) for p in paths])
        if len(wave) >= seconds * 16000:
            out.append((emotion, wave[: int(seconds * 16000)]))
    return out


def streamer(rec: Recognizer, window: float | None) -> WindowStreamer:
    base = rec.method.streamer(rec.trained)
    return WindowStreamer(base.features, base.classify, base.sample_rate, base.frame_rate,
                          base.step_ms, window, base.max_steps)


def step_cost(model: WindowStreamer, wave: np.ndarray, seconds: float) -> float:
    """Milliseconds of the step that ends at ``seconds`` of ``wave`` (its earlier steps run
    untimed): the least of 3 runs of that step, so that another process taking the core for a
    moment is not counted as the step's cost."""
    end = int(seconds * 16000)
    stream = model.start(10**9)
    stream.push(wave[: end - model.step_samples])
    t = time.perf_counter()
    stream.push(wave[end - model.step_samples : end])
    runs = [time.perf_counter() - t]
    for _ in range(2):  # the same step again: same window, same frozen frames
        t = time.perf_counter()
        stream._step(end)
        runs.append(time.perf_counter() - t)
    return min(runs) * 1000


def stream_cost(rec: Recognizer, model: WindowStreamer, wave: np.ndarray) -> float:
    """Seconds of compute for one utterance through the recogniser (the lesser of 2 runs)."""
    runs = []
    for _ in range(2):
        stream = StreamingRecognizer(rec)
        stream.model = model
        t = time.perf_counter()
        for start in range(0, len(wave), CHUNK):
            stream.push(wave[start : start + CHUNK])
        stream.end()
        runs.append(time.perf_counter() - t)
    return min(runs)


def last_step(model: WindowStreamer, wave: np.ndarray) -> np.ndarray:
    stream = model.start(10**9)
    steps = stream.push(wave) + stream.finish()
    return steps[-1].proba


def block_costs(rec: Recognizer) -> None:
    import logging
    import tempfile

    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from emovox.experiments.onnx import export_layer_states

    logging.getLogger().setLevel(logging.ERROR)  # the quantiser's pre-processing advice
    extractor = rec.trained.extractor
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    encoders = {"PyTorch": extractor.encode}
    tmp = Path(tempfile.mkdtemp())
    export_layer_states(extractor, tmp, np.random.default_rng(0), {}, {})
    quantize_dynamic(tmp / "features.onnx", tmp / "int8.onnx", weight_type=QuantType.QInt8,
                     op_types_to_quantize=["MatMul"])
    for name, graph in (("onnxruntime", "features.onnx"), ("onnxruntime int8", "int8.onnx")):
        session = ort.InferenceSession(str(tmp / graph), options,
                                       providers=["CPUExecutionProvider"])
        encoders[name] = (lambda s: lambda a, o: s.run(None, {"audio": a, "offset": o})[0])(
            session)
    speech = np.concatenate([w for _, w in utterances(5)])
    load = os.getloadavg()[0]
    rows = []
    for context in (0.3, 1.0):
        samples = 4800 + int(context * 16000)
        for batch in (1, 16):
            starts = np.arange(batch) * 4800
            audio = np.stack([speech[s : s + samples] for s in starts])
            offsets = np.zeros(batch, dtype=np.int64)
            for name, encode in encoders.items():
                encode(audio, offsets)
                runs = []
                for _ in range(5):
                    t = time.process_time()
                    encode(audio, offsets)
                    runs.append(time.process_time() - t)
                ms = min(runs) / batch * 1000
                rows.append((context, batch, name, ms))
                print(rows[-1], flush=True)
    lines = [
        "## Streaming in blocks: the encoder's cost per block (MP-2, Whisper tiny.en layer 2)",
        "",
        "CPU time of one `BlockStreamer` block (`experiments.recogniser_streams`: a 300 ms step's"
        " new audio after its context) through Whisper tiny.en's log-mel front end and first two "
        "layers, one thread, the least of 5 runs; alone (batch 1) or 16 streams' blocks in one "
        "call (what `StepBatcher` does in a service); PyTorch, onnxruntime on the export's "
        "`features.onnx`, and onnxruntime with its MatMuls dynamically quantised to int8. Per "
        "stream: 3.33 blocks per second of audio; the GRU default's features cost about 5 ms per "
        f"second of audio (service_load). Load average {load:.1f} at the start; {machine()}.",
        "",
        "```",
        ".venv/bin/python benchmarks/streaming_recogniser.py --blocks",
        "```",
        "",
        "| context | batch | runtime | CPU per block | CPU per stream and second of audio |",
        "|---|---|---|---|---|",
        *[f"| {c:g} s | {b} | {n} | {ms:.2f} ms | {ms * 1000 / 300:.1f} ms |"
          for c, b, n, ms in rows],
    ]
    write_section("streaming_recogniser_blocks", "\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "streaming_recogniser")
    parser.add_argument("--blocks", action="store_true", help="the block encoder's cost only")
    args = parser.parse_args()
    rec = Recognizer(model_dir(args.work))
    if args.blocks:
        return block_costs(rec)
    StreamingRecognizer(rec, threads=1)  # one torch/BLAS thread
    pieces = {s: utterances(s) for s in LENGTHS}
    waves = {s: [w for _, w in pieces[s]] for s in LENGTHS}
    truth = {s: np.array([rec.labels.index(EMOTIONS[e]) for e, _ in pieces[s]]) for s in LENGTHS}
    streamer(rec, None).start(1).push(waves[2][0])  # warm-up: the encoder's weights
    load = os.getloadavg()[0]

    models = {("growing" if w is None else f"window {w:g} s"): streamer(rec, w) for w in WINDOWS}
    rows, accuracy = [], []
    for s in LENGTHS:  # the ways of encoding take turns on each utterance: same load for all
        costs: dict[str, list[float]] = {name: [] for name in models}
        spent = dict.fromkeys(models, 0.0)
        labels: dict[str, list[int]] = {name: [] for name in models}
        for i, wave in enumerate(waves[s]):
            for name, model in models.items():
                costs[name].append(step_cost(model, wave, s))
                if i < 5:
                    spent[name] += stream_cost(rec, model, wave)
                labels[name].append(int(last_step(model, wave).argmax()))
        for name in models:
            per_audio = spent[name] / (min(5, len(waves[s])) * s)
            rows.append((name, s, *np.percentile(costs[name], [50, 99]), per_audio))
            print(f"{name:14s} {s:2d} s  step p50 {rows[-1][2]:6.1f} ms  p99 {rows[-1][3]:6.1f} "
                  f"ms  {per_audio * 1000:6.1f} ms per s of audio  -> {2 / per_audio:5.1f} "
                  "streams on 2 cores")
            got = np.array(labels[name])
            accuracy.append((name, s, len(got), float(np.mean(got == truth[s])),
                             float(np.mean(got == np.array(labels["growing"])))))
    rows.sort(key=lambda r: list(models).index(r[0]))
    accuracy.sort(key=lambda r: list(models).index(r[0]))
    at5 = {r[0]: r for r in rows if r[1] == 5}
    lines = [
        "## Streaming a recogniser-layer model (MP-2, Whisper tiny.en layer 2)",
        "",
        "Per decision step (300 ms), re-encoding the heard audio: the whole utterance "
        "(`growing`, exact: the offline features of the prefix) or its last W s (`window`: "
        "frames keep their absolute Whisper positions; older frames keep the states of the last "
        "window that held them). One process, one thread; load average "
        f"{load:.2f} when it started (other engineers' jobs; each step timed as the least of 3 "
        "runs, each utterance of 2; the ways of encoding take turns on each utterance); "
        f"{machine()}. Speech: the held-out speakers' (15, 16) "
        "Emo-DB files of one emotion back to back, cut to 2, 5, 10 s "
        f"({', '.join(f'{len(waves[s])} at {s} s' for s in LENGTHS)}). Step cost: the step "
        "ending at that length. Per second of audio: 5 of them through "
        "`StreamingRecognizer.push` in 100 ms chunks (speech gate, every step, the decision); "
        "streams on 2 cores = 2 / that (computed: one stream per core-second). Targets: p99 < "
        "30 ms at 5 s on one core; ≥ 20 streams in real time on 2 cores.",
        "",
        "```",
        ".venv/bin/python benchmarks/streaming_recogniser.py",
        "```",
        "",
        "| encoding | audio heard | step p50 | step p99 | compute per s of audio | "
        "streams in real time on 2 cores |",
        "|---|---|---|---|---|---|",
        *[f"| {n} | {s} s | {p50:.1f} ms | {p99:.1f} ms | {c * 1000:.0f} ms | {2 / c:.0f} |"
          for n, s, p50, p99, c in rows],
        "",
        "At 5 s: " + "; ".join(
            f"{n} p99 {r[3]:.1f} ms ({'met' if r[3] < 30 else 'missed'}), {2 / r[4]:.0f} streams "
            f"({'met' if 2 / r[4] >= 20 else 'missed'})" for n, r in at5.items()) + ".",
        "",
        "The label at the last step against the emotion (7 classes, speakers 15 and 16 unseen "
        "in training; few utterances: a coarse check) and against the growing window's label:",
        "",
        "| encoding | utterance | utterances | accuracy | same label as growing |",
        "|---|---|---|---|---|",
        *[f"| {n} | {s} s | {k} | {acc:.2f} | {same:.0%} |" for n, s, k, acc, same in accuracy],
    ]
    write_section("streaming_recogniser", "\n".join(lines))


if __name__ == "__main__":
    main()
