"""Fragmentation and reassembly (RFC 9171 §5.8 and §5.9).

``fragment(bundle, max_bundle_bytes)`` splits a bundle so that every encoded fragment fits in
``max_bundle_bytes``: each fragment gets a new primary block (fragment flag, offset, total ADU length, new CRC;
all else unchanged), extension blocks go only into the first fragment unless their "replicate in every
fragment" flag is set, and fragments of fragments keep offsets relative to the original ADU. Payload pieces
are memoryview slices of the original payload (no copy until encoded).

``Reassembler`` collects fragments in any order, with duplicates and overlaps, keyed by
``BundleId.whole()``, and returns the whole bundle once the payload extents cover the ADU: the primary block of
the fragments without the fragment fields, the extension blocks of the fragment at offset 0 (their received
bytes kept) and the payload block with the reassembled ADU. For a bundle that was encoded canonically (as this
package encodes) the result re-encodes to the original bytes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from dtn.bundle.blocks import CanonicalBlock, PrimaryBlock
from dtn.bundle.bundle import Bundle
from dtn.bundle.cbor import head_length
from dtn.bundle.codec import encode_block, encode_primary
from dtn.bundle.flags import BlockFlag, BlockType, BundleFlag
from dtn.bundle.ids import BundleId
from dtn.errors import DtnError, EncodeError

#: Default cap on the ADU size a Reassembler accepts (bytes).
DEFAULT_MAX_ADU_BYTES = 64 * 1024 * 1024
#: Default cap on the number of bundles a Reassembler keeps partial state for.
DEFAULT_MAX_PENDING = 1024

_CRC_ITEM_BYTES = (0, 3, 5)  # CRC byte-string head + value, by CRC type


class FragmentationError(EncodeError):
    """The bundle cannot be split as asked (too small a size, or nothing to split)."""


class MustNotFragment(FragmentationError):
    """The bundle's "must not fragment" flag is set (RFC 9171 §4.2.3)."""


class ReassemblyError(DtnError):
    """Fragments that do not belong together, or too few of them to rebuild the bundle."""


def _block_size(block: CanonicalBlock) -> int:
    return len(block.image) if block.image is not None else len(encode_block(block))


def _payload_block_size(block: CanonicalBlock, length: int) -> int:
    fixed = 1 + head_length(block.block_type) + head_length(block.number) + head_length(int(block.flags))
    return fixed + head_length(int(block.crc_type)) + head_length(length) + length + _CRC_ITEM_BYTES[block.crc_type]


def encoded_size(bundle: Bundle, payload_length: int | None = None) -> int:
    """The size of ``encode_bundle(bundle)`` in bytes, computed without encoding the payload; with
    ``payload_length``, the size the bundle would have with a payload of that length instead of its own."""
    primary = bundle.primary
    size = 2 + (len(primary.image) if primary.image is not None else len(encode_primary(primary)))
    for block in bundle.blocks[:-1]:
        size += _block_size(block)
    payload = bundle.blocks[-1]
    if payload_length is not None:
        return size + _payload_block_size(payload, payload_length)
    if payload.image is not None:
        return size + len(payload.image)
    return size + _payload_block_size(payload, len(payload.data))


def _fit(budget: int, remaining: int) -> int:
    """The largest payload length L <= remaining with L + head_length(L) <= budget (0 if none)."""
    best = 0
    for hl, top in ((1, 23), (2, 0xFF), (3, 0xFFFF), (5, 0xFFFF_FFFF), (9, (1 << 64) - 1)):
        candidate = min(budget - hl, top, remaining)
        if candidate > best and head_length(candidate) <= hl:
            best = candidate
    return best


def _fragment_primary(primary: PrimaryBlock, offset: int | None, total: int | None) -> PrimaryBlock:
    """``primary`` as the primary block of the fragment at ``offset`` of a ``total``-byte ADU, or with None, None
    as that of the whole bundle (a new block: no received image)."""
    without = int(primary.flags) & ~int(BundleFlag.IS_FRAGMENT)
    flags = BundleFlag(without | int(BundleFlag.IS_FRAGMENT) if offset is not None else without)
    return PrimaryBlock(
        flags,
        primary.crc_type,
        primary.destination,
        primary.source,
        primary.report_to,
        primary.creation_ms,
        primary.sequence,
        primary.lifetime_ms,
        offset,
        total,
    )


def replicated_blocks(bundle: Bundle) -> tuple[CanonicalBlock, ...]:
    """The extension blocks of ``bundle`` that go into every fragment, not only the first: those flagged
    "replicate in every fragment", and the Bundle Age block when the creation time is 0 (RFC 9171 §4.4.2: such a
    bundle, and so each of its fragments, must carry one)."""
    age_everywhere = bundle.primary.creation_ms == 0
    return tuple(
        b
        for b in bundle.blocks[:-1]
        if b.flags & BlockFlag.REPLICATE_IN_EVERY_FRAGMENT or (age_everywhere and b.block_type == BlockType.BUNDLE_AGE)
    )


