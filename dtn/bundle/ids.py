"""Bundle identity (RFC 9171 §4.2.6 / §5.9): source node ID, creation timestamp, and for fragments the
fragment offset and payload length."""

from __future__ import annotations

from typing import NamedTuple


class BundleId(NamedTuple):
    """Identifies a bundle; ``source`` is the text form of the source EID (``ipn:1.1``, ``dtn:none``)."""

    source: str
    creation_ms: int
    sequence: int
    fragment_offset: int | None = None
    payload_length: int | None = None

    @property
    def is_fragment(self) -> bool:
        return self.fragment_offset is not None

    def whole(self) -> BundleId:
        """The id of the bundle this fragment belongs to (the reassembly key)."""
        return BundleId(self.source, self.creation_ms, self.sequence)

    def __str__(self) -> str:
        text = f"{self.source}/{self.creation_ms}/{self.sequence}"
        if self.fragment_offset is not None:
            text += f"/{self.fragment_offset}+{self.payload_length}"
        return text

    @classmethod
    def parse(cls, text: str) -> BundleId:
        """Inverse of ``str()``: ``ipn:1.1/789004800000/0`` or ``…/0/5+6`` for a fragment."""
        parts = text.rsplit("/", 3)
        try:
            if "+" in parts[-1]:
                offset, _, length = parts[-1].partition("+")
                source = parts[0]
                return cls(source, int(parts[1]), int(parts[2]), int(offset), int(length))
            source, created, seq = text.rsplit("/", 2)
            return cls(source, int(created), int(seq))
        except (ValueError, IndexError) as exc:
            expected = "SOURCE/CREATION_MS/SEQ[/OFFSET+LENGTH]"
            raise ValueError(f"not a bundle id: {text!r} (expected {expected})") from exc
