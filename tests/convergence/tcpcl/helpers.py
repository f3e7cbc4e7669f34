"""Shared test helpers: vectors by name and an in-memory pair of sessions."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from dtn.convergence.tcpcl.session import (
    Event,
    Role,
    SessionConfig,
    StartTls,
    TcpclSession,
    TransferReceived,
)

VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "vectors.json"


@cache
def _vectors() -> dict[str, str]:
    return {v["name"]: v["hex"] for v in json.loads(VECTORS.read_text())}


def vector(name: str) -> bytes:
    return bytes.fromhex(_vectors()[name])


def vector_names(prefix: str) -> list[str]:
    return [n for n in _vectors() if n.startswith(prefix)]


@dataclass
class Pair:
    """Two sessions wired back to back in memory. ``chunk`` splits every delivery (1: byte by byte)."""

    a: TcpclSession
    b: TcpclSession
    now: float = 0.0
    chunk: int | None = None
    events_a: list[Event] = field(default_factory=list)
    events_b: list[Event] = field(default_factory=list)
    wire_a: list[bytes] = field(default_factory=list)  # what a sent, per data_to_send call
    wire_b: list[bytes] = field(default_factory=list)
    auto_accept: bool = True
    via_buffer: bool = False  # deliver through get_buffer/buffer_updated (as the asyncio adapter does)
    tls_ids: dict[str, frozenset[str]] = field(default_factory=dict)

    def pump(self, rounds: int = 1000) -> None:
        for _ in range(rounds):
            moved = False
            for src, dst, wire in ((self.a, self.b, self.wire_a), (self.b, self.a, self.wire_b)):
                data = src.data_to_send()
                if data:
                    moved = True
                    wire.append(data)
                    if not dst.closed:
                        step = self.chunk or len(data)
                        for i in range(0, len(data), step):
                            if self.via_buffer:
                                deliver_in_place(dst, data[i : i + step], self.now)
                            else:
                                dst.receive_data(data[i : i + step], self.now)
            moved |= self._drain_events()
            if not moved:
                return
        raise AssertionError("pair did not settle")

    def _drain_events(self) -> bool:
        moved = False
        for session, sink in ((self.a, self.events_a), (self.b, self.events_b)):
            while (event := session.next_event()) is not None:
                moved = True
                sink.append(event)
                if isinstance(event, StartTls):
                    peer = self.b if session is self.a else self.a
                    session.tls_started(self.now, self.tls_ids.get(peer.node_id, frozenset({peer.node_id})))
                if isinstance(event, TransferReceived) and self.auto_accept:
                    session.finish_transfer(event.transfer_id, None, self.now)
        return moved

    def advance(self, seconds: float) -> None:
        self.now += seconds
        for s in (self.a, self.b):
            deadline = s.next_deadline()
            if deadline is not None and deadline <= self.now:
                s.handle_timer(self.now)
        self.pump()


def deliver_in_place(session: TcpclSession, data: bytes, now: float) -> None:
    """Hand ``data`` to the session the way ``asyncio.BufferedProtocol`` does: into ``get_buffer``'s space."""
    while data:
        space = session.get_buffer(-1)
        n = min(len(space), len(data))
        space[:n] = data[:n]
        session.buffer_updated(n, now)
        data = data[n:]


def make_pair(
    config_a: SessionConfig | None = None,
    config_b: SessionConfig | None = None,
    *,
    chunk: int | None = None,
    via_buffer: bool = False,
    a_id: str = "ipn:1.0",
    b_id: str = "ipn:2.0",
) -> Pair:
    a = TcpclSession(Role.ACTIVE, config_a or SessionConfig(), a_id)
    b = TcpclSession(Role.PASSIVE, config_b or SessionConfig(), b_id)
    pair = Pair(a, b, chunk=chunk, via_buffer=via_buffer)
    a.start(0.0)
    b.start(0.0)
    pair.pump()
    return pair
