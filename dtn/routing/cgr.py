"""Contact Graph Routing, pure route search (CCSDS SABR 734.3-B-1 / ION ``libcgr``).

``ContactGraph`` compiles a ContactPlan once per plan: every contact with a range at its start becomes a vertex
with its delay (OWLT + ION's margin). Contact ids are grouped by sending node and ordered by end time; for the
search the graph also keeps, as flat parallel lists with one slice per node (nodes renumbered densely), the
contacts by (sending node, start) and by (receiving node, start), and the graph of node pairs (with hop counts
between all nodes when the graph is small). ``ContactGraph.search`` is Dijkstra over contacts for the earliest
arrival time:

* arrival over contact Y reached at time t is ``max(Y.start, t) + owlt + margin``, usable only if
  ``Y.end > t`` (the window is ``[start, end)``: data arriving at the end instant is too late);
* labels are ordered by (arrival, hops, end of the last contact): ties go to fewer hops, then to the contact
  that ends earliest (keeping longer contacts for later traffic);
* small graphs (up to ``_SINGLE_PASS_MAX_CONTACTS``) are searched in one pass in which a node is expanded again
  only by a label with strictly fewer hops than its earlier expansions, and labels later than the best one
  queued for the destination are dropped. An expansion looks at the node pairs leaving the node: in a
  *monotone* pair (contacts that do not overlap, each arriving, even used at its end, before any later one
  could) one bisection finds the only contact worth a label; other pairs are scanned. Large graphs take the
  bounded passes below:
* a first pass expands each node once and finds the earliest arrival T*. A node's contacts are taken by start
  time: those open when the node is reached at once, the others through a cursor queued at the next start,
  so contacts that open after T* are never looked at;
* if the path found has as few hops as any path of node pairs that avoids the banned nodes and uses pairs with
  a contact open before T*, it is the answer. Otherwise a backward pass finds how late each node can be left
  and still make T*, and a last pass may expand a node again, but only by a label with strictly fewer hops
  than every earlier expansion (earlier expansions arrived no later, so a label that has no fewer hops is
  dominated) and only with labels that can still make T*. A search costs about O(k log k) for the k contacts
  open between the start and T* at the nodes reached by then.

The search ignores volume (as ION's does); volume, queues and the bundle's deadline are applied per bundle by
``dtn.routing.cgr_router``. ``RouteList`` extends the best route into a ranked list, lazily, one route at a
time: by Yen's k-shortest-paths algorithm (Lawler's refinement; ION 4) or by contact suppression (classic CGR:
each route's limiting contact is suppressed before the next search).
"""

from __future__ import annotations

import heapq
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from typing import Literal, NamedTuple

from dtn.routing.contacts import Contact, ContactPlan, owlt_margin_s

_INF = float("inf")
_BIG = 1 << 62
#: Largest nodes x (nodes + node pairs) for which a graph precomputes hop counts between all nodes.
_HOP_TABLE_WORK = 200_000
#: Node pairs a search looks at (at least; a quarter of the node count in large graphs) to decide that no route
#: has fewer hops, before it gives up and runs the fewest-hops passes.
_HOP_SEARCH_BUDGET = 64
#: Largest graph (contacts) searched in one pass (``ContactGraph._cursor_pass`` or ``_pair_pass``): on small
#: plans a search's fixed costs dominate and one pass that may expand a node again (with fewer hops) beats three
#: bounded passes (measured 1.3-3x faster up to 2,000 contacts; the bounded passes win on 100,000).
_SINGLE_PASS_MAX_CONTACTS = 2048
#: The one-pass search looks at node pairs (``ContactGraph._pair_pass``: one bisection per pair leaving a node)
#: when every pair is monotone and nodes have at most this many pairs leaving them on average (scheduled links
#: to few neighbours, many contacts each: ION's Mars plan), otherwise at contacts by start time with cursors
#: (``_cursor_pass``: one queue entry per expansion however many neighbours; measured 2-5x faster on random
#: plans of 10-100 nodes, 1.3x slower on the Mars plan).
_PAIR_MODE_MAX_PAIRS_PER_NODE = 4


class Route(NamedTuple):
    """A contact sequence from the local node to the destination (immutable; a named tuple: cheap to build).

    ``arrival_s`` is the best-case arrival (no queueing, no transmission time, as ION's ``arrivalTime``);
    ``from_s`` is the first contact's start, ``to_s`` the earliest end of all hops (the route dies then).
    """

    contact_ids: tuple[int, ...]
    hops: tuple[Contact, ...]
    arrival_s: float
    from_s: float
    to_s: float
    confidence: float
    owlt_sum_s: float

    @property
    def entry_node(self) -> int:
        return self.hops[0].to_node

    @property
    def hop_count(self) -> int:
        return len(self.hops)

    @property
    def nodes(self) -> tuple[int, ...]:
        return (self.hops[0].from_node, *(c.to_node for c in self.hops))


