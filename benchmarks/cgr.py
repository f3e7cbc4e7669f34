"""CGR route-search benchmark: ms per query on ION's Mars plan, HDTN's 100-node plan and generated plans
(100 nodes / 10,000 contacts, 1,000 nodes / 100,000 contacts), cold and cached; pydtnsim's pure-Python CGR on
ION's Mars plan as the reference, measured in the same run (``pip install pydtnsim``, the ``bench`` extra).

    python benchmarks/cgr.py [--quick]

* cold best route: a new route list (one Dijkstra search) for a (source, destination) pair;
* cold 5 routes: a new route list extended to 5 routes by Yen's algorithm;
* cached: ``CgrRouter.route`` for a bundle whose destination's route list is cached (selection + PBAT + booking
  + release);
* pydtnsim: ``dijkstra.get_best_route`` (one search, its CGR neighbour function) and ``cgr_basic.load_route_list``
  (every route, by contact suppression) for the same pair.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dtn.bundle.eid import IpnEid  # noqa: E402
from dtn.routing.base import ForwardNow, RouteRequest, WaitUntil  # noqa: E402
from dtn.routing.cgr import ContactGraph, RouteList  # noqa: E402
from dtn.routing.cgr_router import CgrRouter  # noqa: E402
from dtn.routing.contacts import Contact, ContactPlan, Range  # noqa: E402
from dtn.routing.plan_files import parse_plan  # noqa: E402

PLANS = Path(__file__).resolve().parent / "plans"


def per_call_ms(fn: Callable[[], object], *, min_time_s: float = 0.3, max_calls: int = 10_000) -> float:
    calls = 0
    start = time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_time_s or calls >= max_calls:
            return elapsed / calls * 1000


def generated_plan(nodes: int, contacts: int, seed: int = 1, horizon_s: float = 86_400) -> ContactPlan:
    """Random contacts between random pairs over a day (10-60 min each), one range per pair used."""
    rng = random.Random(seed)
    out = []
    pairs = set()
    for _ in range(contacts):
        a = rng.randrange(1, nodes + 1)
        b = rng.randrange(1, nodes)
        b = b + 1 if b >= a else b
        start = rng.uniform(0, horizon_s)
        out.append(Contact(a, b, round(start), round(start + rng.uniform(600, 3600)), 100_000))
        pairs.add((min(a, b), max(a, b)))
    ranges = [Range(a, b, 0, 2 * horizon_s, rng.randrange(1, 10)) for a, b in sorted(pairs)]
    return ContactPlan(tuple(out), tuple(ranges))


def query_pairs(plan: ContactPlan, count: int, seed: int = 2) -> list[tuple[int, int]]:
    rng = random.Random(seed)
    nodes = plan.nodes()
    graph = ContactGraph(plan)
    pairs = []
    attempts = 0
    while len(pairs) < count and attempts < count * 50:
        attempts += 1
        a, b = rng.sample(nodes, 2)
        if graph.search(a, b, 0) is not None:
            pairs.append((a, b))
    return pairs


def measure(name: str, plan: ContactPlan, pairs: list[tuple[int, int]], quick: bool) -> dict[str, float]:
    t0 = time.perf_counter()
    graph = ContactGraph(plan)
    build_ms = (time.perf_counter() - t0) * 1000
    limit = 0.1 if quick else 0.5
    cold = statistics.mean(per_call_ms(lambda a=a, b=b: RouteList(graph, a, b, 0).get(0), min_time_s=limit)
                           for a, b in pairs)
    cold5 = statistics.mean(per_call_ms(lambda a=a, b=b: RouteList(graph, a, b, 0).get(4), min_time_s=limit)
                            for a, b in pairs)
    cached = []
    for a, b in pairs:
        router = CgrRouter(a, plan)
        request = RouteRequest(IpnEid(b, 1), 1000, 10**9)

        def once(router: CgrRouter = router, request: RouteRequest = request) -> None:
            decision = router.route(request, 0)
            if isinstance(decision, ForwardNow | WaitUntil) and decision.booking is not None:
                router.release(decision.booking)

        once()  # fills the cache
        cached.append(per_call_ms(once, min_time_s=limit))
    row = {"build_ms": build_ms, "cold_ms": cold, "cold5_ms": cold5, "cached_ms": statistics.mean(cached)}
    print(f"{name:<34} {len(graph):>8} {len(pairs):>5} {build_ms:>9.1f} {cold:>10.3f} {cold5:>10.3f} "
          f"{row['cached_ms']:>10.4f}")
    return row


def pydtnsim_reference(plan: ContactPlan, source: int, dest: int, quick: bool) -> tuple[float, float] | None:
    try:
        from pydtnsim.contact_graph import ContactGraph as SimGraph
        from pydtnsim.contact_plan import ContactIdentifier
        from pydtnsim.contact_plan import ContactPlan as SimPlan
        from pydtnsim.routing import cgr_basic, cgr_utils, dijkstra
    except ImportError:
        print("pydtnsim is not installed (.venv/bin/pip install pydtnsim): no reference")
        return None
    graph = ContactGraph(plan)
    sim_plan = SimPlan(1000, 1)
    for cid, c in enumerate(graph.contacts):
        sim_plan.add_contact(c.from_node, c.to_node, int(c.start_s * 1000), int(c.end_s * 1000),
                             datarate=c.rate_bytes_per_s * 8 / 1000, delay=int(graph.delay_s[cid] * 1000),
                             bidirectional=False)
    sim_graph = SimGraph(sim_plan)
    root = ContactIdentifier(from_node=source, to_node=source, from_time=0, to_time=float("inf"),
                             datarate=float("inf"), delay=0)
    terminal = ContactIdentifier(from_node=dest, to_node=dest, from_time=0, to_time=float("inf"),
                                 datarate=float("inf"), delay=0)

    def best() -> object:
        return dijkstra.get_best_route(root, terminal, sim_graph, cgr_utils.cgr_neighbor_function, 0,
                                       hashes=sim_graph.hashes, suppressed_contacts=[])

    plan_found, distance = best()  # type: ignore[misc]
    routes = cgr_basic.load_route_list(sim_graph, source, dest, 0)
    print(f"pydtnsim: best route {[c.to_node for c in plan_found[1:-1]]} distance {distance}; "
          f"{len(routes)} routes by contact suppression")
    limit = 0.3 if quick else 1.0
    return per_call_ms(best, min_time_s=limit), per_call_ms(
        lambda: cgr_basic.load_route_list(sim_graph, source, dest, 0), min_time_s=limit)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer pairs, shorter timing")
    args = parser.parse_args()
    pairs_n = 5 if args.quick else 20

    mars = parse_plan((PLANS / "ion-cgr-test-mars.ionrc").read_text(), "ion")
    hdtn = parse_plan((PLANS / "hdtn-100nodes.json").read_text(), "hdtn")
    print(f"python {sys.version.split()[0]}; ms per query (mean over source/destination pairs)")
    print(f"{'plan':<34} {'contacts':>8} {'pairs':>5} {'build ms':>9} {'cold best':>10} {'cold 5':>10} "
          f"{'cached':>10}")
    mars_row = measure("ION Mars 9 -> 1", mars, [(9, 1)], args.quick)
    measure("ION Mars (random pairs)", mars, query_pairs(mars, pairs_n), args.quick)
    measure("HDTN 100 nodes", hdtn, query_pairs(hdtn, pairs_n), args.quick)
    small = generated_plan(100, 10_000)
    big = generated_plan(1000, 100_000)
    small_row = measure("generated 100 nodes / 10,000", small, query_pairs(small, pairs_n), args.quick)
    big_row = measure("generated 1,000 nodes / 100,000", big, query_pairs(big, pairs_n), args.quick)

    reference = pydtnsim_reference(mars, 9, 1, args.quick)
    if reference is not None:
        best_ms, list_ms = reference
        print(f"pydtnsim on ION Mars 9 -> 1: best route {best_ms:.3f} ms, full route list {list_ms:.3f} ms")
        print(f"speed-up, best route (cold, ours incl. nothing cached): {best_ms / mars_row['cold_ms']:.1f}x "
              f"(target >= 10x)")
        print(f"speed-up, per-bundle decision (cached) vs pydtnsim best route: "
              f"{best_ms / mars_row['cached_ms']:.1f}x")
    print(f"growth 10,000 -> 100,000 contacts, cold best route: {big_row['cold_ms'] / small_row['cold_ms']:.1f}x "
          f"(target <= 15x)")


if __name__ == "__main__":
    main()
