"""CGR route-search benchmark: ms per query on ION's Mars plan, HDTN's 100-node plan and generated plans
(100 nodes / 10,000 contacts, 1,000 nodes / 100,000 contacts), cold and cached; pydtnsim's pure-Python CGR on
ION's Mars plan as the reference, measured in the same run on the same contacts and pairs (``pip install
pydtnsim``, the ``bench`` extra).

    python benchmarks/cgr.py [--quick]

What each figure measures (every figure: mean over the plan's source/destination pairs of the best of
``--repeats`` timings, ms per query; both libraries build their contact graph once per plan, outside the timing,
as a router does once per plan generation; "build ms" is that one-off cost):

* cold best: the best route to a destination with nothing cached: ``RouteList(graph, a, b, 0).get(0)`` (one
  search and the Route object); "search only" in the reference table: ``graph.search(a, b, 0)``, the contact
  ids of the best route, which is what pydtnsim's search returns (with its cost);
* cold 5 Yen: a new route list extended to 5 routes by Yen's algorithm with Lawler's refinement (ION 4's way,
  the router's default; about 2.5 searches per route);
* cold 5 supp.: a new route list extended to 5 routes by contact suppression (classic CGR: one search per
  route);
* cached: ``CgrRouter.route`` for a bundle whose destination's route list is cached (selection + PBAT + booking
  + release);
* pydtnsim best route: ``dijkstra.get_best_route`` with its CGR neighbour function (one Dijkstra over its
  contact graph; pydtnsim's cost is the time data can leave on the last contact, it ignores OWLT);
* route list, like for like: pydtnsim's ``cgr_basic.load_route_list`` (contact suppression until no route is
  left) against ``RouteList(graph, a, b, 0, method="suppression").all()`` (the same algorithm, also until a
  search finds nothing); the table says whether both lists have the same routes (node sequences; ties may be
  broken differently: pydtnsim prefers no fewer hops at equal arrival, we do).

Speed-ups in the reference table are pydtnsim's time divided by ours for the same pair, both timed back to back
(interleaved), each the best of ``--repeats``; the mean rows divide the mean times over the pairs, the worst
pair row is the smallest per-pair speed-up.

Which search runs (``dtn.routing.cgr``): ION's Mars plan (146 usable contacts, every node pair monotone) is
searched in one pass by node pairs; the HDTN and generated plans (over 2,048 contacts) by the bounded passes,
so the growth figure (100,000 against 10,000 contacts) compares one algorithm with itself.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dtn.bundle.eid import IpnEid  # noqa: E402
from dtn.routing.base import ForwardNow, RouteRequest, WaitUntil  # noqa: E402
from dtn.routing.cgr import ContactGraph, Route, RouteList, RouteMethod  # noqa: E402
from dtn.routing.cgr_router import CgrRouter  # noqa: E402
from dtn.routing.contacts import Contact, ContactPlan, Range  # noqa: E402
from dtn.routing.plan_files import parse_plan  # noqa: E402

PLANS = Path(__file__).resolve().parent / "plans"


def per_call_ms(fn: Callable[[], object], *, min_time_s: float, repeats: int, max_calls: int = 10_000) -> float:
    """Best of ``repeats`` timings of ``fn`` called in a loop for at least ``min_time_s`` (ms per call)."""
    best = float("inf")
    for _ in range(repeats):
        calls = 0
        start = time.perf_counter()
        while True:
            fn()
            calls += 1
            elapsed = time.perf_counter() - start
            if elapsed >= min_time_s or calls >= max_calls:
                break
        best = min(best, elapsed / calls * 1000)
    return best


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


def query_pairs(graph: ContactGraph, count: int, seed: int = 2) -> list[tuple[int, int]]:
    """Random (source, destination) pairs with a route at time 0."""
    rng = random.Random(seed)
    nodes = graph.plan.nodes()
    pairs = []
    attempts = 0
    while len(pairs) < count and attempts < count * 50:
        attempts += 1
        a, b = rng.sample(nodes, 2)
        if graph.search(a, b, 0) is not None:
            pairs.append((a, b))
    return pairs


class Ours:
    def __init__(self, plan: ContactPlan) -> None:
        t0 = time.perf_counter()
        self.graph = ContactGraph(plan)
        self.build_ms = (time.perf_counter() - t0) * 1000
        self.plan = plan

    def best(self, a: int, b: int) -> Callable[[], object]:
        return lambda: RouteList(self.graph, a, b, 0).get(0)

    def search(self, a: int, b: int) -> Callable[[], object]:
        return lambda: self.graph.search(a, b, 0)

    def routes(self, a: int, b: int, count: int, method: RouteMethod = "yen") -> Callable[[], object]:
        return lambda: RouteList(self.graph, a, b, 0, method=method).get(count - 1)

    def suppression_list(self, a: int, b: int) -> Callable[[], list[Route]]:
        return lambda: RouteList(self.graph, a, b, 0, method="suppression").all()

    def cached(self, a: int, b: int) -> Callable[[], object]:
        router = CgrRouter(a, self.plan)
        request = RouteRequest(IpnEid(b, 1), 1000, 10**9)

        def once() -> None:
            decision = router.route(request, 0)
            if isinstance(decision, ForwardNow | WaitUntil) and decision.booking is not None:
                router.release(decision.booking)

        once()  # fills the cache
        return once


class Pydtnsim:
    """pydtnsim's CGR over the same usable contacts (times in ms, delay = OWLT + margin)."""

    def __init__(self, graph: ContactGraph) -> None:
        from pydtnsim.contact_graph import ContactGraph as SimGraph
        from pydtnsim.contact_plan import ContactIdentifier
        from pydtnsim.contact_plan import ContactPlan as SimPlan
        from pydtnsim.routing import cgr_basic, cgr_utils, dijkstra

        t0 = time.perf_counter()
        sim_plan = SimPlan(1000, 1)
        for cid, c in enumerate(graph.contacts):
            sim_plan.add_contact(c.from_node, c.to_node, int(c.start_s * 1000), int(c.end_s * 1000),
                                 datarate=c.rate_bytes_per_s * 8 / 1000, delay=int(graph.delay_s[cid] * 1000),
                                 bidirectional=False)
        self.graph = SimGraph(sim_plan)
        self.build_ms = (time.perf_counter() - t0) * 1000
        self._identifier = ContactIdentifier
        self._basic = cgr_basic
        self._utils = cgr_utils
        self._dijkstra = dijkstra

    def _terminal(self, node: int) -> Any:
        return self._identifier(from_node=node, to_node=node, from_time=0, to_time=float("inf"),
                                datarate=float("inf"), delay=0)

    def best(self, a: int, b: int) -> Callable[[], object]:
        root, terminal = self._terminal(a), self._terminal(b)
        return lambda: self._dijkstra.get_best_route(root, terminal, self.graph, self._utils.cgr_neighbor_function,
                                                     0, hashes=self.graph.hashes, suppressed_contacts=[])

    def best_nodes(self, a: int, b: int) -> list[int]:
        found, _ = self.best(a, b)()  # type: ignore[misc]
        return [c.to_node for c in found[1:-1]]

    def route_list(self, a: int, b: int) -> Callable[[], list[Any]]:
        return lambda: self._basic.load_route_list(self.graph, a, b, 0)


