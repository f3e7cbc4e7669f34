"""The Bundle Protocol Agent (RFC 9171 §5), sans-I/O.

The agent owns the procedures: transmission of application data (§5.2), dispatch (§5.3), forwarding (§5.4)
with contraindication (§5.4.1) and failure (§5.4.2), reception (§5.6), local delivery (§5.7) with reassembly
(§5.9), deletion (§5.10) and expiry, status reports (§6.1). It keeps every bundle in a ``BundleStore`` with
its retention constraints and asks a ``Router`` where bundles go.

It does no I/O and reads no clock: every call is handed ``now`` (seconds, monotonic) and ``dtn_ms`` (DTN time),
and the agent answers with return values and with actions queued for ``next_action()``. It never commits the
store: the runtime commits once per batch of calls and only then acknowledges anything (the durability rule),
and only then carries out the actions.

Routers work on DTN time in seconds (``dtn_ms / 1000``): ``WaitUntil.at_s`` and ``RouteRequest.expiry_s`` are on
that timeline.
"""

from __future__ import annotations

import dataclasses
import heapq
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import Enum

from dtn.agent.actions import (
    Action,
    Assemble,
    BundleDeleted,
    Deliver,
    ReportReceived,
    StreamedBundle,
    Transmit,
)
from dtn.agent.heads import read_head
from dtn.agent.registrations import DeliveryMode, Registrations
from dtn.agent.reports import StatusKind, Subject, report_about
from dtn.bundle.admin import StatusReport, decode_admin_record, encode_admin_record
from dtn.bundle.blocks import BlockData, PrimaryBlock, payload_block
from dtn.bundle.bundle import Bundle
from dtn.bundle.codec import DEFAULT_MAX_BYTES, decode_bundle, encode_bundle, encode_bundle_parts
from dtn.bundle.crc import CrcType
from dtn.bundle.eid import NULL_EID, DtnEid, Eid, IpnEid, parse_eid
from dtn.bundle.file_name import file_name_block
from dtn.bundle.flags import NO_BLOCK_FLAGS, BlockFlag, BundleFlag
from dtn.bundle.fragment import (
    FragmentationError,
    ReassemblyError,
    assembly_plan,
    encoded_size,
    fragment,
    fragment_at,
    reassemble,
    whole_primary,
)
from dtn.bundle.ids import BundleId
from dtn.bundle.reasons import StatusReason
from dtn.bundle.stream import BundleHead, encode_bundle_stream, encoded_length
from dtn.convergence.base import LinkLimits, RefuseReason
from dtn.errors import DecodeError, InvalidEid, StoreFull
from dtn.routing.base import Booking, ForwardNow, NoRoute, Router, RouteRequest, WaitUntil
from dtn.storage.base import ANY_CONSTRAINT, BundleMeta, BundleStore, Constraint

#: ipn service number of the echo service every node runs (as dtn7 does); ``dtn://node/echo`` for dtn nodes.
ECHO_SERVICE = 7
#: Reports live as long as their subject, but at least this long (ION: at least 1 s).
MIN_REPORT_LIFETIME_MS = 1_000
#: Bundles held for local endpoints whose delivery-report needs the agent remembers (beyond: read from the store).
MAX_HELD_SUBJECTS = 10_000
_FAR_FUTURE_MS = 1 << 62
#: Bytes a bundle may grow by on a hop (a Previous Node block added, hop count and age rewritten), at most.
_HOP_GROWTH_BYTES = 1024


@dataclass(frozen=True, slots=True)
class AgentConfig:
    node_id: Eid
    #: Largest bundle accepted from a CL or an application (bytes of the encoded bundle).
    max_bundle_bytes: int = DEFAULT_MAX_BYTES
    #: Insert a Previous Node block naming this node when forwarding (RFC 9171 §4.4.1).
    previous_node_block: bool = True
    #: Send the status reports that bundles request (RFC 9171 §6.1: at the node's discretion).
    status_reports: bool = True
    #: CRC of the primary block of bundles created here.
    crc_type: CrcType = CrcType.CRC32C
    #: Seconds before a bundle whose transmission failed is routed again.
    retry_interval_s: float = 2.0
    #: Run the echo service (``ipn:N.7`` / ``dtn://node/echo``).
    echo_service: bool = True
    #: A bundle reassembled from fragments whose ADU is larger than this is written to the store piece by piece
    #: and never held in memory (nor is it decoded whole again: its head is enough).
    reassemble_in_memory_bytes: int = 16 * 1024 * 1024
    #: Leave the writing of such a bundle to the runtime (``Assemble``, then ``assembled``) instead of writing it
    #: to the store within the call that completed it.
    assemble_in_runtime: bool = False


@dataclass(frozen=True, slots=True)
class FragmentedSubmission:
    """An application's ADU sent as fragments made at the source (RFC 9171 §5.8), one piece at a time:
    ``BundleAgent.begin_fragmented`` then ``submit_fragment`` for each piece, in any order."""

    bundle_id: BundleId  # of the whole bundle (what its status reports and the application speak of)
    total_bytes: int
    template: Bundle  # the whole bundle with an empty payload
    priority: int


@dataclass(frozen=True, slots=True)
class LargeSubmission:
    """An application's ADU too large for memory sent as ONE bundle (no fragmentation): ``BundleAgent.begin_large``
    then ``submit_large`` once the runtime has written ``head`` with the payload to a file."""

    head: Bundle  # the bundle with an empty payload
    meta: BundleMeta  # as it will be stored (its size counts the payload)


class Disposition(Enum):
    ACCEPTED = "accepted"
    REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class ReceiveResult:
    """The agent's answer to a received bundle. ``refuse`` is what a TCPCL receiver sends in XFER_REFUSE."""

    disposition: Disposition
    bundle_id: BundleId | None = None
    refuse: RefuseReason | None = None
    reason: StatusReason | None = None
    detail: str = ""

    @property
    def accepted(self) -> bool:
        return self.disposition is Disposition.ACCEPTED


@dataclass
class _Flight:
    """Transmissions of one bundle (several when it was fragmented to fit the link) awaiting their outcome."""

    neighbour: str
    subject: Subject
    remaining: int
    booking: Booking | None
    meta: BundleMeta  # as stored (kept up to date by _set_constraints while in flight)
    failed: bool = False
    detail: str = ""


@dataclass
class AgentStats:
    received: int = 0
    received_malformed: int = 0
    received_duplicate: int = 0
    created: int = 0
    forwarded: int = 0
    delivered: int = 0
    deleted: int = 0
    reports_sent: int = 0
    transmit_failures: int = 0
    fragments_sent: int = 0
    reassembled: int = 0
    deleted_by_reason: dict[str, int] = field(default_factory=dict)


