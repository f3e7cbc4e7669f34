"""``dtnsend --to ipn:2.1 [FILE | -] [--lifetime 1h] [--report delivered] [--wait]``: send a file (or stdin) as
one bundle through the local node; prints the bundle ID once the node has stored it.

The payload is the file's raw bytes; the file's base name travels in the file-name extension block (type 240,
see ``dtn.bundle.file_name``), which ION's ``bprecvfile`` and HDTN's ``bpreceivefile`` ignore. ``--wait`` asks
for a delivery report (and a deletion report) and waits for it: exit 0 when delivered, 1 when deleted or on
timeout."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from dtn.api.client import DtnClient
from dtn.api.models import PRIORITIES, REPORT_KINDS, parse_duration_ms

from .common import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    ProgressBar,
    add_api_arguments,
    client_from,
    error,
    run_client,
)

PROG = "dtnsend"
STDIN_CHUNK_BYTES = 1 << 20
#: Longest single report wait the API allows; longer waits are made of several.
MAX_WAIT_STEP_S = 300.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Send a file as one bundle through the local dtnd.")
    parser.add_argument("file", nargs="?", default="-", metavar="FILE",
                        help="file to send; - or nothing: standard input")
    parser.add_argument("--to", required=True, metavar="EID", help="destination endpoint, e.g. ipn:2.1")
    parser.add_argument("--lifetime", default="1d", metavar="DURATION",
                        help="bundle lifetime: 90 (s), 30s, 10m, 1h, 2d (default 1d)")
    parser.add_argument("--report", action="append", choices=REPORT_KINDS, default=[],
                        help="request a status report (repeatable)")
    parser.add_argument("--report-to", metavar="EID", help="where reports go (default this node)")
    parser.add_argument("--priority", choices=[*PRIORITIES, "0", "1", "2"], default="normal",
                        help="bulk, normal (default) or expedited")
    parser.add_argument("--hop-limit", type=int, metavar="N", help="hop limit (1-255)")
    parser.add_argument("--source", metavar="EID", help="source endpoint (default the node ID)")
    parser.add_argument("--name", metavar="NAME", help="file name to send (default the file's base name)")
    parser.add_argument("--wait", action="store_true", help="wait for the delivery report")
    parser.add_argument("--timeout", type=float, metavar="S",
                        help="with --wait: give up after S seconds (default: the bundle's lifetime)")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    add_api_arguments(parser)
    return parser


async def _stdin_chunks() -> AsyncIterator[bytes]:
    loop = asyncio.get_running_loop()
    fd = sys.stdin.fileno()
    while True:
        chunk = await loop.run_in_executor(None, os.read, fd, STDIN_CHUNK_BYTES)
        if not chunk:
            return
        yield chunk


async def _send(args: argparse.Namespace, lifetime_ms: int) -> int:
    reports = set(args.report)
    if args.wait:
        reports |= {"delivered", "deleted"}
    priority = PRIORITIES.get(args.priority, None)
    options = {
        "lifetime_ms": lifetime_ms,
        "reports": reports,
        "report_to": args.report_to,
        "priority": int(args.priority) if priority is None else priority,
        "hop_limit": args.hop_limit,
        "source": args.source,
    }
    async with client_from(args) as client:
        if args.file == "-":
            bundle_id = await client.send(args.to, _stdin_chunks(), file_name=args.name, **options)
        else:
            path = Path(args.file)
            if not path.exists() or path.is_dir():
                error(PROG, f"{path}: no such file")
                return EXIT_USAGE
            progress = ProgressBar(PROG, "sent", enabled=not args.quiet)
            bundle_id = await client.send_file(args.to, path, progress=progress, file_name=args.name, **options)
        print(bundle_id, flush=True)
        if not args.wait:
            return EXIT_OK
        timeout_s = args.timeout if args.timeout is not None else lifetime_ms / 1000
        return await _wait(client, bundle_id, timeout_s)


async def _wait(client: DtnClient, bundle_id: str, timeout_s: float) -> int:
    """Wait for the delivery report, or a deletion report, of ``bundle_id``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while (remaining := deadline - loop.time()) > 0:
        step = min(remaining, MAX_WAIT_STEP_S)
        waits = {
            asyncio.create_task(client.wait_report(bundle_id, kind, step)): kind for kind in ("delivered", "deleted")
        }
        pending = set(waits)
        found: tuple[str, dict[str, Any]] | None = None
        try:
            while pending and found is None:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    report = task.result()
                    if report is not None:
                        found = (waits[task], report)
        finally:
            for task in pending:
                task.cancel()
        if found is None:
            continue
        kind, report = found
        if kind == "delivered":
            when = report["delivered"]["time_ms"]
            print(f"{PROG}: {bundle_id} delivered" + (f" at DTN time {when} ms" if when else ""), file=sys.stderr)
            return EXIT_OK
        error(PROG, f"{bundle_id} deleted before delivery: {report['reason']}")
        return EXIT_FAILURE
    error(PROG, f"no delivery report for {bundle_id} within {timeout_s:g} s")
    return EXIT_FAILURE


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        lifetime_ms = parse_duration_ms(args.lifetime)
    except ValueError as exc:
        parser.error(f"--lifetime: {exc}")
    return run_client(PROG, lambda: _send(args, lifetime_ms))


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
