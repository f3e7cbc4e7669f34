"""A few agents wired together in one process under a VirtualClock: Transmit actions become ``receive`` calls
on the neighbour (when the link is up), and applications acknowledge what they are given."""

from __future__ import annotations

from dataclasses import dataclass, field

from dtn.agent.actions import Assemble, BundleDeleted, Deliver, ReportReceived, Transmit
from dtn.agent.agent import AgentConfig, BundleAgent, ReceiveResult
from dtn.agent.registrations import DeliveryMode
from dtn.bundle.codec import decode_bundle
from dtn.bundle.eid import parse_eid
from dtn.clock import VirtualClock
from dtn.convergence.base import LinkLimits
from dtn.routing.static import StaticRouter, rule
from dtn.storage.memory import MemoryBundleStore


@dataclass
class Node:
    name: str
    agent: BundleAgent
    store: MemoryBundleStore
    inbox: dict[str, list[bytes]] = field(default_factory=dict)
    reports: list[ReportReceived] = field(default_factory=list)
    deleted: list[BundleDeleted] = field(default_factory=list)
    results: list[ReceiveResult] = field(default_factory=list)
    assembles: list[Assemble] = field(default_factory=list)  # left for the test to carry out
    auto_ack: bool = True


class Net:
    def __init__(self, clock: VirtualClock | None = None) -> None:
        self.clock = clock or VirtualClock()
        self.nodes: dict[str, Node] = {}
        self.links: set[tuple[str, str]] = set()
        self.wire: list[tuple[str, str, bytes]] = []

    def add(
        self,
        node_id: str,
        routes: list[tuple[str, str]] = (),  # type: ignore[assignment]
        *,
        quota_bytes: int | None = None,
        store: MemoryBundleStore | None = None,
        **config: object,
    ) -> Node:
        store = store if store is not None else MemoryBundleStore(quota_bytes=quota_bytes)
        router = StaticRouter([rule(p, v) for p, v in routes])
        agent = BundleAgent(AgentConfig(parse_eid(node_id), **config), store, router)  # type: ignore[arg-type]
        node = self.nodes[node_id] = Node(node_id, agent, store)
        return node

    def connect(self, a: str, b: str, *, limits: LinkLimits | None = None) -> None:
        self.links |= {(a, b), (b, a)}
        now, ms = self.clock.now(), self.clock.dtn_ms()
        self.nodes[a].agent.link_up(b, now, ms, limits)
        self.nodes[b].agent.link_up(a, now, ms, limits)

    def disconnect(self, a: str, b: str) -> None:
        self.links -= {(a, b), (b, a)}
        now, ms = self.clock.now(), self.clock.dtn_ms()
        self.nodes[a].agent.link_down(b, now, ms)
        self.nodes[b].agent.link_down(a, now, ms)

    def register(self, node_id: str, endpoint: str, mode: DeliveryMode = DeliveryMode.ACTIVE) -> None:
        self.nodes[node_id].agent.register(endpoint, mode, self.clock.now(), self.clock.dtn_ms())

    def step(self) -> bool:
        """Carry out every queued action once; True if anything happened."""
        busy = False
        for node in list(self.nodes.values()):
            while (action := node.agent.next_action()) is not None:
                busy = True
                now, ms = self.clock.now(), self.clock.dtn_ms()
                if isinstance(action, Transmit):
                    self.wire.append((node.name, action.neighbour, action.data))
                    peer = self.nodes.get(action.neighbour)
                    if peer is None or (node.name, action.neighbour) not in self.links:
                        node.agent.transfer_done(action.transmission_id, False, now, ms, detail="link down")
                        continue
                    result = peer.agent.receive(action.data, now, ms, from_node=node.name)
                    peer.results.append(result)
                    ok = result.accepted or (result.refuse is not None and result.refuse.name == "COMPLETED")
                    node.agent.transfer_done(action.transmission_id, ok, now, ms)
                elif isinstance(action, Deliver):
                    bundle = decode_bundle(node.store.raw(action.bundle_id))
                    if node.auto_ack:
                        node.inbox.setdefault(action.endpoint, []).append(bytes(bundle.payload))
                        node.agent.delivery_acknowledged(action.endpoint, action.bundle_id, now, ms)
                elif isinstance(action, ReportReceived):
                    node.reports.append(action)
                elif isinstance(action, BundleDeleted):
                    node.deleted.append(action)
                elif isinstance(action, Assemble):
                    node.assembles.append(action)
        return busy

    def run(self, *, until_s: float | None = None, max_steps: int = 10_000) -> None:
        """Run to quiescence; then, if ``until_s`` is given, jump from deadline to deadline up to it."""
        for _ in range(max_steps):
            if self.step():
                continue
            if until_s is None:
                return
            deadlines = [d for n in self.nodes.values() if (d := n.agent.next_deadline()) is not None]
            upcoming = [d for d in deadlines if d <= until_s]
            target = min(upcoming) if upcoming else until_s
            self.clock.jump_to(max(target, self.clock.now()))
            for node in self.nodes.values():
                node.agent.handle_timer(self.clock.now(), self.clock.dtn_ms())
            if not upcoming and not any(self.step() for _ in range(1)):
                return
        raise AssertionError("the network did not settle")

    def send(self, node_id: str, destination: str, payload: bytes, **options: object) -> object:
        agent = self.nodes[node_id].agent
        return agent.submit(destination, payload, self.clock.now(), self.clock.dtn_ms(), **options)  # type: ignore[arg-type]
