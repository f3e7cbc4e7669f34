"""The agent's side of unfragmented bundles larger than memory: ``receive_spooled`` (the bundle is in a file, the
agent sees its head) and forwarding such a bundle with its head rewritten and its payload streamed."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from dtn.agent.actions import Deliver, Transmit
from dtn.agent.agent import AgentConfig, BundleAgent, LargeSubmission
from dtn.agent.registrations import DeliveryMode
from dtn.bundle.blocks import BundleAge, CanonicalBlock, HopCount, PrimaryBlock, payload_block
from dtn.bundle.bundle import Bundle
from dtn.bundle.codec import decode_bundle, encode_bundle
from dtn.bundle.crc import CrcType
from dtn.bundle.eid import IpnEid, parse_eid
from dtn.bundle.flags import BlockFlag, BundleFlag
from dtn.bundle.ids import BundleId
from dtn.bundle.stream import decode_head, encode_bundle_stream
from dtn.convergence.base import RefuseReason
from dtn.routing.static import StaticRouter, rule
from dtn.storage.base import BundleMeta
from dtn.storage.memory import MemoryBundleStore

THRESHOLD = 1000
PAYLOAD = random.Random(5).randbytes(5000)
DTN_MS = 800_000_000_000


def raw_bundle(destination: IpnEid, *extra: CanonicalBlock) -> bytes:
    p = PrimaryBlock(BundleFlag.REPORT_RECEPTION, CrcType.CRC32C, destination, IpnEid(1, 1), IpnEid(1, 0),
                     DTN_MS - 1000, 3, 3_600_000)  # fmt: skip
    blocks = (HopCount(9, 1).block(2), BundleAge(100).block(3), *extra, payload_block(PAYLOAD, crc_type=CrcType.CRC32C))
    return encode_bundle(Bundle(p, blocks))


def relay() -> tuple[BundleAgent, MemoryBundleStore]:
    store = MemoryBundleStore()
    agent = BundleAgent(AgentConfig(parse_eid("ipn:2.0"), reassemble_in_memory_bytes=THRESHOLD), store,
                        StaticRouter([rule("ipn:3.*", "ipn:3.0")]))
    agent.link_up("ipn:3.0", 0.0, DTN_MS)
    return agent, store


def receive(agent: BundleAgent, store: MemoryBundleStore, raw: bytes, at_ms: int = DTN_MS):  # type: ignore[no-untyped-def]
    head = decode_head(raw)
    payload = raw[head.payload_offset : head.payload_end]

    def keep(meta: BundleMeta, rewritten: Bundle | None) -> bool:
        if rewritten is None:
            return store.add_stream(meta, [raw])
        return store.add_stream(meta, encode_bundle_stream(rewritten, head.payload_length, [payload]))

    return agent.receive_spooled(head, keep, 0.0, at_ms, from_node="ipn:1.0")


def actions(agent: BundleAgent) -> list[object]:
    out = []
    while (action := agent.next_action()) is not None:
        out.append(action)
    return out


def test_a_spooled_bundle_is_forwarded_with_its_head_rewritten_and_its_payload_streamed() -> None:
    agent, store = relay()
    raw = raw_bundle(IpnEid(3, 1))
    result = receive(agent, store, raw)
    assert result.accepted
    sends = [a for a in actions(agent) if isinstance(a, Transmit) and a.neighbour == "ipn:3.0"]
    assert len(sends) == 1 and sends[0].data == b"" and sends[0].stream is not None
    stream = sends[0].stream
    stored = store.raw(result.bundle_id)  # type: ignore[arg-type]
    assert stored == raw
    payload = stored[stream.payload_offset : stream.payload_offset + stream.payload_length]
    out = b"".join(encode_bundle_stream(stream.head, stream.payload_length, [payload]))
    assert len(out) == stream.encoded_length
    sent = decode_bundle(out)
    assert bytes(sent.payload) == PAYLOAD
    assert sent.previous_node == parse_eid("ipn:2.0")
    assert sent.hop_count is not None and sent.hop_count.count == 2
    assert sent.bundle_age_ms == 100  # no time passed here
    agent.transfer_done(sends[0].transmission_id, True, 0.0, DTN_MS)
    assert agent.stats.forwarded == 1 and len(store) == 1  # only the reception report (no route) is left


def test_a_spooled_bundle_for_a_local_endpoint_is_delivered_from_the_store() -> None:
    agent, store = relay()
    agent.register("ipn:2.1", DeliveryMode.ACTIVE, 0.0, DTN_MS)
    result = receive(agent, store, raw_bundle(IpnEid(2, 1)))
    assert result.accepted
    delivers = [a for a in actions(agent) if isinstance(a, Deliver)]
    assert delivers == [Deliver("ipn:2.1", result.bundle_id)]  # type: ignore[arg-type]


def test_a_spooled_duplicate_is_refused_as_completed() -> None:
    agent, store = relay()
    raw = raw_bundle(IpnEid(3, 1))
    assert receive(agent, store, raw).accepted
    again = receive(agent, store, raw)
    assert not again.accepted and again.refuse is RefuseReason.COMPLETED


def test_an_expired_spooled_bundle_is_not_kept() -> None:
    agent, store = relay()
    result = receive(agent, store, raw_bundle(IpnEid(3, 1)), at_ms=DTN_MS + 10_000_000)
    assert result.accepted and result.detail == "expired"
    assert result.bundle_id is not None and result.bundle_id not in store


def test_an_unknown_block_that_asks_to_be_discarded_is_removed_before_storing() -> None:
    agent, store = relay()
    unknown = CanonicalBlock(200, 4, BlockFlag.DISCARD_IF_UNPROCESSABLE, CrcType.NONE, b"\x01")
    result = receive(agent, store, raw_bundle(IpnEid(3, 1), unknown))
    assert result.accepted
    kept = decode_bundle(store.raw(result.bundle_id))  # type: ignore[arg-type]
    assert kept.block(200) is None and bytes(kept.payload) == PAYLOAD
    meta = store.get(result.bundle_id)  # type: ignore[arg-type]
    assert meta is not None and meta.size_bytes == len(store.raw(result.bundle_id))  # type: ignore[arg-type]


def test_a_large_bundle_created_here_is_stored_from_the_runtime_file_and_streamed_out() -> None:
    agent, store = relay()
    agent.register("ipn:2.5", DeliveryMode.ACTIVE, 0.0, DTN_MS)
    written: dict[BundleId, bytes] = {}

    def keep_for(submission: LargeSubmission) -> Callable[[BundleMeta], bool]:
        def keep(meta: BundleMeta) -> bool:  # what the runtime does with the file it wrote
            data = b"".join(bytes(c) for c in encode_bundle_stream(submission.head, len(PAYLOAD), [PAYLOAD]))
            assert len(data) == meta.size_bytes
            written[meta.id] = data
            return store.add_stream(meta, [data])
        return keep

    remote = agent.begin_large("ipn:3.1", len(PAYLOAD), 0.0, DTN_MS, file_name="f.bin", hop_limit=5)
    assert len(store) == 0, "nothing is stored before the file is written"
    remote_id = agent.submit_large(remote, keep_for(remote), 0.0, DTN_MS)
    (transmit,) = [a for a in iter(agent.next_action, None) if isinstance(a, Transmit)]
    assert transmit.bundle_id == remote_id and transmit.stream is not None and transmit.data == b""
    sent = decode_bundle(b"".join(bytes(c) for c in encode_bundle_stream(
        transmit.stream.head, transmit.stream.payload_length,
        [written[remote_id][transmit.stream.payload_offset:][: transmit.stream.payload_length]])))
    assert sent.payload == PAYLOAD and not sent.is_fragment and sent.hop_count == HopCount(5, 1)
    local = agent.begin_large("ipn:2.5", len(PAYLOAD), 0.0, DTN_MS)
    local_id = agent.submit_large(local, keep_for(local), 0.0, DTN_MS)
    assert [a for a in iter(agent.next_action, None) if isinstance(a, Deliver)] == [Deliver("ipn:2.5", local_id)]
    assert agent.stats.created == 2
    with pytest.raises(ValueError, match="stored already"):
        agent.submit_large(local, lambda meta: False, 0.0, DTN_MS)