def measure(name: str, plan: ContactPlan, pairs_n: int, fixed: list[tuple[int, int]] | None, args: Any) -> Ours:
    ours = Ours(plan)
    pairs = fixed if fixed is not None else query_pairs(ours.graph, pairs_n)
    timing = {"min_time_s": args.min_time, "repeats": args.repeats}
    cold = statistics.mean(per_call_ms(ours.best(a, b), **timing) for a, b in pairs)
    cold5 = statistics.mean(per_call_ms(ours.routes(a, b, 5), **timing) for a, b in pairs)
    supp5 = statistics.mean(per_call_ms(ours.routes(a, b, 5, "suppression"), **timing) for a, b in pairs)
    cached = statistics.mean(per_call_ms(ours.cached(a, b), **timing) for a, b in pairs)
    print(f"{name:<34} {len(ours.graph):>8} {len(pairs):>5} {ours.build_ms:>9.1f} {cold:>10.4f} {cold5:>10.3f} "
          f"{supp5:>10.3f} {cached:>10.4f}", flush=True)
    ours.row = {"cold_ms": cold, "cold5_ms": cold5, "cached_ms": cached}  # type: ignore[attr-defined]
    return ours


def reference(mars: Ours, pairs: list[tuple[int, int]], args: Any) -> None:
    try:
        sim = Pydtnsim(mars.graph)
    except ImportError:
        print("pydtnsim is not installed (.venv/bin/pip install pydtnsim): no reference")
        return
    timing = {"min_time_s": args.min_time, "repeats": args.repeats}
    print(f"\npydtnsim reference on ION's Mars plan, same {len(mars.graph)} usable contacts "
          f"(pydtnsim graph build {sim.build_ms:.1f} ms, ours {mars.build_ms:.1f} ms)")
    print(f"{'pair':<8} {'question':<44} {'pydtnsim ms':>12} {'ours ms':>10} {'speed-up':>9}")
    rows: dict[str, list[tuple[float, float]]] = {"best": [], "search": [], "list": []}
    same_lists = 0
    for a, b in pairs:
        ours_route = RouteList(mars.graph, a, b, 0).get(0)
        assert ours_route is not None
        same = sim.best_nodes(a, b) == list(ours_route.nodes[1:])
        theirs = [(r.transmission_plan[0].from_node, *(c.to_node for c in r.transmission_plan))
                  for r in sim.route_list(a, b)()]
        mine = [r.nodes for r in mars.suppression_list(a, b)()]
        same_lists += theirs == mine
        # Interleaved: theirs, ours, theirs, ours (the machine's load hits both alike).
        best_sim = per_call_ms(sim.best(a, b), **timing)
        best_ours = per_call_ms(mars.best(a, b), **timing)
        search_ours = per_call_ms(mars.search(a, b), **timing)
        list_sim = per_call_ms(sim.route_list(a, b), **timing)
        list_ours = per_call_ms(mars.suppression_list(a, b), **timing)
        rows["best"].append((best_sim, best_ours))
        rows["search"].append((best_sim, search_ours))
        rows["list"].append((list_sim, list_ours))
        if (a, b) == pairs[0]:
            note = "same nodes" if same else "other nodes"
            lists = f"{len(theirs)}/{len(mine)} routes, " + ("same" if theirs == mine else "not the same")
            print(f"{a}->{b:<5} {'best route, cold (' + note + ')':<44} {best_sim:>12.4f} {best_ours:>10.4f} "
                  f"{best_sim / best_ours:>8.1f}x")
            print(f"{a}->{b:<5} {'best route, cold, search only (contact ids)':<44} {best_sim:>12.4f} "
                  f"{search_ours:>10.4f} {best_sim / search_ours:>8.1f}x")
            print(f"{a}->{b:<5} {f'route list by suppression ({lists})':<44} {list_sim:>12.4f} {list_ours:>10.4f} "
                  f"{list_sim / list_ours:>8.1f}x")
    if len(pairs) > 1:
        for key, label in (("best", "best route, cold"), ("search", "best route, cold, search only"),
                           ("list", "route list by suppression")):
            sim_ms = statistics.mean(r[0] for r in rows[key])
            ours_ms = statistics.mean(r[1] for r in rows[key])
            print(f"{f'{len(pairs)} pairs':<8} {label + ' (mean)':<44} {sim_ms:>12.4f} {ours_ms:>10.4f} "
                  f"{sim_ms / ours_ms:>8.1f}x")
            worst = min(r[0] / r[1] for r in rows[key])
            print(f"{'':<8} {label + ' (worst pair)':<44} {'':>12} {'':>10} {worst:>8.1f}x")
        print(f"route lists with the same routes as pydtnsim's: {same_lists} of {len(pairs)} pairs")
    best_sim, best_ours = rows["best"][0]
    search_ours = rows["search"][0][1]
    print(f"target: best route on ION Mars 9 -> 1 >= 10x faster than pydtnsim: {best_sim / best_ours:.1f}x with the "
          f"Route object, {best_sim / search_ours:.1f}x search only")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer pairs, shorter timing")
    parser.add_argument("--repeats", type=int, default=None, help="timings per figure, the best is kept")
    args = parser.parse_args()
    pairs_n = 5 if args.quick else 20
    args.min_time = 0.05 if args.quick else 0.2
    args.repeats = args.repeats or (3 if args.quick else 5)

    mars = parse_plan((PLANS / "ion-cgr-test-mars.ionrc").read_text(), "ion")
    hdtn = parse_plan((PLANS / "hdtn-100nodes.json").read_text(), "hdtn")
    print(f"python {sys.version.split()[0]}; ms per query, mean over source/destination pairs, best of "
          f"{args.repeats} timings")
    print(f"{'plan':<34} {'contacts':>8} {'pairs':>5} {'build ms':>9} {'cold best':>10} {'cold 5 Yen':>10} "
          f"{'5 supp.':>10} {'cached':>10}")
    mars_ours = measure("ION Mars 9 -> 1", mars, 1, [(9, 1)], args)
    mars_pairs = query_pairs(mars_ours.graph, pairs_n)
    measure("ION Mars (random pairs)", mars, pairs_n, mars_pairs, args)
    measure("HDTN 100 nodes", hdtn, pairs_n, None, args)
    small = measure("generated 100 nodes / 10,000", generated_plan(100, 10_000), pairs_n, None, args)
    big = measure("generated 1,000 nodes / 100,000", generated_plan(1000, 100_000), pairs_n, None, args)
    growth = big.row["cold_ms"] / small.row["cold_ms"]  # type: ignore[attr-defined]
    print(f"growth 10,000 -> 100,000 contacts, cold best route: {growth:.1f}x (target <= 15x)")
    reference(mars_ours, [(9, 1), *mars_pairs], args)


if __name__ == "__main__":
    main()
