"""Whisper transcription, tiny.en vs the multilingual base: word error rate on real German
(Emo-DB) and Polish (nEMO) speech, and real-time factor on 2 cores, one thread each.

``wer``: a spread sample of each corpus (every k-th file), transcribed with tiny.en, base
detecting the language and base told it (``de``, ``pl``); corpus WER against the corpus's
sentences after lower-casing and removing punctuation. This copy of Emo-DB is cut to 2 s per
file, so its sample is drawn from the files whose whole sentence ends within the clip (by the
corpus's syllable alignment). Transcripts go through the usual cache (the multimodal
``text_asr`` variants reuse them).

``rtf``: seconds of compute per second of audio (faster-whisper, int8, greedy, word
timestamps, no cache) on real Emo-DB files: one process with one thread, then two processes at
once (one thread each, one per core) splitting the files. Run it on a quiet machine.

    .venv/bin/python benchmarks/transcription.py wer [--files 50]
    .venv/bin/python benchmarks/transcription.py rtf [--files 16]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import soundfile as sf  # noqa: E402
from results import machine, write_section  # noqa: E402

from emovox.asr.transcribe import Transcriber, error_rate  # noqa: E402
from emovox.audio import load_audio  # noqa: E402
from emovox.corpora.emodb import load_emodb  # noqa: E402
from emovox.corpora.nemo import load_nemo  # noqa: E402
from emovox.parallel import imap  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CORPORA = {"Emo-DB (German)": ("emodb", "de"), "nEMO (Polish)": ("nemo", "pl")}
#: (column title, model, language: None detects it, or the corpus's language; beam size)
SETTINGS = [("tiny.en", "tiny.en", None, 1), ("base, detected", "base", None, 1),
            ("base, told", "base", "fixed", 1), ("base, told, beam 5", "base", "fixed", 5)]


def sample(corpus: str, n: int) -> tuple[list, int]:
    """``n`` utterances spread over the corpus (sorted by id), and the size of the pool."""
    if corpus == "emodb":
        utts = [u for u in load_emodb(DATA / "emodb")
                if u.words and u.words[-1].end <= sf.info(u.path).duration]
    else:
        utts = list(load_nemo(DATA / "nemo"))
    utts.sort(key=lambda u: u.id)
    return utts[:: max(1, len(utts) // n)][:n], len(utts)


def wer(args: argparse.Namespace) -> None:
    rows, examples, pools = [], [], {}
    for title, (corpus, language) in CORPORA.items():
        utts, pools[corpus] = sample(corpus, args.files)
        seconds = sum(sf.info(u.path).duration for u in utts)
        cells = []
        for _, model, lang, beam in SETTINGS:
            lang = language if lang == "fixed" else lang
            got = Transcriber(model, lang, beam, fallback=True).manifest(utts)
            hyps = [got[u.id].text for u in utts]
            refs = [u.transcript for u in utts]
            score, chars = error_rate(refs, hyps), error_rate(refs, hyps, "char")
            detected = sum(got[u.id].language == language for u in utts)
            cells.append(f"{score:.3f} / {chars:.3f}"
                         + (f" ({detected}/{len(utts)} detected {language})"
                            if model != "tiny.en" and lang is None else ""))
            examples.append((title, model, lang or "detected", beam, utts[0].id,
                             utts[0].transcript, hyps[0]))
            print(f"{title:18s} {model:8s} {lang or 'detect':6s} beam {beam} "
                  f"WER {score:.3f} CER {chars:.3f}")
        rows.append(f"| {title} | {len(utts)} ({seconds:.0f} s) | " + " | ".join(cells) + " |")
    lines = [
        "## Transcription word error rate: Whisper tiny.en vs base",
        "",
        "A spread sample of each corpus (every k-th file by id: all speakers), greedy decoding "
        "unless beam 5 (faster-whisper's temperature fallback on), int8, word timestamps; "
        "word / character error rate over the sample against the corpus's sentences, both "
        "sides lower-cased with punctuation removed (CER forgives spelling variants such as "
        "soweit / so weit). "
        "Emo-DB in this copy is cut to 2 s per file: its "
        f"sample is drawn from the {pools['emodb']} files whose whole sentence ends within the "
        "clip. tiny.en is English-only (it is not told the language).",
        "",
        "```",
        f".venv/bin/python benchmarks/transcription.py wer --files {args.files}",
        "```",
        "",
        "| corpus | files | " + " | ".join(f"{t[0]}: WER / CER" for t in SETTINGS) + " |",
        "|---|---|" + "---|" * len(SETTINGS),
        *rows,
        "",
        "| corpus | model | language | beam | first file | corpus sentence | transcript |",
        "|---|---|---|---|---|---|---|",
        *[f"| {t} | {m} | {lang} | {b} | {i} | {ref} | {hyp} |"
          for t, m, lang, b, i, ref, hyp in examples],
    ]
    write_section("transcription_wer", "\n".join(lines))


def timed(job: tuple) -> dict:
    """One process transcribing ``paths`` on core ``core`` with one thread, after a warm-up on
    the first file: wall and CPU seconds, audio seconds, files re-decoded at a temperature
    above 0 (faster-whisper's fallback when the output looks repetitive or unlikely)."""
    model, language, beam, paths, core = job
    if core is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {core})
    waves = [load_audio(p) for p in paths]
    transcriber = Transcriber(model, language, beam, threads=1, cache=None, fallback=True)
    transcriber.transcribe(waves[0])
    wall, cpu = time.perf_counter(), time.process_time()
    hot = sum(transcriber.transcribe(wave).temperature > 0 for wave in waves)
    return {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu,
            "audio": sum(len(w) for w in waves) / 16000, "fallback": hot}


