"""The Bundle Protocol Agent's RFC 9171 §5 procedures, on memory stores under a VirtualClock."""

from __future__ import annotations

import pytest

from dtn.agent.agent import AgentConfig, BundleAgent
from dtn.agent.registrations import DeliveryMode
from dtn.bundle.blocks import CanonicalBlock
from dtn.bundle.codec import decode_bundle, encode_bundle
from dtn.bundle.crc import CrcType
from dtn.bundle.eid import parse_eid
from dtn.bundle.flags import BlockFlag, BlockType, BundleFlag
from dtn.bundle.reasons import StatusReason
from dtn.convergence.base import LinkLimits, RefuseReason
from dtn.errors import InvalidEid, StoreFull
from dtn.routing.static import StaticRouter
from dtn.storage.base import Constraint
from dtn.storage.memory import MemoryBundleStore

from .harness import Net

REPORTS = BundleFlag.REPORT_DELIVERY | BundleFlag.REPORT_FORWARDING | BundleFlag.REPORT_RECEPTION


def line(*, reports: bool = True) -> Net:
    net = Net()
    net.add("ipn:1.0", [("ipn:3.*", "ipn:2.0")])
    net.add("ipn:2.0")
    net.add("ipn:3.0", [("ipn:1.*", "ipn:2.0")])
    net.connect("ipn:1.0", "ipn:2.0")
    net.connect("ipn:2.0", "ipn:3.0")
    net.register("ipn:3.0", "ipn:3.1")
    return net


def test_three_nodes_in_a_line_deliver_with_forwarding_blocks_updated() -> None:
    net = line()
    net.send("ipn:1.0", "ipn:3.1", b"hello mars", hop_limit=5)
    net.run()
    assert net.nodes["ipn:3.0"].inbox == {"ipn:3.1": [b"hello mars"]}
    last_hop = decode_bundle(net.wire[-1][2])
    assert net.wire[-1][:2] == ("ipn:2.0", "ipn:3.0")
    assert last_hop.previous_node == parse_eid("ipn:2.0")
    assert last_hop.hop_count is not None and last_hop.hop_count.count == 2
    # every node forgot the bundle: nothing left in any store
    assert all(len(n.store) == 0 for n in net.nodes.values())


def test_status_reports_reach_the_report_to_endpoint() -> None:
    net = line()
    bundle_id = net.send("ipn:1.0", "ipn:3.1", b"x", flags=REPORTS | BundleFlag.STATUS_TIME_REQUESTED)
    net.run()
    kinds = sorted(
        (r.from_node, name)
        for r in net.nodes["ipn:1.0"].reports
        for name in ("received", "forwarded", "delivered")
        if getattr(r.report, name).asserted
    )
    assert kinds == [
        ("ipn:1.0", "forwarded"),
        ("ipn:2.0", "forwarded"),
        ("ipn:2.0", "received"),
        ("ipn:3.0", "delivered"),
        ("ipn:3.0", "received"),
    ]
    for r in net.nodes["ipn:1.0"].reports:
        assert r.report.subject_id() == bundle_id
        assert r.report.delivered.time_ms is not None or not r.report.delivered.asserted


def test_no_reports_about_reports_nor_unrequested() -> None:
    net = line()
    net.send("ipn:1.0", "ipn:3.1", b"x")
    net.run()
    assert net.nodes["ipn:1.0"].reports == []
    assert all(n.agent.stats.reports_sent == 0 for n in net.nodes.values())


