"""``emovox`` command line: experiment, study, train, predict, stream, sessions, serve, corpus
tools.

One module per command group holds its commands (``COMMANDS``: name → help and arguments);
this module only builds the parser from the groups and dispatches. Machine output is JSON lines
on stdout; progress and warnings go to stderr.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

from emovox.cli import catalog, corpus, experiment, predict, recogniser, serve, sessions, stream
from emovox.cli.common import EXIT_BAD_INPUT, EXIT_CODES, EXIT_OK, report_error
from emovox.errors import EmovoxError

#: The command groups, in ``emovox --help`` order.
GROUPS = (catalog, experiment, predict, stream, sessions, serve, recogniser, corpus)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``emovox`` parser. Every command is listed with its help; its arguments are added for
    ``command`` only (None: for every command), because a command's flag defaults come from
    the code that uses them and ``stream``'s would import PyTorch into ``emovox predict``."""
    parser = argparse.ArgumentParser(prog="emovox", description=__doc__.splitlines()[0],
                                     epilog=EXIT_CODES)
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        for name, (help_line, add_arguments) in group.COMMANDS.items():
            p = sub.add_parser(name, help=help_line, description=help_line, epilog=EXIT_CODES)
            if command is None or command == name:
                add_arguments(p)
    return parser


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    words = [a for a in argv if not a.startswith("-")]  # the global flags take no values
    parser = build_parser(words[0] if words else "")
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
        report_error(str(exc))
        return EXIT_BAD_INPUT
    except BrokenPipeError:  # output piped into e.g. `head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except KeyboardInterrupt:
        print("emovox: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
