"""``emovox serve``: the HTTP + WebSocket service and the live microphone page."""

from __future__ import annotations

import argparse
import os

from emovox.cli.common import EXIT_OK, Command, default, emit
from emovox.errors import EmovoxError


def cmd_serve(args: argparse.Namespace) -> int:
    from emovox.serving.model_dir import resolve_model
    from emovox.serving.server import serve
    from emovox.serving.settings import Settings, check_bind, resolve_token

    token = resolve_token(args.token)
    check_bind(args.host, token, args.insecure)
    settings = Settings(token=token, threads=args.threads, max_streams=args.max_streams,
                        max_upload_mb=args.max_upload_mb,
                        max_stream_seconds=args.max_stream_seconds,
                        idle_timeout=args.idle_timeout, max_frame_bytes=args.max_frame_bytes,
                        allowed_origins=args.allowed_origins,
                        allowed_hosts=args.allowed_hosts, body_timeout=args.body_timeout,
                        max_speakers=args.max_speakers, speaker_ttl=args.speaker_ttl)
    if args.workers < 1:
        raise EmovoxError(f"--workers must be ≥ 1 (got {args.workers})")
    serve(resolve_model(args.model), settings, args.host, args.port, args.workers,
          on_ready=lambda url: emit({"serving": url, "workers": args.workers,
                                     "auth": token is not None}))
    return EXIT_OK


def _arguments(p: argparse.ArgumentParser) -> None:
    from emovox.serving.server import serve
    from emovox.serving.settings import Settings

    def setting(name: str):
        return default(Settings, name)

    p.add_argument("--model", help="model directory or a bundled model's name (default, the "
                   "default; gru); streams need a streamable one, see `emovox models`")
    p.add_argument("--host", default=default(serve, "host"),
                   help="address to bind (default %(default)s, loopback; any other needs "
                   "--token or --insecure)")
    p.add_argument("--port", type=int, default=default(serve, "port"),
                   help="port (default %(default)s; 0 picks a free one)")
    p.add_argument("--token", help="require this bearer token (default: $EMOVOX_TOKEN)")
    p.add_argument("--insecure", action="store_true",
                   help="allow a non-loopback address without a token")
    p.add_argument("--workers", type=int, default=min(os.cpu_count() or 1, 4),
                   help="worker processes (default: cores, at most 4)")
    p.add_argument("--threads", type=int, default=setting("threads"),
                   help="torch threads per worker (default %(default)s)")
    p.add_argument("--max-streams", type=int, default=setting("max_streams"),
                   help="concurrent streams, all workers together (default %(default)s)")
    p.add_argument("--max-upload-mb", type=float, default=setting("max_upload_mb"),
                   help="largest POST body (default %(default)g MB)")
    p.add_argument("--max-stream-seconds", type=float, default=setting("max_stream_seconds"),
                   help="close a stream after this long (code 4413; default %(default)g s)")
    p.add_argument("--idle-timeout", type=float, default=setting("idle_timeout"),
                   help="close a stream that sent nothing for this long (code 4408; default "
                   "%(default)g s)")
    p.add_argument("--max-frame-bytes", type=int, default=setting("max_frame_bytes"),
                   help="largest PCM frame (default %(default)s bytes)")
    p.add_argument("--allowed-origins", nargs="+", metavar="ORIGIN",
                   default=setting("allowed_origins"),
                   help="browser origins allowed to stream besides the service's own")
    p.add_argument("--allowed-hosts", nargs="+", metavar="NAME",
                   default=setting("allowed_hosts"),
                   help="host names served besides addresses and localhost (Host header)")
    p.add_argument("--body-timeout", type=float, default=setting("body_timeout"),
                   help="seconds a request body may take to arrive (else 408; default "
                   "%(default)g s)")
    p.add_argument("--max-speakers", type=int, default=setting("max_speakers"), help="enrolled "
                   "speakers kept, all workers together (507 beyond; default %(default)s)")
    p.add_argument("--speaker-ttl", type=float, default=setting("speaker_ttl"), help="forget an "
                   "enrolled speaker unused for this long (default %(default)g s)")
    p.set_defaults(run=cmd_serve)


COMMANDS: dict[str, Command] = {
    "serve": ("HTTP + WebSocket service and live microphone page", _arguments),
}
