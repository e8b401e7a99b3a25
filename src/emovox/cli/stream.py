"""``emovox stream``: decisions while audio arrives, from a file or raw PCM on stdin."""

from __future__ import annotations

import argparse
import sys

from emovox.cli.common import EXIT_OK, Command, add_speaker_arguments, default, emit
from emovox.errors import ConfigError, EmovoxError

#: Event types printed; ``--steps`` adds ``step``.
EVENTS = {"decision", "no_speech", "utterance_start", "utterance_end"}


def cmd_stream(args: argparse.Namespace) -> int:
    import numpy as np

    from emovox.audio import load_audio
    from emovox.experiments.methods.emorl import EmoRLModels
    from emovox.serving.adaptation import enrolment
    from emovox.serving.model_dir import Recognizer, resolve_model
    from emovox.serving.streaming import GateConfig, StreamingRecognizer

    if not 0 < args.chunk_ms <= 60_000:
        raise ConfigError(f"--chunk-ms {args.chunk_ms:g}: allowed (0, 60000] ms")
    if args.rate <= 0:
        raise ConfigError(f"--rate {args.rate}: must be > 0 Hz")
    gate = GateConfig(pause_ms=args.pause_ms, max_utterance_s=args.max_utterance_s,
                      min_speech_ms=args.min_speech_ms, energy_floor_db=args.energy_floor_db)
    recognizer = Recognizer(resolve_model(args.model))
    speaker = enrolment(recognizer, args.enrol, gate=gate) if args.enrol else None
    stream = StreamingRecognizer(recognizer, vad=args.vad, threshold=args.threshold, gate=gate,
                                 threads=args.threads, speaker=speaker, adapt=not args.no_adapt,
                                 tau=args.tau)
    if args.threshold is not None and isinstance(recognizer.trained, EmoRLModels):
        raise ConfigError(f"--threshold: {recognizer.model_dir} decides with its EmoRL agent; "
                          "a threshold is for models without one")
    chunk = max(1, int(stream.sample_rate * args.chunk_ms / 1000))
    wanted = EVENTS | ({"step"} if args.steps else set())

    def emit_events(events) -> None:
        for event in events:
            if event.type in wanted:
                emit(event.to_dict())

    if args.audio == "-":
        if args.rate != stream.sample_rate:
            raise EmovoxError(f"stdin PCM at {args.rate} Hz: the model expects "
                              f"{stream.sample_rate} Hz (resample, e.g. with sox)")
        carry = b""  # a sample split across two reads
        while block := sys.stdin.buffer.read(chunk * 2):
            block = carry + block
            usable = len(block) // 2 * 2
            carry = block[usable:]
            emit_events(stream.push(block[:usable]))
        if carry:  # as the WebSocket refuses an odd-length frame
            raise EmovoxError("stdin PCM ends in half a sample (an odd number of bytes); "
                              "expected 16-bit samples")
    else:
        wave = load_audio(args.audio, stream.sample_rate, allow_silent=True)  # → no_speech
        for start in range(0, len(wave), chunk):
            emit_events(stream.push(np.ascontiguousarray(wave[start : start + chunk])))
    emit_events(stream.end())
    return EXIT_OK


def _arguments(p: argparse.ArgumentParser) -> None:
    from emovox.serving.streaming import (
        PAUSE_MS,
        VAD_PAUSE_MS,
        GateConfig,
        StreamingRecognizer,
    )

    p.add_argument("audio", help="audio file, or - for raw 16-bit mono PCM on stdin")
    p.add_argument("--model", help="a streamable model directory (`emovox models` says which "
                   "stream) or a bundled model's name (default, the default; gru)")
    p.add_argument("--chunk-ms", type=float, default=100.0, help="push size (default %(default)g "
                   "ms)")
    p.add_argument("--rate", type=int, default=default(StreamingRecognizer, "sample_rate"),
                   help="sample rate of stdin PCM (default %(default)s Hz)")
    p.add_argument("--vad", action="store_true",
                   help=f"end utterances after {VAD_PAUSE_MS:g} ms of non-speech instead of "
                   f"{PAUSE_MS:g} ms")
    p.add_argument("--threshold", type=float,
                   help="decide at the first step whose top probability reaches this, in (0, "
                   "1]; only for models without an agent (an EmoRL model's agent decides)")
    p.add_argument("--steps", action="store_true", help="also print every decision step")
    p.add_argument("--pause-ms", type=float, default=default(GateConfig, "pause_ms"),
                   help=f"non-speech that ends an utterance (default {VAD_PAUSE_MS:g} ms with "
                   f"--vad, else {PAUSE_MS:g} ms)")
    p.add_argument("--max-utterance-s", type=float,
                   default=default(GateConfig, "max_utterance_s"),
                   help="decide and reset when an utterance reaches this (default %(default)g s)")
    p.add_argument("--min-speech-ms", type=float, default=default(GateConfig, "min_speech_ms"),
                   help="speech an utterance needs before a decision (default %(default)g ms)")
    p.add_argument("--energy-floor-db", type=float,
                   default=default(GateConfig, "energy_floor_db"),
                   help="frames quieter than this (dBFS) are never speech (default %(default)g)")
    p.add_argument("--threads", type=int, default=default(StreamingRecognizer, "threads"),
                   help="torch threads (default %(default)s)")
    add_speaker_arguments(p, default(StreamingRecognizer, "tau"))
    p.add_argument("--no-adapt", action="store_true",
                   help="a model trained with per-speaker normalisation adapts to the speaker "
                   "as it listens (each utterance's frames join the speaker's statistics, "
                   "after --enrol's if given); this keeps the statistics it starts with")
    p.set_defaults(run=cmd_stream)


COMMANDS: dict[str, Command] = {
    "stream": ("decide emotions while audio arrives (JSON lines)", _arguments),
}
