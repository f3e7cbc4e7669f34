"""``dtnd``: the node daemon.

    dtnd --node ipn:2 --data-dir DIR --api 127.0.0.1:4243 \\
         --listen tcpcl://127.0.0.1:4557 --listen udp://127.0.0.1:4557 \\
         --neighbour ipn:1=tcpcl://127.0.0.1:4556 --neighbour ipn:3=udp://127.0.0.1:4558 \\
         --route 'ipn:9.*=ipn:3'
    dtnd --config node.toml [flags that override the file]

Logs go to stderr. When the node is up, one line ``dtnd ipn:2.0 ready: api ADDR listen URL ...`` goes to stderr
(scripts wait for it). SIGTERM or SIGINT: stop the API, commit, end sessions, close the store, exit 0.
Exit 2 for a configuration error (the message names the key), 1 when the node cannot start (e.g. a port in use).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from dtn.config import LOG_LEVELS, NodeConfig, config_from_dict, read_toml
from dtn.errors import ConfigError, DtnError

from .allocator import tune_allocator
from .common import EXIT_FAILURE, EXIT_OK, EXIT_USAGE

PROG = "dtnd"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Run a DTN node (Bundle Protocol v7): store, forward and deliver bundles, serve the "
        "application interface. Flags override the values of --config; a list flag given at least once "
        "(--listen, --neighbour, --route) replaces that list of the file.",
        epilog="Prints 'dtnd NODE ready: ...' on stderr once it serves; stops cleanly on SIGTERM/SIGINT.",
    )
    parser.add_argument("--config", type=Path, metavar="FILE", help="node configuration (TOML); see examples/")
    parser.add_argument("--node", metavar="NODE_ID", help="node ID: ipn:N (ipn:N.0) or dtn://name/")
    parser.add_argument("--data-dir", type=Path, metavar="DIR",
                        help="directory for the store and large payloads (default ./dtn-data)")
    parser.add_argument("--store", metavar="URL",
                        help="store URL (default sqlite:///DATA_DIR/store.sqlite; or postgresql+psycopg://...)")
    parser.add_argument("--durability", choices=["power", "process"],
                        help="power: fsync every commit (default); process: survive a crash of dtnd only")
    parser.add_argument("--quota", type=int, metavar="BYTES", help="largest total size of stored bundles")
    parser.add_argument("--api", metavar="ADDR",
                        help="application interface: HOST:PORT or unix:PATH (default 127.0.0.1:4242); "
                        "off loopback a token is required")
    parser.add_argument("--api-token", metavar="TOKEN", help="bearer token required by the API")
    parser.add_argument("--listen", action="append", metavar="URL",
                        help="convergence-layer listener: tcpcl://HOST:PORT or udp://HOST:PORT (repeatable)")
    parser.add_argument("--neighbour", "--neighbor", action="append", metavar="NODE=URL[@RATE]",
                        help="a neighbour and how to reach it, e.g. ipn:1=tcpcl://127.0.0.1:4556; @RATE paces "
                        "sending in bytes/s (repeatable)")
    parser.add_argument("--route", action="append", metavar="PATTERN=VIA",
                        help="static route, e.g. 'ipn:9.*=ipn:3' or '*=ipn:1' (repeatable)")
    parser.add_argument("--plan", type=Path, metavar="FILE", help="contact plan file")
    parser.add_argument("--route-method", choices=["yen", "suppression"],
                        help="how CGR finds alternative routes: yen (ION 4, default) or suppression (classic CGR)")
    parser.add_argument("--fragment-payload", type=int, metavar="BYTES",
                        help="send application payloads larger than BYTES as fragments of BYTES made here "
                        "(default 16 MiB; 0: never, a larger payload then goes as one bundle written to the store "
                        "as it arrives, up to --max-bundle)")
    parser.add_argument("--max-bundle", type=int, metavar="BYTES",
                        help="largest bundle taken from a TCPCL peer (default 4 GiB); bundles above the in-memory "
                        "threshold (--fragment-payload, or 16 MiB) are written to the store as they arrive")
    parser.add_argument("--log-level", choices=LOG_LEVELS, help="log verbosity (default info)")
    parser.add_argument("--clock-rate", type=float, metavar="R",
                        help="run the DTN clock R times faster than real time (demos; same on every node)")
    parser.add_argument("--epoch", metavar="TIME",
                        help="DTN time at start with --clock-rate, ISO 8601 UTC (e.g. 2031-05-12T00:00Z)")
    return parser


def _pair(text: str, flag: str, example: str) -> tuple[str, str]:
    left, sep, right = text.partition("=")
    if not sep or not left.strip() or not right.strip():
        raise ConfigError(f"{flag} {text!r}: expected {example}")
    return left.strip(), right.strip()


def _override(raw: dict[str, Any], table: str, values: dict[str, Any]) -> None:
    """Set the given (non-None) values in ``raw[table]``; a table that is not a table is left for the
    validation to report."""
    given = {k: v for k, v in values.items() if v is not None}
    if not given:
        return
    current = raw.setdefault(table, {})
    if isinstance(current, dict):
        current.update(given)


#: Flags that set a top-level configuration key as they are: (argparse destination, key).
FLAG_KEYS = (
    ("log_level", "log_level"),
    ("clock_rate", "clock_rate"),
    ("epoch", "epoch"),
    ("fragment_payload", "fragment_payload_bytes"),
    ("route_method", "route_method"),
    ("max_bundle", "max_bundle_bytes"),
)


def raw_config(args: argparse.Namespace) -> tuple[dict[str, Any], Path]:
    """The configuration as a TOML-shaped dict: the file's values, then the flags over them; and the directory
    relative paths of the file are taken from."""
    raw: dict[str, Any] = {}
    base_dir = Path.cwd()
    if args.config is not None:
        path: Path = args.config
        raw = read_toml(path)
        base_dir = path.resolve().parent
    if args.node is not None:
        raw["node_id"] = args.node
    if args.data_dir is not None:
        raw["data_dir"] = str(args.data_dir.resolve())
    if args.plan is not None:
        raw["plan"] = str(args.plan.resolve())
    for flag, key in FLAG_KEYS:
        value = getattr(args, flag)
        if value is not None:
            raw[key] = value
    if args.listen:
        raw["listen"] = list(args.listen)
    _override(raw, "store", {"url": args.store, "durability": args.durability, "quota_bytes": args.quota})
    _override(raw, "api", {"bind": args.api, "token": args.api_token})
    if args.neighbour:
        neighbours = []
        for text in args.neighbour:
            node, url = _pair(text, "--neighbour", "NODE=URL, e.g. ipn:1=tcpcl://127.0.0.1:4556")
            entry: dict[str, Any] = {"node_id": node, "url": url}
            url_part, at, rate = url.rpartition("@")
            if at and rate.replace(".", "", 1).isdigit():
                entry["url"], entry["rate_bytes_per_s"] = url_part, float(rate)
            neighbours.append(entry)
        raw["neighbour"] = neighbours
    if args.route:
        raw["route"] = [
            dict(zip(("destination", "via"), _pair(text, "--route", "PATTERN=VIA, e.g. 'ipn:9.*=ipn:3'"), strict=True))
            for text in args.route
        ]
    if "node_id" not in raw:
        raise ConfigError("node_id: missing (give --node ipn:N or node_id in --config FILE)")
    return raw, base_dir


def load(args: argparse.Namespace) -> NodeConfig:
    raw, base_dir = raw_config(args)
    try:
        return config_from_dict(raw, base_dir=base_dir)
    except ConfigError as exc:
        if args.config is not None:
            raise ConfigError(f"{args.config}: {exc}") from exc
        raise


def ready_line(node_id: str, api: str, listening: list[str], neighbours: list[str]) -> str:
    parts = [f"{PROG} {node_id} ready: api {api}"]
    if listening:
        parts.append("listen " + " ".join(listening))
    if neighbours:
        parts.append("neighbours " + " ".join(neighbours))
    return ", ".join(parts)


async def serve(config: NodeConfig) -> int:
    from dtn.api.server import ApiServer
    from dtn.node import Node

    log = logging.getLogger("dtn.dtnd")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    node = Node(config)
    api = ApiServer(node, config.api.bind, token=config.api.token)
    try:
        await node.start()
    except (OSError, DtnError) as exc:
        print(f"{PROG}: cannot start node {config.node_id}: {exc}", file=sys.stderr)
        with contextlib.suppress(Exception):
            await node.stop()
        return EXIT_FAILURE
    try:
        address = await api.start()
    except OSError as exc:
        print(f"{PROG}: cannot serve the API on {config.api.bind}: {exc.strerror or exc}", file=sys.stderr)
        await node.stop()
        return EXIT_FAILURE
    neighbours = [f"{n.node_id}={n.url}" for n in config.neighbours]
    print(ready_line(node.node_id, address, list(node.listening), neighbours), file=sys.stderr, flush=True)
    # What start-up made (modules, the store's engine, the API's application) lives as long as the process: the
    # cyclic garbage collector need not scan it again at each full collection.
    gc.freeze()
    await stop.wait()
    log.info("stopping")
    await api.stop()
    await node.stop()
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = load(args)
    except ConfigError as exc:
        print(f"{PROG}: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    logging.basicConfig(
        stream=sys.stderr,
        level=getattr(logging, config.log_level.upper()),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    tune_allocator()  # bundle-sized buffers reused, not faulted in afresh each time
    try:
        return asyncio.run(serve(config))
    except KeyboardInterrupt:
        return EXIT_OK


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
