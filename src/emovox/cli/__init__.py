"""``emovox`` command line: experiment, study, train, predict, stream, serve, corpus tools.

Machine output is JSON lines on stdout; progress and warnings go to stderr. Exit codes: 0 ok,
1 some inputs failed (predict), 2 bad usage / config / data.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from emovox.errors import EmovoxError

EXIT_OK, EXIT_PARTIAL, EXIT_USAGE = 0, 1, 2


def _emit(obj: dict) -> None:
    print(json.dumps(obj, ensure_ascii=False), flush=True)


def cmd_experiment(args: argparse.Namespace) -> int:
    from emovox.experiments.config import load_config
    from emovox.experiments.runner import run_experiment

    config = load_config(args.config, args.overrides)
    config.training.progress = config.training.progress and not args.quiet
    out = Path(args.out or Path("runs") / config.name)
    command = " ".join(shlex.quote(a) for a in ["emovox", "experiment", args.config,
                                                 *(["--out", args.out] if args.out else []),
                                                 *args.overrides])
    metrics = run_experiment(config, out, command, progress=not args.quiet)
    summary = {k: metrics[k]["mean"] for k in HEADLINE if k in metrics}
    line = {"experiment": config.name, "out": str(out),
            "protocol": metrics["protocol_description"], **summary,
            **{f"{k}_std": metrics[k]["std"] for k in summary}}
    if "tests" in metrics:
        line["tests"] = {name: {k: m[k]["mean"] for k in HEADLINE if k in m}
                         for name, m in metrics["tests"].items()}
    _emit(line)
    return EXIT_OK


HEADLINE = ("uar", "wa", "macro_f1", "auc", "ccc", "arousal_ccc", "valence_ccc")


def cmd_study(args: argparse.Namespace) -> int:
    from emovox.experiments.study import run_study

    out = Path(args.out or Path("runs") / Path(args.config).stem)
    # key=value items written after --only VARIANT ... are overrides, not variant names
    only = [o for o in args.only or () if "=" not in o] or None
    overrides = [*args.overrides, *(o for o in args.only or () if "=" in o)]
    summary = run_study(args.config, out, only, overrides, progress=not args.quiet)
    for name, tests in summary["variants"].items():
        _emit({"variant": name, "out": str(out / name),
               **{test: {k: v[0] for k, v in m.items()} for test, m in tests.items()}})
    return EXIT_OK


def cmd_train(args: argparse.Namespace) -> int:
    from emovox.experiments.config import load_config
    from emovox.serving.model_dir import train_and_save

    config = load_config(args.config, args.overrides)
    config.training.progress = config.training.progress and not args.quiet
    meta = train_and_save(config, Path(args.out), n_valid=args.valid_speakers,
                          progress=not args.quiet)
    _emit({"model_dir": args.out, "labels": meta["labels"], "valid_speakers":
           meta["valid_speakers"], "valid_metrics": meta["valid_metrics"]})
    return EXIT_OK


def cmd_predict(args: argparse.Namespace) -> int:
    from emovox.serving.model_dir import default_model_dir, open_recognizer

    recognizer = open_recognizer(args.model or default_model_dir(), args.runtime)
    failed = 0
    for path in args.audio:
        try:
            _emit(recognizer.predict_file(path, max_seconds=args.max_seconds))
        except EmovoxError as exc:
            failed += 1
            _emit({"path": path, "error": str(exc)})
            print(f"emovox: {exc}", file=sys.stderr)
    return EXIT_PARTIAL if failed else EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from emovox.serving.onnx_export import export_onnx

    frontend = export_onnx(args.model_dir, args.out)
    _emit({"model_dir": args.model_dir, "format": args.format, "out": args.out,
           "graphs": sorted(frontend["graphs"]), "streaming": frontend["streaming"] is not None,
           "max_abs_diff": frontend["export_check_max_abs_diff"]})
    return EXIT_OK


def cmd_corpus_info(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from emovox.audio import load_audio
    from emovox.corpora import load_corpus
    from emovox.errors import AudioError

    manifest = load_corpus(args.format, args.path, on_error="skip")
    seconds, usable, problems = 0.0, [], list(manifest.problems)
    for utt in tqdm(manifest, desc="reading audio", unit="utt", disable=args.quiet,
                    leave=False):
        try:  # read every sample: silent, NaN or cut-off files are not usable
            wave = load_audio(utt.path, start=utt.start, end=utt.end)
        except AudioError as exc:
            problems.append(str(exc))
            continue
        seconds += len(wave) / 16000
        usable.append(utt)
    manifest = type(manifest)(usable, problems)
    _emit({
        "path": args.path,
        "format": args.format,
        "utterances": len(manifest),
        "speakers": len(manifest.speakers),
        "hours": round(seconds / 3600, 4),
        "labels": dict(sorted(manifest.label_counts().items())),
        "per_speaker": dict(sorted(manifest.speaker_counts().items())),
        "problems": manifest.problems,
    })
    if args.manifest:
        (manifest.to_csv if args.manifest.endswith(".csv") else manifest.to_jsonl)(args.manifest)
    return EXIT_OK


def cmd_corpus_degrade(args: argparse.Namespace) -> int:
    from emovox.channels import degrade_corpus, make_channel
    from emovox.corpora import load_corpus

    manifest = load_corpus(args.format, args.path, on_error="skip")
    channel = make_channel(args.channel, seed=args.seed)
    degraded = degrade_corpus(manifest, channel, Path(args.out), workers=args.workers,
                              progress=not args.quiet)
    _emit({"source": args.path, "channel": args.channel, "seed": args.seed, "out": args.out,
           "manifest": str(Path(args.out) / "manifest.jsonl"), "utterances": len(degraded),
           "problems": degraded.problems})
    return EXIT_PARTIAL if degraded.problems else EXIT_OK


def cmd_analyse_layers(args: argparse.Namespace) -> int:
    from emovox.analysis.layers import (
        layer_features,
        loudness_units,
        plot_loudness_unit,
        tsne_by_layer,
    )
    from emovox.corpora import load_corpus
    from emovox.features import FeatureCache
    from emovox.io import atomic_write_json

    manifest = load_corpus(args.format, args.path, on_error="skip")
    if args.speakers:
        manifest = manifest.with_speakers(args.speakers)
    out = Path(args.out)
    feats, n_layers, width = layer_features(manifest, args.model, FeatureCache(args.cache),
                                            args.workers, progress=not args.quiet)
    tsne_by_layer(feats, manifest, n_layers, width, out / "tsne.png")
    best, loud = loudness_units(feats, manifest, n_layers, width)
    top = max(best, key=lambda b: abs(b["pearson_r"]))
    ids = [manifest[0].id, manifest[len(manifest) // 2].id]
    plot_loudness_unit(feats, loud, top, ids, out / "loudness_unit.png")
    result = {"model": args.model, "corpus": args.path, "utterances": len(manifest),
              "loudness_units": best, "most_loudness_correlated": top,
              "figures": [str(out / "tsne.png"), str(out / "loudness_unit.png")]}
    atomic_write_json(out / "analysis.json", result)
    _emit(result)
    return EXIT_OK


def cmd_asr_train(args: argparse.Namespace) -> int:
    from emovox.asr.deepspeech2 import DeepSpeech2Config, train_deepspeech2
    from emovox.corpora import load_corpus
    from emovox.errors import ConfigError
    from emovox.features import FeatureCache

    manifest = load_corpus(args.format, args.path, on_error="skip")
    speakers = manifest.speakers
    if len(speakers) <= args.valid_speakers:
        raise ConfigError(f"{args.path}: {len(speakers)} speaker(s); need more than "
                          f"--valid-speakers {args.valid_speakers}")
    valid = speakers[-args.valid_speakers :]
    config = DeepSpeech2Config(hidden=args.hidden, layers=args.layers, epochs=args.epochs,
                               batch_size=args.batch_size, lr=args.lr)
    info = train_deepspeech2(manifest.with_speakers(speakers[: -args.valid_speakers]),
                             manifest.with_speakers(valid), Path(args.out), config,
                             FeatureCache(args.cache), progress=not args.quiet)
    _emit({"model": str(Path(args.out) / "deepspeech2.pt"), "valid_speakers": valid,
           "best_valid_cer": info["best_valid_cer"], "epochs": len(info["history"])})
    return EXIT_OK


def cmd_stream(args: argparse.Namespace) -> int:
    import numpy as np

    from emovox.audio import load_audio
    from emovox.errors import ConfigError
    from emovox.serving.model_dir import default_model_dir
    from emovox.serving.streaming import GateConfig, StreamingRecognizer

    if not 0 < args.chunk_ms <= 60_000:
        raise ConfigError(f"--chunk-ms {args.chunk_ms:g}: allowed (0, 60000] ms")
    if args.rate <= 0:
        raise ConfigError(f"--rate {args.rate}: must be > 0 Hz")
    gate = GateConfig(pause_ms=args.pause_ms, max_utterance_s=args.max_utterance_s,
                      min_speech_ms=args.min_speech_ms, energy_floor_db=args.energy_floor_db)
    model = args.model or default_model_dir()
    speaker = None
    if args.enrol:  # the speaker's statistics from earlier recordings of them
        from emovox.augment.rooms import audio_files
        from emovox.experiments.streamers import speaker_statistics
        from emovox.serving.model_dir import Recognizer

        model = Recognizer(model)
        files = [f for p in args.enrol for f in (audio_files(p) if Path(p).is_dir() else [p])]
        speaker = speaker_statistics(model.trained.extractor,
                                     (load_audio(f, model.sample_rate) for f in files))
    stream = StreamingRecognizer(model, vad=args.vad, threshold=args.threshold, gate=gate,
                                 threads=args.threads, speaker=speaker)
    chunk = max(1, int(stream.sample_rate * args.chunk_ms / 1000))
    wanted = {"decision", "no_speech", "utterance_start", "utterance_end"} | \
        ({"step"} if args.steps else set())

    def emit(events) -> None:
        for event in events:
            if event.type in wanted:
                _emit(event.to_dict())

    if args.audio == "-":
        if args.rate != stream.sample_rate:
            raise EmovoxError(f"stdin PCM at {args.rate} Hz: the model expects "
                              f"{stream.sample_rate} Hz (resample, e.g. with sox)")
        source = sys.stdin.buffer
        carry = b""
        while block := source.read(chunk * 2):
            block = carry + block
            usable = len(block) // 2 * 2
            carry = block[usable:]
            emit(stream.push(block[:usable]))
    else:
        wave = load_audio(args.audio, stream.sample_rate, allow_silent=True)  # → no_speech
        for start in range(0, len(wave), chunk):
            emit(stream.push(np.ascontiguousarray(wave[start : start + chunk])))
    emit(stream.end())
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    from emovox.serving.model_dir import default_model_dir
    from emovox.serving.server import serve
    from emovox.serving.settings import Settings, check_bind, resolve_token

    token = resolve_token(args.token)
    check_bind(args.host, token, args.insecure)
    settings = Settings(token=token, threads=args.threads, max_streams=args.max_streams,
                        max_upload_mb=args.max_upload_mb,
                        max_stream_seconds=args.max_stream_seconds,
                        idle_timeout=args.idle_timeout, max_frame_bytes=args.max_frame_bytes,
                        allowed_origins=args.allowed_origins or [],
                        allowed_hosts=args.allowed_hosts or [], body_timeout=args.body_timeout)
    if args.workers < 1:
        raise EmovoxError(f"--workers must be ≥ 1 (got {args.workers})")
    serve(args.model or default_model_dir(), settings, args.host, args.port, args.workers,
          on_ready=lambda url: _emit({"serving": url, "workers": args.workers,
                                      "auth": token is not None}))
    return EXIT_OK


def _registries() -> dict:
    """Every pluggable kind by name (``emovox list``); registries load their providers lazily."""
    from emovox.augment import TRANSFORMS
    from emovox.channels import CHANNELS
    from emovox.corpora import CORPORA
    from emovox.experiments.methods.base import METHODS
    from emovox.experiments.protocols import PROTOCOLS
    from emovox.features import EXTRACTORS
    from emovox.models import MODELS

    return {"methods": METHODS, "models": MODELS, "features": EXTRACTORS, "corpora": CORPORA,
            "protocols": PROTOCOLS, "augmentations": TRANSFORMS, "channels": CHANNELS}


KINDS = ("methods", "models", "features", "corpora", "protocols", "augmentations", "channels")


def cmd_list(args: argparse.Namespace) -> int:
    registries = _registries()
    for kind in [args.kind] if args.kind else registries:
        for name, description in registries[kind].describe().items():
            _emit({"kind": kind, "name": name, "description": description})
    return EXIT_OK




def _positive(kind: type) -> Callable[[str], float]:
    """An argparse type for numbers > 0 (a bad value is a one-line usage error, exit 2)."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"{text} must be > 0")
        return value

    return parse


