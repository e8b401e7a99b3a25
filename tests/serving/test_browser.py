"""The live page in a real browser: headless Chromium (Debian's package, driven by Playwright;
nothing downloads a browser) with its fake microphone playing a real Emo-DB file must show the
decision that `emovox stream FILE` prints. Skipped, with the reason, where Chromium is missing
(`scripts/install-browser.sh` installs it)."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import warnings

import pytest
import soundfile as sf
import soxr

from emovox.audio import load_audio

FILE = "03a01Wa"
pytestmark = pytest.mark.e2e  # starts `emovox serve` and a browser

CHROMIUM_RATE = 48_000  # the fake capture device's rate; the page resamples to 16 kHz


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    reason = None
    if path is None:
        reason = "Chromium not installed (run scripts/install-browser.sh)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            reason = "Python package playwright missing (pip install -e '.[dev]')"
    if reason:
        warnings.warn(f"browser test skipped: {reason}", stacklevel=2)
        pytest.skip(reason)
    return path


def test_live_page_shows_the_stream_decision(stream_model_dir, emodb, tmp_path):
    from playwright.sync_api import sync_playwright

    browser_path = chromium()
    source = emodb / "wav" / f"{FILE}.wav"
    proc = subprocess.run([sys.executable, "-m", "emovox.cli", "stream", str(source), "--model",
                           str(stream_model_dir)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    expected = next(e for e in map(json.loads, proc.stdout.splitlines())
                    if e["type"] == "decision")
    wave = load_audio(source)
    fake = tmp_path / "mic.wav"
    sf.write(fake, soxr.resample(wave, 16000, CHROMIUM_RATE), CHROMIUM_RATE, subtype="PCM_16")
    duration_ms = int(1000 * len(wave) / 16000)

    server = subprocess.Popen([sys.executable, "-m", "emovox.cli", "serve", "--model",
                               str(stream_model_dir), "--port", "0", "--workers", "1"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = json.loads(server.stdout.readline() or "{}").get("serving")
        assert url, server.stderr.read()
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=browser_path, headless=True, args=[
                "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={fake}%noloop",
                "--autoplay-policy=no-user-gesture-required"])
            page = browser.new_page(viewport={"width": 1000, "height": 860})
            page.goto(url + "/")
            page.wait_for_function("document.querySelector('#model').textContent"
                                   ".startsWith('model')", timeout=30_000)
            page.click("#toggle")
            try:  # an early decision comes while the file plays; otherwise stop at its end
                page.wait_for_selector("#history li", timeout=duration_ms + 1500)
            except Exception:
                page.click("#toggle")
                page.wait_for_selector("#history li", timeout=15_000)
            shown = page.get_attribute("#history li", "data-label")
            page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
            browser.close()
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=30)
    assert shown == expected["label"], f"page shows {shown}, `emovox stream` printed {expected}"