class ContactGraph:
    """The usable contacts of a plan, indexed for route search. Immutable once built (build it once per plan)."""

    def __init__(self, plan: ContactPlan) -> None:
        index = plan.range_index()
        self.plan = plan
        self.unusable: list[Contact] = []
        usable: list[tuple[Contact, float]] = []
        for c in plan.contacts:
            owlt = index.owlt_s(c.from_node, c.to_node, c.start_s)
            if owlt is None:
                self.unusable.append(c)
            else:
                usable.append((c, owlt))
        # Contact ids are grouped by sending node and ordered by end time (``contacts_from``).
        usable.sort(key=lambda item: (item[0].from_node, item[0].end_s, item[0].start_s, item[0].to_node))
        self.contacts: list[Contact] = [c for c, _ in usable]
        self.owlt_s = [owlt + 0.0 for _, owlt in usable]
        self.delay_s = [owlt + owlt_margin_s(owlt) + 0.0 for _, owlt in usable]
        self.from_node = [c.from_node for c in self.contacts]
        self.to_node = [c.to_node for c in self.contacts]
        self.start_s = [c.start_s + 0.0 for c in self.contacts]
        self.end_s = [c.end_s + 0.0 for c in self.contacts]
        self.rate = [c.rate_bytes_per_s + 0.0 for c in self.contacts]
        self.confidence = [c.confidence for c in self.contacts]
        #: per contact id: (start, end, delay, confidence, owlt, contact), what ``make_route`` reads
        self._legs = list(
            zip(self.start_s, self.end_s, self.delay_s, self.confidence, self.owlt_s, self.contacts, strict=True)
        )
        #: node -> (first id, end times of its contacts in id order)
        self._out: dict[int, tuple[int, list[float]]] = {}
        cid = 0
        n = len(self.contacts)
        while cid < n:
            node = self.from_node[cid]
            first = cid
            while cid < n and self.from_node[cid] == node:
                cid += 1
            self._out[node] = (first, self.end_s[first:cid])
        self._build_search_index()

    def _build_search_index(self) -> None:
        """Dense node numbers and two contact orders for the search, as flat parallel lists: contacts by (sending
        node, start) for the forward passes and by (receiving node, start) for the backward pass; each node owns
        one slice ``[first[k], first[k + 1])`` in which a bisection on start times finds the contacts that
        matter at a given time (``span`` is the node's longest contact: one that started before ``t - span``
        has ended by ``t``)."""
        nodes = sorted(set(self.from_node) | set(self.to_node))
        self._node_index: dict[int, int] = {node: k for k, node in enumerate(nodes)}
        self._nodes = nodes
        count = len(nodes)
        ix = self._node_index
        n = len(self.contacts)
        starts = self.start_s
        ends = self.end_s
        delays = self.delay_s
        src = [ix[node] for node in self.from_node]
        dst = [ix[node] for node in self.to_node]
        ids = range(n)
        out_order = sorted(ids, key=list(zip(src, starts, ends, ids, strict=True)).__getitem__)
        in_order = sorted(ids, key=list(zip(dst, starts, ends, ids, strict=True)).__getitem__)
        self._o_cid = out_order
        self._o_start = [starts[c] for c in out_order]
        self._o_end = [ends[c] for c in out_order]
        self._o_delay = [delays[c] for c in out_order]
        self._o_to = [dst[c] for c in out_order]
        self._o_first, self._o_span = self._slices([src[c] for c in out_order], out_order, count)
        self._i_cid = in_order
        self._i_start = [starts[c] for c in in_order]
        self._i_end = [ends[c] for c in in_order]
        self._i_delay = [delays[c] for c in in_order]
        self._i_from = [src[c] for c in in_order]
        self._i_first, self._i_span = self._slices([dst[c] for c in in_order], in_order, count)
        # The graph of node pairs. Pair p owns the slice [p_first[p], p_first[p + 1]) of contacts by (pair, start)
        # with the running maximum of their ends: a pair is of use between t0 and t1 if a contact opening by t1
        # closes after t0.
        pair_order = sorted(ids, key=list(zip(src, dst, starts, ids, strict=True)).__getitem__)
        self._p_cid = pair_order
        self._p_start = [starts[c] for c in pair_order]
        self._p_max_end: list[float] = []
        self._p_first: list[int] = []
        self._pair_of: list[int] = [0] * n
        self._succ_pairs: list[list[tuple[int, int]]] = [[] for _ in range(count)]
        self._pred_pairs: list[list[tuple[int, int]]] = [[] for _ in range(count)]
        last = (-1, -1)
        running = -_INF
        for pos, c in enumerate(pair_order):
            pair = (src[c], dst[c])
            if pair != last:
                last = pair
                running = -_INF
                self._succ_pairs[pair[0]].append((pair[1], len(self._p_first)))
                self._pred_pairs[pair[1]].append((pair[0], len(self._p_first)))
                self._p_first.append(pos)
            self._pair_of[c] = len(self._p_first) - 1
            if ends[c] > running:
                running = ends[c]
            self._p_max_end.append(running)
        self._p_first.append(n)
        self._forward_index = (
            self._o_start, self._o_end, self._o_delay, self._o_to, self._o_cid, self._o_first, self._o_span
        )
        self._one_pass = n <= _SINGLE_PASS_MAX_CONTACTS
        self._pair_mode = False
        if self._one_pass:
            self._build_pair_index(ends, delays)
            pairs = len(self._p_first) - 1
            self._pair_mode = all(self._p_mono) and pairs <= _PAIR_MODE_MAX_PAIRS_PER_NODE * count
        # Hop counts between nodes in the graph of node pairs (times ignored), a lower bound on any route's hop
        # count: precomputed when small, otherwise searched per query (``_fewer_hops_possible``).
        self._hop_table: list[list[int]] | None = None
        if count * (count + len(self._p_first)) <= _HOP_TABLE_WORK:
            self._hop_table = [self._hops_from(k) for k in range(count)]

    def _build_pair_index(self, ends: list[float], delays: list[float]) -> None:
        """For the one-pass search: per node pair (contacts by start, ``_p_first`` slices), their ends and delays,
        the pair's longest contact and whether the pair is *monotone*: its contacts do not overlap and each
        arrives, even used at its very end, before any later one could (end + delay <= start + delay of every
        later contact). In a monotone pair the first usable contact that ends after a time is the best one."""
        order = self._p_cid
        self._p_end = [ends[c] for c in order]
        self._p_delay = [delays[c] for c in order]
        self._p_mono: list[bool] = []
        self._p_span: list[float] = []
        p_start = self._p_start
        p_end = self._p_end
        p_delay = self._p_delay
        for pid in range(len(self._p_first) - 1):
            first, stop = self._p_first[pid], self._p_first[pid + 1]
            mono = True
            later = _INF  # earliest start + delay of the contacts after k
            span = 0.0
            for k in range(stop - 1, first - 1, -1):
                if (k + 1 < stop and p_start[k + 1] < p_end[k]) or p_end[k] + p_delay[k] > later:
                    mono = False
                later = min(later, p_start[k] + p_delay[k])
                span = max(span, p_end[k] - p_start[k])
            self._p_mono.append(mono)
            self._p_span.append(span)
        #: per node: (next node, first position, end position, monotone, longest contact) of each pair leaving it
        succ = [
            [(m, self._p_first[pid], self._p_first[pid + 1], self._p_mono[pid], self._p_span[pid]) for m, pid in pairs]
            for pairs in self._succ_pairs
        ]
        #: per position in the (pair, start) order: (start, delay, end, contact id)
        records = list(zip(p_start, p_delay, p_end, order, strict=True))
        self._pair_index = (succ, p_start, p_end, records)

    def _hops_from(self, source: int) -> list[int]:
        hops = [_BIG] * len(self._nodes)
        hops[source] = 0
        front = [source]
        depth = 0
        while front:
            depth += 1
            new = []
            for k in front:
                for m, _ in self._succ_pairs[k]:
                    if hops[m] == _BIG:
                        hops[m] = depth
                        new.append(m)
            front = new
        return hops

    def _slices(self, owners: list[int], order: list[int], count: int) -> tuple[list[int], list[float]]:
        first = [0] * (count + 1)
        span = [0.0] * count
        for pos, (k, c) in enumerate(zip(owners, order, strict=True)):
            first[k + 1] = pos + 1
            length = self.end_s[c] - self.start_s[c]
            if length > span[k]:
                span[k] = length
        for k in range(count):  # nodes without contacts get empty slices
            if first[k + 1] < first[k]:
                first[k + 1] = first[k]
        return first, span

    def __len__(self) -> int:
        return len(self.contacts)

    def contacts_from(self, node: int) -> range:
        """Contact ids leaving ``node``, by end time."""
        out = self._out.get(node)
        return range(0) if out is None else range(out[0], out[0] + len(out[1]))

    def search(
        self,
        source: int,
        destination: int,
        start_s: float,
        *,
        start_hops: int = 0,
        banned_contacts: frozenset[int] | set[int] = frozenset(),
        banned_nodes: frozenset[int] | set[int] = frozenset(),
    ) -> list[int] | None:
        """Contact ids of the earliest-arrival path from ``source`` (there at ``start_s``) to ``destination`` with
        the fewest hops among those, or None. ``banned_contacts`` are never used; ``banned_nodes`` are never
        passed through. ``start_hops`` is accepted for compatibility (hop counts are relative, it changes
        nothing).

        Small graphs (up to ``_SINGLE_PASS_MAX_CONTACTS`` contacts) are searched in one pass that may expand a
        node again by a label with fewer hops (``_pair_pass`` for schedule-like plans, ``_cursor_pass``
        otherwise). Large graphs: up to three passes, each scanning only contacts that can still matter:

        1. earliest arrival T*: Dijkstra on (arrival, hops, end), each node expanded once; a node's contacts are
           taken by start time, those not yet open through a cursor queued at the next start, so contacts
           opening after T* are never looked at;
        2. only if the path found may not have the fewest hops (the graph of node pairs, limited to pairs with
           an unbanned contact open between the start and T* and to unbanned nodes, has a shorter path): the
           latest time each node can be left and still make T* (backward, contacts opening before T*, pruned by
           the pass 1 arrival times);
        3. fewest hops: a node may be expanded again by a label with strictly fewer hops than every earlier
           expansion (earlier expansions arrived no later, so a label that has no fewer hops is dominated),
           only with labels that can still make T*."""
        ix = self._node_index
        src = ix.get(source)
        dst = ix.get(destination)
        if src is None or dst is None or src == dst:
            return None
        banned = []
        if banned_nodes:
            banned = [k for k in (ix.get(node) for node in banned_nodes) if k is not None and k != src and k != dst]
        if self._one_pass:
            one_pass = self._pair_pass if self._pair_mode else self._cursor_pass
            return one_pass(src, dst, start_s, banned_contacts, banned)
        found = self._earliest(src, dst, start_s, banned_contacts, banned)
        if found is None:
            return None
        path, arrival, reached = found
        hops = len(path)
        table = self._hop_table
        if hops == 1 or (table is not None and table[src][dst] >= hops):
            return path  # no route has fewer hops
        budget = max(_HOP_SEARCH_BUDGET, len(reached) // 4)  # pairs to look at: a small part of a search's work
        if not self._fewer_hops_possible(src, dst, hops, start_s, arrival, banned, banned_contacts, budget):
            return path
        latest = self._latest_departure(dst, start_s, arrival, reached, banned_contacts, banned)
        again = self._fewest_hops(src, dst, start_s, latest, banned_contacts, hops)
        return path if again is None else again

    def _cursor_pass(
        self, src: int, dst: int, start_s: float, banned_contacts: frozenset[int] | set[int], banned: list[int]
    ) -> list[int] | None:
        """Earliest arrival with the fewest hops in one pass (labels ordered by arrival, hops, end): a node is
        expanded again only by a label with strictly fewer hops than each of its earlier expansions (those
        arrived no later, so a label with no fewer hops is dominated). Contacts are taken by start time with
        cursors as in ``_earliest``; labels later than the best label queued for the destination are dropped.
        For plans whose nodes have many neighbours or overlapping contacts."""
        o_start, o_end, o_delay, o_to, o_cid, o_first, o_span = self._forward_index
        count = len(o_span)
        best = [_INF] * count  # the best queued label per node (arrival, then hops)
        best_hops = [_BIG] * count
        done = [_BIG] * count  # fewest hops among the node's expansions so far
        for k in banned:
            done[k] = -1  # no label for a banned node
        done[src] = 0
        bound = _INF  # best[dst]
        # Queue entries: (time, hops, end, position, node, chain); chain = (contact id, parent chain) or () at
        # the source; position >= 0 marks a cursor: the node's contacts from there on, none open before time.
        heap: list[tuple[float, int, float, int, int, tuple[object, ...]]] = []
        push = heapq.heappush
        pop = heapq.heappop
        check_banned = bool(banned_contacts)
        at = start_s
        hops = 0
        node = src
        chain: tuple[object, ...] = ()
        j = bisect_right(o_start, at - o_span[src], o_first[src], o_first[src + 1])
        while True:
            stop = o_first[node + 1]
            nxt = hops + 1
            while j < stop:
                s = o_start[j]
                if s > at and heap and s > heap[0][0]:
                    if s <= bound:
                        push(heap, (s, hops, -_INF, j, node, chain))
                    break
                e = o_end[j]
                if e > at:
                    t = o_to[j]
                    if nxt < done[t]:
                        arrival = (s if s > at else at) + o_delay[j]
                        if arrival <= bound:
                            # Queued unless a label queued for t arrives no later with fewer hops (one with as
                            # many hops at the same time may end earlier: queued too, the queue takes the
                            # earliest end first). The best queued label for t is kept (and for dst: the bound).
                            old = best[t]
                            bh = best_hops[t]
                            if (arrival < old or nxt < bh or (nxt == bh and arrival == old)) and not (
                                check_banned and o_cid[j] in banned_contacts
                            ):
                                if arrival < old or (arrival == old and nxt < bh):
                                    best[t] = arrival
                                    best_hops[t] = nxt
                                    if t == dst:
                                        bound = arrival
                                push(heap, (arrival, nxt, e, -1, t, (o_cid[j], chain)))
                j += 1
            while True:
                if not heap:
                    return None
                at, hops, _, j, node, chain = pop(heap)
                if j >= 0:
                    if done[node] < hops:
                        continue  # expanded again since, with fewer hops: that expansion covers these contacts
                    break
                if hops >= done[node]:
                    continue
                done[node] = hops
                if node == dst:
                    return _chain_path(chain)
                j = bisect_right(o_start, at - o_span[node], o_first[node], o_first[node + 1])
                break

    def _pair_pass(
        self, src: int, dst: int, start_s: float, banned_contacts: frozenset[int] | set[int], banned: list[int]
    ) -> list[int] | None:
        """Earliest arrival with the fewest hops in one pass (labels ordered by arrival, hops, end): a node is
        expanded again only by a label with strictly fewer hops than each of its earlier expansions (those
        arrived no later, so a label with no fewer hops is dominated). An expansion looks at each node pair
        leaving the node: in a monotone pair only the first usable contact ending after the arrival (one
        bisection), in others every contact still open then; none opening after the best label queued for the
        destination. A label is queued only where the best one queued there does not dominate it."""
        succ, p_start, p_end, records = self._pair_index
        count = len(succ)
        best = [_INF] * count  # the best queued label per node (arrival, then hops)
        best_hops = [_BIG] * count
        done = [_BIG] * count  # fewest hops among the node's expansions so far
        for k in banned:
            done[k] = -1  # no label for a banned node
        done[src] = 0
        bound = _INF  # best[dst]
        # Queue entries: (arrival, hops, end, node, chain); chain = (contact id, parent chain), () at the source.
        heap: list[tuple[float, int, float, int, tuple[object, ...]]] = []
        push = heapq.heappush
        pop = heapq.heappop
        check_banned = bool(banned_contacts)
        at = start_s
        hops = 0
        node = src
        chain: tuple[object, ...] = ()
        while True:
            nxt = hops + 1
            for t, first, stop, mono, span in succ[node]:
                if nxt >= done[t]:
                    continue  # expanded already with no more hops, earlier (or banned)
                if mono:
                    # The first contact ending after ``at`` that is not banned: later ones arrive later.
                    k = bisect_right(p_end, at, first, stop)
                    if k == stop:
                        continue
                    s, d, e, cid = records[k]
                    if check_banned and cid in banned_contacts:
                        k += 1
                        while k < stop:
                            s, d, e, cid = records[k]
                            if cid not in banned_contacts:
                                break
                            k += 1
                        else:
                            continue
                    arrival = (s if s > at else at) + d
                    if arrival > bound:
                        continue
                    # Queued unless a label queued for t arrives no later with fewer hops (one with as many
                    # hops at the same time may end earlier: queued too, the earliest end comes first).
                    old = best[t]
                    bh = best_hops[t]
                    if arrival < old or nxt < bh or (nxt == bh and arrival == old):
                        if arrival < old or (arrival == old and nxt < bh):
                            best[t] = arrival
                            best_hops[t] = nxt
                            if t == dst:
                                bound = arrival
                        push(heap, (arrival, nxt, e, t, (cid, chain)))
                    continue
                for s, d, e, cid in records[bisect_right(p_start, at - span, first, stop) : stop]:
                    if s > bound:
                        break  # opens after the best arrival queued for the destination, as do the rest
                    if e <= at or (check_banned and cid in banned_contacts):
                        continue
                    arrival = (s if s > at else at) + d
                    old = best[t]
                    bh = best_hops[t]
                    if arrival <= bound and (arrival < old or nxt < bh or (nxt == bh and arrival == old)):
                        if arrival < old or (arrival == old and nxt < bh):
                            best[t] = arrival
                            best_hops[t] = nxt
                            if t == dst:
                                bound = arrival
                        push(heap, (arrival, nxt, e, t, (cid, chain)))
            while True:
                if not heap:
                    return None
                at, hops, _, node, chain = pop(heap)
                if hops >= done[node]:
                    continue
                done[node] = hops
                if node == dst:
                    return _chain_path(chain)
                break

    def _earliest(
        self, src: int, dst: int, start_s: float, banned_contacts: frozenset[int] | set[int], banned: list[int]
    ) -> tuple[list[int], float, list[float]] | None:
        """Pass 1: (contact ids, earliest arrival, per node the arrival of its expansion or inf)."""
        o_start, o_end, o_delay, o_to, o_cid, o_first, o_span = self._forward_index
        count = len(o_span)
        best = [_INF] * count  # best queued arrival per node
        best_hops = [0] * count
        best_end = [_INF] * count
        reached = [_INF] * count  # arrival of the node's expansion
        for k in banned:
            best[k] = -_INF  # never improved: no label is queued for a banned node
        best[src] = reached[src] = start_s
        # Labels: label k reached lab_node[k] over contact lab_cid[k] after label lab_parent[k]; label 0 is the
        # source. Queue entries: (time, hops, end, label, position); position >= 0 marks a cursor: the
        # contacts of the label's node from that position on, none open before ``time``.
        lab_cid = [-1]
        lab_parent = [-1]
        lab_node = [src]
        heap: list[tuple[float, int, float, int, int]] = []
        push = heapq.heappush
        pop = heapq.heappop
        check_banned = bool(banned_contacts)
        at = start_s
        hops = 0
        label = 0
        node = src
        j = bisect_right(o_start, at - o_span[src], o_first[src], o_first[src + 1])
        while True:
            # Take the node's contacts open at ``at`` from position j; queue a cursor for the rest.
            stop = o_first[node + 1]
            nxt = hops + 1
            while j < stop:
                s = o_start[j]
                if s > at and heap and s > heap[0][0]:
                    # Not open yet and other work comes first: a cursor takes the rest when it opens, skipping
                    # contacts into nodes with a label queued by the time they open (they cannot improve it).
                    while best[o_to[j]] <= o_start[j]:
                        j += 1
                        if j == stop:
                            break
                    else:
                        s = o_start[j]
                        if s <= best[dst]:  # later than a label already queued for the destination: no use
                            push(heap, (s, hops, -_INF, label, j))
                    break
                e = o_end[j]
                if e > at:
                    arrival = (s if s > at else at) + o_delay[j]
                    t = o_to[j]
                    old = best[t]
                    if arrival < old or (
                        arrival == old and (nxt < best_hops[t] or (nxt == best_hops[t] and e < best_end[t]))
                    ):
                        if not (check_banned and o_cid[j] in banned_contacts):
                            best[t] = arrival
                            best_hops[t] = nxt
                            best_end[t] = e
                            push(heap, (arrival, nxt, e, len(lab_cid), -1))
                            lab_cid.append(o_cid[j])
                            lab_parent.append(label)
                            lab_node.append(t)
                j += 1
            # Next: a label to expand or a cursor to advance.
            while True:
                if not heap:
                    return None
                at, hops, _, label, j = pop(heap)
                node = lab_node[label]
                if j >= 0:
                    break  # a cursor: the contacts of ``node`` opening at ``at``
                if reached[node] != _INF:
                    continue  # expanded already, by a label no worse
                reached[node] = at
                if node == dst:
                    return _label_path(lab_cid, lab_parent, label), at, reached
                j = bisect_right(o_start, at - o_span[node], o_first[node], o_first[node + 1])
                break

    def _fewer_hops_possible(
        self,
        src: int,
        dst: int,
        hops: int,
        start_s: float,
        arrival_s: float,
        banned: list[int],
        banned_contacts: frozenset[int] | set[int],
        budget: int,
    ) -> bool:
        """Whether a path of fewer than ``hops`` hops may arrive by ``arrival_s``: whether the graph of node pairs
        has one that avoids the ``banned`` nodes, using only pairs with a contact (not banned) open at some time
        between ``start_s`` and ``arrival_s``. The precomputed table answers when it says no; otherwise a
        bidirectional breadth-first search, given up (answer: possible) after looking at ``budget`` pairs."""
        p_first = self._p_first
        p_start = self._p_start
        p_max_end = self._p_max_end
        p_cid = self._p_cid
        ends = self.end_s
        blocked = set(banned)
        banned_pairs = {self._pair_of[c] for c in banned_contacts} if banned_contacts else set()
        seen_f = {src}
        seen_b = {dst}
        front_f = [src]
        front_b = [dst]
        depth = 0
        while depth < hops - 1:
            forward = len(front_f) <= len(front_b)
            if forward:
                adjacency, front, seen, other = self._succ_pairs, front_f, seen_f, seen_b
            else:
                adjacency, front, seen, other = self._pred_pairs, front_b, seen_b, seen_f
            new: list[int] = []
            for k in front:
                budget -= len(adjacency[k])
                if budget < 0:
                    return True  # not worth more work than the search itself: do the fewest-hops passes
                for m, pid in adjacency[k]:
                    if m in seen or m in blocked:
                        continue
                    # A contact of the pair opening by ``arrival_s`` and closing after ``start_s``?
                    first = p_first[pid]
                    last = bisect_right(p_start, arrival_s, first, p_first[pid + 1]) - 1
                    if last < first or p_max_end[last] <= start_s:
                        continue
                    if pid in banned_pairs and not any(
                        ends[c] > start_s and c not in banned_contacts for c in p_cid[first : last + 1]
                    ):
                        continue
                    if m in other:
                        return True
                    seen.add(m)
                    new.append(m)
            if not new:
                return False
            depth += 1
            if forward:
                front_f = new
            else:
                front_b = new
        return False

    def _latest_departure(
        self,
        dst: int,
        start_s: float,
        deadline: float,
        reached: list[float],
        banned_contacts: frozenset[int] | set[int],
        banned: list[int],
    ) -> list[float]:
        """Pass 2: per node, the latest time at which one can be there and still reach ``dst`` by ``deadline``
        (-inf: not on any such path). A backward Dijkstra on the latest departure time over contacts that open
        before the bound and close after ``start_s``; a contact that closes before the earliest time one can be
        at its sending node (``reached``, pass 1; deadline for nodes pass 1 did not expand) is skipped."""
        i_start = self._i_start
        i_end = self._i_end
        i_delay = self._i_delay
        i_from = self._i_from
        i_cid = self._i_cid
        i_first = self._i_first
        i_span = self._i_span
        count = len(self._nodes)
        latest = [-_INF] * count
        latest[dst] = deadline
        blocked = set(banned)
        check_banned = bool(banned_contacts)
        heap: list[tuple[float, int]] = [(-deadline, dst)]
        while heap:
            neg, node = heapq.heappop(heap)
            bound = -neg
            if latest[node] != bound:
                continue
            stop = i_first[node + 1]
            lo = bisect_right(i_start, start_s - i_span[node], i_first[node], stop)
            stop = bisect_right(i_start, bound, lo, stop)
            for j in range(lo, stop):
                d = i_delay[j]
                s = i_start[j]
                if s + d > bound:
                    continue
                m = i_from[j]
                e = i_end[j]
                earliest = reached[m]
                if earliest > deadline:
                    earliest = deadline
                leave = bound - d
                if leave > e:
                    leave = e
                if e <= earliest or leave < earliest or leave <= latest[m]:
                    continue
                if m in blocked or (check_banned and i_cid[j] in banned_contacts):
                    continue
                latest[m] = leave
                heapq.heappush(heap, (-leave, m))
        return latest

    def _fewest_hops(
        self,
        src: int,
        dst: int,
        start_s: float,
        latest: list[float],
        banned_contacts: frozenset[int] | set[int],
        max_hops: int,
    ) -> list[int] | None:
        """Pass 3: the fewest-hops path among those that make the earliest arrival (``latest`` from pass 2), if it
        has fewer than ``max_hops`` hops (None otherwise). A label whose hops plus the hop count from its node to
        ``dst`` in the graph of node pairs (when the table is there) reach ``max_hops`` is not queued."""
        o_start = self._o_start
        o_end = self._o_end
        o_delay = self._o_delay
        o_to = self._o_to
        o_cid = self._o_cid
        o_first = self._o_first
        o_span = self._o_span
        count = len(self._nodes)
        # Float slack (latest = bound - delay); -inf stays -inf (no label there can make T*).
        limit = [b + 1e-9 * (1.0 + abs(b)) if b > -_INF else b for b in latest]
        table = self._hop_table
        # Per node, the hop count a label there may have at most: max_hops - 1 - (hops from there to dst).
        allowed = [max_hops - 1 - row[dst] for row in table] if table is not None else [max_hops - 1] * count
        best = [_INF] * count
        best_hops = [_BIG] * count
        expanded_hops = [_BIG] * count
        lab_cid = [-1]
        lab_parent = [-1]
        lab_node = [src]
        heap: list[tuple[float, int, float, int]] = []
        push = heapq.heappush
        pop = heapq.heappop
        check_banned = bool(banned_contacts)
        at = start_s
        hops = 0
        label = 0
        node = src
        expanded_hops[src] = 0
        while True:
            first = o_first[node]
            stop = o_first[node + 1]
            lo = bisect_right(o_start, at - o_span[node], first, stop)
            stop = bisect_right(o_start, limit[node], lo, stop)
            nxt = hops + 1
            for j in range(lo, stop):
                e = o_end[j]
                if e <= at:
                    continue
                s = o_start[j]
                arrival = (s if s > at else at) + o_delay[j]
                t = o_to[j]
                if arrival > limit[t] or nxt > allowed[t]:
                    continue  # cannot make the earliest arrival any more (or t is of no use), or too many hops
                old = best[t]
                if arrival >= old and nxt >= best_hops[t]:
                    continue  # a label already queued for t is no worse
                if check_banned and o_cid[j] in banned_contacts:
                    continue
                if arrival < old or (arrival == old and nxt < best_hops[t]):
                    best[t] = arrival
                    best_hops[t] = nxt
                push(heap, (arrival, nxt, e, len(lab_cid)))
                lab_cid.append(o_cid[j])
                lab_parent.append(label)
                lab_node.append(t)
            while True:
                if not heap:
                    return None
                at, hops, _, label = pop(heap)
                node = lab_node[label]
                if node == dst:
                    return _label_path(lab_cid, lab_parent, label)
                if expanded_hops[node] <= hops:
                    continue  # dominated: an earlier expansion arrived no later with no more hops
                expanded_hops[node] = hops
                break

    def walk(self, contact_ids: Iterable[int], start_s: float) -> float:
        """Best-case arrival time along ``contact_ids`` leaving at ``start_s`` (inf if a contact is missed)."""
        t = start_s
        for cid in contact_ids:
            if self.end_s[cid] <= t:
                return _INF
            s = self.start_s[cid]
            t = (s if s > t else t) + self.delay_s[cid]
        return t

    def make_route(self, contact_ids: Iterable[int], start_s: float) -> Route:
        ids = tuple(contact_ids)
        legs = self._legs
        confidence = 1.0
        owlt_sum = 0.0
        to_s = _INF
        t = start_s
        hops = []
        for cid in ids:
            s, e, delay, c, owlt, contact = legs[cid]
            if e < to_s:
                to_s = e
            if e <= t:
                t = _INF  # a contact is missed (as ``walk``)
            t = (s if s > t else t) + delay
            confidence *= c
            owlt_sum += owlt
            hops.append(contact)
        return Route(ids, tuple(hops), t, legs[ids[0]][0], to_s, confidence, owlt_sum)

    def _limited_route(self, ids: list[int], start_s: float) -> tuple[Route, int]:
        """``make_route`` and the hop of ``limiting_contact`` in one walk (for route lists by suppression)."""
        legs = self._legs
        confidence = 1.0
        owlt_sum = 0.0
        to_s = _INF
        limit = 0
        t = start_s
        hops = []
        for hop, cid in enumerate(ids):
            s, e, delay, c, owlt, contact = legs[cid]
            if e < to_s:
                to_s = e
                limit = hop  # strictly earlier: the first hop among those ending first
            if e <= t:
                t = _INF
            t = (s if s > t else t) + delay
            confidence *= c
            owlt_sum += owlt
            hops.append(contact)
        return Route(tuple(ids), tuple(hops), t, legs[ids[0]][0], to_s, confidence, owlt_sum), limit

    def limiting_contact(self, route: Route) -> int:
        """The contact that ends first on ``route`` (the first such hop on a tie): classic CGR suppresses it."""
        ends = self.end_s
        for cid in route.contact_ids:
            if ends[cid] == route.to_s:
                return cid
        raise ValueError("the route's end is none of its contacts' ends")


def _chain_path(chain: tuple[object, ...]) -> list[int]:
    """The contact ids of a one-pass label's chain ``(contact id, parent chain)``, from the source on."""
    path = []
    while chain:
        cid, chain = chain  # type: ignore[assignment]
        path.append(cid)
    path.reverse()
    return path  # type: ignore[return-value]


def _label_path(lab_cid: list[int], lab_parent: list[int], label: int) -> list[int]:
    """The contact ids from the source to ``label`` (label 0 is the source)."""
    path = []
    while label > 0:
        path.append(lab_cid[label])
        label = lab_parent[label]
    path.reverse()
    return path


def route_key(route: Route) -> tuple[float, int, float, tuple[int, ...]]:
    """Ranking of routes in a list: earliest arrival, fewer hops, later route end, then a stable order."""
    return (route.arrival_s, route.hop_count, -route.to_s, route.contact_ids)


#: How a route list finds its routes after the best one: ``"yen"``, Yen's k earliest loop-free routes (ION 4's
#: libcgr); ``"suppression"``, classic CGR (ION 3): after each route, suppress its limiting contact and search
#: again.
RouteMethod = Literal["yen", "suppression"]


class RouteList:
    """Ranked routes from ``source`` to ``destination`` computed at ``computed_at_s``, extended on demand, one
    route at a time, by ``method``:

    * ``"yen"`` (default): Yen's algorithm; each new route deviates from the previous one at some hop (the spur),
      with the root path's nodes banned (routes stay loop-free) and the next contact of every known route
      sharing that root banned (no duplicates). Lawler's refinement: a route's spurs start at the hop where it
      deviated from its parent (the spurs of the shared root were taken from the parent already, and their best
      is still a candidate). Route k is the k-th earliest loop-free contact sequence; ~2.5 searches per route.
    * ``"suppression"``: classic CGR's contact suppression (ION before Yen, pydtnsim's ``load_route_list``):
      each route is the best route (earliest arrival, fewest hops) over the contacts left once the limiting
      contact (earliest end, first such hop) of every earlier route is suppressed. One search per route; each
      route holds a contact no later route uses (routes are distinct), the list ends after at most one route
      per contact, and routes come by non-decreasing (arrival, hops) since each search has fewer contacts to
      use. Fewer alternatives than Yen: a route that shares the limiting contact of an earlier one is never
      listed. The last search (the one that finds nothing) is skipped when every contact out of the source or
      into the destination is suppressed or over; the searches of one list share their setup.

    Either way routes come by non-decreasing best-case arrival and the first is ``ContactGraph.search``'s."""

    __slots__ = (
        "graph", "source", "destination", "computed_at_s", "method", "routes", "searches", "_exhausted",
        "_suppressed", "_candidates", "_deviation", "_seen", "_more",
    )
    # Yen's bookkeeping, set up when the second route is asked for (a list often never goes further):
    #: (ranking key, hop at which the route deviates from its parent, route)
    _candidates: list[tuple[tuple[float, int, float, tuple[int, ...]], int, Route]]
    _deviation: list[int]
    _seen: set[tuple[int, ...]]

    def __init__(
        self, graph: ContactGraph, source: int, destination: int, computed_at_s: float, *,
        method: RouteMethod = "yen",
    ) -> None:
        if method != "yen" and method != "suppression":
            raise ValueError(f"unknown route list method {method!r} (yen or suppression)")
        self.graph = graph
        self.source = source
        self.destination = destination
        self.computed_at_s = computed_at_s
        self.method: RouteMethod = method
        self.routes: list[Route] = []
        self.searches = 0
        self._exhausted = False
        #: suppression: the limiting contacts of the routes so far, and the routes still to come (a generator that
        #: keeps the search set up between routes)
        self._suppressed: set[int] = set()
        self._more: Iterator[Route] | None = None

    @property
    def exhausted(self) -> bool:
        return self._exhausted

    def valid_until_s(self) -> float:
        """The list must be recomputed once time reaches the end of its earliest-ending route."""
        return min((r.to_s for r in self.routes), default=_INF)

    def get(self, k: int) -> Route | None:
        """The k-th best route (0-based), computing routes as needed; None when there are fewer."""
        routes = self.routes
        if k < len(routes):
            return routes[k]
        if self.method == "suppression":
            more = self._suppression_routes() if self._more is None else self._more
            self._more = more
            while len(routes) <= k and not self._exhausted:
                route = next(more, None)
                if route is None:
                    self._exhausted = True
                else:
                    routes.append(route)
        while len(routes) <= k and not self._exhausted:
            if not routes:
                self._first_route()
            else:
                self._yen_next()
        return routes[k] if k < len(routes) else None

    def all(self, limit: int | None = None) -> list[Route]:
        """Every route (up to ``limit``), computing them as needed."""
        if limit is None and self.method == "suppression" and not self._exhausted:
            more = self._suppression_routes() if self._more is None else self._more
            self._more = more
            self.routes.extend(more)
            self._exhausted = True
        while not self._exhausted and (limit is None or len(self.routes) < limit):
            self.get(len(self.routes))
        return self.routes if limit is None else self.routes[:limit]

    def _first_route(self) -> None:
        """Yen's first route: the best route."""
        g = self.graph
        self.searches += 1
        path = g.search(self.source, self.destination, self.computed_at_s)
        if path is None:
            self._exhausted = True
            return
        self.routes.append(g.make_route(path, self.computed_at_s))

    def _suppression_routes(self) -> Iterator[Route]:
        """The routes by contact suppression, one per ``next``: the best route over the contacts not suppressed,
        whose limiting contact is then suppressed. The search is set up once for the list (the graph, source and
        destination do not change; only the suppressed set grows). No search is run once every contact leaving
        the source or every contact into the destination that ends after the start is suppressed: none is left
        for a route (the search would find nothing)."""
        g = self.graph
        start_s = self.computed_at_s
        suppressed = self._suppressed
        src = g._node_index.get(self.source)
        dst = g._node_index.get(self.destination)
        if src is None or dst is None or src == dst:
            return
        # Contacts a route may still begin / end with (a route's contacts all end after the start).
        o_end = g._o_end
        i_end = g._i_end
        out_left = sum(1 for e in o_end[g._o_first[src] : g._o_first[src + 1]] if e > start_s)
        in_left = sum(1 for e in i_end[g._i_first[dst] : g._i_first[dst + 1]] if e > start_s)
        source = self.source
        destination = self.destination
        from_node = g.from_node
        to_node = g.to_node
        limited_route = g._limited_route
        one_pass = None
        if g._one_pass:
            one_pass = g._pair_pass if g._pair_mode else g._cursor_pass
        no_nodes: list[int] = []
        while out_left > 0 and in_left > 0:
            self.searches += 1
            if one_pass is not None:
                path = one_pass(src, dst, start_s, suppressed, no_nodes)
            else:
                path = g.search(source, destination, start_s, banned_contacts=suppressed)
            if path is None:
                return
            route, hop = limited_route(path, start_s)
            limit = path[hop]
            suppressed.add(limit)
            if from_node[limit] == source:
                out_left -= 1
            if to_node[limit] == destination:
                in_left -= 1
            yield route

    def _yen_next(self) -> None:
        g = self.graph
        if len(self.routes) == 1:  # the first spurs: Yen's bookkeeping starts with the best route
            self._candidates = []
            self._deviation = [0]
            self._seen = {self.routes[0].contact_ids}
        last = self.routes[-1].contact_ids
        for i in range(self._deviation[-1], len(last)):
            root = last[:i]
            spur_node = self.source if i == 0 else g.to_node[root[-1]]
            spur_time = g.walk(root, self.computed_at_s)
            banned_contacts = {r.contact_ids[i] for r in self.routes if r.contact_ids[:i] == root}
            banned_nodes = {self.source} | {g.to_node[cid] for cid in root}
            banned_nodes.discard(spur_node)
            self.searches += 1
            spur = g.search(
                spur_node,
                self.destination,
                spur_time,
                start_hops=i,
                banned_contacts=banned_contacts,
                banned_nodes=banned_nodes,
            )
            if spur is None:
                continue
            full = root + tuple(spur)
            if full in self._seen:
                continue
            self._seen.add(full)
            route = g.make_route(full, self.computed_at_s)
            heapq.heappush(self._candidates, (route_key(route), i, route))
        if not self._candidates:
            self._exhausted = True
            return
        _, deviation, route = heapq.heappop(self._candidates)
        self.routes.append(route)
        self._deviation.append(deviation)