def cmd_models(args: argparse.Namespace) -> int:
    import os

    from emovox.serving.catalog import list_models

    roots = args.paths or [Path(p) for p in os.environ.get("EMOVOX_MODELS", "models").split(
        os.pathsep) if Path(p).exists()]
    found = list_models([Path(p) for p in roots])
    for line in found:
        _emit(line)
    return EXIT_PARTIAL if any("error" in line for line in found) else EXIT_OK




def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="emovox", description=__doc__.splitlines()[0])
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    from emovox.corpora import CORPORA  # cheap; the other registries load when a command needs them

    corpus_formats = CORPORA.names()

    p = sub.add_parser("list", help="what is registered: methods, models, features, corpora, "
                       "protocols, augmentations, channels (JSON lines)")
    p.add_argument("kind", nargs="?", choices=KINDS)
    p.set_defaults(run=cmd_list)

    p = sub.add_parser("experiment", help="run a cross-validated experiment from a YAML config")
    p.add_argument("config")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="override config entries, e.g. training.lr=0.0003")
    p.add_argument("--out", help="output directory (default runs/<name>); reruns resume")
    p.set_defaults(run=cmd_experiment)

    p = sub.add_parser("study", help="run every variant of a study config and compare them")
    p.add_argument("config")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="override the base config of every variant")
    p.add_argument("--out", help="output directory (default runs/<config stem>); reruns resume")
    p.add_argument("--only", nargs="+", metavar="VARIANT", help="run just these variants")
    p.set_defaults(run=cmd_study)

    p = sub.add_parser("train", help="train one model on a whole corpus and save it")
    p.add_argument("config")
    p.add_argument("overrides", nargs="*", metavar="key=value")
    p.add_argument("--out", required=True, help="model directory to write")
    p.add_argument("--valid-speakers", type=int, default=1,
                   help="speakers held out for validation (default 1)")
    p.set_defaults(run=cmd_train)

    p = sub.add_parser("predict", help="label audio files with a trained model (JSON lines)")
    p.add_argument("audio", nargs="+")
    p.add_argument("--model", help="model directory from `emovox train` (default: the bundled "
                   "model, see `emovox models`)")
    p.add_argument("--runtime", choices=["auto", "torch", "onnx"], default="auto",
                   help="onnxruntime on an `emovox export` directory or on the model "
                        "directory's own current export (its onnx/, as the bundled model has), "
                        "PyTorch otherwise (auto, the default; starts without importing "
                        "PyTorch when an export is there); torch or onnx to insist")
    p.add_argument("--max-seconds", type=_positive(float), default=600.0,
                   help="refuse longer files (default 600 s; memory stays bounded: frame "
                        "features are extracted in 60 s chunks)")
    p.set_defaults(run=cmd_predict)

    p = sub.add_parser("export", help="export a trained model directory (ONNX graphs + front end)")
    p.add_argument("model_dir", help="a trained model directory (from `emovox train`)")
    p.add_argument("--format", choices=["onnx"], default="onnx", help="export format (onnx)")
    p.add_argument("--out", required=True, help="directory for model.onnx, step.onnx, *.json")
    p.set_defaults(run=cmd_export)

    p = sub.add_parser("stream", help="decide emotions while audio arrives (JSON lines)")
    p.add_argument("audio", help="audio file, or - for raw 16-bit mono PCM on stdin")
    p.add_argument("--model", help="emorl or gru_baseline model directory (default: the "
                   "bundled model)")
    p.add_argument("--chunk-ms", type=float, default=100.0, help="push size (default 100 ms)")
    p.add_argument("--rate", type=int, default=16000, help="sample rate of stdin PCM")
    p.add_argument("--vad", action="store_true",
                   help="end utterances after 600 ms of non-speech instead of 1500 ms")
    p.add_argument("--threshold", type=float, help="gru_baseline: decide once confidence ≥ this")
    p.add_argument("--steps", action="store_true", help="also print every decision step")
    p.add_argument("--pause-ms", type=float, help="non-speech that ends an utterance")
    p.add_argument("--max-utterance-s", type=float, default=15.0,
                   help="decide and reset when an utterance reaches this (default 15 s)")
    p.add_argument("--min-speech-ms", type=float, default=500.0,
                   help="speech an utterance needs before a decision (default 500 ms)")
    p.add_argument("--energy-floor-db", type=float, default=-50.0,
                   help="frames quieter than this (dBFS) are never speech (default -50)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--enrol", nargs="+", metavar="DIR_OR_FILE",
                   help="earlier recordings of the speaker (no labels): a model trained with "
                   "per-speaker normalisation then uses this speaker's statistics")
    p.set_defaults(run=cmd_stream)

    p = sub.add_parser("serve", help="HTTP + WebSocket service and live microphone page")
    p.add_argument("--model", help="model directory (default: the bundled model; streams "
                   "need emorl or gru_baseline)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default loopback; others need --token or --insecure)")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--token", help="require this bearer token (default: $EMOVOX_TOKEN)")
    p.add_argument("--insecure", action="store_true",
                   help="allow a non-loopback address without a token")
    p.add_argument("--workers", type=int, default=min(os.cpu_count() or 1, 4),
                   help="worker processes (default: cores, at most 4)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per worker (default 1)")
    p.add_argument("--max-streams", type=int, default=200, help="concurrent streams (all workers)")
    p.add_argument("--max-upload-mb", type=float, default=20.0, help="largest POST body")
    p.add_argument("--max-stream-seconds", type=float, default=3600.0,
                   help="close a stream after this long (code 4413)")
    p.add_argument("--idle-timeout", type=float, default=30.0,
                   help="close a stream that sent nothing for this long (code 4408)")
    p.add_argument("--max-frame-bytes", type=int, default=64_000, help="largest PCM frame")
    p.add_argument("--allowed-origins", nargs="+", metavar="ORIGIN",
                   help="browser origins allowed to stream besides the service's own")
    p.add_argument("--allowed-hosts", nargs="+", metavar="NAME",
                   help="host names served besides addresses and localhost (Host header)")
    p.add_argument("--body-timeout", type=float, default=10.0,
                   help="seconds a request body may take to arrive (else 408)")
    p.set_defaults(run=cmd_serve)

    p = sub.add_parser("models", help="list the bundled model and model directories "
                       "(JSON lines)")
    p.add_argument("paths", nargs="*", type=Path, metavar="PATH",
                   help="model directories or folders holding them (default: $EMOVOX_MODELS, "
                   "else ./models if present)")
    p.set_defaults(run=cmd_models)

    p = sub.add_parser("asr", help="speech recogniser recipes")
    asr_sub = p.add_subparsers(dest="asr_command", required=True)
    asr = asr_sub.add_parser("train", help="train a DeepSpeech2-style recogniser with CTC")
    asr.add_argument("path", help="transcribed speech, e.g. a LibriSpeech split")
    asr.add_argument("--format", default="librispeech", choices=corpus_formats)
    asr.add_argument("--out", required=True, help="directory for deepspeech2.pt (resumable)")
    asr.add_argument("--valid-speakers", type=int, default=2)
    asr.add_argument("--hidden", type=int, default=800)
    asr.add_argument("--layers", type=int, default=5)
    asr.add_argument("--epochs", type=int, default=20)
    asr.add_argument("--batch-size", type=int, default=32)
    asr.add_argument("--lr", type=float, default=3e-4)
    asr.add_argument("--cache", default=None, help="feature cache directory (default: none)")
    asr.set_defaults(run=cmd_asr_train)

    p = sub.add_parser("analyse", help="look inside a recogniser's layers")
    analyse_sub = p.add_subparsers(dest="analyse_command", required=True)
    layers = analyse_sub.add_parser(
        "layers", help="t-SNE of every layer by emotion; the unit that tracks loudness")
    layers.add_argument("path")
    layers.add_argument("--format", required=True, choices=corpus_formats)
    layers.add_argument("--model", default="tiny.en",
                        help="tiny.en, base, or a CTranslate2 / Hugging Face model directory")
    layers.add_argument("--speakers", nargs="+", help="only these speakers")
    layers.add_argument("--out", required=True)
    layers.add_argument("--cache", default="auto",
                        help="feature cache directory (default: $EMOVOX_CACHE/features)")
    layers.add_argument("--workers", type=int, default=1)
    layers.set_defaults(run=cmd_analyse_layers)

    p = sub.add_parser("corpus", help="corpus tools")
    corpus_sub = p.add_subparsers(dest="corpus_command", required=True)
    info = corpus_sub.add_parser("info", help="counts per label and speaker, duration, problems")
    info.add_argument("path")
    info.add_argument("--format", required=True, choices=corpus_formats)
    info.add_argument("--manifest", help="also write the manifest (.jsonl or .csv)")
    info.set_defaults(run=cmd_corpus_info)
    degrade = corpus_sub.add_parser(
        "degrade", help="write a copy of a corpus played through a simulated channel")
    degrade.add_argument("path")
    degrade.add_argument("--format", required=True, choices=corpus_formats)
    degrade.add_argument("--channel", default="robot",
                         help="a registered channel (`emovox list channels`; default robot)")
    degrade.add_argument("--out", required=True, help="directory for wav/, manifest.jsonl")
    degrade.add_argument("--seed", type=int, default=0)
    degrade.add_argument("--workers", type=int, default=1)
    degrade.set_defaults(run=cmd_corpus_degrade)
    return parser


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # key=value overrides may come after options (``--out DIR training.lr=1e-4``).
    args, extra = parser.parse_known_args(argv)
    if extra:
        if hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
            args.overrides += extra
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="emovox: %(levelname)s: %(message)s")
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops worker processes too, like Ctrl-C
    try:
        return args.run(args)
    except EmovoxError as exc:
        print(f"emovox: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # output piped into e.g. `head`: stop quietly
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except KeyboardInterrupt:
        print("emovox: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
