"""The head of a stored bundle (its blocks, and where its payload lies) read without reading the payload.

A bundle too large to hold in memory (a reassembled ADU of a gigabyte, say) is only ever looked at through its
head: the agent takes the subject of its status reports from it, the runtime streams the payload to the
application straight from the store.
"""

from __future__ import annotations

from dtn.bundle.ids import BundleId
from dtn.bundle.stream import BundleHead, NeedMoreData, decode_head
from dtn.errors import DecodeError
from dtn.storage.base import BundleStore

#: Bytes read first; most heads are a few hundred bytes.
FIRST_READ_BYTES = 64 * 1024
#: A head longer than this is refused (64 extension blocks of 16 KiB would still fit).
MAX_HEAD_BYTES = 1 << 20


def read_head(store: BundleStore, bundle_id: BundleId, *, max_head_bytes: int = MAX_HEAD_BYTES) -> BundleHead | None:
    """The head of the stored bundle ``bundle_id``; None when it is not stored or its head cannot be decoded
    (the store checked the bundle when it took it, so that means the stored copy is damaged)."""
    try:
        stream = store.open_raw(bundle_id)
    except KeyError:
        return None
    with stream:
        prefix = stream.read(FIRST_READ_BYTES)
        while True:
            try:
                return decode_head(prefix)
            except NeedMoreData as more:
                if more.needed_bytes > max_head_bytes:
                    return None
                extra = stream.read(max(more.needed_bytes - len(prefix), FIRST_READ_BYTES))
                if not extra:
                    return None
                prefix += extra
            except DecodeError:
                return None