def rtf(args: argparse.Namespace) -> None:
    paths = [u.path for u in sample("emodb", args.files)[0]]
    cores = sorted(os.sched_getaffinity(0))[:2] if hasattr(os, "sched_getaffinity") else [0, 1]
    rows = []
    for title, model, lang, beam in SETTINGS:
        lang = "de" if lang == "fixed" else lang
        alone = timed((model, lang, beam, paths, cores[0]))
        halves = [(model, lang, beam, paths[i::2], core) for i, core in enumerate(cores)]
        pair = list(imap(timed, halves, workers=2))
        audio = sum(r["audio"] for r in pair)
        per_stream = sum(r["wall"] for r in pair) / audio
        pair_cpu = sum(r["cpu"] for r in pair) / audio
        share = min(r["cpu"] / r["wall"] for r in (alone, *pair))
        rows.append((title, alone["wall"] / alone["audio"], alone["cpu"] / alone["audio"],
                     per_stream, pair_cpu, alone["fallback"], share))
        print(f"{title:18s} RTF alone {rows[-1][1]:.3f} (CPU {rows[-1][2]:.3f})   two at once "
              f"{per_stream:.3f} (CPU {pair_cpu:.3f}) each; {alone['fallback']}/{len(paths)} "
              f"re-decoded; CPU share ≥ {share:.2f}")
    tiny = rows[0][2]
    lines = [
        "## Transcription real-time factor: Whisper tiny.en vs base",
        "",
        f"{len(paths)} real Emo-DB files (2 s each in this copy), faster-whisper int8, greedy "
        "unless beam 5, word timestamps, no cache, base told German or detecting it; wall "
        "seconds per second of audio (lower is faster; < 1 is faster than real time), after a "
        "warm-up file. Alone: one process, one thread, pinned to one core. Two at once: two "
        "processes, one thread each, one per core, each transcribing half the files (the rate "
        "per stream). Whisper pads every input to its 30 s window, so a 2 s utterance costs "
        "nearly as much as a 30 s one. Re-decoded: files whose first decoding looked "
        "repetitive or unlikely and were decoded again at higher temperatures (tiny.en, "
        "English-only, on German). CPU: CPU seconds per second of audio (what the RTF would be "
        "on a core of its own); CPU share: the lowest CPU time / wall time of the timed "
        "processes (1.00: the core was theirs; quiet.sh pauses only the long jobs, so other "
        f"engineers' tests may still run). {machine()}.",
        "",
        "```",
        f".venv/bin/python benchmarks/transcription.py rtf --files {args.files}",
        "```",
        "",
        "| model | RTF alone (1 thread) | CPU alone | vs tiny.en (CPU) | RTF per stream, 2 at "
        "once (1 thread each) | CPU per stream | re-decoded | CPU share |",
        "|---|---|---|---|---|---|---|---|",
        *[f"| Whisper {t} | {a:.3f} | {ac:.3f} | {ac / tiny:.2f}× | {p:.3f} | {pc:.3f} | "
          f"{f}/{len(paths)} | {c:.2f} |" for t, a, ac, p, pc, f, c in rows],
    ]
    write_section("transcription_rtf", "\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=["wer", "rtf"])
    parser.add_argument("--files", type=int, default=None,
                        help="files per corpus (wer: 50) or in all (rtf: 16)")
    args = parser.parse_args()
    args.files = args.files or (50 if args.part == "wer" else 16)
    (wer if args.part == "wer" else rtf)(args)


if __name__ == "__main__":
    main()
