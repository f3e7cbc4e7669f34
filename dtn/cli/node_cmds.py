"""``dtn status | neighbours | bundles | routes [--json] [--api ADDR]``: what a running node says about itself.

``dtn routes`` lives in ``dtn.cli.routes_cmd`` (ranked contact-graph routes from the node or a plan file); without
a destination it prints the running node's routing table with ``routing_table`` below. When that module is not
there, ``dtn routes`` here is the routing table alone."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from dtn.api.client import DtnClient

from .common import EXIT_OK, add_api_arguments, client_from, run_client

Query = Callable[[DtnClient, argparse.Namespace], Awaitable[Any]]


def register(subparsers: Any) -> None:
    _command(subparsers, "status", "the running node's status", _status_query, _print_status)
    _command(subparsers, "neighbours", "the running node's neighbours and links", _neighbours_query,
             _print_neighbours, aliases=["neighbors"])
    bundles = _command(subparsers, "bundles", "bundles stored in the running node", _bundles_query, _print_bundles)
    bundles.add_argument("--limit", type=int, default=100, metavar="N", help="list at most N bundles (default 100)")
    if "routes" not in getattr(subparsers, "choices", {}):
        _command(subparsers, "routes", "the running node's routing table", _routes_query, _print_routes)


def _command(subparsers: Any, name: str, help_text: str, query: Query, show: Callable[[Any], None],
             aliases: list[str] | None = None) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(name, help=help_text, aliases=aliases or [])
    parser.add_argument("--json", action="store_true", help="print JSON")
    add_api_arguments(parser)
    parser.set_defaults(func=lambda args: ask_node(args, query, show))
    return parser


def routing_table(args: argparse.Namespace) -> int:
    """``dtn routes [--json]`` without a destination: the node's routing table (CGR next hops, static rules)."""
    return ask_node(args, _routes_query, _print_routes)


def ask_node(args: argparse.Namespace, query: Query, show: Callable[[Any], None]) -> int:
    async def work() -> int:
        async with client_from(args) as client:
            result = await query(client, args)
        if args.json:
            print(json.dumps(result, indent=2, sort_keys=True))
        else:
            show(result)
        return EXIT_OK

    return run_client("dtn", work)


# --- queries -----------------------------------------------------------------------------------------------------


async def _status_query(client: DtnClient, args: argparse.Namespace) -> Any:
    return await client.status()


async def _neighbours_query(client: DtnClient, args: argparse.Namespace) -> Any:
    return await client.neighbours()


async def _bundles_query(client: DtnClient, args: argparse.Namespace) -> Any:
    return await client.bundles(args.limit)


async def _routes_query(client: DtnClient, args: argparse.Namespace) -> Any:
    routes = await client.routes()
    destination = getattr(args, "destination", None)
    if destination:
        routes = [r for r in routes if _matches(str(r.get("destination", "")), destination)]
    return routes


def _matches(pattern: str, destination: str) -> bool:
    if pattern == "*":
        return True
    if pattern.endswith("*"):
        return destination.startswith(pattern[:-1])
    return pattern == destination


# --- text output -------------------------------------------------------------------------------------------------


def _print_status(status: dict[str, Any]) -> None:
    width = max((len(k) for k in status), default=0)
    for key, value in status.items():
        if isinstance(value, list):
            value = ", ".join(str(v) for v in value) or "-"
        elif value is None:
            value = "-"
        print(f"{key:<{width}}  {value}")


def _table(rows: list[dict[str, Any]], columns: list[str], empty: str) -> None:
    if not rows:
        print(empty)
        return
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ",".join(str(v) for v in value) or "-"
    return str(value)


def _print_neighbours(rows: list[dict[str, Any]]) -> None:
    _table(rows, ["node_id", "up", "url", "configured", "link_id"], "no neighbours")


def _print_bundles(rows: list[dict[str, Any]]) -> None:
    _table(rows, ["id", "destination", "size_bytes", "next_hop", "constraints"], "no bundles stored")


def _print_routes(rows: list[dict[str, Any]]) -> None:
    _table(rows, ["destination", "via", "kind", "hops"], "no routes")


def main(argv: list[str] | None = None) -> int:
    """Run one of these commands directly (``python -m dtn.cli.node_cmds status``)."""
    parser = argparse.ArgumentParser(prog="dtn")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
