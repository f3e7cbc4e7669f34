"""``dtn routes DEST --plan FILE --from ipn:N [--at TIME] [--size BYTES] [--json]``: the ranked CGR routes
from a node to DEST over a contact plan, with hops, contacts, arrival time and capacity left.

TIME is seconds on the plan's timeline (default 0), or an ISO 8601 UTC time for a plan with an epoch.
Asking a running node (``--api``) comes with the node; for now it says so."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from dtn.bundle.eid import IpnEid, parse_eid
from dtn.errors import InvalidEid
from dtn.routing.base import Priority
from dtn.routing.cgr_router import CgrRouter, RouteInfo
from dtn.routing.contacts import ContactPlan, PlanError, format_number
from dtn.routing.plan_fields import iso_to_dtn_ms

from .plan_cmd import read_plan_file


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("routes", help="ranked contact-graph routes to a destination")
    parser.add_argument("destination", help="destination EID or node (ipn:4, ipn:4.1, 4)")
    parser.add_argument("--plan", help="contact plan file (TOML, JSON, ION .rc, HDTN JSON)")
    parser.add_argument("--from", dest="source", help="the node routing, e.g. ipn:1 (with --plan)")
    parser.add_argument("--at", default="0", help="plan time in seconds, or ISO 8601 UTC for an absolute plan")
    parser.add_argument("--size", type=int, default=0, help="bundle size in bytes (for the projected arrival)")
    parser.add_argument("--priority", choices=[p.name.lower() for p in Priority], default="standard")
    parser.add_argument("--count", type=int, default=5, help="routes to list (default 5)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--api", help="ask a running node (not available yet)")
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


def _as_dict(info: RouteInfo) -> dict[str, Any]:
    r = info.route
    return {
        "next_hop": f"ipn:{r.entry_node}.0",
        "nodes": [f"ipn:{n}.0" for n in r.nodes],
        "hops": r.hop_count,
        "arrival_s": r.arrival_s,
        "projected_arrival_s": info.projected_arrival_s,
        "from_s": r.from_s,
        "to_s": r.to_s,
        "capacity_bytes": info.capacity_bytes,
        "confidence": r.confidence,
        "contacts": [
            {"from": c.from_node, "to": c.to_node, "start_s": c.start_s, "end_s": c.end_s,
             "rate_bytes_per_s": c.rate_bytes_per_s}
            for c in r.hops
        ],
    }


def _routes(args: argparse.Namespace) -> int:
    if args.api:
        print("dtn routes: --api needs a running node, which this version does not have yet; "
              "use --plan FILE --from ipn:N", file=sys.stderr)
        return 2
    if not args.plan or not args.source:
        print("dtn routes: give --plan FILE and --from ipn:N", file=sys.stderr)
        return 2
    try:
        plan = read_plan_file(args.plan)
        source = _node(args.source, "--from")
        dest = _node(args.destination, "DEST")
        now = _time(args.at, plan)
    except (PlanError, InvalidEid) as exc:
        print(f"dtn routes: {exc}", file=sys.stderr)
        return 1
    router = CgrRouter(source, plan)
    infos = router.routes(dest, now, count=args.count, size_bytes=args.size,
                          priority=Priority[args.priority.upper()])
    if args.json:
        print(json.dumps({"from": f"ipn:{source}.0", "to": f"ipn:{dest}.0", "at_s": now, "size_bytes": args.size,
                          "routes": [_as_dict(i) for i in infos]}, indent=2))
        return 0 if infos else 3
    if not infos:
        print(f"no route from ipn:{source}.0 to ipn:{dest}.0 at {format_number(now)} s")
        return 3
    print(f"routes from ipn:{source}.0 to ipn:{dest}.0 at {format_number(now)} s"
          + (f" for {args.size} bytes" if args.size else ""))
    for rank, info in enumerate(infos, 1):
        r = info.route
        projected = "unusable" if info.projected_arrival_s is None else f"{format_number(info.projected_arrival_s)} s"
        print(f"{rank}. via ipn:{r.entry_node}.0  {r.hop_count} hops  arrival {format_number(r.arrival_s)} s  "
              f"projected {projected}  capacity {format_number(info.capacity_bytes)} B  "
              f"valid {format_number(r.from_s)}-{format_number(r.to_s)} s")
        for c in r.hops:
            print(f"     {c.from_node} -> {c.to_node}  [{format_number(c.start_s)}, {format_number(c.end_s)}) s  "
                  f"{format_number(c.rate_bytes_per_s)} B/s")
    return 0
