"""``dtn plan show FILE``, ``dtn plan convert IN OUT`` and ``dtn plan load FILE [--api ADDR]``: read, summarise
and convert contact plans (our TOML/JSON, ION .rc, HDTN JSON), and replace the plan of a running node."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from dtn.routing.contacts import ContactPlan, PlanError, format_number
from dtn.routing.plan_fields import dtn_ms_to_iso
from dtn.routing.plan_files import FORMATS, detect_format, format_plan, parse_plan
from dtn.routing.plan_hdtn import unusable_contacts


def read_plan_file(path: str, fmt: str | None = None) -> ContactPlan:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise PlanError(f"cannot read the plan: {exc.strerror}", source=path) from None
    return parse_plan(text, fmt, source=path)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("plan", help="show or convert a contact plan")
    sub = parser.add_subparsers(dest="plan_command", metavar="ACTION", required=True)
    show = sub.add_parser("show", help="summarise a contact plan and list its contacts")
    show.add_argument("file")
    show.add_argument("--format", choices=FORMATS, help="the file's format (default: from its name)")
    show.add_argument("--limit", type=int, default=50, help="contacts to list (default 50; 0: all)")
    show.set_defaults(func=_show)
    convert = sub.add_parser("convert", help="convert a plan between formats (toml, json, ion, hdtn)")
    convert.add_argument("input")
    convert.add_argument("output", help="output file, or - for standard output")
    convert.add_argument("--from", dest="from_format", choices=FORMATS, help="input format (default: from name)")
    convert.add_argument("--to", dest="to_format", choices=FORMATS, help="output format (default: from name)")
    convert.set_defaults(func=_convert)
    load = sub.add_parser("load", help="replace the contact plan of the running node (bundles are routed again)")
    load.add_argument("file")
    load.add_argument("--format", choices=FORMATS, help="the file's format (default: from its name and content)")
    load.add_argument("--json", action="store_true", help="print the node's answer as JSON")
    load.add_argument("--api", metavar="ADDR", default=None,
                      help="the node's API: HOST:PORT or unix:PATH (default $DTN_API or 127.0.0.1:4242)")
    load.add_argument("--token", default=None, help="bearer token for the node's API (default $DTN_API_TOKEN)")
    load.set_defaults(func=_load)


def _show(args: argparse.Namespace) -> int:
    try:
        plan = read_plan_file(args.file, args.format)
    except PlanError as exc:
        print(f"dtn plan: {exc}", file=sys.stderr)
        return 1
    span = plan.span_s()
    print(f"plan: {args.file}")
    print(f"epoch: {dtn_ms_to_iso(plan.epoch_dtn_ms) if plan.epoch_dtn_ms is not None else 'none (relative times)'}")
    print(f"nodes: {len(plan.nodes())} ({', '.join(str(n) for n in plan.nodes()[:20])}"
          f"{', ...' if len(plan.nodes()) > 20 else ''})")
    print(f"contacts: {len(plan.contacts)}, ranges: {len(plan.ranges)}")
    if span is not None:
        print(f"span: {format_number(span[0])} s to {format_number(span[1])} s")
    unusable = unusable_contacts(plan)
    if unusable:
        print(f"unusable (no range at their start): {len(unusable)} contacts")
    for note in plan.notes:
        print(f"note: {note}")
    limit = len(plan.contacts) if args.limit == 0 else args.limit
    print(f"{'from':>6} {'to':>6} {'start_s':>10} {'end_s':>10} {'rate B/s':>12} {'conf':>5}")
    for c in sorted(plan.contacts, key=lambda c: (c.start_s, c.from_node, c.to_node))[:limit]:
        print(f"{c.from_node:>6} {c.to_node:>6} {format_number(c.start_s):>10} {format_number(c.end_s):>10} "
              f"{format_number(c.rate_bytes_per_s):>12} {c.confidence:>5.2f}")
    if limit < len(plan.contacts):
        print(f"... {len(plan.contacts) - limit} more (--limit 0 lists all)")
    return 0


def _convert(args: argparse.Namespace) -> int:
    try:
        plan = read_plan_file(args.input, args.from_format)
        to_format = args.to_format or (detect_format(args.output) if args.output != "-" else None)
        if to_format is None:
            raise PlanError("give --to FORMAT when writing to standard output", source="-")
        text = format_plan(plan, to_format)
    except PlanError as exc:
        print(f"dtn plan: {exc}", file=sys.stderr)
        return 1
    for note in plan.notes:
        print(f"note: {note}", file=sys.stderr)
    if to_format == "hdtn":
        dropped = unusable_contacts(plan)
        if dropped:
            print(f"note: {len(dropped)} contacts without a range are left out (HDTN needs an OWLT per contact)",
                  file=sys.stderr)
    if args.output == "-":
        sys.stdout.write(text)
        return 0
    try:
        Path(args.output).write_text(text)
    except OSError as exc:
        print(f"dtn plan: cannot write {args.output}: {exc.strerror}", file=sys.stderr)
        return 1
    print(f"wrote {args.output} ({to_format}, {len(plan.contacts)} contacts, {len(plan.ranges)} ranges)",
          file=sys.stderr)
    return 0


def _load(args: argparse.Namespace) -> int:
    """Send the file's text to the node, which parses it (errors name the file, line and field) and routes over
    it from now on; a relative plan starts when the node loads it."""
    from dtn.api.client import DtnClient

    from .common import EXIT_OK, client_from, run_client

    try:
        text = Path(args.file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        detail = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        print(f"dtn plan: {args.file}: cannot read the plan: {detail}", file=sys.stderr)
        return 1

    async def work() -> int:
        client: DtnClient
        async with client_from(args) as client:
            summary = await client.load_plan(text, args.format, name=args.file)
        if args.json:
            print(json.dumps(summary, indent=2, sort_keys=True))
            return EXIT_OK
        print(f"loaded {args.file} ({summary['format']}): {summary['contacts']} contacts, {summary['ranges']} "
              f"ranges, nodes {', '.join(str(n) for n in summary['nodes']) or '-'}")
        origin = "starts now (relative times)" if summary["relative"] else f"time 0 is {summary['origin_utc']}"
        print(f"plan {origin}")
        for row in summary["scheduled_neighbours"]:
            state = "in contact" if row["in_contact"] else "waiting for its next contact"
            print(f"neighbour {row['node_id']}: {row['contacts']} contacts, {state}")
        for note in summary["notes"]:
            print(f"note: {note}")
        return EXIT_OK

    return run_client("dtn plan", work)