class BundleAgent:
    """One node's Bundle Protocol Agent. See the module docstring for the calling convention."""

    def __init__(self, config: AgentConfig, store: BundleStore, router: Router) -> None:
        if not config.node_id.is_node_id:
            raise InvalidEid(f"{config.node_id} is not a node ID (ipn:N.0 or dtn://node/)")
        self.config = config
        self.node_id = config.node_id
        self.store = store
        self.router = router
        self.registrations = Registrations()
        self.stats = AgentStats()
        self._actions: deque[Action] = deque()
        self._links: dict[str, LinkLimits] = {}
        self._flights: dict[BundleId, _Flight] = {}
        self._assembling: dict[BundleId, tuple[list[BundleMeta], BundleMeta]] = {}  # whole id -> fragments, meta
        self._transmissions: dict[int, BundleId] = {}
        self._next_transmission_id = 1
        self._wakeups: list[tuple[int, int, BundleId]] = []  # (dtn_ms, tie, id): WaitUntil and retries
        self._wakeup_tie = 0
        self._arrival_ms: dict[BundleId, int] = {}
        self._came_from: dict[BundleId, str] = {}
        # Held for a local endpoint -> the subject of its delivery report, None when it asked for none.
        # bundles held for a local endpoint since they arrived: their meta and the subject of a delivery report
        # they asked for (None: none asked); at most MAX_HELD_SUBJECTS, the others are looked up in the store
        self._held: dict[BundleId, tuple[BundleMeta, Subject | None]] = {}
        self._next_expiry_ms = _FAR_FUTURE_MS
        self._offset_s = 0.0  # now - dtn_ms/1000, refreshed on every call
        self._last_creation_ms = -1
        self._sequence = 0
        self.echo_endpoint = _echo_endpoint(self.node_id) if config.echo_service else None

    # --- the runtime's side ------------------------------------------------------------------------------

    def next_action(self) -> Action | None:
        return self._actions.popleft() if self._actions else None

    def next_deadline(self) -> float | None:
        """When ``handle_timer`` wants to run next, on the ``now`` timeline; None when nothing is pending."""
        soonest = min(self._next_expiry_ms, self._wakeups[0][0] if self._wakeups else _FAR_FUTURE_MS)
        if soonest >= _FAR_FUTURE_MS:
            return None
        return soonest / 1000 + self._offset_s

    def _tick(self, now: float, dtn_ms: int) -> None:
        self._offset_s = now - dtn_ms / 1000

    def resume(self, now: float, dtn_ms: int) -> int:
        """After a restart: pick every stored bundle up where it was. Returns how many bundles were resumed."""
        self._tick(now, dtn_ms)
        count = 0
        waiting_fragments: dict[BundleId, BundleMeta] = {}  # whole id -> one of its fragments
        for meta in self.store.with_constraint(ANY_CONSTRAINT):
            count += 1
            self._note_expiry(meta.expiry_dtn_ms)
            if meta.constraints & Constraint.REASSEMBLY_PENDING and meta.id.is_fragment:
                waiting_fragments.setdefault(meta.id.whole(), meta)
            if meta.constraints & Constraint.DISPATCH_PENDING:
                if meta.size_bytes > self.config.reassemble_in_memory_bytes and not meta.id.is_fragment:
                    if self._is_local(parse_eid(meta.destination)):  # reassembled here before the restart
                        self._hold_large(meta, now, dtn_ms)
                        continue
                bundle = self._load(meta.id)
                if bundle is not None:
                    self._dispatch(bundle, meta, now, dtn_ms)
            elif meta.constraints & Constraint.FORWARD_PENDING:
                self._forward(meta, now, dtn_ms)
        for meta in waiting_fragments.values():  # complete sets whose reassembly a restart interrupted
            fragment = self._load(meta.id)
            if fragment is not None:
                self._deliver_locally(fragment, meta, now, dtn_ms)
        self.handle_timer(now, dtn_ms)
        return count

    # --- registrations and local delivery (§5.7) ----------------------------------------------------------

    def register(self, endpoint: str, mode: DeliveryMode, now: float, dtn_ms: int) -> None:
        """Register (or re-attach) an application endpoint; bundles held for it are delivered when active."""
        self._tick(now, dtn_ms)
        eid = parse_eid(endpoint)
        self.registrations.register(str(eid), mode)
        if mode is DeliveryMode.ACTIVE:
            for meta in self.store.by_destination(str(eid)):
                if meta.constraints & Constraint.LOCAL_ENDPOINT:
                    self._actions.append(Deliver(str(eid), meta.id))

    def unregister(self, endpoint: str) -> bool:
        return self.registrations.unregister(str(parse_eid(endpoint)))

    def delivery_acknowledged(self, endpoint: str, bundle_id: BundleId, now: float, dtn_ms: int) -> bool:
        """The application took the bundle: drop the local-endpoint constraint and report delivery."""
        self._tick(now, dtn_ms)
        held = self._held.get(bundle_id)
        if held is not None:  # held since it arrived: its meta is at hand (kept up to date by _set_constraints)
            meta: BundleMeta | None = held[0]
        else:  # held since before a restart, or beyond MAX_HELD_SUBJECTS
            meta = self.store.get(bundle_id)
        if meta is None or not meta.constraints & Constraint.LOCAL_ENDPOINT or meta.destination != endpoint:
            return False
        if held is not None:
            subject = held[1]
            del self._held[bundle_id]
        else:
            subject = self._stored_subject(meta)
        self.stats.delivered += 1
        if subject is not None:
            self._report(subject, StatusKind.DELIVERED, StatusReason.NO_INFO, now, dtn_ms)
        self._set_constraints(meta, meta.constraints & ~Constraint.LOCAL_ENDPOINT)
        return True

    def held_for(self, endpoint: str) -> list[BundleId]:
        """Bundles waiting for the application at ``endpoint``."""
        return [m.id for m in self.store.by_destination(endpoint) if m.constraints & Constraint.LOCAL_ENDPOINT]

    # --- transmission of application data (§5.2) ---------------------------------------------------------

    def submit(
        self,
        destination: Eid | str,
        payload: bytes | memoryview,
        now: float,
        dtn_ms: int,
        *,
        source: Eid | str | None = None,
        report_to: Eid | str | None = None,
        lifetime_ms: int = 86_400_000,
        flags: BundleFlag | int = 0,
        hop_limit: int | None = None,
        priority: int = 1,
        file_name: str | None = None,
    ) -> BundleId:
        """Create a bundle from an application's payload, store it and dispatch it. Raises ``StoreFull``,
        ``InvalidEid`` or ``ValueError`` (too large, bad flags) without storing anything."""
        self._tick(now, dtn_ms)
        dest, src, rpt, bundle_flags = self._application_fields(destination, source, report_to, flags)
        return self._originate(
            dest,
            payload,
            dtn_ms,
            source=src,
            report_to=rpt,
            lifetime_ms=lifetime_ms,
            flags=bundle_flags,
            hop_limit=hop_limit,
            priority=priority,
            now=now,
            file_name=file_name,
        )

    def _application_fields(
        self, destination: Eid | str, source: Eid | str | None, report_to: Eid | str | None, flags: BundleFlag | int
    ) -> tuple[Eid, Eid, Eid, BundleFlag]:
        """Destination, source, report-to and flags of a bundle an application asks for, checked."""
        dest = parse_eid(destination) if isinstance(destination, str) else destination
        src = self.node_id if source is None else (parse_eid(source) if isinstance(source, str) else source)
        rpt = self.node_id if report_to is None else (parse_eid(report_to) if isinstance(report_to, str) else report_to)
        if not src.is_null and src.node_id() != self.node_id:
            raise InvalidEid(f"source {src} is not an endpoint of this node ({self.node_id})")
        if dest.is_null:
            raise InvalidEid("cannot send to the null endpoint")
        bundle_flags = BundleFlag(int(flags))
        if src.is_null:
            bundle_flags = (bundle_flags | BundleFlag.MUST_NOT_FRAGMENT) & ~_REPORT_FLAGS
        return dest, src, rpt, bundle_flags

    def _fresh_head(
        self,
        destination: Eid | str,
        source: Eid | str | None,
        report_to: Eid | str | None,
        flags: BundleFlag | int,
        now: float,
        dtn_ms: int,
        *,
        lifetime_ms: int,
        hop_limit: int | None,
        file_name: str | None,
        taken: Callable[[BundleId], bool],
        fragments: bool = False,
    ) -> Bundle:
        """The bundle, payload empty, that an application's options make (checked as ``submit`` does), with the
        first creation timestamp whose id ``taken`` says is free. ``fragments``: it will be sent as fragments made
        here (refused when it must not be; the hop count goes into every fragment, each bound by the hop limit)."""
        self._tick(now, dtn_ms)
        dest, src, rpt, bundle_flags = self._application_fields(destination, source, report_to, flags)
        if fragments and bundle_flags & BundleFlag.MUST_NOT_FRAGMENT:
            raise ValueError("a bundle that must not be fragmented (anonymous, or so flagged) cannot be sent in pieces")
        hop_count_flags = BlockFlag.REPLICATE_IN_EVERY_FRAGMENT if fragments else NO_BLOCK_FLAGS
        while True:
            head = self._new_bundle(dest, b"", dtn_ms, source=src, report_to=rpt, lifetime_ms=lifetime_ms,
                                    flags=bundle_flags, hop_limit=hop_limit, file_name=file_name,
                                    hop_count_flags=hop_count_flags)
            if not taken(head.id):
                return head

    def begin_fragmented(
        self,
        destination: Eid | str,
        total_bytes: int,
        now: float,
        dtn_ms: int,
        *,
        source: Eid | str | None = None,
        report_to: Eid | str | None = None,
        lifetime_ms: int = 86_400_000,
        flags: BundleFlag | int = 0,
        hop_limit: int | None = None,
        priority: int = 1,
        file_name: str | None = None,
    ) -> FragmentedSubmission:
        """Start sending a ``total_bytes`` ADU as fragments made here, so that no more than one piece of it is
        ever in memory; nothing is stored until ``submit_fragment``. Raises like ``submit``, and ``ValueError``
        when the bundle must not be fragmented (a null source)."""
        template = self._fresh_head(
            destination, source, report_to, flags, now, dtn_ms, lifetime_ms=lifetime_ms, hop_limit=hop_limit,
            file_name=file_name, fragments=True,
            taken=lambda whole_id: self.store.is_known(whole_id) or bool(self.store.fragments_of(whole_id)),
        )
        self.stats.created += 1
        return FragmentedSubmission(template.id, total_bytes, template, priority)

    def begin_large(
        self,
        destination: Eid | str,
        payload_length: int,
        now: float,
        dtn_ms: int,
        *,
        source: Eid | str | None = None,
        report_to: Eid | str | None = None,
        lifetime_ms: int = 86_400_000,
        flags: BundleFlag | int = 0,
        hop_limit: int | None = None,
        priority: int = 1,
        file_name: str | None = None,
    ) -> LargeSubmission:
        """Start sending a ``payload_length`` ADU as one bundle that is never in memory: the runtime writes
        ``head`` and the payload to a file (``encode_bundle_stream``) and gives it to ``submit_large``; nothing is
        stored before. Raises like ``submit``."""
        head = self._fresh_head(destination, source, report_to, flags, now, dtn_ms, lifetime_ms=lifetime_ms,
                                hop_limit=hop_limit, file_name=file_name, taken=self.store.is_known)
        size = encoded_length(head, payload_length)
        return LargeSubmission(head, self._meta(head, size, self._stored_as(head), dtn_ms, priority))

    def submit_large(
        self, submission: LargeSubmission, keep: Callable[[BundleMeta], bool], now: float, dtn_ms: int
    ) -> BundleId:
        """Store the bundle of ``begin_large`` (``keep(meta)`` puts the runtime's file into the store: False when
        the id is taken, and it may raise ``StoreFull``) and dispatch it: forwarded streamed from the store, or
        held for a local endpoint. Raises ``StoreFull`` or ``ValueError`` without storing anything."""
        self._tick(now, dtn_ms)
        meta = submission.meta
        if not keep(meta):
            raise ValueError(f"bundle {meta.id} is stored already")
        self.stats.created += 1
        self._arrival_ms[meta.id] = dtn_ms
        self._note_expiry(meta.expiry_dtn_ms)
        if self._is_local(submission.head.primary.destination):
            self._hold_large(meta, now, dtn_ms)
        else:
            self._forward(meta, now, dtn_ms)
        return meta.id

    def submit_fragment(
        self, submission: FragmentedSubmission, offset: int, data: bytes | memoryview, now: float, dtn_ms: int
    ) -> BundleId:
        """Store and dispatch the fragment of ``submission`` holding ADU bytes ``[offset, offset + len(data))``;
        returns its id. Raises ``StoreFull`` or ``ValueError`` without storing anything."""
        self._tick(now, dtn_ms)
        try:
            piece = fragment_at(submission.template, offset, submission.total_bytes, data)
        except FragmentationError as exc:
            raise ValueError(str(exc)) from None
        meta = self._store_new(piece, dtn_ms, submission.priority)
        if meta is None:
            raise ValueError(f"fragment {piece.id} is stored already")
        self._dispatch_new(piece, meta, now, dtn_ms)
        return piece.id

    def _originate(
        self,
        destination: Eid,
        payload: bytes | memoryview,
        dtn_ms: int,
        *,
        source: Eid,
        report_to: Eid,
        lifetime_ms: int,
        flags: BundleFlag,
        hop_limit: int | None = None,
        priority: int = 1,
        now: float | None = None,
        file_name: str | None = None,
    ) -> BundleId:
        while True:
            bundle = self._new_bundle(destination, payload, dtn_ms, source=source, report_to=report_to,
                                      lifetime_ms=lifetime_ms, flags=flags, hop_limit=hop_limit, file_name=file_name)
            meta = self._store_new(bundle, dtn_ms, priority)
            if meta is not None:  # None: that id is known (e.g. from before a restart): the next one
                break
        self.stats.created += 1
        self._dispatch_new(bundle, meta, self._offset_s + dtn_ms / 1000 if now is None else now, dtn_ms)
        return bundle.id

    def _new_bundle(
        self,
        destination: Eid,
        payload: bytes | memoryview,
        dtn_ms: int,
        *,
        source: Eid,
        report_to: Eid,
        lifetime_ms: int,
        flags: BundleFlag,
        hop_limit: int | None,
        file_name: str | None,
        hop_count_flags: BlockFlag = NO_BLOCK_FLAGS,
    ) -> Bundle:
        """A new bundle created here with the next creation timestamp (not stored)."""
        if lifetime_ms <= 0:
            raise ValueError(f"lifetime must be positive, got {lifetime_ms} ms")
        creation_ms, sequence = self._next_timestamp(dtn_ms)
        primary = PrimaryBlock(flags, self.config.crc_type, destination, source, report_to, creation_ms, sequence,
                               lifetime_ms)
        bundle = Bundle(primary, (payload_block(payload),))
        if hop_limit is not None:
            bundle = bundle.with_hop_count(hop_limit, 0, flags=hop_count_flags)
        if file_name is not None:
            bundle = bundle.with_extension_block(file_name_block(file_name, bundle.next_block_number()))
        return bundle

    def _store_new(self, bundle: Bundle, dtn_ms: int, priority: int) -> BundleMeta | None:
        """Store a bundle created here; its meta, or None when its id is known already. ``ValueError`` when it is
        larger than this node takes."""
        parts = encode_bundle_parts(bundle)  # a large payload is written as it came, not joined to its blocks
        size = sum(len(part) for part in parts)
        if size > self.config.max_bundle_bytes:
            raise ValueError(f"bundle of {size} bytes exceeds this node's limit of {self.config.max_bundle_bytes}")
        meta = self._meta(bundle, size, self._stored_as(bundle), dtn_ms, priority)
        added = self.store.add(meta, bytes(parts[0])) if len(parts) == 1 else self.store.add_stream(meta, parts)
        return meta if added else None

    def _dispatch_new(self, bundle: Bundle, meta: BundleMeta, now: float, dtn_ms: int) -> None:
        self._arrival_ms[bundle.id] = dtn_ms
        self._note_expiry(meta.expiry_dtn_ms)
        self._dispatch(bundle, meta, now, dtn_ms)

    def _next_timestamp(self, dtn_ms: int) -> tuple[int, int]:
        if dtn_ms > self._last_creation_ms:
            self._last_creation_ms, self._sequence = dtn_ms, 0
        else:
            self._sequence += 1
        return self._last_creation_ms, self._sequence

    def cancel(self, bundle_id: BundleId, now: float, dtn_ms: int) -> bool:
        """Delete a bundle at an application's request (reason 3, transmission canceled)."""
        self._tick(now, dtn_ms)
        meta = self.store.get(bundle_id)
        if meta is None:
            return False
        self._delete(meta, StatusReason.TRANSMISSION_CANCELED, now, dtn_ms)
        return True

    # --- reception (§5.6) --------------------------------------------------------------------------------

    def receive(self, raw: bytes, now: float, dtn_ms: int, *, from_node: str | None = None) -> ReceiveResult:
        """A convergence layer received ``raw``. The answer says whether to acknowledge (after the commit)."""
        self._tick(now, dtn_ms)
        self.stats.received += 1
        try:
            bundle = decode_bundle(raw, max_bytes=self.config.max_bundle_bytes)
        except DecodeError as exc:
            self.stats.received_malformed += 1
            refuse = (
                RefuseReason.NO_RESOURCES
                if exc.reason == StatusReason.DEPLETED_STORAGE
                else RefuseReason.NOT_ACCEPTABLE
            )
            return ReceiveResult(Disposition.REFUSED, None, refuse, exc.reason, str(exc))
        bundle_id = bundle.id
        duplicate = self._duplicate(bundle_id)
        if duplicate is not None:
            return duplicate
        subject = _subject(bundle)
        self._report(subject, StatusKind.RECEIVED, StatusReason.NO_INFO, now, dtn_ms)
        rewritten, ended = self._unprocessable_blocks(bundle, subject, now, dtn_ms)
        if ended is not None:
            return ended
        if rewritten is not None:
            bundle, raw = rewritten, encode_bundle(rewritten)
        age_ms = bundle.bundle_age_ms or 0
        meta = self._meta(bundle, len(raw), self._stored_as(bundle), dtn_ms, 1, age_ms=age_ms)
        ended = self._keep_received(bundle, meta, subject, lambda: self.store.add(meta, bytes(raw)), now, dtn_ms,
                                    from_node)
        if ended is not None:
            return ended
        self._dispatch(bundle, meta, now, dtn_ms)
        return ReceiveResult(Disposition.ACCEPTED, bundle_id)

    def _duplicate(self, bundle_id: BundleId) -> ReceiveResult | None:
        """§5.6: the refusal of a bundle this node has (or had, or is sending), or None."""
        if self.store.is_known(bundle_id) or bundle_id in self._flights:
            self.stats.received_duplicate += 1
            return ReceiveResult(Disposition.REFUSED, bundle_id, RefuseReason.COMPLETED, None, "duplicate bundle")
        return None

    def _unprocessable_blocks(
        self, bundle: Bundle, subject: Subject, now: float, dtn_ms: int
    ) -> tuple[Bundle | None, ReceiveResult | None]:
        """§5.6 step 4, the extension blocks this node cannot process: (the bundle without the blocks that ask to
        be discarded, or None when none did; the result when a block asks for the bundle's deletion, or None)."""
        rewritten: Bundle | None = None
        for block in bundle.extension_blocks:
            if block.is_known_type:
                continue
            if block.flags & BlockFlag.REPORT_IF_UNPROCESSABLE:
                self._report(subject, StatusKind.RECEIVED, StatusReason.BLOCK_UNSUPPORTED, now, dtn_ms)
            if block.flags & BlockFlag.DELETE_BUNDLE_IF_UNPROCESSABLE:
                self._report(subject, StatusKind.DELETED, StatusReason.BLOCK_UNSUPPORTED, now, dtn_ms)
                self._count_deletion(
                    bundle.id, StatusReason.BLOCK_UNSUPPORTED, f"unsupported block type {block.block_type}"
                )
                return None, ReceiveResult(
                    Disposition.ACCEPTED,
                    bundle.id,
                    None,
                    StatusReason.BLOCK_UNSUPPORTED,
                    "deleted: unsupported block that asks for deletion",
                )
            if block.flags & BlockFlag.DISCARD_IF_UNPROCESSABLE:
                rewritten = (rewritten or bundle).without_block(block.number)
        return rewritten, None

    def _keep_received(
        self,
        bundle: Bundle,
        meta: BundleMeta,
        subject: Subject,
        keep: Callable[[], bool],
        now: float,
        dtn_ms: int,
        from_node: str | None,
    ) -> ReceiveResult | None:
        """Store a received bundle (``keep``: False when the store has it already; may raise ``StoreFull``) unless
        it expired, and note where it came from. The result when it was not kept, or None."""
        bundle_id = meta.id
        if meta.expiry_dtn_ms <= dtn_ms:
            self._report(subject, StatusKind.DELETED, StatusReason.LIFETIME_EXPIRED, now, dtn_ms)
            self._count_deletion(bundle_id, StatusReason.LIFETIME_EXPIRED, "expired on arrival")
            return ReceiveResult(Disposition.ACCEPTED, bundle_id, None, StatusReason.LIFETIME_EXPIRED, "expired")
        try:
            if not keep():
                self.stats.received_duplicate += 1
                return ReceiveResult(Disposition.REFUSED, bundle_id, RefuseReason.COMPLETED, None, "duplicate")
        except StoreFull as exc:
            self._report(subject, StatusKind.DELETED, StatusReason.DEPLETED_STORAGE, now, dtn_ms)
            self._count_deletion(bundle_id, StatusReason.DEPLETED_STORAGE, str(exc))
            return ReceiveResult(
                Disposition.REFUSED, bundle_id, RefuseReason.NO_RESOURCES, StatusReason.DEPLETED_STORAGE, str(exc)
            )
        self._arrival_ms[bundle_id] = dtn_ms
        if from_node is not None:
            self._came_from[bundle_id] = from_node
        elif bundle.previous_node is not None:
            self._came_from[bundle_id] = str(bundle.previous_node)
        self._note_expiry(meta.expiry_dtn_ms)
        return None

    # --- dispatch (§5.3) ---------------------------------------------------------------------------------

    def _is_local(self, destination: Eid) -> bool:
        if destination.is_null:
            return False
        return destination.node_id() == self.node_id

    def _stored_as(self, bundle: Bundle) -> Constraint:
        """The constraint a new bundle is stored with: what ``_dispatch`` will decide when that is plain (to be
        forwarded, or held for a local application), so that dispatching does not update the row it just
        inserted in the same transaction; DISPATCH_PENDING otherwise (fragments, admin records, echo)."""
        destination = bundle.primary.destination
        if not self._is_local(destination):
            return Constraint.FORWARD_PENDING
        if bundle.is_fragment or bundle.is_admin_record or str(destination) == self.echo_endpoint:
            return Constraint.DISPATCH_PENDING
        return Constraint.LOCAL_ENDPOINT

    def _dispatch(self, bundle: Bundle, meta: BundleMeta, now: float, dtn_ms: int) -> None:
        destination = bundle.primary.destination
        if self._is_local(destination):
            self._deliver_locally(bundle, meta, now, dtn_ms)
            return
        pending = self._set_constraints(
            meta, (meta.constraints | Constraint.FORWARD_PENDING) & ~Constraint.DISPATCH_PENDING
        )
        if pending is not None:
            self._forward(pending, now, dtn_ms, bundle=bundle)

    def _deliver_locally(self, bundle: Bundle, meta: BundleMeta, now: float, dtn_ms: int) -> None:
        if bundle.is_fragment:
            meta = (
                self._set_constraints(
                    meta, (meta.constraints | Constraint.REASSEMBLY_PENDING) & ~Constraint.DISPATCH_PENDING
                )
                or meta
            )
            whole = self._try_reassembly(bundle, now, dtn_ms)
            if whole is None:
                return
            if isinstance(whole, BundleMeta):  # too large to hold: only its head is at hand
                self._hold_large(whole, now, dtn_ms)
                return
            bundle, meta = whole
        endpoint = str(bundle.primary.destination)
        if endpoint == str(self.node_id) and bundle.is_admin_record:
            self._administrative(bundle, meta, now, dtn_ms)
            return
        if self.echo_endpoint is not None and endpoint == self.echo_endpoint:
            self._echo(bundle, meta, now, dtn_ms)
            return
        held = self._set_constraints(
            meta, (meta.constraints | Constraint.LOCAL_ENDPOINT) & ~Constraint.DISPATCH_PENDING
        )
        if held is not None and len(self._held) < MAX_HELD_SUBJECTS:
            wanted = _subject(bundle).requested(StatusKind.DELIVERED)
            self._held[held.id] = (held, _kept_subject(bundle) if wanted else None)
        if held is not None and self.registrations.is_active(endpoint):
            self._actions.append(Deliver(endpoint, held.id, bundle))

    def _try_reassembly(
        self, bundle: Bundle, now: float, dtn_ms: int
    ) -> tuple[Bundle, BundleMeta] | BundleMeta | None:
        """The whole bundle once the stored fragments cover its ADU (decided from their ids: no fragment is read
        before then), stored in place of the fragments; None while incomplete. A whole bundle whose ADU exceeds
        ``reassemble_in_memory_bytes`` is written to the store piece by piece, reading one fragment at a time,
        and only its meta is returned."""
        whole_id = bundle.id.whole()
        total = bundle.primary.total_adu_length or 0
        pieces = self.store.fragments_of(whole_id)
        plan = assembly_plan([m.id for m in pieces], total)
        if plan is None:
            return None
        priority = max(m.priority for m in pieces)
        if total > self.config.reassemble_in_memory_bytes and self.config.assemble_in_runtime:
            if whole_id not in self._assembling:
                head = self._assembly_head(bundle, plan, total, dtn_ms, priority)
                if head is not None:
                    self._assembling[whole_id] = (pieces, head[1])
                    self._actions.append(Assemble(head[1], head[0], total, tuple(plan)))
            return None
        if total > self.config.reassemble_in_memory_bytes:
            meta = self._reassemble_streamed(bundle, plan, total, dtn_ms, priority)
            result: tuple[Bundle, BundleMeta] | BundleMeta | None = meta
        else:
            fragments = [b for b in (self._load(p) for p, _, _ in plan) if b is not None]
            try:
                whole = reassemble(fragments)
            except ReassemblyError:
                return None
            raw = encode_bundle(whole)
            meta = self._meta(whole, len(raw), Constraint.DISPATCH_PENDING, dtn_ms, priority)
            result = (whole, meta) if self.store.add(meta, raw) else None
        if result is None:
            return None
        for piece in pieces:
            self.store.delete(piece.id)
        self.stats.reassembled += 1
        return result

    def _assembly_head(
        self, bundle: Bundle, plan: list[tuple[BundleId, int, int]], total: int, dtn_ms: int, priority: int
    ) -> tuple[Bundle, BundleMeta] | None:
        """The whole bundle's head (its blocks from the first fragment, the payload's data empty) and meta."""
        first = bundle if bundle.id == plan[0][0] else self._load(plan[0][0])
        if first is None:
            return None
        template = Bundle(whole_primary(first.primary), (*first.blocks[:-1], first.blocks[-1].with_data(b"")))
        meta = self._meta(template, encoded_size(template, total), Constraint.DISPATCH_PENDING, dtn_ms, priority)
        return template, meta

    def assembled(self, bundle_id: BundleId, keep: Callable[[BundleMeta], bool] | None, now: float,
                  dtn_ms: int) -> bool:
        """The runtime carried out ``Assemble`` for the whole bundle ``bundle_id``: ``keep(meta)`` stores the file
        it wrote (False for a bundle stored already; may raise ``StoreFull``), None when writing failed (the
        fragments stay; the next one to arrive, or a restart, tries again). True when the bundle is stored: its
        fragments are deleted and it is held for its endpoint."""
        self._tick(now, dtn_ms)
        assembling = self._assembling.pop(bundle_id, None)
        if assembling is None or keep is None:
            return False
        pieces, meta = assembling
        # a fragment may have expired meanwhile: then so has the whole bundle
        if meta.expiry_dtn_ms <= dtn_ms or any(self.store.get(piece.id) is None for piece in pieces):
            return False
        try:
            if not keep(meta):
                return False
        except StoreFull as exc:
            self._count_deletion(bundle_id, StatusReason.DEPLETED_STORAGE, f"not reassembled: {exc}")
            return False
        for piece in pieces:
            self.store.delete(piece.id)
        self.stats.reassembled += 1
        self._hold_large(meta, now, dtn_ms)
        return True

    def _reassemble_streamed(
        self, bundle: Bundle, plan: list[tuple[BundleId, int, int]], total: int, dtn_ms: int, priority: int
    ) -> BundleMeta | None:
        head = self._assembly_head(bundle, plan, total, dtn_ms, priority)
        if head is None:
            return None
        template, meta = head

        def adu() -> Iterator[bytes | memoryview]:
            for piece_id, skip, take in plan:
                piece = bundle if piece_id == bundle.id else self._load(piece_id)
                if piece is None:
                    raise ReassemblyError(f"fragment {piece_id} of {template.id} cannot be read back")
                yield memoryview(piece.payload)[skip : skip + take]

        try:
            added = self.store.add_stream(meta, encode_bundle_stream(template, total, adu()))
        except (ReassemblyError, StoreFull):
            return None
        return meta if added else None

    def _hold_large(self, meta: BundleMeta, now: float, dtn_ms: int) -> None:
        """Hold a bundle too large to load for its local endpoint (administrative records and echo requests are
        never that large: such a bundle goes to the application registered at its destination, if any)."""
        held = self._set_constraints(
            meta, (meta.constraints | Constraint.LOCAL_ENDPOINT) & ~Constraint.DISPATCH_PENDING
        )
        if held is None:
            return
        subject = self._stored_subject(held)
        if len(self._held) < MAX_HELD_SUBJECTS:
            wanted = subject is not None and subject.requested(StatusKind.DELIVERED)
            self._held[held.id] = (held, subject if wanted else None)
        if self.registrations.is_active(held.destination):
            self._actions.append(Deliver(held.destination, held.id))

    def _stored_subject(self, meta: BundleMeta) -> Subject | None:
        """The subject of reports about a stored bundle, read from the store (its head only, when large)."""
        if meta.size_bytes > self.config.reassemble_in_memory_bytes:
            head = read_head(self.store, meta.id)
            if head is None:
                return None
            return Subject(dataclasses.replace(head.bundle.primary), head.payload_length)
        bundle = self._load(meta.id)
        return None if bundle is None else _subject(bundle)

    def _administrative(self, bundle: Bundle, meta: BundleMeta, now: float, dtn_ms: int) -> None:
        try:
            record = decode_admin_record(bundle.payload)
        except DecodeError:
            record = None
        if isinstance(record, StatusReport):
            self._actions.append(ReportReceived(record, str(bundle.primary.source)))
        # Unknown or unparsable records are ignored (RFC 9713); the bundle counts as delivered.
        self.stats.delivered += 1
        self._set_constraints(meta, Constraint.NONE)

    def _echo(self, bundle: Bundle, meta: BundleMeta, now: float, dtn_ms: int) -> None:
        source = bundle.primary.source
        if not source.is_null and not bundle.is_admin_record:
            self._originate(
                source,
                bytes(bundle.payload),
                dtn_ms,
                source=bundle.primary.destination,
                report_to=NULL_EID,
                lifetime_ms=bundle.primary.lifetime_ms,
                flags=BundleFlag(0),
                now=now,
            )
        self.stats.delivered += 1
        self._set_constraints(meta, Constraint.NONE)

    # --- forwarding (§5.4) -------------------------------------------------------------------------------

    def _forward(self, meta: BundleMeta, now: float, dtn_ms: int, *, bundle: Bundle | None = None) -> None:
        """Route ``meta`` and transmit it or wait; ``bundle``: the bundle itself when the caller has it decoded
        (saves reading it back from the store)."""
        if meta.id in self._flights:
            return
        destination = parse_eid(meta.destination)
        came_from = self._came_from.get(meta.id)
        direct = str(destination.node_id()) if not destination.is_null else None
        if direct is not None and direct in self._links and direct != came_from:
            decision: ForwardNow | WaitUntil | NoRoute = ForwardNow(parse_eid(direct))
        else:
            excluded = frozenset({parse_eid(came_from)}) if came_from else frozenset()
            request = RouteRequest(destination, meta.size_bytes, meta.expiry_dtn_ms / 1000, excluded_nodes=excluded)
            decision = self.router.route(request, dtn_ms / 1000)
        if isinstance(decision, ForwardNow):
            neighbour = str(decision.neighbour)
            if neighbour in self._links:
                self._transmit(meta, neighbour, decision.booking, now, dtn_ms, bundle=bundle)
                return
            self._release(decision.booking)
            decision = NoRoute(StatusReason.NO_TIMELY_CONTACT, f"link to {neighbour} is down")
        if isinstance(decision, WaitUntil):
            self.store.set_next_hop(meta.id, str(decision.neighbour))
            self._release(decision.booking)
            self._wake_at(max(int(decision.at_s * 1000), dtn_ms), meta.id)
            return
        # NoRoute: forwarding contraindicated; retried when links or the plan change, deleted at expiry.
        self._set_constraints(meta, meta.constraints | Constraint.CONTRAINDICATED)

    def _transmit(
        self, meta: BundleMeta, neighbour: str, booking: Booking | None, now: float, dtn_ms: int,
        *, bundle: Bundle | None = None,
    ) -> None:
        if bundle is None and self._sent_from_store(meta, neighbour):
            self._transmit_large(meta, neighbour, booking, now, dtn_ms)
            return
        if bundle is None:
            bundle = self._load(meta.id)
        if bundle is None:
            self._release(booking)
            return
        outgoing = self._for_next_hop(meta, bundle, booking, now, dtn_ms)
        if outgoing is None:
            return
        limits = self._links.get(neighbour, LinkLimits())
        try:
            pieces = [outgoing] if limits.max_bundle_bytes is None else fragment(outgoing, limits.max_bundle_bytes)
        except FragmentationError as exc:
            self._release(booking)
            self._set_constraints(meta, meta.constraints | Constraint.CONTRAINDICATED)
            self._actions.append(BundleDeleted(meta.id, StatusReason.NO_TIMELY_CONTACT, f"not sent: {exc}"))
            return
        if meta.next_hop is not None and meta.next_hop != neighbour:  # it waited for another neighbour
            self.store.set_next_hop(meta.id, None)
        self._flights[meta.id] = _Flight(neighbour, _kept_subject(bundle), len(pieces), booking, meta)
        if len(pieces) > 1:
            self.stats.fragments_sent += len(pieces)
        for piece in pieces:
            tid = self._next_transmission_id
            self._next_transmission_id += 1
            self._transmissions[tid] = meta.id
            self._actions.append(Transmit(tid, neighbour, meta.id, _unchanging(encode_bundle_parts(piece))))

    def _for_next_hop(
        self, meta: BundleMeta, bundle: Bundle, booking: Booking | None, now: float, dtn_ms: int,
        *, loaded: bool = True,
    ) -> Bundle | None:
        """``bundle`` as it leaves for the next hop (hop count, previous node, bundle age updated), or None when
        its hop limit is exceeded (then deleted). ``loaded``: ``bundle`` is the whole bundle, not a head."""
        hop = bundle.hop_count
        if hop is not None and hop.incremented().exceeded:
            self._release(booking)
            self._delete(meta, StatusReason.HOP_LIMIT_EXCEEDED, now, dtn_ms, bundle=bundle if loaded else None)
            return None
        outgoing = bundle.with_hop_count_incremented()
        if self.config.previous_node_block:
            outgoing = outgoing.with_previous_node(self.node_id)
        arrived = self._arrival_ms.get(meta.id)
        if outgoing.bundle_age_ms is not None and arrived is not None:
            outgoing = outgoing.with_bundle_age_added(max(0, dtn_ms - arrived))
        return outgoing

    def _sent_from_store(self, meta: BundleMeta, neighbour: str) -> bool:
        """Whether ``meta`` is too large to load and is streamed from the store: above the in-memory threshold,
        unless the link needs it fragmented and it may be loaded (within ``max_bundle_bytes``) to be."""
        if meta.size_bytes <= self.config.reassemble_in_memory_bytes:
            return False
        limit = self._links.get(neighbour, LinkLimits()).max_bundle_bytes
        fits = limit is None or meta.size_bytes + _HOP_GROWTH_BYTES <= limit
        return fits or meta.size_bytes > self.config.max_bundle_bytes

    def _transmit_large(
        self, meta: BundleMeta, neighbour: str, booking: Booking | None, now: float, dtn_ms: int
    ) -> None:
        """``_transmit`` for a stored bundle too large to load: its head is read and updated for this hop (hop
        count, previous node, bundle age), the payload is streamed from the store by the runtime. Not fragmented
        to fit the link: a link whose limit is below the bundle contraindicates it."""
        head = read_head(self.store, meta.id)
        if head is None:
            self._release(booking)
            return
        bundle = head.bundle
        outgoing = self._for_next_hop(meta, bundle, booking, now, dtn_ms, loaded=False)
        if outgoing is None:
            return
        size = encoded_length(outgoing, head.payload_length)
        limit = self._links.get(neighbour, LinkLimits()).max_bundle_bytes
        if limit is not None and size > limit:
            self._release(booking)
            self._set_constraints(meta, meta.constraints | Constraint.CONTRAINDICATED)
            self._actions.append(BundleDeleted(
                meta.id, StatusReason.NO_TIMELY_CONTACT,
                f"not sent: {size} bytes exceed the link's {limit} and a stored large bundle is not fragmented"))
            return
        if meta.next_hop is not None and meta.next_hop != neighbour:  # it waited for another neighbour
            self.store.set_next_hop(meta.id, None)
        subject = Subject(dataclasses.replace(bundle.primary), head.payload_length)
        self._flights[meta.id] = _Flight(neighbour, subject, 1, booking, meta)
        tid = self._next_transmission_id
        self._next_transmission_id += 1
        self._transmissions[tid] = meta.id
        stream = StreamedBundle(outgoing, head.payload_offset, head.payload_length, size)
        self._actions.append(Transmit(tid, neighbour, meta.id, (), stream))

    def receive_spooled(
        self,
        head: BundleHead,
        keep: Callable[[BundleMeta, Bundle | None], bool],
        now: float,
        dtn_ms: int,
        *,
        from_node: str | None = None,
    ) -> ReceiveResult:
        """``receive`` for a bundle too large to hold in memory, which the runtime wrote to a file as it arrived
        (and checked: ``head`` is its decoded head, the payload CRC verified). ``keep(meta, rewritten)`` stores it
        (the file as it is, or when ``rewritten`` is given, that head followed by the file's payload: blocks
        were discarded) and returns False for a duplicate; it may raise ``StoreFull``. The bundle is then
        delivered (streamed from the store) or forwarded (its head re-encoded, its payload streamed)."""
        self._tick(now, dtn_ms)
        self.stats.received += 1
        bundle = head.bundle
        bundle_id = head.id
        duplicate = self._duplicate(bundle_id)
        if duplicate is not None:
            return duplicate
        subject = Subject(dataclasses.replace(bundle.primary), head.payload_length)
        self._report(subject, StatusKind.RECEIVED, StatusReason.NO_INFO, now, dtn_ms)
        rewritten, ended = self._unprocessable_blocks(bundle, subject, now, dtn_ms)
        if ended is not None:
            return ended
        size = head.encoded_length if rewritten is None else encoded_length(rewritten, head.payload_length)
        meta = dataclasses.replace(
            self._meta(bundle, size, self._stored_as(bundle), dtn_ms, 1, age_ms=bundle.bundle_age_ms or 0),
            id=bundle_id,
        )
        ended = self._keep_received(bundle, meta, subject, lambda: keep(meta, rewritten), now, dtn_ms, from_node)
        if ended is not None:
            return ended
        if not self._is_local(bundle.primary.destination):
            self._forward(meta, now, dtn_ms)  # stored FORWARD_PENDING (``_stored_as``)
        elif bundle.is_fragment:  # a fragment is read whole for reassembly, as the in-memory path does
            whole = self._load(bundle_id)
            if whole is not None:
                self._deliver_locally(whole, meta, now, dtn_ms)
        else:
            self._hold_large(meta, now, dtn_ms)
        return ReceiveResult(Disposition.ACCEPTED, bundle_id)

    def transfer_done(self, transmission_id: int, ok: bool, now: float, dtn_ms: int, *, detail: str = "") -> None:
        """The CL finished a ``Transmit``: ``ok`` when the peer acknowledged it (a refusal because the peer already
        has the bundle counts as ok)."""
        self._tick(now, dtn_ms)
        bundle_id = self._transmissions.pop(transmission_id, None)
        if bundle_id is None:
            return
        flight = self._flights.get(bundle_id)
        if flight is None:
            return
        flight.remaining -= 1
        if not ok:
            flight.failed, flight.detail = True, detail
        if flight.remaining > 0:
            return
        del self._flights[bundle_id]  # (a deletion meanwhile, at expiry say, ended the flight: no store lookup)
        if flight.failed:
            self.stats.transmit_failures += 1
            self._release(flight.booking)
            self._wake_at(dtn_ms + int(self.config.retry_interval_s * 1000), bundle_id)
            return
        if flight.booking is not None:
            self.router.sent(flight.booking)
        self.stats.forwarded += 1
        self._report(flight.subject, StatusKind.FORWARDED, StatusReason.NO_INFO, now, dtn_ms)
        self._came_from.pop(bundle_id, None)
        self._arrival_ms.pop(bundle_id, None)
        meta = flight.meta
        self._set_constraints(meta, meta.constraints & ~(Constraint.FORWARD_PENDING | Constraint.CONTRAINDICATED))

    # --- links and timers --------------------------------------------------------------------------------

    def link_up(self, neighbour: str, now: float, dtn_ms: int, limits: LinkLimits | None = None) -> None:
        """A link to the node ``neighbour`` (node ID text) is open: contraindicated bundles are routed again."""
        self._tick(now, dtn_ms)
        node = str(parse_eid(neighbour))
        self._links[node] = limits or LinkLimits()
        self.router.link_changed(parse_eid(node), True, dtn_ms / 1000)
        self.retry_contraindicated(now, dtn_ms)
        for meta in self.store.by_next_hop(node):
            if meta.constraints & Constraint.FORWARD_PENDING and meta.id not in self._flights:
                self._wake_at(dtn_ms, meta.id)

    def link_down(self, neighbour: str, now: float, dtn_ms: int) -> None:
        self._tick(now, dtn_ms)
        node = str(parse_eid(neighbour))
        self._links.pop(node, None)
        self.router.link_changed(parse_eid(node), False, dtn_ms / 1000)

    def in_flight_to(self, bundle_id: BundleId) -> str | None:
        """The neighbour a bundle is being transmitted to (kept here, not in the store), or None."""
        flight = self._flights.get(bundle_id)
        return flight.neighbour if flight is not None else None

    @property
    def links(self) -> dict[str, LinkLimits]:
        return dict(self._links)

    def retry_contraindicated(self, now: float, dtn_ms: int) -> None:
        """Route again every bundle whose forwarding was contraindicated (links or the plan changed)."""
        self._tick(now, dtn_ms)
        for meta in self.store.with_constraint(Constraint.CONTRAINDICATED):
            cleared = self._set_constraints(meta, meta.constraints & ~Constraint.CONTRAINDICATED)
            if cleared is not None:
                self._forward(cleared, now, dtn_ms)

    def handle_timer(self, now: float, dtn_ms: int) -> None:
        """Expire bundles whose lifetime ended (§5.10, reason 1) and route bundles whose wait is over."""
        self._tick(now, dtn_ms)
        if dtn_ms >= self._next_expiry_ms:
            for meta in self.store.expiring_before(dtn_ms + 1):
                self._delete(meta, StatusReason.LIFETIME_EXPIRED, now, dtn_ms)
            self.store.purge_tombstones(dtn_ms)
            soonest = self.store.expiring_before(_FAR_FUTURE_MS, limit=1)
            self._next_expiry_ms = soonest[0].expiry_dtn_ms if soonest else _FAR_FUTURE_MS
        while self._wakeups and self._wakeups[0][0] <= dtn_ms:
            _, _, bundle_id = heapq.heappop(self._wakeups)
            due = self.store.get(bundle_id)
            if due is not None and due.constraints & Constraint.FORWARD_PENDING and bundle_id not in self._flights:
                self._forward(due, now, dtn_ms)

    def _wake_at(self, at_ms: int, bundle_id: BundleId) -> None:
        self._wakeup_tie += 1
        heapq.heappush(self._wakeups, (at_ms, self._wakeup_tie, bundle_id))

    def _note_expiry(self, expiry_ms: int) -> None:
        self._next_expiry_ms = min(self._next_expiry_ms, expiry_ms)

    # --- deletion (§5.10) and reports (§6.1) -------------------------------------------------------------

    def _delete(
        self, meta: BundleMeta, reason: StatusReason, now: float, dtn_ms: int, *, bundle: Bundle | None = None
    ) -> None:
        subject = _subject(bundle) if bundle is not None else self._stored_subject(meta)
        if subject is not None:
            self._report(subject, StatusKind.DELETED, reason, now, dtn_ms)
        flight = self._flights.pop(meta.id, None)
        if flight is not None:
            self._release(flight.booking)
        self.store.set_constraints(meta.id, Constraint.NONE)
        self._arrival_ms.pop(meta.id, None)
        self._came_from.pop(meta.id, None)
        self._held.pop(meta.id, None)
        self._count_deletion(meta.id, reason, "")

    def _count_deletion(self, bundle_id: BundleId, reason: StatusReason, detail: str) -> None:
        self.stats.deleted += 1
        key = reason.name.lower()
        self.stats.deleted_by_reason[key] = self.stats.deleted_by_reason.get(key, 0) + 1
        self._actions.append(BundleDeleted(bundle_id, reason, detail))

    def _report(self, subject: Subject, kind: StatusKind, reason: StatusReason, now: float, dtn_ms: int) -> None:
        if not self.config.status_reports or not subject.requested(kind):
            return
        record = report_about(subject, kind, reason, dtn_ms)
        lifetime = max(subject.primary.lifetime_ms, MIN_REPORT_LIFETIME_MS)
        try:
            self._originate(
                subject.primary.report_to,
                encode_admin_record(record),
                dtn_ms,
                source=self.node_id,
                report_to=NULL_EID,
                lifetime_ms=lifetime,
                flags=BundleFlag.ADMIN_RECORD,
                now=now,
            )
        except (StoreFull, ValueError):
            return  # a report that cannot be stored is not sent; the subject is handled regardless
        self.stats.reports_sent += 1

    # --- store helpers -----------------------------------------------------------------------------------

    def _meta(
        self, bundle: Bundle, size: int, constraints: Constraint, dtn_ms: int, priority: int, *, age_ms: int = 0
    ) -> BundleMeta:
        p = bundle.primary
        if p.creation_ms:
            expiry = p.creation_ms + p.lifetime_ms
        else:  # no clock at the source: the Bundle Age block says how old it is
            expiry = dtn_ms - age_ms + p.lifetime_ms
        return BundleMeta(bundle.id, str(p.destination), max(expiry, 0), size, constraints, priority)

    def _set_constraints(self, meta: BundleMeta, constraints: Constraint) -> BundleMeta | None:
        """Replace the constraints; returns the new meta, or None when the bundle is gone (no constraint left)."""
        if constraints == meta.constraints:
            return meta
        self.store.set_constraints(meta.id, constraints)
        if not constraints:
            self._arrival_ms.pop(meta.id, None)
            self._came_from.pop(meta.id, None)
            self._held.pop(meta.id, None)
            return None
        changed = BundleMeta(
            meta.id, meta.destination, meta.expiry_dtn_ms, meta.size_bytes, constraints, meta.priority, meta.next_hop
        )
        held = self._held.get(meta.id)
        if held is not None:
            self._held[meta.id] = (changed, held[1])
        flight = self._flights.get(meta.id)
        if flight is not None:
            flight.meta = changed
        return changed

    def holds_for_delivery(self, bundle_id: BundleId) -> bool:
        """True when ``bundle_id`` is known to be held for a local endpoint (without asking the store); False
        means: not known here (ask the store)."""
        return bundle_id in self._held

    def _load(self, bundle_id: BundleId) -> Bundle | None:
        try:
            raw = self.store.raw(bundle_id)
        except KeyError:
            return None
        try:
            return decode_bundle(raw, max_bytes=max(self.config.max_bundle_bytes, len(raw)))
        except DecodeError:
            return None

    def _release(self, booking: Booking | None) -> None:
        if booking is not None:
            self.router.release(booking)


