"""``coalesce``: the same bytes in order, large pieces as the very objects given, runs of small ones joined."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from dtn.parts import coalesce

OWN = 8


@given(st.lists(st.binary(max_size=2 * OWN)), st.booleans())
def test_coalesce_keeps_the_bytes_and_the_large_pieces(pieces: list[bytes], views: bool) -> None:
    given_pieces: list[bytes | memoryview] = [memoryview(p) if views else p for p in pieces]
    parts = coalesce(given_pieces, OWN)
    assert b"".join(parts) == b"".join(pieces)
    large = [p for p in given_pieces if len(p) >= OWN]

    def is_large(part: bytes | memoryview) -> bool:
        return any(part is piece for piece in large)

    assert [id(p) for p in parts if is_large(p)] == [id(p) for p in large], "large pieces are the objects given"
    assert all(is_large(a) or is_large(b) for a, b in itertools.pairwise(parts)), "small runs are joined"