def test_bundle_expires_at_exact_time_with_deletion_report() -> None:
    net = Net()
    net.add("ipn:1.0", [("ipn:9.*", "ipn:2.0")])
    net.add("ipn:2.0")  # no route to ipn:9: contraindicated, waits
    net.connect("ipn:1.0", "ipn:2.0")
    net.send("ipn:1.0", "ipn:9.1", b"x", lifetime_ms=10_000, flags=BundleFlag.REPORT_DELETION)
    net.run()
    relay = net.nodes["ipn:2.0"]
    assert len(relay.store) == 1
    start = net.clock.now()
    net.run(until_s=start + 60)
    assert len(relay.store) == 0
    (deleted,) = [d for d in relay.deleted if d.reason == StatusReason.LIFETIME_EXPIRED]
    (report,) = net.nodes["ipn:1.0"].reports
    assert report.report.deleted.asserted and report.report.reason == StatusReason.LIFETIME_EXPIRED
    # the expiry fired exactly at creation + lifetime (the relay's deadline), not later
    assert net.nodes["ipn:2.0"].agent.next_deadline() is None
    assert deleted.bundle_id.creation_ms + 10_000 <= net.clock.dtn_ms()


def test_expiry_time_is_exact() -> None:
    net = Net()
    node = net.add("ipn:1.0")
    node.agent.submit("ipn:9.1", b"x", net.clock.now(), net.clock.dtn_ms(), lifetime_ms=1_500)
    deadline = node.agent.next_deadline()
    assert deadline == pytest.approx(net.clock.now() + 1.5)
    net.clock.jump_to(deadline - 0.002)
    node.agent.handle_timer(net.clock.now(), net.clock.dtn_ms())
    assert len(node.store) == 1
    net.clock.jump_to(deadline)
    node.agent.handle_timer(net.clock.now(), net.clock.dtn_ms())
    assert len(node.store) == 0


def test_hop_limit_exceeded_deletes_with_reason_9() -> None:
    net = line()
    net.send("ipn:1.0", "ipn:3.1", b"x", hop_limit=1, flags=BundleFlag.REPORT_DELETION)
    net.run()
    assert net.nodes["ipn:3.0"].inbox == {}
    assert [d.reason for d in net.nodes["ipn:2.0"].deleted] == [StatusReason.HOP_LIMIT_EXCEEDED]
    (report,) = net.nodes["ipn:1.0"].reports
    assert report.report.reason == StatusReason.HOP_LIMIT_EXCEEDED


def test_duplicates_are_suppressed() -> None:
    net = line()
    net.send("ipn:1.0", "ipn:3.1", b"once")
    net.run()
    first = net.wire[-1][2]
    result = net.nodes["ipn:3.0"].agent.receive(first, net.clock.now(), net.clock.dtn_ms())
    assert not result.accepted and result.refuse == RefuseReason.COMPLETED
    assert net.nodes["ipn:3.0"].inbox == {"ipn:3.1": [b"once"]}


def test_malformed_bytes_are_refused_with_the_reason() -> None:
    net = line()
    result = net.nodes["ipn:2.0"].agent.receive(b"\x9f\x00\xff", net.clock.now(), net.clock.dtn_ms())
    assert not result.accepted
    assert result.refuse == RefuseReason.NOT_ACCEPTABLE and result.reason == StatusReason.BLOCK_UNINTELLIGIBLE


def _with_unknown_block(net: Net, flags: BlockFlag) -> bytes:
    net.send("ipn:1.0", "ipn:3.1", b"payload", flags=BundleFlag.REPORT_DELETION | BundleFlag.REPORT_RECEPTION)
    action = net.nodes["ipn:1.0"].agent.next_action()
    assert action is not None and hasattr(action, "data")
    bundle = decode_bundle(action.data)  # type: ignore[union-attr]
    unknown = CanonicalBlock(200, bundle.next_block_number(), flags, CrcType.NONE, b"\x01\x02")
    return encode_bundle(bundle.with_extension_block(unknown))