def fragment_at(whole: Bundle, offset: int, total: int, data: bytes | memoryview) -> Bundle:
    """The fragment of ``whole`` that carries ADU bytes ``[offset, offset + len(data))`` of a ``total``-byte ADU
    (``whole``'s own payload is ignored): how a source fragments an ADU it reads piece by piece (RFC 9171 §5.8)
    without ever holding all of it. The fragment at offset 0 carries every extension block, the others only the
    replicated ones."""
    if not (0 <= offset and offset + len(data) <= total):
        raise FragmentationError(f"fragment [{offset}, {offset + len(data)}) lies outside an ADU of {total} bytes")
    if whole.primary.flags & BundleFlag.MUST_NOT_FRAGMENT:
        raise MustNotFragment(f"bundle {whole.id} must not be fragmented")
    blocks = whole.blocks[:-1] if offset == 0 else replicated_blocks(whole)
    return Bundle(_fragment_primary(whole.primary, offset, total), (*blocks, whole.blocks[-1].with_data(data)))


def whole_primary(primary: PrimaryBlock) -> PrimaryBlock:
    """The primary block of the bundle a fragment belongs to: the fragment's, without the fragment fields."""
    return _fragment_primary(primary, None, None)


def assembly_plan(pieces: Iterable[BundleId], total: int) -> list[tuple[BundleId, int, int]] | None:
    """How to rebuild a ``total``-byte ADU from the stored fragments ``pieces`` (ids with offset and length):
    ``[(fragment, skip, take), ...]`` in ADU order — take ``take`` bytes of that fragment's payload after the
    first ``skip`` — or None while some byte of the ADU is missing. Decided from the ids alone, so that a node
    can tell that a bundle is complete without reading any fragment."""
    plan: list[tuple[BundleId, int, int]] = []
    covered = 0
    ordered = sorted(
        (p for p in pieces if p.fragment_offset is not None and p.payload_length is not None),
        key=lambda p: (p.fragment_offset, -(p.payload_length or 0)),
    )
    for piece in ordered:
        assert piece.fragment_offset is not None and piece.payload_length is not None
        if piece.fragment_offset > covered:
            return None
        end = min(piece.fragment_offset + piece.payload_length, total)
        if end <= covered:
            continue
        plan.append((piece, covered - piece.fragment_offset, end - covered))
        covered = end
    return plan if covered >= total else None


def fragment(bundle: Bundle, max_bundle_bytes: int) -> list[Bundle]:
    """Split ``bundle`` into fragments whose encodings are at most ``max_bundle_bytes`` long.

    Returns ``[bundle]`` when it already fits. Raises ``MustNotFragment`` when it does not fit and must not
    be fragmented, ``FragmentationError`` when the size leaves no room for even one payload byte.
    """
    if encoded_size(bundle) <= max_bundle_bytes:
        return [bundle]
    primary = bundle.primary
    if primary.flags & BundleFlag.MUST_NOT_FRAGMENT:
        raise MustNotFragment(
            f"bundle {bundle.id} ({encoded_size(bundle)} bytes) exceeds {max_bundle_bytes} bytes "
            "and its 'must not fragment' flag is set"
        )
    payload_block = bundle.blocks[-1]
    payload = payload_block.data
    if isinstance(payload, memoryview):
        payload = payload.cast("B")
    length = len(payload)
    if primary.fragment_offset is not None and primary.total_adu_length is not None:
        base, total = primary.fragment_offset, primary.total_adu_length
    else:
        base, total = 0, length
    extensions = bundle.blocks[:-1]
    replicated = replicated_blocks(bundle)
    all_size = sum(_block_size(b) for b in extensions)
    replicated_size = sum(_block_size(b) for b in replicated)
    payload_fixed = _payload_block_size(payload_block, 0) - 1  # without the length head and the data

    fragments: list[Bundle] = []
    local = 0
    while local < length:
        first = local == 0
        frag_primary = _fragment_primary(primary, base + local, total)
        fixed = 2 + len(encode_primary(frag_primary)) + (all_size if first else replicated_size) + payload_fixed
        piece = _fit(max_bundle_bytes - fixed, length - local)
        if piece <= 0:
            raise FragmentationError(
                f"{max_bundle_bytes} bytes leave no room for payload in a fragment of bundle {bundle.id} "
                f"(the blocks alone take {fixed + 1} bytes)"
            )
        data = payload[local : local + piece]
        blocks = (*(extensions if first else replicated), payload_block.with_data(data))
        fragments.append(Bundle(frag_primary, blocks))
        local += piece
    return fragments


