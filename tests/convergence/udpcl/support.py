"""Shared by the UDP CL and in-memory link tests: a recording bundle sink and bundle-shaped test data."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from dtn.convergence.base import Link, RefuseReason
from tests.vector_data import VECTORS

G1 = VECTORS["gen-bundle-G1-minimal"]
G2 = VECTORS["gen-bundle-G2-ext"]


def cbor_array_of_size(size: int, tag: int = 0) -> bytes:
    """A well-formed CBOR array of exactly ``size`` bytes (what the UDP CL checks a bundle datagram for).

    ``[bstr]`` with the byte string filled with ``tag`` (mod 256) so that datagrams can be told apart.
    """
    if size == 1:
        return b"\x80"
    body = size - 1  # after the one-byte array head 0x81
    for head_len, head_prefix in ((1, None), (2, 0x58), (3, 0x59), (5, 0x5A)):
        length = body - head_len
        if length < 0:
            continue
        if head_prefix is None and length < 24:
            head = bytes([0x40 | length])
        elif head_prefix == 0x58 and 24 <= length < 0x100:
            head = bytes([0x58, length])
        elif head_prefix == 0x59 and 0x100 <= length < 0x10000:
            head = b"\x59" + length.to_bytes(2, "big")
        elif head_prefix == 0x5A and 0x10000 <= length:
            head = b"\x5a" + length.to_bytes(4, "big")
        else:
            continue
        out = b"\x81" + head + bytes([tag % 256]) * length
        assert len(out) == size
        return out
    # sizes where no single head fits exactly (e.g. 26): use [0, bstr] with one more byte
    inner = cbor_array_of_size(size - 1, tag)
    return b"\x82\x00" + inner[1:]


@dataclass
class RecordingSink:
    """The node side of the CL contract: records what arrives; may refuse, fail or stall on purpose."""

    refuse_with: RefuseReason | None = None
    fail_with: Exception | None = None
    hold: asyncio.Event | None = None  # when set, bundle_received waits for it
    received: asyncio.Queue[tuple[Link, bytes]] = field(default_factory=asyncio.Queue)
    ups: list[Link] = field(default_factory=list)
    downs: list[tuple[Link, str]] = field(default_factory=list)
    entered: asyncio.Event = field(default_factory=asyncio.Event)  # set once bundle_received has been called

    async def bundle_received(self, link: Link, data: bytes) -> RefuseReason | None:
        self.entered.set()
        if self.hold is not None:
            await self.hold.wait()
        self.received.put_nowait((link, data))
        if self.fail_with is not None:
            raise self.fail_with
        return self.refuse_with

    def link_up(self, link: Link) -> None:
        self.ups.append(link)

    def link_down(self, link: Link, reason: str) -> None:
        self.downs.append((link, reason))

    async def next(self, timeout_s: float = 5.0) -> tuple[Link, bytes]:
        return await asyncio.wait_for(self.received.get(), timeout_s)
