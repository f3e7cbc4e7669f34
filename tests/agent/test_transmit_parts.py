"""A bundle created from a large payload goes to the link as parts: the payload as the application's own bytes
(not joined to its blocks), and copied only when its buffer may change."""

from __future__ import annotations

from dtn.agent.actions import Transmit
from dtn.agent.agent import AgentConfig, BundleAgent
from dtn.bundle.codec import OWN_PART_BYTES, decode_bundle
from dtn.bundle.eid import parse_eid
from dtn.routing.static import StaticRouter, rule
from dtn.storage.memory import MemoryBundleStore

DTN_MS = 800_000_000_000
SIZE = OWN_PART_BYTES * 3


def sender() -> tuple[BundleAgent, MemoryBundleStore]:
    store = MemoryBundleStore()
    agent = BundleAgent(AgentConfig(parse_eid("ipn:1.0")), store, StaticRouter([rule("ipn:2.*", "ipn:2.0")]))
    agent.link_up("ipn:2.0", 0.0, DTN_MS)
    return agent, store


def transmits(agent: BundleAgent) -> list[Transmit]:
    return [a for a in iter(agent.next_action, None) if isinstance(a, Transmit)]


def test_the_payload_is_sent_as_the_applications_bytes_and_stored_whole() -> None:
    agent, store = sender()
    payload = bytes(range(256)) * (SIZE // 256)
    bundle_id = agent.submit("ipn:2.1", payload, 0.0, DTN_MS)
    (transmit,) = transmits(agent)
    assert any(part is payload for part in transmit.parts), "the payload was copied"
    assert transmit.length == len(transmit.data) and len(transmit.parts) > 1
    sent = decode_bundle(transmit.data)
    assert sent.id == bundle_id and bytes(sent.payload) == payload
    stored = decode_bundle(store.raw(bundle_id))
    assert bytes(stored.payload) == payload


def test_a_payload_in_a_buffer_that_may_change_is_copied_before_it_goes_to_the_link() -> None:
    agent, store = sender()
    buffer = bytearray(b"a" * SIZE)
    bundle_id = agent.submit("ipn:2.1", memoryview(buffer), 0.0, DTN_MS)
    (transmit,) = transmits(agent)
    buffer[:] = b"b" * SIZE  # the application reuses its buffer once submit returned
    assert bytes(decode_bundle(transmit.data).payload) == b"a" * SIZE
    assert bytes(decode_bundle(store.raw(bundle_id)).payload) == b"a" * SIZE
