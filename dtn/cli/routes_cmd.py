"""``dtn routes``: contact-graph routes and the routing table.

    dtn routes DEST [--at TIME] [--size BYTES] [--json] [--api ADDR]   ranked routes from the running node
    dtn routes DEST --plan FILE --from ipn:N [--at TIME] ...          ranked routes straight from a plan file
    dtn routes [--json] [--api ADDR]                                  the running node's routing table

Each route shows its next hop, hops, best-case and projected arrival (for a bundle of ``--size`` bytes),
capacity left and validity, then its contacts. TIME is seconds on the plan's timeline (default: now for a node,
0 for a file), ``+SECONDS`` from now (node), or ISO 8601 UTC (a node, or a plan with an epoch).

Exit status: 0 routes found; with ``--plan``, 3 when there is no route; asking a node, 1 when there is no
route and 3 when no node answers."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from dtn.bundle.eid import IpnEid, parse_eid
from dtn.errors import InvalidEid
from dtn.routing.base import Priority
from dtn.routing.cgr_router import CgrRouter
from dtn.routing.contacts import ContactPlan, PlanError, format_number
from dtn.routing.plan_fields import dtn_ms_to_iso, iso_to_dtn_ms
from dtn.routing.plan_router import route_info_to_json

from .plan_cmd import read_plan_file

EXIT_NO_ROUTE_PLAN = 3


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("routes", help="ranked contact-graph routes to a destination, or the routing "
                                   "table of the running node")
    parser.add_argument("destination", nargs="?", default=None,
                        help="destination EID or node (ipn:4, ipn:4.1, 4); none: the node's routing table")
    parser.add_argument("--plan", help="contact plan file (TOML, JSON, ION .rc, HDTN JSON) instead of the node")
    parser.add_argument("--from", dest="source", help="the node routing, e.g. ipn:1 (with --plan)")
    parser.add_argument("--at", default=None,
                        help="plan time in seconds, +SECONDS from now (node), or ISO 8601 UTC (default: now, or 0 "
                        "with --plan)")
    parser.add_argument("--size", type=int, default=0, help="bundle size in bytes (for the projected arrival)")
    parser.add_argument("--priority", choices=[p.name.lower() for p in Priority], default="standard")
    parser.add_argument("--count", type=int, default=5, help="routes to list (default 5)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--api", metavar="ADDR", default=None,
                        help="the node's API: HOST:PORT or unix:PATH (default $DTN_API or 127.0.0.1:4242)")
    parser.add_argument("--token", default=None, help="bearer token for the node's API (default $DTN_API_TOKEN)")
    parser.set_defaults(func=_routes)


def _node(text: str, what: str) -> int:
    text = text.strip()
    if text.isdigit():
        return int(text)
    eid = parse_eid(text if text.count(".") or not text.startswith("ipn:") else text + ".0")
    if not isinstance(eid, IpnEid):
        raise InvalidEid(f"{what} must be an ipn node (CGR routes ipn nodes): {text}")
    return eid.node


def _time(text: str, plan: ContactPlan) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    if plan.epoch_dtn_ms is None:
        raise PlanError(f"--at {text!r}: this plan has relative times; give seconds", field="--at")
    try:
        return (iso_to_dtn_ms(text) - plan.epoch_dtn_ms) / 1000
    except ValueError:
        raise PlanError(f"--at {text!r}: not seconds nor an ISO 8601 time", field="--at") from None


def _routes(args: argparse.Namespace) -> int:
    if args.plan:
        return _from_plan_file(args)
    if args.source:
        print("dtn routes: --from goes with --plan FILE (a running node routes from itself)", file=sys.stderr)
        return 2
    from . import node_cmds

    if args.destination is None:
        return node_cmds.routing_table(args)
    return _from_node(args)


def _from_plan_file(args: argparse.Namespace) -> int:
    if not args.source or args.destination is None:
        print("dtn routes: with --plan FILE give DEST and --from ipn:N", file=sys.stderr)
        return 2
    try:
        plan = read_plan_file(args.plan)
        source = _node(args.source, "--from")
        dest = _node(args.destination, "DEST")
        now = _time(args.at if args.at is not None else "0", plan)
    except (PlanError, InvalidEid) as exc:
        print(f"dtn routes: {exc}", file=sys.stderr)
        return 1
    router = CgrRouter(source, plan)
    infos = router.routes(dest, now, count=args.count, size_bytes=args.size,
                          priority=Priority[args.priority.upper()])
    doc = {"from": f"ipn:{source}.0", "to": f"ipn:{dest}.0", "at_s": now, "size_bytes": args.size,
           "routes": [route_info_to_json(i, plan.epoch_dtn_ms) for i in infos]}
    if plan.epoch_dtn_ms is not None:
        doc["origin_dtn_ms"] = plan.epoch_dtn_ms
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print_routes(doc)
    return 0 if infos else EXIT_NO_ROUTE_PLAN


def _from_node(args: argparse.Namespace) -> int:
    from .common import EXIT_FAILURE, EXIT_OK, client_from, run_client

    async def work() -> int:
        async with client_from(args) as client:
            doc = await client.plan_routes(args.destination, at=args.at, size_bytes=args.size, count=args.count,
                                           priority=args.priority)
        if args.json:
            print(json.dumps(doc, indent=2))
        else:
            if not doc.get("plan_loaded", True):
                print(f"the node at {client.address} has no contact plan (dtn plan load FILE)")
            print_routes(doc)
        return EXIT_OK if doc["routes"] else EXIT_FAILURE

    return run_client("dtn routes", work)


def _utc(doc: dict[str, Any], key: str) -> str:
    value = doc.get(key)
    return f" ({dtn_ms_to_iso(value)})" if isinstance(value, int) else ""


def print_routes(doc: dict[str, Any]) -> None:
    """The ranked routes of a ``dtn routes`` JSON document as text."""
    routes = doc["routes"]
    at = f"{format_number(doc['at_s'])} s" + _utc(doc, "at_dtn_ms")
    if not routes:
        print(f"no route from {doc['from']} to {doc['to']} at {at}")
        return
    print(f"routes from {doc['from']} to {doc['to']} at {at}"
          + (f" for {doc['size_bytes']} bytes" if doc.get("size_bytes") else ""))
    for rank, r in enumerate(routes, 1):
        projected = r["projected_arrival_s"]
        shown = "unusable" if projected is None else f"{format_number(projected)} s"
        print(f"{rank}. via {r['next_hop']}  {r['hops']} hops  arrival {format_number(r['arrival_s'])} s"
              f"{_utc(r, 'arrival_dtn_ms')}  projected {shown}  capacity {format_number(r['capacity_bytes'])} B  "
              f"valid {format_number(r['from_s'])}-{format_number(r['to_s'])} s")
        for c in r["contacts"]:
            print(f"     {c['from']} -> {c['to']}  [{format_number(c['start_s'])}, {format_number(c['end_s'])}) s  "
                  f"{format_number(c['rate_bytes_per_s'])} B/s")