_REPORT_FLAGS = (
    BundleFlag.REPORT_RECEPTION | BundleFlag.REPORT_FORWARDING | BundleFlag.REPORT_DELIVERY | BundleFlag.REPORT_DELETION
)


def _unchanging(parts: list[BlockData]) -> tuple[BlockData, ...]:
    """``parts`` to hand to a link: those over a buffer that may change (an application's bytearray, a chunk buffer
    reused for the next one) are copied, since the link writes them later; the others, such as the payload's own
    bytes or a view of a received bundle, are not."""
    return tuple(part if isinstance(part, bytes) or memoryview(part).readonly else bytes(part) for part in parts)


def _subject(bundle: Bundle) -> Subject:
    """The subject of reports about ``bundle`` (for use now: see ``_kept_subject``)."""
    return Subject(bundle.primary, len(bundle.payload))


def _kept_subject(bundle: Bundle) -> Subject:
    """The subject of reports about ``bundle`` to remember: its primary block detached from the bytes it was
    decoded from (a decoded primary keeps a view of them), so that it does not keep a payload alive."""
    primary = bundle.primary
    if primary.image is not None:
        primary = dataclasses.replace(primary)
    return Subject(primary, len(bundle.payload))


def _echo_endpoint(node_id: Eid) -> str:
    if isinstance(node_id, IpnEid):
        return str(node_id.with_service(ECHO_SERVICE))
    assert isinstance(node_id, DtnEid)
    return f"dtn://{node_id.node_name}/echo"
