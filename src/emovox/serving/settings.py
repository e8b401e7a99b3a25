"""Service settings: one typed, range-checked place for every limit of ``emovox serve``."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field, fields

from emovox.audio import MAX_SAMPLES
from emovox.errors import ConfigError

TOKEN_ENV = "EMOVOX_TOKEN"


@dataclass
class Settings:
    """Limits and security of the service; the defaults are safe for a laptop or a robot."""

    #: Bearer token required on every API request and stream (None: no authentication).
    token: str | None = None
    #: Concurrent streams over all worker processes; one more is refused with close code 1013.
    max_streams: int = 200
    #: Largest ``POST /v1/predict`` body (all files of a batch together).
    max_upload_mb: float = 20.0
    #: Longest audio of one uploaded file, in seconds.
    max_file_seconds: float = 600.0
    #: Most decoded samples (frames × channels) of one uploaded file: bounds the memory that
    #: decoding costs, whatever the file's compressed size.
    max_file_samples: int = MAX_SAMPLES
    #: Uploads longer than this (seconds of audio) run one at a time in their own slot, so
    #: they never hold up the short ones.
    long_file_seconds: float = 30.0
    #: A request body must arrive within this many seconds (else 408).
    body_timeout: float = 10.0
    #: A stream is closed (code 4413) after this many seconds of wall-clock time.
    max_stream_seconds: float = 3600.0
    #: A stream whose client sent nothing for this long is closed (code 4408).
    idle_timeout: float = 30.0
    #: A client must send its JSON handshake within this many seconds.
    handshake_timeout: float = 10.0
    #: A client that does not read its events for this long is dropped.
    send_timeout: float = 10.0
    #: Largest binary frame (bytes of 16-bit PCM); 64000 = 2 s at 16 kHz.
    max_frame_bytes: int = 64_000
    #: Audio may arrive this many seconds ahead of real time; beyond it the server stops reading
    #: the connection until real time catches up (throttling; TCP pushes back on the sender).
    burst_seconds: float = 2.0
    #: Origins (scheme://host[:port]) allowed to open streams from a browser, besides the
    #: service's own origin. Clients that send no Origin (not browsers) are not checked.
    allowed_origins: list[str] = field(default_factory=list)
    #: Host names (the ``Host`` header) served besides loopback names and IP addresses; "*"
    #: for any. A DNS-rebound page reaches the service under its own name, which is refused.
    allowed_hosts: list[str] = field(default_factory=list)
    #: torch intra-op threads per worker process.
    threads: int = 1
    #: Directory of stream-slot lock files shared by worker processes (set by the server).
    slot_dir: str | None = None

    def __post_init__(self) -> None:
        positive = ("max_streams", "max_upload_mb", "max_file_seconds", "max_file_samples",
                    "long_file_seconds", "body_timeout", "max_stream_seconds", "idle_timeout",
                    "handshake_timeout", "send_timeout", "max_frame_bytes", "threads")
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in positive and not value > 0:
                raise ConfigError(f"{f.name.replace('_', '-')} must be > 0 (got {value})")
        if self.burst_seconds < 0:
            raise ConfigError(f"burst-seconds must be ≥ 0 (got {self.burst_seconds})")
        if self.max_frame_bytes % 2:
            raise ConfigError("max-frame-bytes must be even (16-bit samples)")
        if self.token is not None and not self.token.strip():
            raise ConfigError("token must not be empty")
        self.allowed_origins = [o.rstrip("/").lower() for o in self.allowed_origins]
        self.allowed_hosts = [h.rstrip(".").lower() for h in self.allowed_hosts]

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


def resolve_token(flag: str | None) -> str | None:
    """``--token`` wins over the ``EMOVOX_TOKEN`` environment variable."""
    return flag if flag is not None else (os.environ.get(TOKEN_ENV) or None)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: assume it may be reachable from outside


def is_ip_or_localhost(host: str) -> bool:
    """Names that DNS rebinding cannot produce: an address, or the loopback name."""
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        return host.rstrip(".").lower() == "localhost"


def host_name(host_header: str) -> str:
    """The name part of a ``Host`` header: ``[::1]:8765`` → ``[::1]``, ``A.example.:80`` →
    ``a.example``."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0].rstrip(".") if host.count(":") <= 1 else host


def check_bind(host: str, token: str | None, insecure: bool) -> None:
    """Refuse to expose an unauthenticated service beyond this machine."""
    if not is_loopback(host) and token is None and not insecure:
        raise ConfigError(f"refusing to listen on {host} without a token: pass --token (or set "
                          f"{TOKEN_ENV}), or --insecure to serve anyone who can reach it")
