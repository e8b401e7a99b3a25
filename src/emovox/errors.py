"""One exception family, so the CLI can turn every expected failure into a one-line message."""

from __future__ import annotations

from pathlib import Path


class EmovoxError(Exception):
    """An expected, user-facing failure (bad input, bad config); the CLI prints it on one line."""


class AudioError(EmovoxError):
    """An audio file that cannot be used: the message always names the file."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class CorpusError(EmovoxError):
    """A corpus that cannot be read: missing directory, unparseable annotation, unknown label."""


class ConfigError(EmovoxError):
    """A configuration file or override that does not match the typed schema."""


class ModelDirError(EmovoxError):
    """A damaged or incomplete model directory: the message names the file and what is wrong."""

    def __init__(self, path: str | Path, reason: str):
        super().__init__(f"{path}: {reason}")
