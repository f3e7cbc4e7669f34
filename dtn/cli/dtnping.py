"""``dtnping ipn:2 [--count N] [--interval S] [--size BYTES] [--timeout S]``: round-trip times through the echo
service every node runs (service 7 on ipn nodes, ``dtn://node/echo`` on dtn nodes, as dtn7 does).

Each ping is a bundle from a temporary endpoint of the local node (``ipn:OWN.<random high service>``) to the
echo endpoint; the echo comes back to that endpoint. Output follows ping(8)/ION's bping: one line per reply,
then a summary. Exit 0 when at least one reply came back, 1 otherwise."""

from __future__ import annotations

import argparse
import asyncio
import math
import secrets
import sys

from dtn.api.client import DtnClient
from dtn.bundle.eid import IpnEid, parse_eid
from dtn.errors import InvalidEid

from .common import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, add_api_arguments, client_from, error, run_client

PROG = "dtnping"
ECHO_SERVICE = 7
MAGIC = b"dtnping"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Measure round-trip times to a node's echo service.")
    parser.add_argument("destination", metavar="NODE",
                        help="node to ping: ipn:2 (its echo service ipn:2.7), dtn://node2/, or a full echo EID")
    parser.add_argument("--count", "-c", type=int, default=4, metavar="N", help="pings to send (default 4; "
                        "0: until interrupted)")
    parser.add_argument("--interval", "-i", type=float, default=1.0, metavar="S",
                        help="seconds between pings (default 1)")
    parser.add_argument("--size", "-s", type=int, default=64, metavar="BYTES", help="payload size (default 64)")
    parser.add_argument("--timeout", "-W", type=float, default=10.0, metavar="S",
                        help="seconds to wait for each reply (default 10)")
    add_api_arguments(parser)
    return parser


def echo_endpoint(text: str) -> str:
    """``ipn:2`` / ``ipn:2.0`` → ``ipn:2.7``; ``dtn://n/`` → ``dtn://n/echo``; an EID with a service: as is."""
    candidate = text.strip()
    if candidate.isdigit():
        candidate = f"ipn:{candidate}"
    if candidate.startswith("ipn:") and "." not in candidate:
        candidate += ".0"
    eid = parse_eid(candidate)
    if isinstance(eid, IpnEid):
        return str(eid.with_service(ECHO_SERVICE)) if eid.is_node_id else str(eid)
    return f"{eid}echo" if eid.is_node_id else str(eid)


def reply_endpoint(own_node_id: str) -> str:
    eid = parse_eid(own_node_id)
    if isinstance(eid, IpnEid):
        return str(eid.with_service(secrets.randbelow(1 << 30) + (1 << 20)))
    return f"{eid}ping-{secrets.token_hex(4)}"


def payload_for(seq: int, nonce: bytes, size: int) -> bytes:
    head = MAGIC + b" " + nonce + b" " + str(seq).encode() + b" "
    return head + b"." * max(0, size - len(head))


def seq_of(payload: bytes, nonce: bytes) -> int | None:
    parts = payload.split(b" ", 3)
    if len(parts) < 3 or parts[0] != MAGIC or parts[1] != nonce or not parts[2].isdigit():
        return None
    return int(parts[2])


async def _ping(args: argparse.Namespace) -> int:
    try:
        target = echo_endpoint(args.destination)
    except InvalidEid as exc:
        error(PROG, str(exc))
        return EXIT_USAGE
    loop = asyncio.get_running_loop()
    async with client_from(args) as client:
        own = (await client.status())["node_id"]
        source = await client.register(reply_endpoint(own))
        nonce = secrets.token_hex(4).encode()
        print(f"PING {target} from {source}: {args.size} bytes", flush=True)
        sent_at: dict[int, float] = {}
        rtts: list[float] = []
        started = loop.time()
        seq = 0
        lifetime_ms = max(1000, int((args.timeout + args.interval) * 1000))
        try:
            while args.count == 0 or seq < args.count:
                begin = loop.time()
                sent_at[seq] = begin
                await client.send(target, payload_for(seq, nonce, args.size), source=source, lifetime_ms=lifetime_ms)
                await _await_reply(client, source, nonce, seq, sent_at, rtts, args.timeout, target)
                seq += 1
                if args.count == 0 or seq < args.count:
                    await asyncio.sleep(max(0.0, args.interval - (loop.time() - begin)))
        except asyncio.CancelledError:
            pass
        finally:
            await client.unregister(source)
        elapsed_ms = (loop.time() - started) * 1000
        _summary(target, seq, rtts, elapsed_ms)
    return EXIT_OK if rtts else EXIT_FAILURE


async def _await_reply(client: DtnClient, endpoint: str, nonce: bytes, seq: int, sent_at: dict[int, float],
                       rtts: list[float], timeout_s: float, target: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = sent_at[seq] + timeout_s
    while (remaining := deadline - loop.time()) > 0:
        delivery = await client.receive(endpoint, timeout_s=remaining)
        if delivery is None:
            break
        await client.acknowledge(delivery)
        got = seq_of(delivery.payload, nonce)
        if got is None or got not in sent_at:
            continue
        rtt_ms = (loop.time() - sent_at.pop(got)) * 1000
        rtts.append(rtt_ms)
        late = "" if got == seq else " (late)"
        print(f"{len(delivery.payload)} bytes from {delivery.source}: seq={got} time={rtt_ms:.3f} ms{late}",
              flush=True)
        if got == seq:
            return
    print(f"no reply from {target}: seq={seq} (timeout {timeout_s:g} s)", flush=True)


def _summary(target: str, sent: int, rtts: list[float], elapsed_ms: float) -> None:
    received = len(rtts)
    loss = 0.0 if sent == 0 else (sent - received) * 100 / sent
    print(f"--- {target} ping statistics ---")
    print(f"{sent} bundles transmitted, {received} received, {loss:.0f}% bundle loss, time {elapsed_ms:.0f} ms")
    if rtts:
        avg = sum(rtts) / received
        mdev = math.sqrt(sum((r - avg) ** 2 for r in rtts) / received)
        print(f"rtt min/avg/max/mdev = {min(rtts):.3f}/{avg:.3f}/{max(rtts):.3f}/{mdev:.3f} ms")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.count < 0 or args.interval < 0 or args.timeout <= 0 or not 0 <= args.size <= 1 << 20:
        parser.error("--count >= 0, --interval >= 0, --timeout > 0 and 0 <= --size <= 1 MiB")
    return run_client(PROG, lambda: _ping(args))


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
