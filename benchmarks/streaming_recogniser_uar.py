"""What streaming in blocks costs in accuracy: Emo-DB 7 classes, leave-one-speaker-out (10
folds, seed 0, one validation speaker per fold), MP-2 (configs/paper2_emodb.yaml ``mp_2``)
trained per fold on the offline features, then scored on the test speaker's utterances with
the frames each way of encoding gives the whole utterance:

- ``exact``: offline extraction (what the re-encoding streamer gives at an utterance's end
  while it is no longer than its window);
- ``blocks C s``: ``experiments.recogniser_streams.BlockStreamer`` — every 300 ms step
  encodes only its new audio after C s of context, frames never recomputed (PyTorch, float32);
- ``blocks C s, int8``: the same through the export's ``features.onnx`` with its MatMuls
  dynamically quantised to int8 (onnxruntime);
- ``blocks 1 s, head trained on blocks``: a second MP-2 per fold trained (and normalised) on
  the block frames of its training speakers instead: what the scheme costs when the head knows
  it.

Per-speaker normalisation: the test speaker's statistics come from their offline features (as
``experiments.streamers.enrol`` gathers them). Reported: UAR per way, its difference from
``exact``, and the share of utterances whose label differs.

    .venv/bin/python benchmarks/streaming_recogniser_uar.py
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402
from results import machine, write_section  # noqa: E402

from emovox.audio import load_audio  # noqa: E402
from emovox.evaluation.metrics import uar  # noqa: E402
from emovox.experiments.config import build_config  # noqa: E402
from emovox.experiments.dataset import load_dataset  # noqa: E402
from emovox.experiments.methods.base import RunContext, Split, make_method  # noqa: E402
from emovox.experiments.onnx import export_layer_states  # noqa: E402
from emovox.experiments.protocols import make_folds  # noqa: E402
from emovox.experiments.recogniser_streams import BlockStreamer, StepBatcher  # noqa: E402
from emovox.experiments.streamers import STEP_MS  # noqa: E402
from emovox.training import SequenceSet  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EMODB = ROOT.parent / "shared" / "data" / "emodb"
CONTEXTS = (0.3, 1.0)


def config():
    study = yaml.safe_load((ROOT / "configs" / "paper2_emodb.yaml").read_text())
    raw = study["base"] | {"name": "streaming_recogniser_uar"}
    raw["corpus"] = {**raw["corpus"], "path": str(EMODB)}
    raw["features"] = {**raw["features"], "workers": 1}
    raw["training"] = {**raw["training"], "progress": False}
    for key, value in study["variants"]["mp_2"].items():
        section, field = key.split(".")
        raw[section] = {**raw.get(section, {}), field: value}
    return build_config(raw)


def block_frames(encode, waves: list[np.ndarray], context_s: float) -> list[np.ndarray]:
    """Each utterance streamed through a BlockStreamer (all at once, batched); its frames."""
    streamer = BlockStreamer(StepBatcher(encode), lambda f: (np.zeros(1), None), 16000, 50.0,
                             STEP_MS, context_s)

    def one(wave: np.ndarray) -> np.ndarray:
        stream = streamer.start(10**9)
        stream.push(wave)
        stream.finish()
        return np.concatenate(stream.blocks)

    async def all_of() -> list[np.ndarray]:
        return list(await asyncio.gather(*(streamer.batcher.run(one, w) for w in waves)))

    return asyncio.run(all_of())


def int8_encoder(extractor, work: Path):
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.getLogger().setLevel(logging.ERROR)  # the quantiser's pre-processing advice
    export_layer_states(extractor, work, np.random.default_rng(0), {}, {})
    quantize_dynamic(work / "features.onnx", work / "features.int8.onnx",
                     weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"])
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(work / "features.int8.onnx"), options,
                                   providers=["CPUExecutionProvider"])
    return lambda audio, offset: session.run(None, {"audio": audio, "offset": offset})[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args()
    torch.set_num_threads(1)
    cfg = config()
    dataset = load_dataset(cfg, progress=False)
    manifest = list(dataset.manifest)
    waves = [load_audio(u.path) for u in manifest]
    extractor = dataset.extractor
    ways = {"exact": [dataset.feats[u.id] for u in manifest]}
    for context in CONTEXTS:
        ways[f"blocks {context:g} s"] = block_frames(extractor.encode, waves, context)
        print("done", context, flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        ways["blocks 1 s, int8"] = block_frames(int8_encoder(extractor, Path(tmp)), waves, 1.0)
    index = {u.id: i for i, u in enumerate(manifest)}
    retrained = "blocks 1 s, head trained on blocks"
    labels = {name: np.zeros(len(manifest), dtype=np.int64) for name in [*ways, retrained]}
    method = make_method(cfg)
    on_blocks = dataclasses.replace(dataset, feats={u.id: f for u, f in zip(
        manifest, ways["blocks 1 s"], strict=True)})
    for fold in make_folds(dataset.manifest, cfg.protocol.name, seed=0):
        split = Split(*(dataset.split(s) for s in (fold.train, fold.valid, fold.test)))
        trained, _ = method.fit(dataset, split, RunContext(seed=0))
        test = list(split.test)
        rows = [index[u.id] for u in test]
        speakers = [u.speaker for u in test]
        for name, feats in ways.items():
            seqs = trained.normaliser.apply([feats[i] for i in rows], speakers,
                                            [ways["exact"][i] for i in rows])
            proba = method.outputs_of(trained, SequenceSet(seqs, dataset.targets(split.test)))
            labels[name][rows] = proba.argmax(1)
        trained, _ = method.fit(on_blocks, split, RunContext(seed=0))
        proba = method.outputs(trained, on_blocks, split.test)
        labels[retrained][rows] = proba.argmax(1)
        print("fold", fold.index, flush=True)
    truth = dataset.targets(dataset.manifest)
    exact = uar(truth, labels["exact"], len(dataset.labels))
    lines = [
        "## Streaming in blocks: what it costs in accuracy (MP-2, Emo-DB)",
        "",
        "Emo-DB, 7 classes, leave-one-speaker-out (10 folds, seed 0; each fold's validation "
        "speaker picks the checkpoint); MP-2 (configs/paper2_emodb.yaml `mp_2`) trained per fold "
        "on offline features and scored on its test speaker with the frames each way of encoding "
        "gives the whole utterance: `exact` = offline extraction (the re-encoding streamer's at "
        "the end of an utterance no longer than its window); `blocks C s` = `BlockStreamer` "
        "(`experiments.recogniser_streams`: each 300 ms step encodes only its new audio after C s"
        " of context; frames never recomputed); `int8` = the same through `features.onnx` with "
        "its MatMuls quantised to int8 (onnxruntime dynamic quantisation); `head trained on "
        "blocks` = a second MP-2 per fold trained, normalised and scored on block frames. Test "
        "speakers are otherwise normalised with their offline features' statistics (as enrolment "
        f"gathers them). {machine()}.",
        "",
        "```",
        ".venv/bin/python benchmarks/streaming_recogniser_uar.py",
        "```",
        "",
        "| encoding | UAR | Δ UAR vs exact | labels differing from exact |",
        "|---|---|---|---|",
        *[f"| {name} | {uar(truth, got, len(dataset.labels)):.3f} | "
          f"{uar(truth, got, len(dataset.labels)) - exact:+.3f} | "
          f"{np.mean(got != labels['exact']):.1%} |" for name, got in labels.items()],
    ]
    write_section("streaming_recogniser_uar", "\n".join(lines))


if __name__ == "__main__":
    main()
