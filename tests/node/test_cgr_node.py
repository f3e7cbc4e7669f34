"""Nodes routing with contact graph routing over real TCPCLv4 sessions on 127.0.0.1, on a ScaledClock (DTN time
runs RATE times faster than real time), real SQLite stores. Links open and close with the contacts of the plan."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from dtn.clock import ScaledClock, SystemClock
from dtn.config import config_from_dict
from dtn.node import Node
from dtn.routing.contacts import Contact, ContactPlan, Range
from dtn.routing.plan_files import format_plan

from .test_node import free_port

RATE = 10.0  # DTN seconds per real second
DEADLINE_S = 20.0  # real seconds any single condition may take on a loaded machine


async def wait_for(predicate: Callable[[], bool], timeout_s: float = DEADLINE_S) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


def plan_at(origin_ms: int, contacts: list[tuple[int, int, float, float]]) -> ContactPlan:
    """An absolute plan whose time 0 is ``origin_ms``; every pair has a zero light time."""
    pairs = {(min(a, b), max(a, b)) for a, b, _, _ in contacts}
    return ContactPlan(
        tuple(Contact(a, b, start, end, 1_000_000) for a, b, start, end in contacts),
        tuple(Range(a, b, 0, 1e10, 0) for a, b in sorted(pairs)),
        origin_ms,
    )


class Scene:
    def __init__(self, tmp: Path, clock: ScaledClock) -> None:
        self.tmp = tmp
        self.clock = clock
        self.nodes: list[Node] = []

    async def node(self, number: int, listen: str | None, neighbours: dict[int, str], plan: Path) -> Node:
        raw: dict[str, object] = {
            "node_id": f"ipn:{number}",
            "data_dir": f"n{number}",
            "store": {"durability": "process"},
            "plan": str(plan),
            "neighbour": [{"node_id": f"ipn:{n}", "url": url} for n, url in neighbours.items()],
        }
        if listen:
            raw["listen"] = [listen]
        node = Node(config_from_dict(raw, base_dir=self.tmp), clock=self.clock)
        await node.start()
        self.nodes.append(node)
        return node

    def plan_s(self, origin_ms: int) -> float:
        return (self.clock.dtn_ms() - origin_ms) / 1000


@pytest.fixture
async def scene(tmp_path: Path) -> AsyncIterator[Scene]:
    s = Scene(tmp_path, ScaledClock(RATE, SystemClock().dtn_ms()))
    try:
        yield s
    finally:
        for node in s.nodes:
            await node.stop()


def placeholder_plan(tmp: Path, pairs: list[tuple[int, int]]) -> Path:
    """A plan whose contacts lie far in the future: the neighbours follow the plan from the start (no always-on
    links) while the real plan is loaded at run time."""
    path = tmp / "placeholder.toml"
    far = plan_at(0, [(a, b, 4e9, 4e9 + 1) for a, b in pairs])
    path.write_text(format_plan(far, "toml"), encoding="utf-8")
    return path


async def test_four_node_line_with_alternating_contacts(scene: Scene) -> None:
    urls = {n: f"tcpcl://127.0.0.1:{free_port()}" for n in (1, 2, 3, 4)}
    placeholder = placeholder_plan(scene.tmp, [(1, 2), (2, 3), (3, 4)])
    n1 = await scene.node(1, urls[1], {2: urls[2]}, placeholder)
    n2 = await scene.node(2, urls[2], {3: urls[3]}, placeholder)
    n3 = await scene.node(3, urls[3], {4: urls[4]}, placeholder)
    n4 = await scene.node(4, urls[4], {}, placeholder)
    n4.register("ipn:4.1")
    # Contacts that never overlap: 1->2, then 2->3, then 3->4 (plan seconds; 1 plan s = 0.1 s of real time).
    origin = (scene.clock.dtn_ms() // 1000 + 1) * 1000
    windows = {(1, 2): (3.0, 8.0), (2, 3): (13.0, 18.0), (3, 4): (23.0, 28.0)}
    text = format_plan(plan_at(origin, [(a, b, s, e) for (a, b), (s, e) in windows.items()]), "toml")
    for node in (n1, n2, n3, n4):
        node.load_plan(text, source="line.toml")
    routes = n1.plan_routes("ipn:4")["routes"]
    assert [(r["next_hop"], r["hops"], r["arrival_s"]) for r in routes] == [("ipn:2.0", 3, 23.0)]
    assert [r["destination"] for r in n1.routes() if r["kind"] == "cgr"] == ["ipn:2.*", "ipn:3.*", "ipn:4.*"]

    sent = [await n1.send("ipn:4.1", f"bundle {i}".encode()) for i in range(3)]
    assert scene.plan_s(origin) < windows[1, 2][0], "the machine is too slow for this test's time scale"
    assert n1.status()["bundles_stored"] == 3 and n1.status()["links_up"] == []
    assert {b["next_hop"] for b in n1.bundles()} == {"ipn:2.0"}  # waiting in the store for the 1->2 contact

    # Each hop holds the bundles until its own contact opens, and each link closes when its contact ends.
    await wait_for(lambda: n2.status()["bundles_stored"] == 3)
    assert windows[1, 2][0] <= scene.plan_s(origin) < windows[2, 3][0]
    assert n3.status()["bundles_stored"] == 0
    await wait_for(lambda: "ipn:2.0" not in n1.status()["links_up"] and scene.plan_s(origin) >= windows[1, 2][1])
    assert n1.status()["bundles_stored"] == 0

    await wait_for(lambda: n3.status()["bundles_stored"] == 3)
    assert windows[2, 3][0] <= scene.plan_s(origin) < windows[3, 4][0]
    assert n4.status()["bundles_stored"] == 0

    received = []
    for _ in sent:
        delivery = await n4.next_delivery("ipn:4.1", timeout_s=DEADLINE_S)
        assert delivery is not None
        assert scene.plan_s(origin) >= windows[3, 4][0]
        received.append(delivery.bundle_id)
        await n4.acknowledge("ipn:4.1", delivery.bundle_id)
    assert sorted(received) == sorted(sent)
    await wait_for(lambda: n3.status()["bundles_stored"] == 0 and n2.status()["bundles_stored"] == 0)
    await wait_for(lambda: "ipn:4.0" not in n3.status()["links_up"])
    assert scene.plan_s(origin) >= windows[3, 4][1]
    assert [n.statistics()["forwarded"] for n in (n1, n2, n3)] == [3, 3, 3]


async def test_a_missed_contact_sends_bundles_to_the_next_one(scene: Scene) -> None:
    url = f"tcpcl://127.0.0.1:{free_port()}"
    placeholder = placeholder_plan(scene.tmp, [(1, 2)])
    sender = await scene.node(1, None, {2: url}, placeholder)
    origin = (scene.clock.dtn_ms() // 1000 + 1) * 1000
    first, second = (2.0, 6.0), (14.0, 20.0)
    sender.load_plan(format_plan(plan_at(origin, [(1, 2, *first), (1, 2, *second)]), "json"), source="p.json")
    bundle_id = await sender.send("ipn:2.1", b"late but there")
    # Nobody listens during the first contact: it is missed, and the bundle is routed onto the second one.
    await wait_for(lambda: scene.plan_s(origin) >= first[1] + 1)
    [stored] = sender.bundles()
    assert stored["id"] == str(bundle_id) and stored["next_hop"] == "ipn:2.0"
    assert stored["constraints"] == ["forward_pending"]  # waiting for a contact, not contraindicated
    routes = sender.plan_routes("ipn:2")["routes"]
    assert [(r["from_s"], r["to_s"]) for r in routes] == [second]
    receiver = await scene.node(2, url, {}, placeholder)
    delivery = await receiver.next_delivery("ipn:2.1", timeout_s=DEADLINE_S)
    assert delivery is not None and delivery.bundle_id == bundle_id
    assert scene.plan_s(origin) >= second[0]
    await wait_for(lambda: sender.statistics()["forwarded"] == 1)


async def test_a_new_plan_reroutes_waiting_bundles_and_static_routes_are_the_fallback(scene: Scene) -> None:
    urls = {n: f"tcpcl://127.0.0.1:{free_port()}" for n in (2, 3)}
    placeholder = placeholder_plan(scene.tmp, [(1, 2), (1, 3)])
    sender = await scene.node(1, None, {2: urls[2], 3: urls[3]}, placeholder)
    via3 = await scene.node(3, urls[3], {}, placeholder)
    origin = (scene.clock.dtn_ms() // 1000 + 1) * 1000
    # First plan: node 3 best through node 2, far ahead (a direct contact later still); the bundle waits.
    first = plan_at(origin, [(1, 2, 1000, 1010), (2, 3, 1000, 1010), (1, 3, 5000, 5010)])
    sender.load_plan(format_plan(first, "ion"), fmt="ion")
    bundle_id = await sender.send("ipn:3.1", b"rerouted")
    [stored] = sender.bundles()
    assert stored["next_hop"] == "ipn:2.0"
    # The new plan has a direct contact to node 3 soon: the waiting bundle takes it.
    sender.load_plan(format_plan(plan_at(origin, [(1, 3, 2, 30)]), "toml"))
    delivery = await via3.next_delivery("ipn:3.1", timeout_s=DEADLINE_S)
    assert delivery is not None and delivery.bundle_id == bundle_id
    assert scene.plan_s(origin) >= 2


async def test_static_rules_route_what_the_plan_does_not_reach(scene: Scene, tmp_path: Path) -> None:
    port = free_port()
    placeholder = placeholder_plan(scene.tmp, [(1, 2)])
    raw: dict[str, object] = {
        "node_id": "ipn:1", "data_dir": "s1", "plan": str(placeholder),
        "neighbour": [{"node_id": "ipn:5", "url": f"tcpcl://127.0.0.1:{port}"}],
        "route": [{"destination": "ipn:9.*", "via": "ipn:5"}],
    }
    sender = Node(config_from_dict(raw, base_dir=tmp_path), clock=scene.clock)
    await sender.start()
    scene.nodes.append(sender)
    relay = await scene.node(5, f"tcpcl://127.0.0.1:{port}", {}, placeholder)
    await wait_for(lambda: "ipn:5.0" in sender.status()["links_up"])  # not in the plan: always connected
    await sender.send("ipn:9.1", b"by the static rule")
    await wait_for(lambda: relay.status()["bundles_stored"] == 1)
    assert [r["kind"] for r in sender.routes()] == ["cgr", "static"]


async def test_udp_sends_only_inside_the_contact_paced_at_its_rate(scene: Scene) -> None:
    import socket

    port = free_port(socket.SOCK_DGRAM)
    url = f"udp://127.0.0.1:{port}"
    placeholder = placeholder_plan(scene.tmp, [(1, 2)])
    sender = await scene.node(1, None, {2: url}, placeholder)
    receiver = await scene.node(2, url, {}, placeholder)
    origin = (scene.clock.dtn_ms() // 1000 + 1) * 1000
    window = (3.0, 9.0)
    plan = ContactPlan((Contact(1, 2, *window, 50_000),), (Range(1, 2, 0, 1e6, 0),), origin)
    sender.load_plan(format_plan(plan, "hdtn"), fmt="hdtn")
    sent = [await sender.send("ipn:2.1", bytes(1000)) for _ in range(2)]
    await wait_for(lambda: "ipn:2.0" in sender.status()["links_up"])
    assert scene.plan_s(origin) >= window[0]
    link = sender._links["ipn:2.0"]
    assert link.limits.rate_bytes_per_s == 50_000 * RATE  # the contact's rate, on the scaled clock
    got = []
    for _ in sent:
        delivery = await receiver.next_delivery("ipn:2.1", timeout_s=DEADLINE_S)
        assert delivery is not None
        got.append(delivery.bundle_id)
    assert sorted(got) == sorted(sent)
    await wait_for(lambda: "ipn:2.0" not in sender.status()["links_up"])
    assert scene.plan_s(origin) >= window[1]
    await sender.send("ipn:2.1", b"after the contact")
    [waiting] = sender.bundles()
    assert waiting["constraints"] == ["forward_pending", "contraindicated"]  # no contact left in the plan


@pytest.mark.parametrize(("method", "routes"), [("yen", 2), ("suppression", 1)])
async def test_route_method_from_the_configuration(tmp_path: Path, method: str, routes: int) -> None:
    # 1 -> 2 once, then two parallel 2 -> 3 contacts: Yen lists both routes; suppression suppresses the route's
    # limiting contact (1 -> 2, which ends first) and finds nothing more.
    origin = (SystemClock().dtn_ms() // 1000 + 10) * 1000
    plan = tmp_path / "fork.toml"
    plan.write_text(format_plan(plan_at(origin, [(1, 2, 0, 10), (2, 3, 0, 100), (2, 3, 0, 100)]), "toml"))
    node = Node(config_from_dict({"node_id": "ipn:1", "data_dir": "n1", "plan": str(plan), "route_method": method},
                                 base_dir=tmp_path))
    await node.start()
    try:
        listed = node.plan_routes("ipn:3", count=5)["routes"]
        assert len(listed) == routes and {r["hops"] for r in listed} == {2}
    finally:
        await node.stop()
