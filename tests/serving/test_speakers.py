"""Enrolment over HTTP (issue 26): ``POST /v1/speakers`` turns recordings of a speaker into
statistics that ``/v1/predict`` (``speaker`` field) and streams (handshake ``speaker``) then
normalise with; the store is bounded, expires, shared by a server's workers, reachable only
by unguessable ids, and behind the same defences as every other endpoint."""

from __future__ import annotations

import asyncio
import http.client
import io
import json
import os
import signal
import threading
import time

import numpy as np
import pytest
import soundfile as sf
from test_http import HELLO, http_request, pcm, refusal, running, start_serve, stream_file

from emovox.audio import load_audio
from emovox.experiments.streamers import speaker_statistics
from emovox.features import SpeakerStatistics
from emovox.serving.model_dir import Recognizer
from emovox.serving.speakers import SpeakerStore, StoreFull, UnknownSpeaker, for_speaker
from emovox.serving.streaming import StreamingRecognizer

#: Speaker 10 is not among the model's training speakers; 10a05Wb (anger) is labelled neutral
#: with the training speakers' statistics.
ENROL = ["10a01Nb", "10a02Wa", "10a04Nb"]
DECIDE = "10a05Wb"


def wav(emodb, name: str) -> bytes:
    return (emodb / "wav" / f"{name}.wav").read_bytes()


