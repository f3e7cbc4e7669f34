"""A message as a few parts to write one after the other: each large piece as it is (the very object, not copied),
the small pieces between joined into one."""

from __future__ import annotations

from collections.abc import Iterable


def coalesce(pieces: Iterable[bytes | memoryview], own_bytes: int) -> list[bytes | memoryview]:
    """``pieces`` in order, those of at least ``own_bytes`` each a part of its own, runs of smaller ones joined (a
    run of one is kept as it is)."""
    parts: list[bytes | memoryview] = []
    small: list[bytes | memoryview] = []
    for piece in pieces:
        if len(piece) >= own_bytes:
            if small:
                parts.append(b"".join(small) if len(small) > 1 else small[0])
                small = []
            parts.append(piece)
        else:
            small.append(piece)
    if small:
        parts.append(b"".join(small) if len(small) > 1 else small[0])
    return parts
