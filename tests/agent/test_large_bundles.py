"""ADUs sent as fragments made at the source (piece by piece) and reassembled at the destination without holding
the whole: the agent's side of relaying a file larger than memory."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from dtn.agent.actions import Assemble
from dtn.agent.agent import FragmentedSubmission
from dtn.agent.heads import read_head
from dtn.bundle.codec import decode_bundle
from dtn.bundle.file_name import FILE_NAME_BLOCK_TYPE, read_file_name
from dtn.bundle.flags import BundleFlag
from dtn.bundle.ids import BundleId
from dtn.node import write_assembly
from dtn.storage.base import Constraint
from dtn.storage.memory import MemoryBundleStore

from .harness import Net, Node

PIECE = 1000


def line(*, in_memory_bytes: int = 2_000) -> Net:
    net = Net()
    net.add("ipn:1.0", [("ipn:3.*", "ipn:2.0")])
    net.add("ipn:2.0", [("ipn:3.*", "ipn:3.0"), ("ipn:1.*", "ipn:1.0")])
    net.add("ipn:3.0", [("ipn:1.*", "ipn:2.0")], reassemble_in_memory_bytes=in_memory_bytes)
    net.connect("ipn:1.0", "ipn:2.0")
    net.connect("ipn:2.0", "ipn:3.0")
    return net


def begin(net: Net, adu: bytes, **options: object) -> FragmentedSubmission:
    agent = net.nodes["ipn:1.0"].agent
    return agent.begin_fragmented("ipn:3.1", len(adu), net.clock.now(), net.clock.dtn_ms(), **options)  # type: ignore[arg-type]


def submit(net: Net, submission: FragmentedSubmission, adu: bytes, offsets: list[int]) -> list[BundleId]:
    agent = net.nodes["ipn:1.0"].agent
    return [
        agent.submit_fragment(submission, o, adu[o : o + PIECE], net.clock.now(), net.clock.dtn_ms()) for o in offsets
    ]


@pytest.mark.parametrize("in_memory_bytes", [100_000, 2_000])  # reassembled in memory, and written piece by piece
def test_an_adu_sent_in_pieces_arrives_whole(in_memory_bytes: int) -> None:
    net = line(in_memory_bytes=in_memory_bytes)
    net.register("ipn:3.0", "ipn:3.1")
    adu = random.Random(1).randbytes(7_500)
    submission = begin(net, adu, file_name="big.bin", hop_limit=9)
    ids = submit(net, submission, adu, list(range(0, len(adu), PIECE)))
    net.run()
    assert net.nodes["ipn:3.0"].inbox == {"ipn:3.1": [adu]}
    assert [i.fragment_offset for i in ids] == list(range(0, len(adu), PIECE))
    assert all(i.whole() == submission.bundle_id for i in ids)
    assert net.nodes["ipn:3.0"].agent.stats.reassembled == 1
    assert all(len(n.store) == 0 for n in net.nodes.values())
    # only the first fragment carries the file name and every one the hop count
    first, second = (decode_bundle(data) for src, _, data in net.wire[:2])
    assert read_file_name(first.block(FILE_NAME_BLOCK_TYPE).data) == "big.bin"  # type: ignore[union-attr]
    assert second.block(FILE_NAME_BLOCK_TYPE) is None
    assert first.hop_count is not None and second.hop_count is not None


def test_reassembly_waits_for_every_piece_in_any_order_and_is_written_whole() -> None:
    net = line()
    adu = random.Random(2).randbytes(4_321)
    submission = begin(net, adu, file_name="f")
    offsets = list(range(0, len(adu), PIECE))
    random.Random(3).shuffle(offsets)
    receiver = net.nodes["ipn:3.0"]
    submit(net, submission, adu, offsets[:-1])
    net.run()
    assert receiver.agent.stats.reassembled == 0
    assert len(receiver.store) == len(offsets) - 1  # the fragments wait, nothing reassembled yet
    submit(net, submission, adu, offsets[-1:])
    net.run()
    assert receiver.agent.stats.reassembled == 1
    (meta,) = receiver.store.with_constraint(Constraint.LOCAL_ENDPOINT)
    assert meta.id == submission.bundle_id
    # nobody is registered: the whole bundle waits; its head says where the payload lies
    head = read_head(receiver.store, meta.id)
    assert head is not None and head.payload_length == len(adu)
    raw = receiver.store.raw(meta.id)
    assert len(raw) == meta.size_bytes == head.encoded_length
    assert raw[head.payload_offset : head.payload_offset + len(adu)] == adu
    whole = decode_bundle(raw)  # CRCs of the streamed encoding check out
    assert bytes(whole.payload) == adu and not whole.is_fragment
    net.register("ipn:3.0", "ipn:3.1")
    net.run()
    assert receiver.inbox == {"ipn:3.1": [adu]}
    assert len(receiver.store) == 0


def test_delivery_report_of_a_large_reassembled_bundle_names_the_whole_bundle() -> None:
    net = line()
    net.register("ipn:3.0", "ipn:3.1")
    adu = bytes(range(256)) * 12
    submission = begin(net, adu, flags=BundleFlag.REPORT_DELIVERY)
    submit(net, submission, adu, list(range(0, len(adu), PIECE)))
    net.run()
    delivered = [r for r in net.nodes["ipn:1.0"].reports if r.report.delivered.asserted]
    assert [r.report.subject_id() for r in delivered] == [submission.bundle_id]


def test_large_whole_bundle_held_across_a_restart_is_delivered_from_its_head() -> None:
    store = MemoryBundleStore()
    net = Net()
    net.add("ipn:1.0", [("ipn:3.*", "ipn:3.0")])
    net.add("ipn:3.0", store=store, reassemble_in_memory_bytes=2_000)
    net.connect("ipn:1.0", "ipn:3.0")
    adu = random.Random(4).randbytes(3_000)
    submission = begin(net, adu, flags=BundleFlag.REPORT_DELIVERY)
    submit(net, submission, adu, [0, 1000, 2000])
    net.run()
    assert len(store) == 1
    # the node restarts: a new agent on the same store
    del net.nodes["ipn:3.0"]
    net.links.clear()
    node = net.add("ipn:3.0", [("ipn:1.*", "ipn:1.0")], store=store, reassemble_in_memory_bytes=2_000)
    assert node.agent.resume(net.clock.now(), net.clock.dtn_ms()) == 1
    net.connect("ipn:1.0", "ipn:3.0")
    net.register("ipn:3.0", "ipn:3.1")
    net.run()
    assert node.inbox == {"ipn:3.1": [adu]}
    delivered = [r for r in net.nodes["ipn:1.0"].reports if r.report.delivered.asserted]
    assert [r.report.subject_id() for r in delivered] == [submission.bundle_id]


def test_anonymous_adus_cannot_be_sent_in_pieces() -> None:
    net = line()
    with pytest.raises(ValueError, match="must not be fragmented"):
        begin(net, b"x" * 5000, source="dtn:none")
    with pytest.raises(ValueError, match="must not be fragmented"):
        begin(net, b"x" * 5000, flags=BundleFlag.MUST_NOT_FRAGMENT)


def test_a_piece_outside_the_adu_is_refused_and_nothing_is_stored() -> None:
    net = line()
    submission = begin(net, b"x" * 1500)
    with pytest.raises(ValueError, match="outside"):
        submit(net, submission, b"y" * 3000, [1000])
    assert len(net.nodes["ipn:1.0"].store) == 0


def assemble_action(node: Node) -> Assemble:
    """The one Assemble action the agent asked for since the last call."""
    (action,) = node.assembles
    node.assembles.clear()
    return action


def test_with_assembly_in_the_runtime_the_fragments_wait_for_the_written_bundle(tmp_path: Path) -> None:
    net = Net()
    net.add("ipn:1.0", [("ipn:3.*", "ipn:3.0")])
    receiver = net.add("ipn:3.0", [], reassemble_in_memory_bytes=2_000, assemble_in_runtime=True)
    net.connect("ipn:1.0", "ipn:3.0")
    net.register("ipn:3.0", "ipn:3.1")
    adu = random.Random(4).randbytes(5_555)
    submission = begin(net, adu, file_name="f")
    offsets = list(range(0, len(adu), PIECE))
    submit(net, submission, adu, offsets)
    net.run()  # the fragments cross; the last one completes the ADU: the agent asks for the assembly
    action = assemble_action(receiver)
    assert action.meta.id == submission.bundle_id and action.payload_length == len(adu)
    assert len(receiver.store) == len(offsets), "the fragments stay until the whole bundle is stored"
    now, ms = net.clock.now(), net.clock.dtn_ms()
    # writing failed: nothing changes; a fragment arriving again (or a restart) asks again
    assert not receiver.agent.assembled(action.meta.id, None, now, ms)
    assert len(receiver.store) == len(offsets) and receiver.agent.stats.reassembled == 0
    path = tmp_path / "whole.bundle"
    write_assembly(receiver.store, action, path)
    assert not receiver.agent.assembled(action.meta.id, lambda meta: True, now, ms), "no longer asked for"
    first = receiver.store.fragments_of(submission.bundle_id)[0]
    receiver.agent.receive(receiver.store.raw(first.id), now, ms)  # a duplicate: refused, nothing asked
    net.run()
    assert receiver.assembles == []

    def keep(meta: object) -> bool:
        with open(path, "rb") as f:
            return receiver.store.add_stream(meta, [f.read()])  # type: ignore[arg-type]

    receiver.agent.resume(now, ms)  # as after a restart: the complete fragments are assembled again
    net.run()
    action = assemble_action(receiver)
    assert receiver.agent.assembled(action.meta.id, keep, now, ms)
    assert receiver.agent.stats.reassembled == 1
    net.run()
    assert receiver.inbox == {"ipn:3.1": [adu]}
    assert len(receiver.store) == 0


def test_an_assembly_that_outlives_its_fragments_is_dropped(tmp_path: Path) -> None:
    net = Net()
    net.add("ipn:1.0", [("ipn:3.*", "ipn:3.0")])
    receiver = net.add("ipn:3.0", [], reassemble_in_memory_bytes=2_000, assemble_in_runtime=True)
    net.connect("ipn:1.0", "ipn:3.0")
    adu = random.Random(5).randbytes(3_000)
    submission = begin(net, adu, lifetime_ms=60_000)
    submit(net, submission, adu, list(range(0, len(adu), PIECE)))
    net.run()
    action = assemble_action(receiver)
    path = tmp_path / "whole.bundle"
    write_assembly(receiver.store, action, path)
    net.run(until_s=net.clock.now() + 120)  # the fragments expire meanwhile
    assert len(receiver.store) == 0
    assert not receiver.agent.assembled(action.meta.id, lambda meta: True, net.clock.now(), net.clock.dtn_ms())
    assert receiver.agent.stats.reassembled == 0