def form(files: dict[str, bytes], fields: dict[str, str] | None = None) -> tuple[bytes, dict]:
    """A multipart/form-data body with ``files`` (as ``files``) and text ``fields``."""
    boundary = "emovox-speaker-boundary"
    out = io.BytesIO()
    for key, value in (fields or {}).items():
        out.write(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{key}\"\r\n\r\n"
                  f"{value}\r\n".encode())
    for name, data in files.items():
        out.write(f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; "
                  f"filename=\"{name}\"\r\nContent-Type: audio/wav\r\n\r\n".encode())
        out.write(data + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def enrol(addr, emodb, names=ENROL, headers=None) -> tuple[int, dict]:
    body, kind = form({f"{n}.wav": wav(emodb, n) for n in names})
    return http_request(addr, "POST", "/v1/speakers", body, {**kind, **(headers or {})})


def tone(seconds: float) -> bytes:
    out = io.BytesIO()
    t = np.arange(int(seconds * 16000)) / 16000
    sf.write(out, 0.3 * np.sin(2 * np.pi * 220 * t), 16000, format="WAV")
    return out.getvalue()


# ---- enrol, then predict and stream with the speaker -----------------------------------------

def test_enrolled_speaker_normalises_predictions_and_streams(speaker_stream_model_dir, emodb,
                                                              tmp_path):
    rec = Recognizer(speaker_stream_model_dir)
    with running(speaker_stream_model_dir, speaker_dir=str(tmp_path)) as addr:
        status, models = http_request(addr, "GET", "/v1/models")
        assert models["models"][0]["adapts"] is True
        status, enrolled = enrol(addr, emodb)
        assert status == 201, enrolled
        speaker = enrolled["speaker"]
        assert len(speaker) == 22 and enrolled["adapted"] is True
        assert 3.0 <= enrolled["seconds_of_speech"] <= enrolled["seconds"]
        status, info = http_request(addr, "GET", f"/v1/speakers/{speaker}")
        assert status == 200 and set(info) == set(enrolled)  # metadata only: no statistics
        assert info["seconds_of_speech"] == enrolled["seconds_of_speech"]
        # what the store holds: the statistics of the recordings' frames, as offline
        stored = SpeakerStore(tmp_path, 10, 60).get(speaker, use=False).statistics
        waves = [load_audio(emodb / "wav" / f"{n}.wav") for n in ENROL]
        offline = speaker_statistics(rec.trained.extractor, waves)
        assert stored.count == offline.count
        np.testing.assert_allclose(stored.sum, offline.sum, rtol=1e-6)
        np.testing.assert_allclose(stored.sumsq, offline.sumsq, rtol=1e-6)

        # /v1/predict: a form field (multipart) or ?speaker= (a raw body)
        wave = load_audio(emodb / "wav" / f"{DECIDE}.wav")
        want = for_speaker(rec, stored).proba(wave)
        plain = rec.proba(wave)
        assert np.abs(want - plain).max() > 1e-3  # the speaker's statistics matter here
        body, kind = form({f"{DECIDE}.wav": wav(emodb, DECIDE)}, {"speaker": speaker})
        status, batch = http_request(addr, "POST", "/v1/predict", body, kind)
        status_raw, raw = http_request(addr, "POST", f"/v1/predict?speaker={speaker}",
                                       wav(emodb, DECIDE))
        assert status == status_raw == 200
        for record in (batch["results"][0], raw):
            assert record["speaker"] == speaker and record["adapted"] is True
            got = [record["probabilities"][label] for label in rec.labels]
            np.testing.assert_allclose(got, want, atol=1e-5)
            assert record["label"] == rec.labels[int(want.argmax())]
        status, unadapted = http_request(addr, "POST", "/v1/predict", wav(emodb, DECIDE))
        assert "speaker" not in unadapted and "adapted" not in unadapted
        np.testing.assert_allclose([unadapted["probabilities"][x] for x in rec.labels], plain,
                                   atol=1e-5)

        # a stream with the speaker: the decisions of a StreamingRecognizer given the statistics
        audio = pcm(emodb, DECIDE)
        events = asyncio.run(stream_file(f"ws://{addr}/v1/stream", audio,
                                         hello={**HELLO, "speaker": speaker}))
        local = StreamingRecognizer(rec, speaker=stored)
        expected = [e.to_dict() for chunk in range(0, len(audio), 3200)
                    for e in local.push(audio[chunk : chunk + 3200])]
        expected += [e.to_dict() for e in local.end()]
        decided = [[e for e in run if e["type"] == "decision"] for run in (events, expected)]
        assert decided[0] and len(decided[0]) == len(decided[1])
        for got, want_event in zip(*decided, strict=True):
            assert got["label"] == want_event["label"]
            assert abs(got["time"] - want_event["time"]) < 1e-6
            for label in rec.labels:
                assert abs(got["probabilities"][label] - want_event["probabilities"][label]) \
                    < 1e-4

        # forgotten: 404 everywhere, a stream's handshake refused with 1008
        assert http_request(addr, "DELETE", f"/v1/speakers/{speaker}")[0] == 204
        status, gone = http_request(addr, "GET", f"/v1/speakers/{speaker}")
        assert status == 404 and "unknown speaker" in gone["error"]
        assert http_request(addr, "DELETE", f"/v1/speakers/{speaker}")[0] == 404
        status, out = http_request(addr, "POST", f"/v1/predict?speaker={speaker}",
                                   wav(emodb, DECIDE))
        assert status == 404 and "unknown speaker" in out["error"]
        error, code = asyncio.run(refusal(f"ws://{addr}/v1/stream",
                                          [json.dumps({**HELLO, "speaker": speaker})]))
        assert code == 1008 and "unknown speaker" in error["error"]


def test_stream_handshake_speaker_is_checked(speaker_stream_model_dir):
    with running(speaker_stream_model_dir) as addr:
        url = f"ws://{addr}/v1/stream"
        for bad, message in (("../../etc/passwd", "should match pattern"),
                             (42, "valid string"), ("A" * 22, "unknown speaker")):
            error, code = asyncio.run(refusal(url, [json.dumps({**HELLO, "speaker": bad})]))
            assert code == 1008 and "'speaker'" in error["error"] and message in error["error"]


# ---- what an enrolment must hold -------------------------------------------------------------

def test_enrolment_without_enough_speech_is_refused_naming_it(speaker_stream_model_dir, emodb):
    with running(speaker_stream_model_dir, max_file_seconds=5.0) as addr:
        body, kind = form({"fan.wav": tone(2.0), "talk.wav": wav(emodb, ENROL[0])})
        status, out = http_request(addr, "POST", "/v1/speakers", body, kind)
        assert status == 400 and out["error"].startswith("fan.wav: no speech")
        status, out = http_request(addr, "POST", "/v1/speakers", np.zeros(1).tobytes())
        assert status == 400 and out["error"].startswith("upload: ")  # not audio
        status, out = enrol(addr, emodb, ENROL[:1])  # 1.5 s of speech
        assert status == 400 and f"{ENROL[0]}.wav: 1.5 s of speech" in out["error"]
        assert "at least 3 s" in out["error"]
        status, out = enrol(addr, emodb, ENROL)  # 6 s of audio in all, over max_file_seconds
        assert status == 413 and "6 s of audio in all" in out["error"]
        body, kind = form({}, {"speaker": "x"})
        assert http_request(addr, "POST", "/v1/speakers", body, kind)[0] == 400  # no files


def test_model_without_speaker_normalisation_refuses_enrolment(stream_model_dir, emodb):
    """The model normalises globally: nothing to enrol (as `emovox stream --enrol` refuses)."""
    with running(stream_model_dir) as addr:
        assert http_request(addr, "GET", "/v1/models")[1]["models"][0]["adapts"] is False
        status, out = enrol(addr, emodb)
        assert status == 409 and "per-speaker normalisation" in out["error"]
        status, out = http_request(addr, "POST", f"/v1/predict?speaker={'A' * 22}",
                                   wav(emodb, DECIDE))
        assert status == 409 and "does not adapt" in out["error"]
        error, code = asyncio.run(refusal(f"ws://{addr}/v1/stream",
                                          [json.dumps({**HELLO, "speaker": "A" * 22})]))
        assert code == 1008 and "does not adapt" in error["error"]


# ---- the store: bounded, expiring, no way in but the id --------------------------------------

def test_store_full_refuses_until_a_speaker_is_deleted(speaker_stream_model_dir, emodb):
    with running(speaker_stream_model_dir, max_speakers=2) as addr:
        first, second = (enrol(addr, emodb)[1]["speaker"] for _ in range(2))
        status, out = enrol(addr, emodb)
        assert status == 507 and "2 speakers enrolled" in out["error"]
        assert http_request(addr, "GET", f"/v1/speakers/{first}")[0] == 200  # nobody evicted
        assert http_request(addr, "DELETE", f"/v1/speakers/{second}")[0] == 204
        assert enrol(addr, emodb)[0] == 201


def statistics(k: float) -> SpeakerStatistics:
    return SpeakerStatistics.of([np.full((10, 3), k)])


def test_speakers_expire_unless_used(tmp_path):
    store = SpeakerStore(tmp_path, max_speakers=10, ttl=60)
    old, used, fresh = (store.add(statistics(k), 4.0, 5.0).id for k in range(3))
    past = time.time() - 120
    for speaker in (old, used):
        os.utime(tmp_path / f"{speaker}.npz", (past, past))
    with pytest.raises(UnknownSpeaker):  # an expired speaker is gone at its next use
        store.get(old)
    assert not (tmp_path / f"{old}.npz").exists()
    os.utime(tmp_path / f"{used}.npz", (time.time() - 30, time.time() - 30))
    store.get(used)  # a use renews it
    assert time.time() - (tmp_path / f"{used}.npz").stat().st_mtime < 5
    assert store.get(fresh).statistics.sum.tolist() == [20.0] * 3
    os.utime(tmp_path / f"{fresh}.npz", (past, past))
    store.prune()  # what every enrolment does first
    assert sorted(p.stem for p in tmp_path.glob("*.npz")) == [used]
    assert store.get(used, use=False).info(60)["seconds_of_speech"] == 4.0


def test_concurrent_enrolments_never_exceed_the_bound(tmp_path):
    """Workers enrol under an flock: 12 at once into 5 places, 5 stored, 7 refused."""
    store = SpeakerStore(tmp_path, max_speakers=5, ttl=60)
    outcomes: list[str] = []
    start = threading.Barrier(12)

    def add() -> None:
        start.wait()
        try:
            SpeakerStore(tmp_path, 5, 60).add(statistics(1.0), 4.0, 4.0)
            outcomes.append("stored")
        except StoreFull:
            outcomes.append("full")

    threads = [threading.Thread(target=add) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == ["full"] * 7 + ["stored"] * 5
    assert len(list(tmp_path.glob("*.npz"))) == 5 and store.get(
        next(tmp_path.glob("*.npz")).stem).statistics.count == 10


def test_only_ids_the_store_made_name_a_speaker(speaker_stream_model_dir, tmp_path):
    store_dir = tmp_path / "speakers"
    store_dir.mkdir()
    for name in ("secret.npz", f"{'B' * 21}.npz", ".lock.npz"):
        (store_dir / name).write_bytes(b"not a speaker")
    (tmp_path / f"{'C' * 22}.npz").write_bytes(b"outside the store")
    with running(speaker_stream_model_dir, speaker_dir=str(store_dir)) as addr:
        for speaker in ("..%2Fsecret", "secret", "B" * 21, "A" * 23, "A" * 22, ".lock",
                        f"..%2F{'C' * 22}"):
            for method in ("GET", "DELETE"):
                status, out = http_request(addr, method, f"/v1/speakers/{speaker}")
                assert status == 404, (speaker, out)
        assert http_request(addr, "GET", "/v1/speakers")[0] in (404, 405)  # nothing lists them
    assert len(list(store_dir.iterdir())) == 3 and (tmp_path / f"{'C' * 22}.npz").exists()
    store = SpeakerStore(store_dir, 5, 60)
    made = {store.add(statistics(1.0), 4.0, 4.0).id for _ in range(5)}
    assert len(made) == 5 and all(len(s) == 22 for s in made)  # 128 random bits each
    for bad in ("", "secret", "../speakers/secret"):
        with pytest.raises(UnknownSpeaker):
            store.get(bad)


def test_speaker_endpoints_behind_the_token_host_origin_and_size(speaker_stream_model_dir,
                                                                 emodb):
    body, kind = form({f"{n}.wav": wav(emodb, n) for n in ENROL})
    with running(speaker_stream_model_dir, token="t0k", max_upload_mb=0.05) as addr:
        auth = {"Authorization": "Bearer t0k"}
        for method, path in (("POST", "/v1/speakers"), ("GET", f"/v1/speakers/{'A' * 22}"),
                             ("DELETE", f"/v1/speakers/{'A' * 22}")):
            data = body if method == "POST" else None
            assert http_request(addr, method, path, data, kind)[0] == 401
            assert http_request(addr, method, path, data, {
                **kind, **auth, "Origin": "http://evil.example"})[0] == 403
            assert http_request(addr, method, path, data, {
                **kind, **auth, "Host": "evil.example"})[0] == 400
        status, out = http_request(addr, "POST", "/v1/speakers", body, {**kind, **auth})
        assert status == 413 and "exceeds" in out["error"]


# ---- one server, several workers: one store ---------------------------------------------------

@pytest.mark.e2e
def test_workers_share_enrolled_speakers(speaker_stream_model_dir, emodb):
    """Enrolled through one worker, used through the other; ``--max-speakers`` counts both."""
    proc, ready = start_serve(speaker_stream_model_dir, "--workers", "2", "--max-speakers", "1")
    try:
        addr = ready["serving"].removeprefix("http://")
        status, enrolled = enrol(addr, emodb)
        assert status == 201, enrolled
        speaker = enrolled["speaker"]
        seen: dict[int, list[int]] = {}
        for _ in range(40):  # one connection each: both workers answer some
            host, port = addr.split(":")
            conn = http.client.HTTPConnection(host, int(port), timeout=30)
            conn.request("GET", "/healthz")
            pid = json.loads(conn.getresponse().read())["pid"]
            conn.request("GET", f"/v1/speakers/{speaker}")
            response = conn.getresponse()
            response.read()
            seen.setdefault(pid, []).append(response.status)
            conn.close()
        assert len(seen) == 2 and {s for statuses in seen.values() for s in statuses} == {200}
        statuses = {enrol(addr, emodb)[0] for _ in range(6)}  # on either worker: full
        assert statuses == {507}
        for _ in range(4):
            events = asyncio.run(stream_file(f"ws://{addr}/v1/stream", pcm(emodb, DECIDE),
                                             hello={**HELLO, "speaker": speaker}))
            assert any(e["type"] == "decision" for e in events)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "Traceback" not in err, err
