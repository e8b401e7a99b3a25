"""The commands README.md and docs/*.md tell users to run: each one runs, smoke-sized.

Collected: the shell statements of fenced code blocks and the inline code of prose and of a
table's "command" column, wherever they run ``emovox …`` or ``python benchmarks/…`` (after any
``.venv/bin/``, ``PYTHONPATH=…``, ``env``, ``nice -n N``, or a shell variable the same file set
to such a prefix). Each is decided by the first entry of ``SMOKES`` whose pattern it matches:
run a smoke-sized version, or skip with the reason. A documented command that no entry matches
fails, so the docs cannot drift from this table; so does a smoke run that fails.

The runs happen in a throwaway copy of the checkout (src/, configs/, benchmarks/, docs/ copied;
.venv and ../shared/data linked), so the relative paths the docs use (runs/, models/,
benchmarks/RESULTS.md, docs/figures/, ../shared/data) resolve as they do for a user, and the
checkout is never written.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import DATA, ROOT, write_speech

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL_BLOCKS = {"", "bash", "sh", "shell", "console"}
#: Words that may stand before the program: variable assignments, env, nice -n N.
PREFIX = re.compile(r"^(?:[A-Za-z_][A-Za-z0-9_]*=\S*\s+|env\s+|nice\s+-n\s+-?\d+\s+)*")
PROGRAM = re.compile(r"^(?:\S*/)?(?:emovox\s+\S+|python3?\s+(?:\S*/)?benchmarks/\S+\.py)")
ASSIGNMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", re.S)


# ---- collecting ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Documented:
    where: str        # file:line
    command: str      # as a user types it, variables of the same file not expanded
    normal: str       # the program without its path and prefixes, leading variables expanded
    prelude: str      # the file's variable assignments before it (the shell state a user has)


def shell_statements(text: str) -> list[str]:
    """Statements of a shell block: a newline ends one unless quoted, escaped or in $(…);
    comments dropped."""
    out, current, quote, depth, i = [], [], None, 0, 0
    while i < len(text):
        c = text[i]
        if quote == '"' and text.startswith("\\\n", i):  # a continuation inside "…"
            i += 2
            continue
        if quote:
            current.append(c)
            quote = None if c == quote else quote
        elif c in "'\"":
            quote = c
            current.append(c)
        elif c == "\\" and text[i + 1 : i + 2] == "\n":
            current.append(" ")
            i += 1
        elif c == "#" and (not current or current[-1] in " \t\n"):
            while i < len(text) and text[i] != "\n":
                i += 1
            continue
        elif c == "$" and text[i + 1 : i + 2] == "(":
            depth += 1
            current.append("$(")
            i += 1
        elif c == ")" and depth:
            depth -= 1
            current.append(c)
        elif c == "\n" and not depth:
            out.append("".join(current).strip())
            current = []
        else:
            current.append(c)
        i += 1
    out.append("".join(current).strip())
    return [s for s in out if s]


def segments(statement: str) -> list[str]:
    """The commands of a statement joined by |, &&, || or ; (outside quotes, $(…) and the
    [optional | parts] of a synopsis)."""
    parts, current, quote, depth = [], [], None, 0
    i = 0
    while i < len(statement):
        c = statement[i]
        if quote:
            quote = None if c == quote else quote
        elif c in "'\"":
            quote = c
        elif statement.startswith("$(", i) or c == "[":
            depth += 1
        elif c in ")]" and depth:
            depth -= 1
        elif not depth and c in "|&;":
            parts.append("".join(current).strip())
            current = []
            i += 2 if statement[i : i + 2] in ("&&", "||") else 1
            continue
        current.append(c)
        i += 1
    parts.append("".join(current).strip())
    return [p for p in parts if p]


def unquote(value: str) -> str:
    value = value.strip()
    return value[1:-1] if len(value) > 1 and value[0] == value[-1] and value[0] in "'\"" else value


def normalise(command: str, variables: dict[str, str]) -> str | None:
    """``emovox …`` / ``python benchmarks/….py …`` without path and prefixes, or None when the
    command runs neither."""
    command = re.sub(r"\s+", " ", command.strip())
    for _ in range(3):  # a leading $VAR standing for a prefix (dcgan.md: $S, $R)
        rest = command[len(PREFIX.match(command).group(0)):]
        name = re.match(r"^\$\{?(\w+)\}?", rest)
        if not name or name.group(1) not in variables:
            break
        command = variables[name.group(1)] + rest[name.end():]
    rest = command[len(PREFIX.match(command).group(0)):]
    if not PROGRAM.match(rest):
        return None
    rest = re.sub(r"^\S*/(emovox|python3?)\b", r"\1", rest)
    return re.sub(r"^python3?\s+(?:\S*/)?benchmarks/", "python benchmarks/", rest)


def fenced_and_prose(text: str):
    """(line, kind, content): fenced shell blocks, inline code in prose and in the command
    column of tables."""
    lines = text.splitlines()
    i, paragraph, start = 0, [], 0
    command_column = None
    while i < len(lines):
        line = lines[i]
        fence = re.match(r"^\s*(`{3,})\s*(\S*)", line)
        if fence:
            end = next(j for j in range(i + 1, len(lines))
                       if lines[j].strip().startswith(fence.group(1)))
            if fence.group(2).lower() in SHELL_BLOCKS:
                yield i + 2, "block", "\n".join(x.strip() for x in lines[i + 1 : end])
            i = end + 1
            continue
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if command_column is None and "command" in [c.lower() for c in cells]:
                command_column = [c.lower() for c in cells].index("command")
            elif command_column is not None and len(cells) > command_column:
                for code in re.findall(r"`([^`]+)`", cells[command_column]):
                    yield i + 1, "inline", code
        else:
            command_column = None
            if line.strip():
                paragraph.append(line)
                start = start or i + 1
            if not line.strip() or i == len(lines) - 1:
                for code in re.findall(r"`([^`]+)`", " ".join(paragraph)):
                    yield start, "inline", code
                paragraph, start = [], 0
        i += 1


def collect() -> list[Documented]:
    found = []
    for path in DOCS:
        variables: dict[str, str] = {}
        prelude: list[str] = []
        for line, kind, content in fenced_and_prose(path.read_text()):
            statements = shell_statements(content) if kind == "block" else [content]
            for statement in statements:
                assigned = ASSIGNMENT.match(statement)
                if kind == "block" and assigned and not re.search(r"\s", assigned.group(1)) \
                        and re.fullmatch(r"'[^']*'|\"[^\"]*\"|\S*", assigned.group(2)):
                    variables[assigned.group(1)] = unquote(assigned.group(2))
                    prelude.append(statement)
                    continue
                for command in segments(statement):
                    normal = normalise(command, variables)
                    if normal and (kind == "block" or is_instruction(normal)):
                        found.append(Documented(f"{path.relative_to(ROOT)}:{line}", command,
                                                normal, "\n".join(prelude)))
    return found


def is_instruction(normal: str) -> bool:
    """Inline code is a command to run when it runs a benchmark or names a file or folder to
    work on (``emovox study configs/x.yaml …``), not when it names a flag or a synopsis
    (``emovox stream --enrol DIR``)."""
    return normal.startswith("python") or any(
        "/" in word or re.search(r"\.(yaml|wav|flac)$", word) for word in normal.split()[2:])


# ---- smoke-sizing --------------------------------------------------------------------------

#: Speakers a smoke run keeps (LOSO needs three: train, validation, test).
SPEAKERS = {"emodb": ["03", "08", "09"], "nemo": ["EB0", "IC0", "KD0"]}
#: Smaller values for keys of the configs' sections (only where the config has the key).
SMALLER = {"epochs": 1, "ensemble": 1, "copies": 1, "episodes": 40, "freeze_episodes": 10,
           "eval_every": 20, "max_passes": 1, "search_trials": 1, "seeds": [0]}


def shrink(node):
    """A config made smoke-sized in place: three speakers per corpus, fold 0, one seed, one
    epoch, one ensemble member, one augmented copy, a few EmoRL episodes / DCGAN passes;
    dotted keys of study variants too."""
    if isinstance(node, list):
        for item in node:
            shrink(item)
        return node
    if not isinstance(node, dict):
        return node
    for key, value in list(node.items()):
        leaf = key.rsplit(".", 1)[-1]
        if leaf in SMALLER and not isinstance(value, dict):
            node[key] = SMALLER[leaf] if leaf != "copies" else min(value or 0, 1)
        elif key.endswith("protocol") and isinstance(value, dict):
            value["folds"] = [0]
        elif key.endswith("protocol.folds"):
            node[key] = [0]
        elif key == "corpus" and isinstance(value, dict):
            shrink_corpus(value)
        shrink(node[key])
    return node


def shrink_corpus(corpus: dict) -> None:
    fmt = corpus.get("format", "emodb")
    if fmt in SPEAKERS:
        corpus["speakers"] = SPEAKERS[fmt]
    elif fmt == "combined":
        listed = corpus.get("speakers") or [f"{part}_{s}" for part, speakers in SPEAKERS.items()
                                            for s in speakers]
        corpus["speakers"] = [s for part in SPEAKERS
                              for s in [x for x in listed if x.startswith(part + "_")][:3]]


def make_mirror(root: Path) -> Path:
    """The checkout's copy to run commands in: src/, configs/, benchmarks/, docs/ copied (the
    YAML configs smoke-sized), .venv → this interpreter's environment, ../shared/data → the
    data, and the audio files the docs name (speech.wav, a.wav, …: real Emo-DB sentences)."""
    import yaml

    repo = root / "repo"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")
    for name in ("src", "configs", "benchmarks", "docs"):
        shutil.copytree(ROOT / name, repo / name, ignore=ignore)
    for name in ("README.md", "pyproject.toml"):
        shutil.copy(ROOT / name, repo / name)
    for path in [*(repo / "configs").glob("*.yaml"), *(repo / "benchmarks").glob("*.yaml")]:
        path.write_text(yaml.safe_dump(shrink(yaml.safe_load(path.read_text())),
                                       sort_keys=False))
    (repo / ".venv").symlink_to(Path(sys.prefix))
    (root / "shared").mkdir()
    (root / "shared" / "data").symlink_to(DATA.resolve())
    wavs = DATA / "emodb" / "wav"
    for name, source in (("speech.wav", "03a01Wa"), ("a.wav", "08a02Na"), ("b.wav", "16b10Wb"),
                         ("one.wav", "11b03Nb"), ("in.wav", "03a05Tc")):
        shutil.copy(wavs / f"{source}.wav", repo / name)
    import soundfile as sf

    from emovox.audio import load_audio

    sf.write(repo / "b.flac", load_audio(wavs / "09b03Fd.wav"), 16000)
    (repo / "earlier_recordings").mkdir()
    for source in ("03a01Fa", "03b01Lb"):
        shutil.copy(wavs / f"{source}.wav", repo / "earlier_recordings" / f"{source}.wav")
    write_speech(repo / "more.wav")
    return repo


# ---- the table -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Smoke:
    """How to smoke the documented commands whose normal form ``pattern`` matches (re.search).

    The command run is the documented one (or ``instead``, for synopses and placeholders) with
    ``replace`` applied and ``add`` appended; ``{repo}`` is the checkout's copy and
    ``{first_variant}`` the first variant of the study the command names. ``shared`` says that
    the documented commands this entry matches share the one run of ``instead``; ``after``
    runs first what the command needs (a trained model: commands as typed, smoke-sized by the
    configs). ``serve``: started on a free port, asked ``/healthz``, stopped with SIGTERM."""

    pattern: str
    add: str = ""
    replace: tuple[tuple[str, str], ...] = ()
    instead: str | None = None
    skip: str | None = None
    shared: bool = False
    after: tuple[str, ...] = ()
    serve: bool = False
    timeout: int = 300


#: What the documented runs need: the streamable EmoRL model the docs train into
#: models/emodb_emorl (trained here with an absolute --out), its ONNX export, a speaker-
#: normalised model for enrolment, and the bigru the ONNX benchmark compares.
EMORL = "emovox -q train configs/emodb_emorl.yaml --out {repo}/models/emodb_emorl"
EXPORT = "emovox -q export models/emodb_emorl --format onnx --out models/emodb_emorl_onnx"
EXPORT_DOT = "emovox -q export models/emodb_emorl --format onnx --out models/emodb_emorl.onnx"
SPEAKER_MODEL = ("emovox -q train configs/emodb_gru_baseline.yaml --out {repo}/models/speaker "
                 "features.normalise=speaker")
BIGRU = "emovox -q train configs/emodb_bigru.yaml --out {repo}/models/emodb_bigru"
PCM = ("python -c \"import sys; from emovox.audio import load_audio; "
       "sys.stdout.buffer.write((load_audio('speech.wav') * 32767).astype('<i2').tobytes())\" | ")
DCGAN_TINY = ("--folds 0 --seeds 0 --workers 1 --params '{\"max_passes\": 1, \"patience\": 1, "
              "\"width\": 64, \"kernel\": 3, \"filters\": 8, \"gen_filters\": 8, "
              "\"batch_size\": 64, \"adversarial_batch\": 16, \"threads\": 1}'")
DCGAN_RUN = ("python benchmarks/dcgan_study.py OUT --variants basic_cnn multitask_cnn "
             "basic_dcgan multitask_dcgan --fractions 1.0 0.25 0.1 " + DCGAN_TINY)
SESSIONS_SET = ("emovox -q sessions build --model gru --out runs/sessions/set --speakers emodb_03 "
                "--max-sessions-per-speaker 1 --utterances 3 --conditions clean events")
#: The bundled default's recipe without the sessions' test speakers (smoke-sized: the config
#: shrunk to three speakers per corpus and one epoch), and sessions of its held-out emodb_03.
HELDOUT = "runs/sessions/models/default_v2_heldout"
HELDOUT_SET = (f"emovox -q train configs/default_model_v2_heldout.yaml --out {HELDOUT} && "
               f"emovox -q sessions build --model {HELDOUT} --out runs/sessions/set "
               "--speakers emodb_03 --max-sessions-per-speaker 1 --utterances 3 "
               "--conditions clean events")
SERVICE_LOAD = "--levels 2 --seconds 1 --post-clients 1 --post-seconds 1 --fault-streams 1"
IEMOCAP = ("needs IEMOCAP (licensed, not on this machine); run end to end on an IEMOCAP-layout "
           "fixture by tests/experiments/test_multimodal.py and test_dcgan.py")
RAY = ("needs a running Ray cluster (`ray start --head`); the Ray executor is run by "
       "tests/experiments/test_ray_executor.py")

SMOKES: list[Smoke] = [
    # -- setup and the test suite: not emovox runs --
    # -- the bundled model --
    Smoke(r"^emovox predict \S+\.wav$"),
    Smoke(r"^emovox serve$", serve=True),
    Smoke(r"^emovox stream speech\.wav --steps$"),
    Smoke(r"^emovox models \[DIR \.\.\.\]$", instead="emovox models", shared=True),
    # -- experiments and studies: the configs are smoke-sized, the commands run as written --
    Smoke(r"^emovox experiment configs/\S+\.yaml .*'workers=\{backend: ray", skip=RAY),
    Smoke(r"^emovox study .*address: 10\.0\.0\.5", skip="needs the Ray cluster at 10.0.0.5"),
    Smoke(r"paper[45]_\w+_iemocap|iemocap\.yaml", skip=IEMOCAP),
    # whole-corpus smokes (corpus.speakers=null; Emo-DB + nEMO features): minutes on 2 cores
    Smoke(r"^emovox experiment configs/\S+\.yaml .*corpus\.speakers=null", timeout=900),
    Smoke(r"^emovox study configs/recogniser_transfer_emodb\.yaml .*--only mp_2_plus_nemo$",
          timeout=900),
    Smoke(r"^emovox experiment configs/\S+\.yaml"),
    Smoke(r"^emovox study configs/\S+\.yaml .*--only (ROW|VARIANT)$",
          replace=(("ROW", "{first_variant}"), ("VARIANT", "{first_variant}"))),
    Smoke(r"^emovox study configs/\S+\.yaml .*--only \w"),
    Smoke(r"^emovox study configs/\S+\.yaml( --out \S+)?( \"?protocol\.folds=\[[\d,]+\]\"?)?$",
          add="--only {first_variant} protocol.folds=[0]"),
    Smoke(r"^emovox train configs/emodb_emorl\.yaml --out models/emodb_emorl$"),
    Smoke(r"^emovox train configs/\S+\.yaml --out DIR$", replace=(("DIR", "models/default"),)),
    Smoke(r"^emovox train configs/\S+\.yaml"),
    Smoke(r"^emovox export models/default_v2 --format onnx --out models/default_v2/onnx$",
          after=("emovox -q train configs/default_model_v2.yaml --out {repo}/models/default_v2",)),
    Smoke(r"^emovox predict speech\.wav --enrol earlier/$",
          instead="emovox predict speech.wav --enrol earlier_recordings"),
    # -- a model directory: streaming, the service, ONNX --
    Smoke(r"^emovox stream speech\.wav --model models/emodb_emorl \[",
          instead="emovox stream speech.wav --model models/emodb_emorl --steps --vad "
                  "--threads 1 --pause-ms 1500 --max-utterance-s 15 --min-speech-ms 500 "
                  "--energy-floor-db -50 --chunk-ms 100", shared=True, after=(EMORL,)),
    Smoke(r"^emovox stream speech\.wav --model (MP_MODEL|MODEL_DIR) --enrol",
          instead="emovox stream speech.wav --model models/speaker "
                  "--enrol earlier_recordings/ more.wav", shared=True, after=(SPEAKER_MODEL,)),
    Smoke(r"^emovox stream - --model models/emodb_emorl$",
          instead=PCM + "emovox stream - --model models/emodb_emorl", after=(EMORL,)),
    Smoke(r"^emovox serve --model models/emodb_emorl$", serve=True, after=(EMORL,)),
    Smoke(r"^emovox serve --model MODEL_DIR( --host)?",
          replace=(("MODEL_DIR", "models/emodb_emorl"), ("0.0.0.0", "127.0.0.1")), serve=True,
          after=(EMORL,)),
    Smoke(r"^emovox export models/emodb_emorl --format onnx --out models/emodb_emorl_onnx$",
          after=(EMORL,)),
    Smoke(r"^emovox export models/emodb_emorl --format onnx --out models/emodb_emorl\.onnx$",
          after=(EMORL,)),
    Smoke(r"^emovox export src/emovox/serving/gru_model "),  # rewrites the copy's export
    Smoke(r"^emovox predict speech\.wav --model models/emodb_emorl_onnx --runtime onnx$",
          after=(EMORL, EXPORT)),
    Smoke(r"^emovox predict a\.wav b\.wav --model models/emodb_emorl\.onnx --runtime onnx$",
          after=(EMORL, EXPORT_DOT)),
    Smoke(r"^emovox predict a\.wav --model models/dcgan$", skip=IEMOCAP),
    Smoke(r"^emovox predict a\.wav --model DIR$", replace=(("DIR", "models/emodb_emorl"),),
          after=(EMORL,)),
    # -- corpora, analysis, recognisers --
    Smoke(r"^emovox corpus degrade \.\./shared/data/emodb ", add="--workers 2"),
    Smoke(r"^emovox analyse layers \.\./shared/data/emodb ", add="--speakers 03"),
    Smoke(r"^emovox analyse layers PATH --format emodb --out DIR$",
          instead="emovox analyse layers ../shared/data/emodb --format emodb --speakers 03 "
                  "--out runs/analysis", shared=True),
    Smoke(r"^emovox asr train LIBRISPEECH_DIR",
          skip="needs a LibriSpeech download; the recipe runs on a LibriSpeech-layout fixture "
               "in tests/asr/test_whisper.py"),
    # -- the command-line synopsis (README "Command line"): one concrete run per command --
    Smoke(r"^emovox list \[", instead="emovox list", shared=True),
    Smoke(r"^emovox experiment CONFIG\.yaml \[",
          instead="emovox experiment configs/emodb_gru_baseline.yaml --out runs/synopsis "
                  "training.lr=0.0003", shared=True),
    Smoke(r"^emovox study STUDY\.yaml \[",
          instead="emovox study configs/paper2_emodb.yaml --out runs/synopsis_study "
                  "--only {first_variant}", shared=True),
    Smoke(r"^emovox train CONFIG\.yaml --out MODEL_DIR",
          instead="emovox train configs/emodb_gru_baseline.yaml --out runs/synopsis_model "
                  "--valid-speakers 1", shared=True),
    Smoke(r"^emovox predict a\.wav b\.flac \[",
          instead="emovox predict a.wav b.flac --model models/emodb_emorl --runtime torch "
                  "--max-seconds 600", shared=True, after=(EMORL,)),
    Smoke(r"^emovox export MODEL_DIR --format onnx --out DIR$",
          instead="emovox export models/emodb_emorl --format onnx --out runs/synopsis_onnx",
          shared=True, after=(EMORL,)),
    Smoke(r"^emovox corpus info PATH", instead="emovox corpus info ../shared/data/emodb "
          "--format emodb --manifest runs/emodb.jsonl", shared=True),
    Smoke(r"^emovox corpus degrade PATH",
          instead="emovox corpus info \"$PWD/../shared/data/emodb\" --format emodb "
                  "--manifest runs/emodb.jsonl && head -3 runs/emodb.jsonl > runs/three.jsonl "
                  "&& emovox corpus degrade runs/three.jsonl --format manifest --channel robot "
                  "--out runs/synopsis_robot --seed 1 --workers 1", shared=True),
    Smoke(r"^emovox analyse layers PATH --format FMT",
          instead="emovox analyse layers ../shared/data/emodb --format emodb --model tiny.en "
                  "--speakers 03 --out runs/synopsis_layers", shared=True),
    Smoke(r"^emovox stream AUDIO$",
          instead="emovox stream speech.wav --model models/emodb_emorl --vad --steps "
                  "--threads 1", shared=True, after=(EMORL,)),
    Smoke(r"^emovox serve \[--model", instead="emovox serve --model models/emodb_emorl "
          "--host 127.0.0.1 --token T --workers 2", serve=True, shared=True, after=(EMORL,)),
    # -- speaker adaptation (a model trained with per-speaker normalisation) --
    Smoke(r"^emovox predict a\.wav b\.wav \[--adapt",
          instead="emovox predict --model models/speaker --adapt --tau 500 "
                  "--enrol earlier_recordings/ -- a.wav b.wav", shared=True,
          after=(SPEAKER_MODEL,)),
    Smoke(r"^emovox predict a\.wav b\.wav c\.wav --model MP_MODEL --adapt$",
          instead="emovox predict a.wav b.wav speech.wav --model models/speaker --adapt",
          shared=True, after=(SPEAKER_MODEL,)),
    Smoke(r"^emovox predict corpus/\*/\*\.wav --model MP_MODEL --speaker-from parent-dir$",
          instead="emovox predict earlier_recordings/03a01Fa.wav earlier_recordings/03b01Lb.wav "
                  "--model models/speaker --speaker-from parent-dir",
          shared=True, after=(SPEAKER_MODEL,)),
    # -- continuous sessions: a held-out Emo-DB speaker, a few utterances --
    Smoke(r"^emovox sessions build --model runs/sessions/models/default_v2_heldout --out \S+"
          r"( --max-sessions-per-speaker \d+)?$", instead=HELDOUT_SET, shared=True),
    Smoke(r"^emovox sessions score runs/sessions/set --model runs/sessions/models/"
          r"default_v2_heldout --out ",
          instead=HELDOUT_SET + f" && emovox sessions score runs/sessions/set --model {HELDOUT} "
                  "--out runs/sessions/default_chosen", shared=True),
    Smoke(r"^emovox sessions build --model gru --out \S+( --max-sessions-per-speaker \d+)?$",
          instead=SESSIONS_SET, shared=True),
    Smoke(r"^emovox sessions build --out SET \[",
          instead="emovox sessions build --out runs/sessions/synopsis --validation "
                  "--max-sessions-per-speaker 1 --utterances 3 --conditions clean",
          shared=True),
    Smoke(r"^emovox sessions score runs/sessions/set --model gru --out ",
          instead=SESSIONS_SET + " && emovox sessions score runs/sessions/set --model gru "
                  "--out runs/sessions/default_chosen", shared=True),
    Smoke(r"^emovox sessions score SET --out DIR \[",
          instead=SESSIONS_SET + " && emovox sessions score runs/sessions/set --model gru "
                  "--out runs/sessions/synopsis_score --pause-ms 300 --max-steady-fraction 0.5",
          shared=True),
    Smoke(r"^python benchmarks/sessions\.py",
          skip="no smoke size: streams the held-out default recipe (a Whisper encoder, ~5× "
               "the GRU's cost) and the GRU over a validation grid and two stream settings × "
               "seven conditions (over an hour on 2 cores); its steps are the `emovox train` "
               "and `emovox sessions build|score` entries above and tests/sessions"),
    Smoke(r"^python benchmarks/adaptation_curve\.py ",
          skip="no smoke size: needs Whisper base features of all 5,016 Emo-DB + nEMO "
               "utterances (about 74 min of extraction on 2 cores); its shrinkage and "
               "enrolment are run by tests/features/test_speaker_shrinkage.py and "
               "tests/experiments/test_enrol_shrinkage.py"),
    Smoke(r"^emovox -v study STUDY\.yaml .*address: HEAD_IP", skip=RAY + "; a two-node "
          "cluster runs it in tests/experiments/test_ray_cluster.py"),
    # -- benchmarks (write the copy's benchmarks/RESULTS.md, runs/ and docs/figures/) --
    Smoke(r"^python benchmarks/emodb_models\.py$", timeout=600),
    Smoke(r"^python benchmarks/(feature|recogniser)_throughput\.py$", add="--files 2"),
    Smoke(r"^python benchmarks/augmentation\.py$", add="--files 2"),
    Smoke(r"^python benchmarks/multimodal_throughput\.py ", add="--files 2 --batches 1"),
    Smoke(r"^python benchmarks/transcription\.py (wer|rtf)", add="--files 2"),
    Smoke(r"^python benchmarks/predict_startup\.py$", add="--repeat 1"),
    Smoke(r"^python benchmarks/service_load\.py .*--section service_load_main",
          skip="compares against a checkout of older code (PYTHONPATH=/path/to/old/src)"),
    Smoke(r"^python benchmarks/service_load\.py ", add=SERVICE_LOAD),
    Smoke(r"^python benchmarks/streaming_onset_heldout\.py$",
          skip="no smoke size: streams every utterance of a nEMO speaker three times; the "
               "streaming path is run by tests/serving/test_streaming_live.py"),
    Smoke(r"^python benchmarks/streaming_onset\.py$", timeout=600),
    Smoke(r"^python benchmarks/streaming_recogniser\.py$", timeout=600),
    Smoke(r"^python benchmarks/ray_overhead\.py$", add="--epochs 1"),
    Smoke(r"^python benchmarks/onnx_runtime\.py ", add="--utterances 2", after=(EMORL, BIGRU)),
    Smoke(r"^python benchmarks/cross_corpus\.py --heldout "),
    Smoke(r"^python benchmarks/cross_corpus\.py ",
          skip="no smoke size: every row scores every utterance of the other corpus (4,481 "
               "nEMO files); its model configs are built by tests/serving/test_default_model.py"),
    Smoke(r"^python benchmarks/early_recogniser\.py --config configs/default_model_v2\.yaml$",
          instead="python benchmarks/early_recogniser.py --config configs/default_model_v2.yaml "
                  "--folds 0 --per-speaker 3", shared=True, timeout=900),
    Smoke(r"^python benchmarks/early_recogniser\.py ",
          skip="no smoke size: Whisper features at every 300 ms step of every utterance, "
               "then agents per fold (over 10 min on 2 cores even for fold 0)"),
    Smoke(r"^python benchmarks/dcgan_study\.py .*runs/gpu/",
          skip="the GPU runs (device: cuda): needs a GPU"),
    Smoke(r"^python benchmarks/dcgan_study\.py .*--format nemo .*--summary-only",
          add="--table2-seeds 0", after=(DCGAN_RUN.replace(
              "OUT", "--corpus ../shared/data/nemo --format nemo --out runs/nemo_budget"),)),
    Smoke(r"^python benchmarks/dcgan_study\.py .*--summary-only",
          add="--table2-seeds 0",
          after=tuple(DCGAN_RUN.replace("OUT", f"--out runs/{out}") for out in (
              "emodb_budget", "emodb_fm", "emodb_adv4", "emodb_nemopool"))),
    Smoke(r"^python benchmarks/dcgan_study\.py ", add=DCGAN_TINY + " --unlabelled-limit 20"),
]


def entry_for(doc: Documented) -> Smoke | None:
    return next((smoke for smoke in SMOKES if re.search(smoke.pattern, doc.normal)), None)


DOCUMENTED = collect()


# ---- running ---------------------------------------------------------------------------------

def fill(command: str, repo: Path) -> str:
    if "{first_variant}" in command:
        import yaml

        study = next(w for w in command.split() if w.endswith(".yaml"))
        first = next(iter(yaml.safe_load((repo / study).read_text())["variants"]))
        command = command.replace("{first_variant}", first)
    return command.replace("{repo}", str(repo))


def environment(repo: Path) -> dict[str, str]:
    return {**os.environ, "PATH": f"{Path(sys.prefix) / 'bin'}{os.pathsep}{os.environ['PATH']}",
            "PYTHONPATH": str(repo / "src"), "EMOVOX_DATA": str(repo.parent / "shared" / "data")}


_RESULTS: dict[str, tuple[int, str]] = {}


def run_once(script: str, repo: Path, timeout: int) -> tuple[int, str]:
    """``script`` through bash in the copy, once per session: (exit code, output tail)."""
    if script not in _RESULTS:
        proc = subprocess.Popen(["bash", "-c", script], cwd=repo, env=environment(repo),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)
        try:
            out, _ = proc.communicate(timeout=timeout)
            _RESULTS[script] = proc.returncode, out[-3000:]
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            out, _ = proc.communicate()
            _RESULTS[script] = -9, f"timed out after {timeout} s\n{out[-3000:]}"
    return _RESULTS[script]


def serve_once(script: str, repo: Path, timeout: int) -> tuple[int, str]:
    """A server started on a free port: up when /healthz answers (401 without the token it
    was given), exits 0 on SIGTERM."""
    import signal
    import socket
    import time
    import urllib.error
    import urllib.request

    if script in _RESULTS:
        return _RESULTS[script]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(["bash", "-c", f"{script} --port {port}"], cwd=repo,
                            env=environment(repo), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    deadline, healthy = time.monotonic() + timeout, False
    while not healthy and proc.poll() is None and time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as res:
                healthy = res.status == 200
        except urllib.error.HTTPError as exc:
            healthy = exc.code == 401  # up, and refusing a client without the --token
        except OSError:
            time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        out, _ = proc.communicate()
    code = proc.returncode if healthy else (proc.returncode or 1)
    _RESULTS[script] = code, ("" if healthy else "never answered /healthz\n") + out[-3000:]
    return _RESULTS[script]


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    if not (DATA / "emodb").is_dir():
        pytest.skip(f"needs the corpora at {DATA} (set EMOVOX_DATA)")
    return make_mirror(tmp_path_factory.mktemp("documented"))


def test_every_documented_command_has_an_entry_and_shared_runs_are_declared():
    """Runs nothing: a command added to the docs needs an entry in SMOKES, and an entry that
    runs one command in place of several says so."""
    missing = [f"{d.where}: {d.normal}" for d in DOCUMENTED if entry_for(d) is None]
    assert not missing, "documented commands with no entry in SMOKES:\n" + "\n".join(missing)
    for smoke in SMOKES:
        covered = {d.normal for d in DOCUMENTED if entry_for(d) is smoke}
        if smoke.instead is not None and len(covered) > 1:
            assert smoke.shared, f"{smoke.pattern} runs one command for {sorted(covered)}"


@pytest.mark.e2e  # runs the documented commands on the real corpora
@pytest.mark.parametrize("doc", DOCUMENTED, ids=lambda d: f"{d.where}:{d.normal[:70]}")
def test_documented_command_runs(doc: Documented, repo: Path):
    smoke = entry_for(doc)
    if smoke is None:
        pytest.fail(f"{doc.where}: no entry in SMOKES for {doc.normal!r}: say how to smoke it "
                    "or why it is skipped")
    if smoke.skip:
        pytest.skip(smoke.skip)
    runs = repo / "runs"  # each command as in a fresh checkout: no runs/ of the ones before
    if runs.exists():
        runs.rename(repo / f"runs.{len(list(repo.glob('runs.*')))}")
    for needed in smoke.after:
        code, out = run_once(fill(needed, repo), repo, smoke.timeout)
        assert code == 0, f"needed first: {needed}\n{out}"
    command = smoke.instead if smoke.instead is not None else doc.command
    for old, new in smoke.replace:
        command = command.replace(old, new)
    command = fill(f"{command} {smoke.add}".strip(), repo)
    script = "\n".join(filter(None, [doc.prelude, command]))
    code, out = (serve_once if smoke.serve else run_once)(script, repo, smoke.timeout)
    assert code == 0, f"{doc.where}: `{command}` exited {code}\n{out}"