#: The name the ``dtn bundle fragment`` command uses.
fragment_bundle = fragment


@dataclass(slots=True)
class _Partial:
    total: int
    first: Bundle | None = None
    extents: list[tuple[int, memoryview | bytes]] = field(default_factory=list)
    template: Bundle | None = None


class Reassembler:
    """Collects fragments and returns each whole bundle once, when its last missing byte arrives.

    Memory is bounded by ``max_adu_bytes`` per bundle and ``max_pending`` bundles in progress (the oldest
    partial bundle is dropped to make room).
    """

    def __init__(self, *, max_adu_bytes: int = DEFAULT_MAX_ADU_BYTES, max_pending: int = DEFAULT_MAX_PENDING) -> None:
        self._max_adu_bytes = max_adu_bytes
        self._max_pending = max_pending
        self._pending: dict[BundleId, _Partial] = {}

    def pending(self) -> list[BundleId]:
        """Keys (``BundleId.whole()``) of the bundles still incomplete."""
        return list(self._pending)

    def discard(self, key: BundleId) -> None:
        """Forget a partial bundle (e.g. when its lifetime expired)."""
        self._pending.pop(key.whole(), None)

    def missing(self, key: BundleId) -> list[tuple[int, int]]:
        """The ``[start, end)`` ADU ranges not yet received for ``key``."""
        partial = self._pending.get(key.whole())
        if partial is None:
            return []
        gaps: list[tuple[int, int]] = []
        covered = 0
        for offset, data in sorted(partial.extents, key=lambda e: e[0]):
            if offset > covered:
                gaps.append((covered, offset))
            covered = max(covered, offset + len(data))
        if covered < partial.total:
            gaps.append((covered, partial.total))
        return gaps

    def add(self, bundle: Bundle) -> Bundle | None:
        """Add a fragment; returns the whole bundle when complete, else None. A non-fragment is returned as is."""
        primary = bundle.primary
        if primary.fragment_offset is None or primary.total_adu_length is None:
            return bundle
        key = bundle.id.whole()
        offset, total = primary.fragment_offset, primary.total_adu_length
        if total > self._max_adu_bytes:
            raise ReassemblyError(f"bundle {key}: ADU of {total} bytes exceeds the {self._max_adu_bytes}-byte limit")
        data = bundle.payload
        if offset + len(data) > total:
            raise ReassemblyError(f"fragment [{offset}, {offset + len(data)}) of {key} exceeds its ADU length {total}")
        partial = self._pending.get(key)
        if partial is None:
            if len(self._pending) >= self._max_pending:
                self._pending.pop(next(iter(self._pending)))
            partial = self._pending[key] = _Partial(total, template=bundle)
        elif partial.total != total:
            raise ReassemblyError(f"fragments of {key} disagree on the ADU length ({partial.total} and {total})")
        if offset == 0 and partial.first is None:
            partial.first = bundle
        if not any(o == offset and len(d) >= len(data) for o, d in partial.extents):
            partial.extents.append((offset, data))
        if self.missing(key):
            return None
        del self._pending[key]
        return _assemble(partial)


def _assemble(partial: _Partial) -> Bundle:
    first = partial.first
    assert first is not None  # offset 0 is covered
    pieces: list[memoryview | bytes] = []
    covered = 0
    for offset, data in sorted(partial.extents, key=lambda e: (e[0], -len(e[1]))):
        end = offset + len(data)
        if end <= covered:
            continue
        pieces.append(data[covered - offset :] if offset < covered else data)
        covered = end
    adu = b"".join(pieces)
    primary = whole_primary(first.primary)
    payload_block = first.blocks[-1]
    return Bundle(primary, (*first.blocks[:-1], payload_block.with_data(adu)))


def reassemble(fragments: Iterable[Bundle]) -> Bundle:
    """The whole bundle from all its fragments (any order, duplicates and overlaps allowed).

    Raises ``ReassemblyError`` when the fragments belong to different bundles or do not cover the ADU.
    """
    reassembler = Reassembler()
    keys: set[BundleId] = set()
    result: Bundle | None = None
    for piece in fragments:
        keys.add(piece.id.whole())
        if len(keys) > 1:
            raise ReassemblyError(f"fragments of different bundles: {', '.join(sorted(map(str, keys)))}")
        if result is None:
            result = reassembler.add(piece)
    if result is None:
        if not keys:
            raise ReassemblyError("no fragments given")
        (key,) = keys
        gaps = ", ".join(f"[{a}, {b})" for a, b in reassembler.missing(key))
        raise ReassemblyError(f"bundle {key} is incomplete: missing ADU bytes {gaps}")
    return result