@pytest.mark.parametrize(
    ("flags", "delivered", "reasons"),
    [
        (BlockFlag(0), True, []),
        (BlockFlag.DISCARD_IF_UNPROCESSABLE, True, []),
        # the relay and the destination each report the block they cannot process
        (BlockFlag.REPORT_IF_UNPROCESSABLE, True, [StatusReason.BLOCK_UNSUPPORTED] * 2),
        (BlockFlag.DELETE_BUNDLE_IF_UNPROCESSABLE, False, [StatusReason.BLOCK_UNSUPPORTED]),
    ],
)
def test_unknown_block_flags_are_honoured(flags: BlockFlag, delivered: bool, reasons: list[StatusReason]) -> None:
    net = line()
    raw = _with_unknown_block(net, flags)
    relay = net.nodes["ipn:2.0"]
    result = relay.agent.receive(raw, net.clock.now(), net.clock.dtn_ms(), from_node="ipn:1.0")
    assert result.accepted
    net.run()
    assert (net.nodes["ipn:3.0"].inbox != {}) is delivered
    got = sorted(r.report.reason for r in net.nodes["ipn:1.0"].reports if r.report.reason != StatusReason.NO_INFO)
    assert got == reasons
    if delivered:
        (forwarded,) = [
            b
            for src, dst, data in net.wire
            if (src, dst) == ("ipn:2.0", "ipn:3.0") and str((b := decode_bundle(data)).primary.destination) == "ipn:3.1"
        ]
        has_unknown = forwarded.block(200) is not None
        assert has_unknown is (flags != BlockFlag.DISCARD_IF_UNPROCESSABLE)


def test_proactive_fragmentation_and_reassembly() -> None:
    net = Net()
    net.add("ipn:1.0", [("ipn:3.*", "ipn:2.0")])
    net.add("ipn:2.0")
    net.add("ipn:3.0")
    net.connect("ipn:1.0", "ipn:2.0", limits=LinkLimits(max_bundle_bytes=300))
    net.connect("ipn:2.0", "ipn:3.0", limits=LinkLimits(max_bundle_bytes=250))
    net.register("ipn:3.0", "ipn:3.1")
    payload = bytes(range(256)) * 8
    net.send("ipn:1.0", "ipn:3.1", payload)
    net.run()
    assert net.nodes["ipn:3.0"].inbox == {"ipn:3.1": [payload]}
    assert all(len(data) <= 300 for _, _, data in net.wire)
    assert net.nodes["ipn:3.0"].agent.stats.reassembled == 1
    assert all(len(n.store) == 0 for n in net.nodes.values())


def test_must_not_fragment_is_honoured() -> None:
    net = Net()
    net.add("ipn:1.0")
    net.add("ipn:2.0")
    net.connect("ipn:1.0", "ipn:2.0", limits=LinkLimits(max_bundle_bytes=100))
    net.send("ipn:1.0", "ipn:2.1", bytes(500), flags=BundleFlag.MUST_NOT_FRAGMENT)
    net.run()
    assert net.wire == []
    (meta,) = net.nodes["ipn:1.0"].store.with_constraint(Constraint.CONTRAINDICATED)
    assert meta.constraints & Constraint.FORWARD_PENDING


def test_bundle_waits_for_a_down_link_and_goes_when_it_comes_up() -> None:
    net = line()
    net.disconnect("ipn:2.0", "ipn:3.0")
    net.send("ipn:1.0", "ipn:3.1", b"patience")
    net.run()
    assert net.nodes["ipn:3.0"].inbox == {}
    assert len(net.nodes["ipn:2.0"].store) == 1
    net.connect("ipn:2.0", "ipn:3.0")
    net.run()
    assert net.nodes["ipn:3.0"].inbox == {"ipn:3.1": [b"patience"]}


def test_failed_transmission_is_retried() -> None:
    net = line()
    net.links.discard(("ipn:2.0", "ipn:3.0"))  # the agent still thinks the link is up: the send fails
    net.send("ipn:1.0", "ipn:3.1", b"again")
    net.run()
    assert net.nodes["ipn:2.0"].agent.stats.transmit_failures == 1
    net.links.add(("ipn:2.0", "ipn:3.0"))
    net.run(until_s=net.clock.now() + 10)
    assert net.nodes["ipn:3.0"].inbox == {"ipn:3.1": [b"again"]}


def test_echo_service_answers() -> None:
    net = line()
    net.register("ipn:1.0", "ipn:1.5")
    net.send("ipn:1.0", "ipn:3.7", b"ping", source="ipn:1.5")
    net.run()
    assert net.nodes["ipn:1.0"].inbox == {"ipn:1.5": [b"ping"]}


