#!/bin/sh
# Install Debian's Chromium for the browser test (tests/test_browser.py) when it is missing.
# Needs root (or sudo) and the Debian mirrors; prints why when it cannot.
set -eu
if command -v chromium >/dev/null 2>&1; then
    echo "chromium present: $(chromium --version 2>/dev/null | head -n 1)"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-browser: no apt-get here; install Chromium yourself (the browser test skips)" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        echo "install-browser: not root and no sudo; the browser test will skip" >&2
        exit 1
    fi
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
echo "installed: $(chromium --version 2>/dev/null | head -n 1)"
