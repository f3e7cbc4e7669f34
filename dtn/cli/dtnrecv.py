"""``dtnrecv --endpoint ipn:2.1 [--out DIR | -] [--count N] [--follow] [--timeout S]``: receive bundles from the
local node and write their payloads.

With ``--out DIR`` each payload becomes a file named after the sender's file name when it is known (the file-name
block ``dtnsend`` adds), else after the bundle ID made filesystem-safe; an existing file is never overwritten
(``name-1.ext``, ``name-2.ext``...). With ``--out -`` (the default) payloads go to standard output. A bundle is
acknowledged to the node only after its payload is written and fsynced, so a crash never loses one. A large
payload streams to a hidden ``.dtn-*.part`` file in DIR that is renamed when complete (never held in memory).
Without ``--count`` or ``--follow`` one bundle is received."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

from dtn.api.client import DtnClient
from dtn.api.models import Delivery
from dtn.bundle.file_name import clean_file_name

from .common import EXIT_FAILURE, EXIT_OK, ProgressBar, add_api_arguments, client_from, error, run_client

PROG = "dtnrecv"
#: Longest single long poll; longer waits are made of several.
POLL_STEP_S = 30.0
SPOOL_COPY_BYTES = 1 << 20


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Receive bundles from the local dtnd and write their "
                                     "payloads.")
    parser.add_argument("--endpoint", required=True, metavar="EID", help="endpoint to receive on, e.g. ipn:2.1")
    parser.add_argument("--out", default="-", metavar="DIR",
                        help="directory to write payloads into; - (default): standard output")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--count", type=int, metavar="N", help="stop after N bundles (default 1)")
    group.add_argument("--follow", "-f", action="store_true", help="keep receiving until interrupted")
    parser.add_argument("--timeout", type=float, metavar="S",
                        help="give up (exit 1) when the bundles have not all arrived after S seconds")
    add_api_arguments(parser)
    return parser


def safe_name(delivery: Delivery) -> str:
    """The sender's file name when known and usable, else the bundle ID with only safe characters."""
    if delivery.file_name:
        with contextlib.suppress(ValueError):
            name = clean_file_name(delivery.file_name)
            if not name.startswith("."):
                return name
    return re.sub(r"[^A-Za-z0-9._+-]", "_", delivery.bundle_id)


def unused_path(directory: Path, name: str) -> Path:
    path = directory / name
    stem, dot, suffix = name.partition(".") if not name.startswith(".") else (name, "", "")
    n = 0
    while path.exists():
        n += 1
        path = directory / (f"{stem}-{n}{dot}{suffix}")
    return path


def write_durably(directory: Path, delivery: Delivery) -> Path:
    """Write the payload to a new file in ``directory`` (or move the file it was spooled to there), fsync it and
    the directory; returns its path."""
    path = unused_path(directory, safe_name(delivery))
    if delivery.payload_path is not None:
        partial = delivery.payload_path
        with partial.open("rb+") as handle:
            os.fsync(handle.fileno())
    else:
        partial = directory / f".{path.name}.part"
        with partial.open("wb") as handle:
            handle.write(delivery.payload)
            handle.flush()
            os.fsync(handle.fileno())
    os.replace(partial, path)
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path


def write_stdout(delivery: Delivery) -> None:
    out = sys.stdout.buffer
    if delivery.payload_path is not None:
        with delivery.payload_path.open("rb") as spooled:
            shutil.copyfileobj(spooled, out, SPOOL_COPY_BYTES)
        delivery.payload_path.unlink()
    else:
        out.write(delivery.payload)
    out.flush()
    with contextlib.suppress(OSError):  # a pipe or a terminal cannot be fsynced
        os.fsync(out.fileno())


async def _receive(args: argparse.Namespace) -> int:
    wanted = None if args.follow else (args.count if args.count is not None else 1)
    directory = None if args.out == "-" else Path(args.out)
    spool_dir = Path(tempfile.gettempdir())  # large payloads for standard output wait there, not in memory
    progress = ProgressBar(PROG, "received")
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
    loop = asyncio.get_running_loop()
    deadline = None if args.timeout is None else loop.time() + args.timeout
    received = 0
    async with client_from(args) as client:
        endpoint = await client.register(args.endpoint)
        while wanted is None or received < wanted:
            step = POLL_STEP_S
            if deadline is not None:
                step = min(step, deadline - loop.time())
                if step <= 0:
                    break
            delivery = await client.receive(endpoint, timeout_s=step, spool_dir=directory or spool_dir,
                                            progress=progress)
            if delivery is None:
                continue
            await _keep(client, delivery, directory)
            received += 1
    if wanted is not None and received < wanted:
        error(PROG, f"received {received} of {wanted} bundle(s) within {args.timeout:g} s")
        return EXIT_FAILURE
    return EXIT_OK


async def _keep(client: DtnClient, delivery: Delivery, directory: Path | None) -> None:
    size = delivery.size_bytes
    if directory is None:
        write_stdout(delivery)
        print(f"{PROG}: {delivery.bundle_id} from {delivery.source}: {size} bytes", file=sys.stderr)
    else:
        path = await asyncio.get_running_loop().run_in_executor(None, write_durably, directory, delivery)
        print(f"{delivery.bundle_id} from {delivery.source}: {size} bytes -> {path}", flush=True)
    await client.acknowledge(delivery)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.count is not None and args.count < 1:
        parser.error("--count must be at least 1")
    return run_client(PROG, lambda: _receive(args))


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