def test_passive_registration_holds_bundles_until_the_application_attaches() -> None:
    net = line()
    net.register("ipn:3.0", "ipn:3.1", DeliveryMode.PASSIVE)
    net.send("ipn:1.0", "ipn:3.1", b"later")
    net.run()
    assert net.nodes["ipn:3.0"].inbox == {}
    assert len(net.nodes["ipn:3.0"].agent.held_for("ipn:3.1")) == 1
    net.register("ipn:3.0", "ipn:3.1", DeliveryMode.ACTIVE)
    net.run()
    assert net.nodes["ipn:3.0"].inbox == {"ipn:3.1": [b"later"]}
    assert len(net.nodes["ipn:3.0"].store) == 0


def test_unacknowledged_delivery_stays_in_the_store() -> None:
    net = line()
    net.nodes["ipn:3.0"].auto_ack = False
    bundle_id = net.send("ipn:1.0", "ipn:3.1", b"keep")
    net.run()
    meta = net.nodes["ipn:3.0"].store.get(bundle_id)  # type: ignore[arg-type]
    assert meta is not None and meta.constraints == Constraint.LOCAL_ENDPOINT


def test_resume_after_restart_forwards_stored_bundles() -> None:
    net = Net()
    store = MemoryBundleStore()
    first = net.add("ipn:1.0", [("ipn:2.*", "ipn:2.0")], store=store)
    first.agent.submit("ipn:2.1", b"survivor", net.clock.now(), net.clock.dtn_ms())
    assert len(store) == 1
    # a new agent on the same store, as after a crash, with the link now up
    net2 = Net(net.clock)
    node = net2.add("ipn:1.0", [("ipn:2.*", "ipn:2.0")], store=store)
    net2.add("ipn:2.0")
    net2.register("ipn:2.0", "ipn:2.1")
    net2.connect("ipn:1.0", "ipn:2.0")
    assert node.agent.resume(net.clock.now(), net.clock.dtn_ms()) == 1
    net2.run()
    assert net2.nodes["ipn:2.0"].inbox == {"ipn:2.1": [b"survivor"]}


def test_store_full_refuses_with_no_resources() -> None:
    net = Net()
    net.add("ipn:1.0")
    small = net.add("ipn:2.0", quota_bytes=200)
    raw = encode_bundle(decode_bundle(_first_transmission(net, bytes(300))))
    result = small.agent.receive(raw, net.clock.now(), net.clock.dtn_ms())
    assert not result.accepted and result.refuse == RefuseReason.NO_RESOURCES
    with pytest.raises(StoreFull):
        small.agent.submit("ipn:9.1", bytes(300), net.clock.now(), net.clock.dtn_ms())


def _first_transmission(net: Net, payload: bytes) -> bytes:
    net.connect("ipn:1.0", "ipn:2.0")
    net.nodes["ipn:1.0"].agent.submit("ipn:2.1", payload, net.clock.now(), net.clock.dtn_ms())
    action = net.nodes["ipn:1.0"].agent.next_action()
    assert action is not None and hasattr(action, "data")
    return action.data  # type: ignore[union-attr,no-any-return]


def test_submit_rejects_foreign_source_and_null_destination() -> None:
    agent = BundleAgent(AgentConfig(parse_eid("ipn:1.0")), MemoryBundleStore(), StaticRouter([]))
    with pytest.raises(InvalidEid):
        agent.submit("ipn:2.1", b"x", 0.0, 1, source="ipn:2.1")
    with pytest.raises(InvalidEid):
        agent.submit("dtn:none", b"x", 0.0, 1)
    with pytest.raises(InvalidEid):
        BundleAgent(AgentConfig(parse_eid("ipn:1.1")), MemoryBundleStore(), StaticRouter([]))


def test_anonymous_bundles_must_not_fragment_and_request_no_reports() -> None:
    net = Net()
    node = net.add("ipn:1.0")
    node.agent.submit("ipn:9.1", b"x", 0.0, 5, source="dtn:none", flags=BundleFlag.REPORT_DELIVERY)
    (meta,) = node.store.with_constraint(Constraint.CONTRAINDICATED)
    bundle = decode_bundle(node.store.raw(meta.id))
    assert bundle.primary.flags & BundleFlag.MUST_NOT_FRAGMENT
    assert not bundle.primary.flags & BundleFlag.REPORT_DELIVERY


