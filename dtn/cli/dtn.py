"""`dtn`: the user's tool box. Each sub-command lives in its own module exposing ``register(subparsers)``,
which adds its parser and sets ``func`` (``args -> int``) as the parser default."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

#: Sub-command modules, in the order ``dtn --help`` lists them. A module not yet written is skipped.
COMMAND_MODULES = [
    "dtn.cli.bundle_cmd",
    "dtn.cli.plan_cmd",
    "dtn.cli.routes_cmd",
    "dtn.cli.node_cmds",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dtn", description="Delay-tolerant networking tools.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        if importlib.util.find_spec(name) is None:
            continue
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    result: int = func(args)
    return result


def run() -> None:
    sys.exit(main())
