"""The node runtime: wires a clock, a bundle store, a router, the agent, convergence layers and applications.

One asyncio task commits the store and drains the agent's actions; one task sleeps until the agent's next
deadline. The durability rule holds by construction: every agent call that takes responsibility for a bundle
(reception from a CL, submission by an application, acknowledgement of a delivery) marks the node dirty and
waits for the next group commit before it answers; actions (transmissions, deliveries) are carried out only
after the commit that holds their bundles.

Routing: contact graph routing over the contact plan (``config.plan``, replaced at run time by ``load_plan``),
static routes as the fallback (``dtn.routing.plan_router``). Links to configured neighbours that the plan gives
contacts to open and close with those contacts (``dtn.contact_schedule``); the other configured neighbours are
kept connected all the time.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import functools
import heapq
import logging
import secrets
import time
import tomllib
from collections import OrderedDict
from collections.abc import AsyncIterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dtn import __version__
from dtn.agent.actions import Assemble, BundleDeleted, Deliver, ReportReceived, Transmit
from dtn.agent.agent import AgentConfig, BundleAgent, LargeSubmission, ReceiveResult
from dtn.agent.heads import read_head
from dtn.agent.registrations import DeliveryMode
from dtn.bundle.admin import StatusReport
from dtn.bundle.bundle import Bundle
from dtn.bundle.codec import decode_bundle
from dtn.bundle.eid import parse_eid
from dtn.bundle.file_name import FILE_NAME_BLOCK_TYPE, read_file_name
from dtn.bundle.flags import BundleFlag
from dtn.bundle.ids import BundleId
from dtn.bundle.stream import BundleStreamEncoder, encode_bundle_stream
from dtn.clock import Clock, ScaledClock, SystemClock, datetime_to_dtn_ms, parse_utc
from dtn.config import NodeConfig
from dtn.contact_schedule import ContactSchedule, clock_rate
from dtn.convergence.base import BundleSpool, ConvergenceLayer, Link, LinkLimits, Outcome, RefuseReason, SendResult
from dtn.errors import DecodeError, DtnError, StoreFull
from dtn.routing.base import Priority
from dtn.routing.cgr import RouteMethod
from dtn.routing.cgr_router import CgrConfig
from dtn.routing.contacts import ContactPlan, PlanError
from dtn.routing.plan_fields import dtn_ms_to_iso, iso_to_dtn_ms
from dtn.routing.plan_files import detect_format, parse_plan
from dtn.routing.plan_router import PlanRouter, route_info_to_json
from dtn.routing.static import StaticRouter, rule
from dtn.spool import FileSpool, SpoolError, clear_spool_directory
from dtn.storage.base import ANY_CONSTRAINT, BundleMeta, BundleStore, Constraint, quota_message
from dtn.storage.payloads import TEMP_PREFIX, read_range
from dtn.storage.sql import open_store

log = logging.getLogger("dtn.node")

REPORT_FLAGS = {
    "received": BundleFlag.REPORT_RECEPTION,
    "forwarded": BundleFlag.REPORT_FORWARDING,
    "delivered": BundleFlag.REPORT_DELIVERY,
    "deleted": BundleFlag.REPORT_DELETION,
}
#: Transmissions in flight on one link at once (TCPCL carries several transfers; the rest wait). Each waits for
#: the peer's commit before its XFER_ACK, so the window must cover a commit's latency at the link's bundle rate
#: (96 x 1 KiB bundles per ~20 ms commit round trip: ~4,800/s); bytes in flight are bounded separately.
LINK_WINDOW = 96
#: Received bundles per TCPCL session waiting for the commit that holds them, beyond which the session stops
#: reading (two peers' windows: the group commit takes what arrived while the previous commit ran).
RECEIVE_WINDOW = 2 * LINK_WINDOW
#: Bytes of encoded bundles handed to the convergence layers and not sent yet, above which new bundles from
#: applications and neighbours wait before the agent takes them (bounded memory when bundles arrive faster than
#: they leave).
MAX_QUEUED_TRANSMIT_BYTES = 32 * 1024 * 1024
#: Bytes of received bundles a TCPCL session holds for the node's decision before it stops reading the socket.
MAX_PENDING_RECEIVED_BYTES = 32 * 1024 * 1024
#: Status reports remembered for ``wait_report`` (oldest forgotten first).
MAX_REMEMBERED_REPORTS = 10_000
#: Payload bytes of just-received bundles kept for their first delivery (beyond: read back from the store).
MAX_DELIVERY_CACHE_BYTES = 16 * 1024 * 1024
#: How long a bundle from a neighbour waits for room in the transmission queue before it is taken anyway (a
#: bound, not a block: two nodes sending to each other with full queues must not wait for each other forever).
RECEIVE_BACKPRESSURE_S = 2.0
#: A delivery handed to an application and not acknowledged is offered again after this long.
DELIVERY_LEASE_S = 30.0
RECONNECT_MIN_S = 0.2
RECONNECT_MAX_S = 30.0
#: Destinations listed with their contact-graph route in ``routes()`` (the routing table), at most.
MAX_TABLE_DESTINATIONS = 100


@dataclass(frozen=True, slots=True)
class StoredPayload:
    """A payload too large to read at once, left in the store: ``length`` bytes at ``offset`` of the stored
    bundle ``bundle_id``; ``chunks()`` reads it piece by piece."""

    store: BundleStore
    bundle_id: BundleId
    offset: int
    length: int

    def __len__(self) -> int:
        return self.length

    def chunks(self, chunk_bytes: int = 1 << 20) -> Iterator[bytes]:
        """The payload in pieces of at most ``chunk_bytes``; ``DtnError`` if the store lost the bundle."""
        try:
            stream = self.store.open_raw(self.bundle_id)
        except KeyError:
            raise DtnError(f"bundle {self.bundle_id} is no longer stored") from None
        with stream:
            yield from read_range(stream, self.offset, self.length, chunk_bytes,
                                  f"the stored copy of bundle {self.bundle_id}")


@dataclass(frozen=True, slots=True)
class Delivery:
    bundle_id: BundleId
    endpoint: str
    source: str
    creation_ms: int
    # A view of the bundle as read from the store (no copy of the payload), or for a large bundle the place in
    # the store where its payload lies.
    payload: bytes | memoryview | StoredPayload
    file_name: str | None


class BatchStopped(DtnError):
    """``send_many`` stored the bundles ``stored`` (durably) and could not create the next one: ``error``."""

    def __init__(self, stored: list[BundleId], error: Exception) -> None:
        super().__init__(f"{len(stored)} bundle(s) stored, then: {error}")
        self.stored = stored
        self.error = error


class DeliveryQueue:
    """Bundles waiting for one application endpoint, offered oldest first; each is offered until acknowledged. An
    offered bundle is leased to its reader for ``lease_s``, then offered again. Taking the next bundle costs the
    same however many are leased (a reader with a window of 64 has 64 leased)."""

    def __init__(self, lease_s: float) -> None:
        self.lease_s = lease_s
        self._order: dict[BundleId, int] = {}  # every bundle waiting here -> its place in arrival order
        self._next = 0
        self._ready: list[tuple[int, BundleId]] = []  # heap of the ones not leased (may hold dropped ones)
        self._leased: OrderedDict[BundleId, float] = OrderedDict()  # id -> lease end, earliest end first
        self.changed = asyncio.Event()

    def add(self, bundle_id: BundleId) -> None:
        if bundle_id not in self._order:
            self._order[bundle_id] = self._next
            heapq.heappush(self._ready, (self._next, bundle_id))
            self._next += 1

    def take(self, now: float) -> BundleId | None:
        """The oldest bundle not leased (leases that ended count as not leased), leased from ``now``; or None."""
        leased = self._leased
        while leased:
            bundle_id, lease_end = next(iter(leased.items()))
            if lease_end > now:
                break
            del leased[bundle_id]
            heapq.heappush(self._ready, (self._order[bundle_id], bundle_id))
        while self._ready:
            place, bundle_id = heapq.heappop(self._ready)
            if self._order.get(bundle_id) == place and bundle_id not in leased:
                leased[bundle_id] = now + self.lease_s
                return bundle_id
        return None

    def drop(self, bundle_id: BundleId) -> None:
        """Acknowledged or gone: never offered again."""
        self._order.pop(bundle_id, None)
        self._leased.pop(bundle_id, None)

    def give_back(self, bundle_id: BundleId) -> None:
        """Its reader went away: offer it again now, in its place."""
        if self._leased.pop(bundle_id, None) is not None:
            heapq.heappush(self._ready, (self._order[bundle_id], bundle_id))


def write_assembly(store: BundleStore, action: Assemble, path: Path) -> None:
    """Carry out ``Assemble`` into the file ``path``: the whole bundle's head, then its ADU read from the stored
    fragments one at a time (run in a worker thread; the store serialises its use). ``KeyError`` when a fragment
    is gone, ``DtnError`` when one cannot be read back."""

    def adu() -> Iterator[memoryview]:
        for piece_id, skip, take in action.pieces:
            raw = store.raw(piece_id)
            try:
                piece = decode_bundle(raw, max_bytes=len(raw))
            except DecodeError as exc:
                raise DtnError(f"fragment {piece_id} cannot be read back: {exc}") from exc
            del raw
            yield memoryview(piece.payload)[skip : skip + take]

    with open(path, "wb") as out:
        for chunk in encode_bundle_stream(action.head, action.payload_length, adu()):
            out.write(chunk)


async def wait_event(event: asyncio.Event, timeout_s: float | None) -> bool:
    """Wait for ``event`` at most ``timeout_s``; True if it was set. (Not ``asyncio.wait_for``, which in Python
    3.11 can swallow a cancellation that arrives as the event is set.)"""
    try:
        async with asyncio.timeout(timeout_s):
            await event.wait()
    except TimeoutError:
        return False
    return True


def plan_format_of(name: str, text: str) -> str:
    """The format of a plan: from the file name's extension, else from the content (TOML text that parses as
    TOML with plan keys is TOML, even when it starts with a comment)."""
    if Path(name).suffix.lower() in (".toml", ".json", ".rc", ".ionrc", ".ion"):
        return detect_format(name, text)
    if not text.lstrip().startswith("{"):
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError:
            doc = {}
        if doc and set(doc) <= {"epoch", "contact", "range", "format"}:
            return "toml"
    return detect_format(name, text)


def report_flags(reports: frozenset[str]) -> BundleFlag:
    """The bundle flags that request the status reports named in ``reports``; ``ValueError`` for an unknown one."""
    unknown = set(reports) - set(REPORT_FLAGS)
    if unknown:
        raise ValueError(f"unknown report kind(s) {sorted(unknown)}; choose from {sorted(REPORT_FLAGS)}")
    flags = BundleFlag(0)
    for kind in reports:
        flags |= REPORT_FLAGS[kind]
    return flags


def make_clock(config: NodeConfig) -> Clock:
    if config.clock_rate == 1.0 and config.epoch is None:
        return SystemClock()
    epoch_ms = datetime_to_dtn_ms(parse_utc(config.epoch)) if config.epoch else SystemClock().dtn_ms()
    return ScaledClock(config.clock_rate, epoch_ms)


class Node:
    """One DTN node. ``await start()``, use it (the application methods below), ``await stop()``."""

    def __init__(self, config: NodeConfig, *, clock: Clock | None = None, store: BundleStore | None = None) -> None:
        self.config = config
        self.node_id = config.node_id
        self.clock = clock or make_clock(config)
        self._given_store = store
        self.store: BundleStore | None = store
        method: RouteMethod = "suppression" if config.route_method == "suppression" else "yen"
        self.router = PlanRouter(parse_eid(config.node_id),
                                 StaticRouter([rule(r.destination, r.via) for r in config.routes]),
                                 config=CgrConfig(route_method=method))
        self.plan_source: str | None = None
        self.plan_format: str | None = None
        self.contacts = ContactSchedule(self)
        self._always_on: dict[str, asyncio.Task[None]] = {}  # neighbour node ID -> _keep_connected task
        self.agent: BundleAgent | None = None
        self.cls: dict[str, ConvergenceLayer] = {}
        self.listening: list[str] = []
        self._links: dict[str, Link] = {}  # neighbour node ID -> the link we send on
        self._windows: dict[str, asyncio.Semaphore] = {}
        self._endpoints: dict[str, DeliveryQueue] = {}
        self._delivery_cache: dict[BundleId, Bundle] = {}  # bundles of Deliver actions, until first delivered
        self._delivery_cache_bytes = 0
        self._reports: OrderedDict[BundleId, list[StatusReport]] = OrderedDict()
        self._reports_changed = asyncio.Event()
        self._dirty = asyncio.Event()
        self._commit_waiters: list[asyncio.Future[None]] = []
        # A store whose commit may run in a worker thread (``thread_safe_commit``) and waits for the disk
        # (``commit_waits_for_disk``: fsync, a database server) commits there: the event loop keeps reading,
        # parsing and writing meanwhile, and the work that touches the store waits for the commit to return
        # (``_store_turn``), then joins the next group. A commit that does not wait (SQLite without fsync) runs
        # inline: cheaper than a thread switch.
        self._store_idle = asyncio.Event()
        self._store_idle.set()
        self._committer: concurrent.futures.ThreadPoolExecutor | None = None
        self._commit_in_flight: asyncio.Future[None] | None = None
        self._timer_wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._send_tasks: set[asyncio.Task[None]] = set()
        self._queued_transmit_bytes = 0
        self._transmit_room = asyncio.Event()
        self._transmit_room.set()
        self._started_at = 0.0
        self._stopping = False
        self.commits = 0
        self.commit_s = 0.0  # wall time spent committing (in the worker thread or inline)
        self.committed_waiters = 0  # acknowledgements released by commits (bundles, deliveries, submissions)
        self.spooled_transfers = 0  # large incoming TCPCL transfers written to files as they arrived

    # --- life cycle ----------------------------------------------------------------------------------------

    async def start(self) -> None:
        config = self.config
        if self.store is None:
            config.data_dir.mkdir(parents=True, exist_ok=True)
            self.store = open_store(
                config.store_url,
                durability="power-loss" if config.store.durability == "power" else "process-crash",
                quota_bytes=config.store.quota_bytes,
                dtn_ms=self.clock.dtn_ms(),
            )
        if config.plan is not None:
            try:
                text = config.plan.read_text(encoding="utf-8")
            except OSError as exc:
                raise PlanError(f"cannot read the contact plan: {exc.strerror}", source=str(config.plan)) from None
            fmt = plan_format_of(str(config.plan), text)
            self.router.load(parse_plan(text, fmt, source=str(config.plan)), self.clock.dtn_ms())
            self.plan_source, self.plan_format = str(config.plan), fmt
        agent_config = AgentConfig(parse_eid(self.node_id))
        if self.config.fragment_payload_bytes:  # ADUs sent in pieces of that size are never held whole either
            agent_config = dataclasses.replace(
                agent_config, reassemble_in_memory_bytes=self.config.fragment_payload_bytes
            )
        if isinstance(getattr(self.store, "payload_dir", None), Path):  # large reassembly off the event loop
            agent_config = dataclasses.replace(agent_config, assemble_in_runtime=True)
        self.agent = BundleAgent(agent_config, self.store, self.router)
        store = self.store
        if getattr(store, "thread_safe_commit", False) and getattr(store, "commit_waits_for_disk", True):
            self._committer = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="dtn-commit")
        self._started_at = self.clock.now()
        resumed = self.agent.resume(self.clock.now(), self.clock.dtn_ms())
        if resumed:
            log.info("resumed %d stored bundle(s)", resumed)
        self._tasks.append(asyncio.create_task(self._commit_loop(), name="dtn-commit"))
        self._tasks.append(asyncio.create_task(self._timer_loop(), name="dtn-timer"))
        for url in config.listen:
            cl = self._cl_for(url)
            self.listening.append(await cl.listen(url))
        self._follow_plan()
        self._mark_dirty()
        log.info("node %s started (dtn %s)", self.node_id, __version__)

    async def stop(self) -> None:
        """Commit, end every session cleanly, close the store."""
        if self._stopping:
            return
        self._stopping = True
        await self.contacts.close()
        self._tasks.extend(self._always_on.values())
        self._always_on.clear()
        for task in self._tasks:
            task.cancel()
        for task in list(self._send_tasks):
            task.cancel()
        for task in [*self._tasks, *self._send_tasks]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._commit_in_flight is not None:  # the commit loop was cancelled while its thread committed
            with contextlib.suppress(Exception):
                await asyncio.wait([self._commit_in_flight])
        if self._committer is not None:
            self._committer.shutdown(wait=True)
        self._store_idle.set()
        self._transmit_room.set()
        for cl in self.cls.values():
            try:
                async with asyncio.timeout(15):
                    await cl.close()
            except (TimeoutError, OSError, DtnError) as exc:
                log.warning("closing the %s convergence layer: %s", cl.scheme, exc)
        if self.store is not None:
            self.store.commit()
            if self._given_store is None:
                self.store.close()
        for waiter in self._commit_waiters:
            if not waiter.done():
                waiter.set_exception(DtnError("node stopped"))
        log.info("node %s stopped", self.node_id)

    def _cl_for(self, url: str) -> ConvergenceLayer:
        scheme = url.split("://", 1)[0]
        cl = self.cls.get(scheme)
        if cl is not None:
            return cl
        if scheme == "tcpcl":
            from dtn.convergence.tcpcl.aio import TcpclConfig, TcpclConvergenceLayer
            from dtn.convergence.tcpcl.session import SessionConfig

            # A peer keeps up to LINK_WINDOW transfers in flight; read them all while a commit runs, so that
            # they join the next group (the session stops reading beyond max_pending_received). The transfer MRU
            # is the largest bundle the node takes (max_bundle_bytes): a peer learns it from SESS_INIT (and
            # fragments to fit), and a larger transfer is refused as it starts. Transfers above the in-memory
            # threshold are written to a file as they arrive (open_spool), never gathered.
            session = SessionConfig(max_pending_received=RECEIVE_WINDOW, max_pending_bytes=MAX_PENDING_RECEIVED_BYTES,
                                    transfer_mru=self.config.max_bundle_bytes,
                                    spool_above_bytes=self._in_memory_bundle_bytes())
            cl = TcpclConvergenceLayer(self.node_id, self, TcpclConfig(session=session))
        elif scheme == "udp":
            from dtn.convergence.udpcl.aio import UdpConvergenceLayer

            cl = UdpConvergenceLayer(self)
        else:
            raise DtnError(f"no convergence layer for {url!r} in a standalone node (tcpcl:// or udp://)")
        self.cls[scheme] = cl
        return cl

    # --- bundles larger than memory (TCPCL transfers spooled to files, transmissions streamed from files) -------

    @property
    def in_memory_bundle_bytes(self) -> int:
        """Bundles larger than this are never held whole (written to and read from the store's files)."""
        return self._in_memory_bundle_bytes()

    def _in_memory_bundle_bytes(self) -> int:
        """Bundles larger than this are never held whole: received into a file, sent from the store's file."""
        if self.agent is not None:
            return self.agent.config.reassemble_in_memory_bytes
        return self.config.fragment_payload_bytes or AgentConfig(parse_eid(self.node_id)).reassemble_in_memory_bytes

    def _spool_directory(self) -> Path:
        """Where large incoming bundles are written: the store's payload directory when it has one (the finished
        file is renamed into the store; recovery removes an unfinished one), else ``data_dir/spool``."""
        payload_dir = getattr(self.store, "payload_dir", None)
        if isinstance(payload_dir, Path):
            return payload_dir
        directory = self.config.data_dir / "spool"
        if not directory.is_dir():
            directory.mkdir(parents=True, exist_ok=True)
            clear_spool_directory(directory)
        return directory

    def open_spool(self, link: Link) -> FileSpool | RefuseReason:
        """``SpoolingSink.open_spool``: a file for the next large bundle from ``link``."""
        store = self.store
        if store is None or self._stopping:
            return RefuseReason.SESSION_TERMINATING if self._stopping else RefuseReason.NO_RESOURCES

        def room(size: int) -> bool:
            quota = store.quota_bytes
            return quota is None or store.bytes_used + size <= quota

        self.spooled_transfers += 1
        return FileSpool(self._spool_directory(), max_bundle_bytes=self.config.max_bundle_bytes, room=room)

    async def spooled_bundle_received(self, link: Link, spool: BundleSpool, length: int) -> RefuseReason | None:
        """``SpoolingSink.spooled_bundle_received``: the agent takes the bundle in the file; the store adopts the
        file; the answer (and so the XFER_ACK) comes after the commit that holds it."""
        assert isinstance(spool, FileSpool)
        agent = self._agent()
        try:
            try:
                head = spool.finish(length)
            except SpoolError as exc:
                log.warning("refused a bundle from %s: %s", link.peer_node_id or link.link_id, exc)
                return exc.reason
            await self._room_to_receive()
            store = self.store
            assert store is not None

            def keep(meta: BundleMeta, rewritten: Bundle | None) -> bool:
                if rewritten is not None:
                    return store.add_stream(
                        meta, encode_bundle_stream(rewritten, head.payload_length, spool.payload_chunks()))
                return self._adopt_file(spool.path, meta)

            result = agent.receive_spooled(head, keep, self.clock.now(), self.clock.dtn_ms(),
                                           from_node=link.peer_node_id)
            return await self._receive_outcome(link, result)
        finally:
            spool.discard()  # the store renamed or copied the file when it took the bundle

    @staticmethod
    async def _send_parts(link: Link, action: Transmit) -> SendResult:
        """``action``'s bundle in its parts when the link takes them so (a large payload is not joined to its
        blocks first), else joined."""
        send_stream = getattr(link, "send_stream", None)
        if len(action.parts) > 1 and send_stream is not None:
            result: SendResult = await send_stream(action.length, action.parts)
            return result
        return await link.send(action.data)

    async def _send_streamed(self, link: Link, action: Transmit) -> SendResult:
        """Send a bundle too large to encode in memory: its new head, then its payload read from the store."""
        stream = action.stream
        assert stream is not None and self.store is not None
        send_stream = getattr(link, "send_stream", None)
        if send_stream is None:
            return SendResult(Outcome.FAILED, detail=f"{link.link_id} cannot send a bundle from a file")
        payload = StoredPayload(self.store, action.bundle_id, stream.payload_offset, stream.payload_length)
        chunks = encode_bundle_stream(stream.head, stream.payload_length, payload.chunks())
        result: SendResult = await send_stream(stream.encoded_length, chunks)
        return result

    def add_convergence_layer(self, cl: ConvergenceLayer) -> None:
        """Use ``cl`` for its scheme (e.g. an in-memory CL for tests and the simulator); before ``start``."""
        self.cls[cl.scheme] = cl

    async def _connect(self, node_id: str, url: str, rate_bytes_per_s: float | None) -> Link:
        cl = self._cl_for(url)
        if url.startswith(("udp://", "mem://")):
            limits = LinkLimits(None, rate_bytes_per_s or None)
            link: Link = await cl.connect(url, peer_node_id=node_id, limits=limits)  # type: ignore[call-arg]
        else:
            link = await cl.connect(url, peer_node_id=node_id)
        return link

    async def _keep_connected(self, node_id: str, url: str, rate_bytes_per_s: float) -> None:
        """Open the link to a configured neighbour and reopen it, with backoff, whenever it drops."""
        delay = RECONNECT_MIN_S
        own: Link | None = None
        try:
            while not self._stopping:
                link = self._links.get(node_id)
                if link is not None and link.is_up:
                    await asyncio.sleep(min(delay, 1.0))
                    continue
                try:
                    own = await self._connect(node_id, url, rate_bytes_per_s)
                except (TimeoutError, OSError, DtnError) as exc:
                    log.debug("neighbour %s at %s: %s; retrying in %.1f s", node_id, url, exc, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RECONNECT_MAX_S)
                    continue
                delay = RECONNECT_MIN_S
                self._register_link(node_id, own)
                while own.is_up and not self._stopping:
                    await asyncio.sleep(0.5)
        except asyncio.CancelledError:
            if own is not None and own.is_up and not self._stopping:
                # The neighbour now follows the contact plan: the always-on link goes (in the background).
                closing = asyncio.create_task(own.close(), name=f"dtn-neighbour close {node_id}")
                self._send_tasks.add(closing)
                closing.add_done_callback(self._send_tasks.discard)
            raise

    # --- the contact plan --------------------------------------------------------------------------------------

    def _follow_plan(self) -> None:
        """Schedule the links of planned neighbours; keep the other configured neighbours always connected."""
        planned = {f"ipn:{n}.0" for n in self.router.scheduled_neighbours()}
        entries = {}
        for neighbour in self.config.neighbours:
            if neighbour.node_id in planned:
                number = parse_eid(neighbour.node_id).node  # type: ignore[union-attr]
                entries[neighbour.node_id] = (neighbour.url, self.router.contact_windows(number))
        for node_id in list(self._always_on):
            if node_id in entries:
                self._always_on.pop(node_id).cancel()
        self.contacts.update(entries)
        for neighbour in self.config.neighbours:
            if neighbour.node_id not in entries and neighbour.node_id not in self._always_on:
                self._always_on[neighbour.node_id] = asyncio.create_task(
                    self._keep_connected(neighbour.node_id, neighbour.url, neighbour.rate_bytes_per_s),
                    name=f"dtn-neighbour {neighbour.node_id}",
                )

    def load_plan(self, text: str, fmt: str | None = None, *, source: str = "<api>") -> ContactPlan:
        """Replace the contact plan (any format; ``fmt`` None: detected). A relative plan starts now. Bundles
        waiting in the store are routed again over the new plan and the links follow its contacts. Raises
        ``PlanError`` (nothing changes) for a plan that cannot be read."""
        self._agent()  # the node must be running
        fmt = fmt or plan_format_of(source, text)
        plan = parse_plan(text, fmt, source=source)
        self.router.load(plan, self.clock.dtn_ms())
        self.plan_source, self.plan_format = source, fmt
        self._follow_plan()
        self._reroute_all()
        log.info("contact plan loaded from %s (%s): %d contacts, %d ranges", source, fmt, len(plan.contacts),
                 len(plan.ranges))
        return plan

    def _reroute_all(self) -> None:
        """Every bundle waiting to be forwarded is routed again (those in flight finish first)."""
        agent = self._agent()
        assert self.store is not None
        for meta in self.store.with_constraint(Constraint.FORWARD_PENDING):
            if meta.constraints & Constraint.FORWARD_PENDING:
                self.store.set_constraints(meta.id, meta.constraints | Constraint.CONTRAINDICATED)
        agent.retry_contraindicated(self.clock.now(), self.clock.dtn_ms())
        self._mark_dirty()

    async def open_link(self, node_id: str, url: str, rate_bytes_per_s: float | None) -> Link:
        """For the contact schedule: open a link to ``node_id`` for its contact and register it."""
        link = await self._connect(node_id, url, rate_bytes_per_s)
        if self._stopping:
            await link.close()
            raise DtnError("node stopping")
        self._register_link(node_id, link)
        return link

    def contact_missed(self, node_id: str, detail: str) -> None:
        """The link of a contact that is on cannot be opened: bundles waiting for it go to later contacts."""
        if self.agent is None or node_id in self._links:
            return
        self.router.contact_missed(parse_eid(node_id))
        self.agent.retry_contraindicated(self.clock.now(), self.clock.dtn_ms())
        self._mark_dirty()

    def contact_over(self, node_id: str) -> None:
        """A contact ended (or a new one starts): its neighbour is not missed any more; bundles that could not go
        are routed again."""
        if self.agent is None:
            return
        self.router.contact_over(parse_eid(node_id))
        self.agent.retry_contraindicated(self.clock.now(), self.clock.dtn_ms())
        self._mark_dirty()

    # --- the BundleSink side (called by the CLs) ---------------------------------------------------------------

    async def bundle_received(self, link: Link, data: bytes) -> RefuseReason | None:
        await self._room_to_receive()
        result = self._agent().receive(data, self.clock.now(), self.clock.dtn_ms(), from_node=link.peer_node_id)
        return await self._receive_outcome(link, result)

    async def _room_to_receive(self) -> None:
        """Before taking a received bundle: wait (a little) while the transmission queue is over its cap, then for
        the store's turn."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(RECEIVE_BACKPRESSURE_S):
                await self._room_to_transmit()
        await self._store_turn()

    async def _receive_outcome(self, link: Link, result: ReceiveResult) -> RefuseReason | None:
        """What the CL answers for a received bundle: its refusal, or None (accepted) once the commit holding
        it has returned."""
        if not result.accepted:
            if result.refuse is not RefuseReason.COMPLETED:
                log.warning("refused a bundle from %s: %s", link.peer_node_id or link.link_id, result.detail)
            return result.refuse
        await self._committed()
        return None

    def link_up(self, link: Link) -> None:
        peer = link.peer_node_id
        if peer is None:
            return  # a receive-only link (e.g. datagrams from an unknown sender)
        try:
            peer = str(parse_eid(peer))
        except DtnError:
            log.warning("link %s: peer announced an invalid node ID %r", link.link_id, peer)
            return
        self._register_link(peer, link)

    def _register_link(self, peer: str, link: Link) -> None:
        if self._links.get(peer) is link:
            return
        self._links[peer] = link
        self._windows.setdefault(peer, asyncio.Semaphore(LINK_WINDOW))
        self._agent().link_up(peer, self.clock.now(), self.clock.dtn_ms(), link.limits)
        log.info("link up: %s (%s)", peer, link.link_id)
        self._mark_dirty()

    def link_down(self, link: Link, reason: str) -> None:
        self.contacts.link_gone(link)
        for peer, known in list(self._links.items()):
            if known is link:
                del self._links[peer]
                if self.agent is not None:
                    self.agent.link_down(peer, self.clock.now(), self.clock.dtn_ms())
                log.info("link down: %s (%s)", peer, reason)
                self._mark_dirty()

    # --- group commit and actions ------------------------------------------------------------------------------

    def _agent(self) -> BundleAgent:
        if self.agent is None:
            raise DtnError("the node is not started")
        return self.agent

    def _mark_dirty(self) -> None:
        self._dirty.set()
        self._timer_wake.set()

    async def _room_to_transmit(self) -> None:
        """Wait while the bundles queued for the convergence layers exceed ``MAX_QUEUED_TRANSMIT_BYTES``."""
        while self._queued_transmit_bytes > MAX_QUEUED_TRANSMIT_BYTES and not self._stopping:
            self._transmit_room.clear()
            await self._transmit_room.wait()

    async def _store_turn(self) -> None:
        """Return when no commit is running in the worker thread (the caller then uses the store and the agent
        without awaiting in between, so its work joins the next commit)."""
        while not self._store_idle.is_set():
            await self._store_idle.wait()

    async def _committed(self) -> None:
        """Return once a commit covering everything done so far has returned."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._commit_waiters.append(future)
        self._mark_dirty()
        await future

    async def _commit_loop(self) -> None:
        store = self.store
        assert store is not None
        while True:
            await self._dirty.wait()
            await asyncio.sleep(0)  # let the work that is ready join this commit
            self._dirty.clear()
            waiters, self._commit_waiters = self._commit_waiters, []
            started = time.perf_counter()
            try:
                if self._committer is None:
                    store.commit()
                else:
                    self._store_idle.clear()
                    in_flight = self._commit_in_flight = asyncio.get_running_loop().run_in_executor(
                        self._committer, store.commit
                    )
                    try:
                        await asyncio.shield(in_flight)
                    finally:
                        if in_flight.done():
                            self._commit_in_flight = None
                            self._store_idle.set()
            except DtnError as exc:
                log.error("store commit failed: %s", exc)
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_exception(exc)
                continue
            self.commits += 1
            self.commit_s += time.perf_counter() - started
            self.committed_waiters += len(waiters)
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
            self._carry_out_actions()

    def _carry_out_actions(self) -> None:
        agent = self._agent()
        while (action := agent.next_action()) is not None:
            if isinstance(action, Transmit):
                self._queued_transmit_bytes += action.length
                task = asyncio.create_task(self._transmit(action), name=f"dtn-send {action.bundle_id}")
                self._send_tasks.add(task)
                task.add_done_callback(self._send_tasks.discard)
            elif isinstance(action, Deliver):
                bundle = action.bundle
                if bundle is not None and action.bundle_id not in self._delivery_cache:
                    size = len(bundle.payload)
                    if self._delivery_cache_bytes + size <= MAX_DELIVERY_CACHE_BYTES:
                        self._delivery_cache[action.bundle_id] = bundle
                        self._delivery_cache_bytes += size
                endpoint = self._endpoint(action.endpoint)
                endpoint.add(action.bundle_id)
                endpoint.changed.set()
            elif isinstance(action, ReportReceived):
                self._remember_report(action.report)
            elif isinstance(action, BundleDeleted):
                self._uncache(action.bundle_id)
                log.info("deleted %s: %s %s", action.bundle_id, action.reason.name.lower(), action.detail)
            elif isinstance(action, Assemble):
                task = asyncio.create_task(self._assemble(action), name=f"dtn-assemble {action.meta.id}")
                self._send_tasks.add(task)
                task.add_done_callback(self._send_tasks.discard)

    async def _assemble(self, action: Assemble) -> None:
        """Write a large bundle reassembled from its stored fragments to a file in a worker thread (the node goes
        on meanwhile), then give it to the agent, which stores it in place of the fragments."""
        store = self.store
        assert store is not None
        bundle_id = action.meta.id
        path = self._spool_directory() / f"{TEMP_PREFIX}assemble-{secrets.token_hex(8)}"
        log.info("reassembling %s: %d payload bytes from %d pieces", bundle_id, action.payload_length,
                 len(action.pieces))
        started = time.monotonic()
        try:
            written = True
            try:
                await asyncio.get_running_loop().run_in_executor(None, write_assembly, store, action, path)
            except (DtnError, OSError, KeyError) as exc:
                log.warning("could not reassemble %s (its fragments stay): %s", bundle_id, exc)
                written = False
            await self._store_turn()
            keep = functools.partial(self._adopt_file, path)
            kept = self._agent().assembled(bundle_id, keep if written else None, self.clock.now(),
                                           self.clock.dtn_ms())
            await self._committed()
            if kept:
                log.info("reassembled %s in %.1f s", bundle_id, time.monotonic() - started)
        finally:
            path.unlink(missing_ok=True)

    async def _transmit(self, action: Transmit) -> None:
        try:
            await self._transmit_once(action)
        finally:
            self._queued_transmit_bytes -= action.length
            if self._queued_transmit_bytes <= MAX_QUEUED_TRANSMIT_BYTES:
                self._transmit_room.set()

    async def _transmit_once(self, action: Transmit) -> None:
        agent = self._agent()
        link = self._links.get(action.neighbour)
        ok, detail = False, "no link"
        if link is not None:
            async with self._windows.setdefault(action.neighbour, asyncio.Semaphore(LINK_WINDOW)):
                try:
                    if action.stream is not None:
                        result = await self._send_streamed(link, action)
                    else:
                        result = await self._send_parts(link, action)
                except (OSError, DtnError) as exc:
                    ok, detail = False, str(exc)
                else:
                    ok = result.ok or result.reason is RefuseReason.COMPLETED
                    detail = result.detail or (result.reason.name if result.reason is not None else "")
        if not ok:
            log.info("transmission of %s to %s failed: %s", action.bundle_id, action.neighbour, detail)
        await self._store_turn()
        agent.transfer_done(action.transmission_id, ok, self.clock.now(), self.clock.dtn_ms(), detail=detail)
        self._mark_dirty()

    async def _timer_loop(self) -> None:
        agent = self._agent()
        while True:
            self._timer_wake.clear()
            deadline = agent.next_deadline()
            timeout = None
            if deadline is not None:
                timeout = max(0.0, (deadline - self.clock.now()) / clock_rate(self.clock))
            await wait_event(self._timer_wake, timeout)
            if deadline is not None and self.clock.now() >= deadline:
                await self._store_turn()
                agent.handle_timer(self.clock.now(), self.clock.dtn_ms())
                self._dirty.set()

    def _remember_report(self, report: StatusReport) -> None:
        subject = report.subject_id()
        self._reports.setdefault(subject, []).append(report)
        self._reports.move_to_end(subject)
        while len(self._reports) > MAX_REMEMBERED_REPORTS:
            self._reports.popitem(last=False)
        self._reports_changed.set()

    # --- the application side ----------------------------------------------------------------------------------

    async def send(
        self,
        destination: str,
        payload: bytes | memoryview,
        *,
        source: str | None = None,
        lifetime_ms: int = 86_400_000,
        report_to: str | None = None,
        reports: frozenset[str] = frozenset(),
        priority: int = 1,
        hop_limit: int | None = None,
        file_name: str | None = None,
    ) -> BundleId:
        """Create a bundle; returns its id once it is durably stored."""
        ids = await self.send_many(destination, [payload], source=source, lifetime_ms=lifetime_ms,
                                   report_to=report_to, reports=reports, priority=priority, hop_limit=hop_limit,
                                   file_name=file_name)
        return ids[0]

    async def send_many(
        self,
        destination: str,
        payloads: list[bytes | memoryview],
        *,
        source: str | None = None,
        lifetime_ms: int = 86_400_000,
        report_to: str | None = None,
        reports: frozenset[str] = frozenset(),
        priority: int = 1,
        hop_limit: int | None = None,
        file_name: str | None = None,
    ) -> list[BundleId]:
        """Create one bundle per payload, with the same options; returns their ids once they are all durably
        stored (one commit). When bundle k cannot be created, the k before it are stored and ``BatchStopped``
        says so (the first failing: its own error)."""
        flags = report_flags(reports)
        await self._room_to_transmit()
        await self._store_turn()
        agent = self._agent()
        now, dtn_ms = self.clock.now(), self.clock.dtn_ms()
        ids: list[BundleId] = []
        try:
            for payload in payloads:
                ids.append(agent.submit(destination, payload, now, dtn_ms, source=source, report_to=report_to,
                                        lifetime_ms=lifetime_ms, flags=flags, hop_limit=hop_limit,
                                        priority=priority, file_name=file_name))
        except (DtnError, ValueError) as exc:
            if not ids:
                raise
            await self._committed()
            raise BatchStopped(ids, exc) from exc
        await self._committed()
        return ids

    async def send_stream(
        self,
        destination: str,
        total_bytes: int,
        chunks: AsyncIterable[bytes | bytearray | memoryview],
        *,
        source: str | None = None,
        lifetime_ms: int = 86_400_000,
        report_to: str | None = None,
        reports: frozenset[str] = frozenset(),
        priority: int = 1,
        hop_limit: int | None = None,
        file_name: str | None = None,
    ) -> BundleId:
        """Send a ``total_bytes`` payload read from ``chunks`` as fragments of ``fragment_payload_bytes`` made
        here (RFC 9171 §5.8): each is stored and forwarded while the next is read, so that memory holds at most
        one piece (and the transmission queue). Returns the id of the whole bundle once every fragment is durably
        stored. If the chunks fail or end early, the fragments stored so far are deleted (transmission
        canceled) and the error is raised (``ValueError`` for a short or long body). A node that does not
        fragment (``fragment_payload_bytes = 0``) sends ONE bundle instead, written to a file as the chunks come
        (``ValueError`` above ``max_bundle_bytes``; ``StoreFull``); nothing is kept if they fail."""
        flags = report_flags(reports)
        await self._store_turn()
        agent = self._agent()
        if not self.config.fragment_payload_bytes:
            large = agent.begin_large(
                destination, total_bytes, self.clock.now(), self.clock.dtn_ms(), source=source, report_to=report_to,
                lifetime_ms=lifetime_ms, flags=flags, hop_limit=hop_limit, priority=priority, file_name=file_name,
            )
            return await self._send_unfragmented(large, total_bytes, chunks)
        if total_bytes <= 0:
            raise ValueError("a payload sent in fragments has at least one byte")
        piece_bytes = self.config.fragment_payload_bytes
        submission = agent.begin_fragmented(
            destination, total_bytes, self.clock.now(), self.clock.dtn_ms(), source=source, report_to=report_to,
            lifetime_ms=lifetime_ms, flags=flags, hop_limit=hop_limit, priority=priority, file_name=file_name,
        )
        stored: list[BundleId] = []
        pending: list[bytes] = []  # chunks of the next piece, joined once it is complete (one copy)
        pending_bytes = 0
        offset = 0

        async def store_piece(data: bytes) -> None:
            nonlocal offset
            await self._room_to_transmit()
            await self._store_turn()
            stored.append(agent.submit_fragment(submission, offset, data, self.clock.now(), self.clock.dtn_ms()))
            offset += len(data)
            self._mark_dirty()

        try:
            async for chunk in chunks:
                if offset + pending_bytes + len(chunk) > total_bytes:
                    raise ValueError(f"the payload is longer than the {total_bytes} bytes announced")
                view = memoryview(chunk)
                while pending_bytes + len(view) >= piece_bytes:
                    take = piece_bytes - pending_bytes
                    pending.append(bytes(view[:take]))
                    view = view[take:]
                    data = b"".join(pending)
                    pending.clear()
                    pending_bytes = 0
                    await store_piece(data)
                    del data
                if len(view):
                    pending.append(bytes(view))
                    pending_bytes += len(view)
            if pending:
                await store_piece(b"".join(pending))
                pending.clear()
            if offset != total_bytes:
                raise ValueError(f"the payload ended after {offset} of its {total_bytes} bytes")
        except BaseException:
            await self._store_turn()
            now, dtn_ms = self.clock.now(), self.clock.dtn_ms()
            for fragment_id in stored:
                agent.cancel(fragment_id, now, dtn_ms)
            self._mark_dirty()
            raise
        await self._committed()
        return submission.bundle_id

    async def _send_unfragmented(
        self, submission: LargeSubmission, total_bytes: int, chunks: AsyncIterable[bytes | bytearray | memoryview]
    ) -> BundleId:
        """``send_stream`` for a node that does not fragment at the source: ONE bundle, written to a file in the
        store's payload directory as the chunks come, then stored and forwarded from the file."""
        size = submission.meta.size_bytes
        if size > self.config.max_bundle_bytes:
            raise ValueError(f"bundle of {size} bytes exceeds this node's limit of {self.config.max_bundle_bytes} "
                             "(max_bundle_bytes)")
        store = self.store
        assert store is not None
        quota = store.quota_bytes
        if quota is not None and store.bytes_used + size > quota:
            raise StoreFull(quota_message(store.bytes_used, quota, size, submission.meta.id))
        encoder = BundleStreamEncoder(submission.head, total_bytes)
        path = self._spool_directory() / f"{TEMP_PREFIX}send-{secrets.token_hex(8)}"
        try:
            with open(path, "wb") as out:
                out.write(encoder.head)
                async for chunk in chunks:
                    if len(chunk):
                        out.write(encoder.payload(chunk))
                out.write(encoder.end())
            await self._store_turn()
            bundle_id = self._agent().submit_large(
                submission, functools.partial(self._adopt_file, path), self.clock.now(), self.clock.dtn_ms()
            )
        finally:
            path.unlink(missing_ok=True)
        await self._committed()
        return bundle_id

    def _adopt_file(self, path: Path, meta: BundleMeta) -> bool:
        """Store the bundle ``meta`` written to ``path`` (renamed into the store when it is in the payload
        directory); False when the store has it already."""
        store = self.store
        assert store is not None
        add_file = getattr(store, "add_file", None)
        if add_file is not None:
            return bool(add_file(meta, path))
        with open(path, "rb") as f:
            return store.add_stream(meta, iter(functools.partial(f.read, 1 << 20), b""))

    def register(self, endpoint: str, *, passive: bool = False) -> None:
        eid = str(parse_eid(endpoint))
        self._endpoint(eid)
        mode = DeliveryMode.PASSIVE if passive else DeliveryMode.ACTIVE
        self._agent().register(eid, mode, self.clock.now(), self.clock.dtn_ms())
        self._mark_dirty()

    def unregister(self, endpoint: str) -> bool:
        eid = str(parse_eid(endpoint))
        self._endpoints.pop(eid, None)
        return self._agent().unregister(eid)

    async def next_delivery(self, endpoint: str, timeout_s: float | None) -> Delivery | None:
        """The oldest bundle for ``endpoint`` not currently leased to another reader; None on timeout."""
        eid = str(parse_eid(endpoint))
        if eid not in self._agent().registrations:
            self.register(eid)
        queue = self._endpoint(eid)
        loop = asyncio.get_running_loop()
        deadline = None if timeout_s is None else loop.time() + timeout_s
        while True:
            await self._store_turn()
            while (bundle_id := queue.take(time.monotonic())) is not None:
                delivery = self._delivery(eid, bundle_id)
                if delivery is not None:
                    return delivery
                queue.drop(bundle_id)
            queue.changed.clear()
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return None
            wait = DELIVERY_LEASE_S if remaining is None else min(remaining, DELIVERY_LEASE_S)
            await wait_event(queue.changed, wait)

    def _endpoint(self, eid: str) -> DeliveryQueue:
        queue = self._endpoints.get(eid)
        if queue is None:
            queue = self._endpoints[eid] = DeliveryQueue(DELIVERY_LEASE_S)
        return queue

    def _uncache(self, bundle_id: BundleId) -> Bundle | None:
        bundle = self._delivery_cache.pop(bundle_id, None)
        if bundle is not None:
            self._delivery_cache_bytes -= len(bundle.payload)
        return bundle

    def _delivery(self, endpoint: str, bundle_id: BundleId) -> Delivery | None:
        assert self.store is not None
        bundle = self._uncache(bundle_id)
        meta = None
        if bundle is None or not self._agent().holds_for_delivery(bundle_id):
            meta = self.store.get(bundle_id)
            if meta is None:
                return None  # deleted (expired, say) since it arrived; the deletion's action may not be drained yet
        payload: bytes | memoryview | StoredPayload | None = None
        if bundle is None:
            assert meta is not None
            if meta.size_bytes > self._agent().config.reassemble_in_memory_bytes:
                head = read_head(self.store, bundle_id)
                if head is None:
                    return None
                bundle = head.bundle
                payload = StoredPayload(self.store, bundle_id, head.payload_offset, head.payload_length)
            else:
                try:
                    bundle = decode_bundle(self.store.raw(bundle_id), max_bytes=1 << 40)
                except (KeyError, DecodeError):
                    return None
        name_block = bundle.block(FILE_NAME_BLOCK_TYPE)
        file_name = None
        if name_block is not None:
            with contextlib.suppress(DecodeError):
                file_name = read_file_name(name_block.data)
        p = bundle.primary
        return Delivery(bundle_id, endpoint, str(p.source), p.creation_ms,
                        bundle.payload if payload is None else payload, file_name)

    async def acknowledge(self, endpoint: str, bundle_id: BundleId) -> bool:
        """The application has the bundle: release it (durable when this returns)."""
        return (await self.acknowledge_many(endpoint, [bundle_id]))[0]

    async def acknowledge_many(self, endpoint: str, bundle_ids: list[BundleId]) -> list[bool]:
        """The application has these bundles: release them all, durable when this returns (one commit for the
        lot). One answer per id: False for a bundle that was not waiting for ``endpoint``."""
        eid = str(parse_eid(endpoint))
        answers = await self.release_deliveries(eid, bundle_ids)
        await self._committed()
        return answers

    async def release_deliveries(self, endpoint: str, bundle_ids: list[BundleId]) -> list[bool]:
        """Hand the acknowledgements of ``bundle_ids`` to the agent (not yet durable: ``await committed()``
        before telling the application). ``endpoint`` is a normalised EID text."""
        agent = self._agent()
        await self._store_turn()
        queue = self._endpoints.get(endpoint)
        now, dtn_ms = self.clock.now(), self.clock.dtn_ms()
        answers = []
        for bundle_id in bundle_ids:
            if queue is not None:
                queue.drop(bundle_id)
            self._uncache(bundle_id)
            answers.append(agent.delivery_acknowledged(endpoint, bundle_id, now, dtn_ms))
        return answers

    def return_deliveries(self, endpoint: str, bundle_ids: list[BundleId]) -> None:
        """The reader of these deliveries went away without acknowledging them: offer them again now (not when
        their lease ends). ``endpoint`` is a normalised EID text."""
        queue = self._endpoints.get(endpoint)
        if queue is None:
            return
        for bundle_id in bundle_ids:
            queue.give_back(bundle_id)
        queue.changed.set()

    async def committed(self) -> None:
        """Return once a commit covering everything done so far has returned."""
        await self._committed()

    async def wait_report(self, bundle_id: BundleId, kind: str, timeout_s: float | None) -> StatusReport | None:
        """The first status report about ``bundle_id`` asserting ``kind``; None on timeout."""
        if kind not in REPORT_FLAGS:
            raise ValueError(f"unknown report kind {kind!r}; choose from {sorted(REPORT_FLAGS)}")
        loop = asyncio.get_running_loop()
        deadline = None if timeout_s is None else loop.time() + timeout_s
        while True:
            for report in self._reports.get(bundle_id, []):
                if getattr(report, kind).asserted:
                    return report
            self._reports_changed.clear()
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return None
            await wait_event(self._reports_changed, remaining)

    def reports_about(self, bundle_id: BundleId) -> list[StatusReport]:
        return list(self._reports.get(bundle_id, []))

    # --- what the node can tell -----------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        store = self.store
        return {
            "node_id": self.node_id,
            "version": __version__,
            "uptime_s": round(self.clock.now() - self._started_at, 3),
            "dtn_time_ms": self.clock.dtn_ms(),
            "listening": list(self.listening),
            "links_up": sorted(self._links),
            "registrations": sorted(r.endpoint for r in self._agent().registrations),
            "bundles_stored": len(store) if store is not None else 0,
            "bytes_stored": store.bytes_used if store is not None else 0,
            "store_quota_bytes": store.quota_bytes if store is not None else None,
        }

    def neighbours(self) -> list[dict[str, Any]]:
        rows: dict[str, dict[str, Any]] = {}
        for n in self.config.neighbours:
            rows[n.node_id] = {"node_id": n.node_id, "url": n.url, "configured": True, "up": False}
        for peer, link in self._links.items():
            row = rows.setdefault(peer, {"node_id": peer, "url": None, "configured": False})
            row.update(up=link.is_up, link_id=link.link_id, max_bundle_bytes=link.limits.max_bundle_bytes)
        return sorted(rows.values(), key=lambda r: r["node_id"])

    def bundles(self, limit: int = 100) -> list[dict[str, Any]]:
        assert self.store is not None
        agent = self._agent()
        return [
            {
                "id": str(meta.id),
                "destination": meta.destination,
                "size_bytes": meta.size_bytes,
                "expiry_dtn_ms": meta.expiry_dtn_ms,
                "priority": meta.priority,
                "next_hop": meta.next_hop or agent.in_flight_to(meta.id),
                "constraints": [c.name.lower() for c in Constraint if c and c in meta.constraints and c.name],
            }
            for meta in self.store.with_constraint(ANY_CONSTRAINT, limit)
        ]

    def routes(self) -> list[dict[str, Any]]:
        """The routing table: the best contact-graph route to each node of the plan (at most
        ``MAX_TABLE_DESTINATIONS``), then the static rules."""
        rows: list[dict[str, Any]] = []
        plan = self.router.plan
        if plan is not None and self.router.cgr_enabled:
            now_ms = self.clock.dtn_ms()
            local = parse_eid(self.node_id).node  # type: ignore[union-attr]
            for node in [n for n in plan.nodes() if n != local][:MAX_TABLE_DESTINATIONS]:
                best = self.router.routes(node, now_ms, count=1)
                if best:
                    doc = route_info_to_json(best[0], self.router.origin_dtn_ms)
                    rows.append({"destination": f"ipn:{node}.*", "via": doc["next_hop"], "kind": "cgr",
                                 "hops": doc["hops"], "arrival_dtn_ms": doc["arrival_dtn_ms"]})
        rows += [{"destination": r.pattern, "via": str(r.via), "kind": "static"} for r in self.router.static.rules]
        return rows

    def plan_summary(self) -> dict[str, Any]:
        """What the node knows of its contact plan, and the contacts it follows with its neighbours."""
        plan = self.router.plan
        if plan is None:
            return {"loaded": False}
        now_ms = self.clock.dtn_ms()
        neighbours = []
        for node_id in sorted(self.contacts.neighbours):
            windows = self.contacts.windows(node_id)
            current = next((w for w in windows if w.start_ms <= now_ms < w.end_ms), None)
            upcoming = next((w for w in windows if w.start_ms > now_ms), None)
            link = self.contacts.link_of(node_id)
            neighbours.append({
                "node_id": node_id,
                "contacts": len(windows),
                "in_contact": current is not None,
                "link_up": link is not None and link.is_up,
                "current_end_dtn_ms": current.end_ms if current else None,
                "next_start_dtn_ms": upcoming.start_ms if upcoming else None,
            })
        return {
            "loaded": True,
            "source": self.plan_source,
            "format": self.plan_format,
            "contacts": len(plan.contacts),
            "ranges": len(plan.ranges),
            "nodes": plan.nodes(),
            "relative": plan.epoch_dtn_ms is None,
            "origin_dtn_ms": self.router.origin_dtn_ms,
            "origin_utc": dtn_ms_to_iso(self.router.origin_dtn_ms),
            "now_s": (now_ms - self.router.origin_dtn_ms) / 1000,
            "cgr": self.router.cgr_enabled,
            "notes": list(plan.notes),
            "scheduled_neighbours": neighbours,
        }

    def plan_routes(
        self, destination: str, *, at: str | None = None, size_bytes: int = 0, count: int = 5,
        priority: str = "standard",
    ) -> dict[str, Any]:
        """Ranked CGR routes from this node to ``destination`` (``ipn:N``, ``ipn:N.S`` or ``N``) at ``at``: None
        (now), ``+SECONDS`` (from now), plan seconds, or ISO 8601 UTC. ValueError for bad input."""
        text = destination.strip()
        if text.isdigit():
            text = f"ipn:{text}.0"
        elif text.startswith("ipn:") and "." not in text:
            text += ".0"
        eid = parse_eid(text)
        node = getattr(eid, "node", None)
        if not isinstance(node, int):
            raise ValueError(f"contact graph routing reaches ipn nodes only: {destination}")
        if size_bytes < 0 or count < 1:
            raise ValueError("size_bytes must be >= 0 and count >= 1")
        try:
            level = Priority[priority.upper()]
        except KeyError:
            raise ValueError(f"priority: {priority!r} is not bulk, standard or expedited") from None
        at_ms = self._plan_instant(at)
        origin = self.router.origin_dtn_ms
        infos = self.router.routes(node, at_ms, count=count, size_bytes=size_bytes, priority=level)
        return {
            "from": self.node_id,
            "to": f"ipn:{node}.0",
            "at_s": (at_ms - origin) / 1000,
            "at_dtn_ms": at_ms,
            "size_bytes": size_bytes,
            "plan_loaded": self.router.plan is not None,
            "origin_dtn_ms": origin,
            "routes": [route_info_to_json(i, origin) for i in infos],
        }

    def _plan_instant(self, at: str | None) -> int:
        now_ms = self.clock.dtn_ms()
        if at is None or not at.strip():
            return now_ms
        text = at.strip()
        try:
            if text.startswith("+"):
                return now_ms + round(float(text[1:]) * 1000)
            return self.router.origin_dtn_ms + round(float(text) * 1000)
        except ValueError:
            pass
        try:
            return iso_to_dtn_ms(text)
        except ValueError:
            raise ValueError(f"at: {at!r} is not +SECONDS, plan seconds nor an ISO 8601 UTC time") from None

    def statistics(self) -> dict[str, Any]:
        stats = self._agent().stats
        out: dict[str, Any] = dataclasses.asdict(stats)
        out["commits"] = self.commits
        out["commit_s"] = round(self.commit_s, 6)
        out["committed_waiters"] = self.committed_waiters
        out["spooled_transfers"] = self.spooled_transfers
        for scheme, cl in self.cls.items():
            cl_stats = getattr(cl, "stats", None)
            if dataclasses.is_dataclass(cl_stats) and not isinstance(cl_stats, type):
                fields = dataclasses.asdict(cl_stats)
                out[f"{scheme}_cl"] = {k: v for k, v in fields.items() if isinstance(v, int | float)}
        return out
