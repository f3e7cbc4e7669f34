"""What every client command shares: the API address (``--api`` or ``$DTN_API``), the token, exit codes, and one
line instead of a traceback when the node is not running or refuses."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable

from dtn.api.client import ApiError, DtnClient, NodeNotRunning, default_address
from dtn.api.models import API_ENV, TOKEN_ENV
from dtn.errors import DtnError

#: Transfers shorter than this get no progress bar.
PROGRESS_MIN_BYTES = 1 << 20


class ProgressBar:
    """A progress bar on stderr for a long transfer, when stderr is a terminal: ``bar(done_bytes, total_bytes)``
    as the transfer goes; ``verb`` says what is counted ("sent", "received")."""

    def __init__(self, prog: str, verb: str, *, enabled: bool = True) -> None:
        self.prog = prog
        self.verb = verb
        self.enabled = enabled and sys.stderr.isatty()
        self._last = -1

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or total < PROGRESS_MIN_BYTES:
            return
        percent = done * 100 // max(total, 1)
        if percent == self._last:
            return
        self._last = percent
        bar = "#" * (percent // 4)
        print(f"\r{self.prog}: [{bar:<25}] {percent:3d}% {done / 1e6:,.1f}/{total / 1e6:,.1f} MB {self.verb}", end="",
              file=sys.stderr, flush=True)
        if done >= total:
            print(file=sys.stderr)
            self._last = -1

EXIT_OK = 0
#: The operation failed or timed out (no reply, no report, refused by the node).
EXIT_FAILURE = 1
#: Bad command line or configuration.
EXIT_USAGE = 2
#: Nothing answers at the API address.
EXIT_NOT_RUNNING = 3


def add_api_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--api",
        metavar="ADDR",
        default=None,
        help=f"the node's API: HOST:PORT or unix:PATH (default ${API_ENV} or 127.0.0.1:4242)",
    )
    parser.add_argument(
        "--token",
        default=None,
        help=f"bearer token for an API bound off loopback (default ${TOKEN_ENV})",
    )


def client_from(args: argparse.Namespace) -> DtnClient:
    return DtnClient(args.api or default_address(), args.token if args.token is not None
                     else os.environ.get(TOKEN_ENV, ""))


def run_client(prog: str, work: Callable[[], Awaitable[int]]) -> int:
    """Run ``work`` on a fresh event loop; node errors become one line on stderr and an exit code."""
    try:
        return asyncio.run(_guarded(work))
    except KeyboardInterrupt:
        return 130
    except NodeNotRunning as exc:
        error(prog, str(exc))
        return EXIT_NOT_RUNNING
    except ApiError as exc:
        error(prog, f"the node refused: {exc}" if exc.status else str(exc))
        return EXIT_FAILURE
    except BrokenPipeError:  # the reader of our output went away (dtnrecv | head -c 10)
        quiet_broken_pipe()
        return EXIT_OK
    except (DtnError, ValueError, OSError) as exc:
        error(prog, str(exc))
        return EXIT_FAILURE


async def _guarded(work: Callable[[], Awaitable[int]]) -> int:
    return await work()


def error(prog: str, message: str) -> None:
    print(f"{prog}: {message}", file=sys.stderr)


def quiet_broken_pipe() -> None:
    """After stdout was closed by the reader (``dtn bundles | head``): silence the interpreter's last flush."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