def test_bundle_age_is_carried_forward() -> None:
    net = line()
    net.send("ipn:1.0", "ipn:3.1", b"x")
    action = net.nodes["ipn:1.0"].agent.next_action()
    assert action is not None and hasattr(action, "data")
    bundle = decode_bundle(action.data).with_bundle_age(1_000)  # type: ignore[union-attr]
    relay = net.nodes["ipn:2.0"]
    relay.agent.receive(encode_bundle(bundle), net.clock.now(), net.clock.dtn_ms(), from_node="ipn:1.0")
    net.clock.advance(2.5)
    relay.agent.handle_timer(net.clock.now(), net.clock.dtn_ms())
    relay.agent.retry_contraindicated(net.clock.now(), net.clock.dtn_ms())
    net.run()
    out = decode_bundle(net.wire[-1][2])
    assert out.block(BlockType.BUNDLE_AGE) is not None
    assert out.bundle_age_ms is not None and out.bundle_age_ms >= 1_000


@pytest.mark.parametrize("restart", [False, True])
def test_delivery_report_follows_the_acknowledgement_also_after_a_restart(restart: bool) -> None:
    """The agent remembers what the delivery report of a held bundle needs; after a restart it reads it back."""
    net = Net()
    net.add("ipn:1.0", [("ipn:3.*", "ipn:3.0")])
    store = MemoryBundleStore()
    net.add("ipn:3.0", [("ipn:1.*", "ipn:1.0")], store=store)
    net.connect("ipn:1.0", "ipn:3.0")
    net.register("ipn:3.0", "ipn:3.1")
    net.nodes["ipn:3.0"].auto_ack = False
    asked = net.send("ipn:1.0", "ipn:3.1", b"tell me", flags=BundleFlag.REPORT_DELIVERY)
    quiet = net.send("ipn:1.0", "ipn:3.1", b"no report")
    net.run()
    receiver = net.nodes["ipn:3.0"].agent
    if restart:
        receiver = BundleAgent(AgentConfig(parse_eid("ipn:3.0")), store, StaticRouter([]))
        receiver.link_up("ipn:1.0", net.clock.now(), net.clock.dtn_ms())
        receiver.resume(net.clock.now(), net.clock.dtn_ms())
        net.nodes["ipn:3.0"].agent = receiver
    for bundle_id in (asked, quiet):
        assert receiver.delivery_acknowledged("ipn:3.1", bundle_id, net.clock.now(), net.clock.dtn_ms())  # type: ignore[arg-type]
        assert not receiver.delivery_acknowledged("ipn:3.1", bundle_id, net.clock.now(), net.clock.dtn_ms())  # type: ignore[arg-type]
    net.run()
    delivered = [r.report.subject_id() for r in net.nodes["ipn:1.0"].reports if r.report.delivered.asserted]
    assert delivered == [asked]
    assert len(store) == 0


def test_new_bundles_never_reuse_an_id_the_store_knows_after_a_restart() -> None:
    store = MemoryBundleStore()
    first = BundleAgent(AgentConfig(parse_eid("ipn:1.0")), store, StaticRouter([]))
    kept = first.submit("ipn:9.1", b"kept", 0.0, 5_000)
    gone = first.submit("ipn:9.1", b"gone", 0.0, 5_000)
    store.delete(gone)  # a tombstone: still known
    again = BundleAgent(AgentConfig(parse_eid("ipn:1.0")), store, StaticRouter([]))  # the clock did not move
    fresh = again.submit("ipn:9.1", b"fresh", 0.0, 5_000)
    assert fresh not in (kept, gone) and fresh.creation_ms == 5_000
    assert decode_bundle(store.raw(fresh)).payload == b"fresh"
    assert decode_bundle(store.raw(kept)).payload == b"kept"
