"""``rostra dev-server``: a local Prosody in the foreground, for trying Rostra against a real XMPP server.

When ready it prints one JSON line (``{"xmpp", "ws", "caFile", "domain"}``) and waits; SIGTERM or Ctrl-C stops
Prosody and exits 0. Without Prosody it prints how to install it and exits 2.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from rostra_xmpp._prosody import ProsodyError, ProsodyNotInstalledError, ProsodyServer

__all__ = ["add_command", "main", "run"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_NOT_INSTALLED = 2


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", type=Path, default=None, help="keep config, CA and data here (default: a temp dir)")
    parser.add_argument("--c2s-port", type=int, default=0, help="XMPP client port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--http-port", type=int, default=0, help="HTTP/WebSocket port (default: a free one)")
    parser.set_defaults(func=run)


def add_command(subparsers: Any) -> None:
    """Register ``dev-server`` on an argparse subparsers object (the ``rostra.cli`` entry point)."""
    parser = subparsers.add_parser(
        "dev-server",
        help="run a local Prosody (127.0.0.1 only) and print how to connect to it",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _configure(parser)


def run(args: argparse.Namespace) -> int:
    """Run Prosody until SIGTERM or Ctrl-C; return the exit code (0, 1 when it failed to start, 2 without it)."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    server = ProsodyServer(directory=args.dir, c2s_port=args.c2s_port, http_port=args.http_port)
    try:
        server.start()
        print(json.dumps(server.info()), flush=True)
        while not stop.is_set() and server.running:
            stop.wait(0.5)
        # A Ctrl-C in the terminal reaches Prosody too; give our own handler a moment to see it before blaming Prosody.
        if not stop.wait(1.0):
            print(f"Prosody exited unexpectedly; see {server.log_file}", file=sys.stderr)
            return EXIT_FAILED
    except ProsodyNotInstalledError as error:
        print(error, file=sys.stderr)
        return EXIT_NOT_INSTALLED
    except ProsodyError as error:
        print(error, file=sys.stderr)
        return EXIT_FAILED
    finally:
        server.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m rostra_xmpp.devserver [--dir DIR] [--c2s-port N] [--http-port N]``."""
    parser = argparse.ArgumentParser(prog="rostra dev-server", description=__doc__)
    _configure(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
