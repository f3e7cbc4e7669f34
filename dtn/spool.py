"""Large received bundles written to a file as they arrive, checked on the way (runtime ring: file I/O).

A TCPCLv4 transfer above the session's ``spool_above_bytes`` is not gathered in memory: the adapter hands its
pieces to a ``FileSpool`` (``dtn.convergence.base.BundleSpool``). The spool decodes the bundle's head from the
first bytes (``decode_head``: a bundle that is not valid is refused before most of it arrives), checks its size
against the node's limit and the store's room (refused with NO_RESOURCES when it will not fit), writes every
byte to a temporary file and checks the payload block's CRC as the payload streams past (``PayloadCrcCheck``).
``finish`` checks the end of the bundle; the node then has the store adopt the file (``SqlBundleStore.add_file``,
a rename) or copy it, and only after that commit does the CL send the final XFER_ACK. A spool that is discarded
removes its file; a crash leaves a temporary file that the store's recovery removes (``.tmp-`` prefix in the
store's payload directory) or that the node removes at start (its own spool directory).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from dtn.bundle.reasons import StatusReason
from dtn.bundle.stream import BundleHead, NeedMoreData, PayloadCrcCheck, decode_head
from dtn.convergence.base import RefuseReason
from dtn.errors import DecodeError, DtnError
from dtn.storage.payloads import TEMP_PREFIX, read_range

#: A head (everything before the payload data) longer than this is refused.
MAX_HEAD_BYTES = 1 << 20
CHUNK_BYTES = 1 << 20


class SpoolError(DtnError):
    """The spooled bundle is not a valid bundle (``reason``: what to refuse it with)."""

    def __init__(self, message: str, reason: RefuseReason = RefuseReason.NOT_ACCEPTABLE) -> None:
        super().__init__(message)
        self.reason = reason


class FileSpool:
    """One large incoming bundle being written to ``directory``. ``room(n)``: may the store take n more bytes?"""

    def __init__(self, directory: Path, *, max_bundle_bytes: int, room: Callable[[int], bool]) -> None:
        self.path = directory / f"{TEMP_PREFIX}spool-{secrets.token_hex(12)}"
        self._max_bundle_bytes = max_bundle_bytes
        self._room = room
        self._prefix = bytearray()
        self._file: BinaryIO | None = None
        self._check: PayloadCrcCheck | None = None
        self._trailer = bytearray()
        self.head: BundleHead | None = None
        self.received_bytes = 0
        self.problem = ""
        self._done = False

    # --- BundleSpool ------------------------------------------------------------------------------------

    def write(self, data: bytes) -> RefuseReason | None:
        try:
            self._write(data)
        except SpoolError as exc:
            self.problem = str(exc)
            return exc.reason
        except OSError as exc:
            self.problem = f"cannot write {self.path}: {exc.strerror or exc}"
            return RefuseReason.NO_RESOURCES
        return None

    def discard(self) -> None:
        self._close()
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        except OSError:
            pass  # the store's recovery (or the node's start) removes it

    # --- internals --------------------------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        start = self.received_bytes
        self.received_bytes += len(data)
        if self.head is None:
            self._prefix += data
            try:
                head = decode_head(self._prefix)
            except NeedMoreData as more:
                if more.needed_bytes > MAX_HEAD_BYTES:
                    raise SpoolError(f"the bundle's head exceeds {MAX_HEAD_BYTES} bytes") from None
                return
            except DecodeError as exc:
                reason = (RefuseReason.NO_RESOURCES if exc.reason == StatusReason.DEPLETED_STORAGE
                          else RefuseReason.NOT_ACCEPTABLE)
                raise SpoolError(f"not a valid bundle: {exc}", reason) from None
            if head.encoded_length > self._max_bundle_bytes:
                raise SpoolError(f"a bundle of {head.encoded_length} bytes exceeds the node's limit of "
                                 f"{self._max_bundle_bytes} (max_bundle_bytes)")
            if not self._room(head.encoded_length):
                raise SpoolError(f"no room in the store for a bundle of {head.encoded_length} bytes",
                                 RefuseReason.NO_RESOURCES)
            self.head = head
            self._check = PayloadCrcCheck(head)
            self._file = open(self.path, "xb")  # noqa: SIM115 - closed by finish/discard
            prefix, self._prefix = bytes(self._prefix), bytearray()
            self._consume(0, prefix)
            return
        self._consume(start, data)

    def _consume(self, start: int, data: bytes) -> None:
        head = self.head
        assert head is not None and self._check is not None and self._file is not None
        end = start + len(data)
        if end > head.encoded_length:
            raise SpoolError(f"more than the {head.encoded_length} bytes its blocks announce")
        lo = max(start, head.payload_offset)
        hi = min(end, head.payload_end)
        try:
            if lo < hi:
                self._check.update(memoryview(data)[lo - start : hi - start])
        except DecodeError as exc:
            raise SpoolError(str(exc)) from None
        if end > head.payload_end:
            self._trailer += data[max(0, head.payload_end - start):]
        self._file.write(data)

    def finish(self, length: int) -> BundleHead:
        """The transfer ended after ``length`` bytes: check that the bundle is complete and valid (payload CRC),
        close the file. Raises ``SpoolError``."""
        if self.head is None or self._check is None:
            raise SpoolError("the transfer ended before the bundle's head did")
        if length != self.received_bytes or length != self.head.encoded_length:
            raise SpoolError(f"the transfer of {length} bytes does not hold the {self.head.encoded_length}-byte "
                             "bundle its blocks announce")
        try:
            self._check.verify(self._trailer)
        except DecodeError as exc:
            raise SpoolError(str(exc)) from None
        assert self._file is not None
        self._file.flush()
        self._close()
        self._done = True
        return self.head

    def payload_chunks(self) -> Iterator[bytes]:
        """The payload data read back from the file (after ``finish``), in pieces."""
        head = self.head
        assert head is not None and self._done
        with open(self.path, "rb") as f:
            yield from read_range(f, head.payload_offset, head.payload_length, CHUNK_BYTES, str(self.path))

    def file_chunks(self) -> Iterator[bytes]:
        """The whole bundle read back from the file (after ``finish``), in pieces."""
        with open(self.path, "rb") as f:
            while data := f.read(CHUNK_BYTES):
                yield data

    def _close(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass
            self._file = None


def clear_spool_directory(directory: Path) -> int:
    """Remove spool files a crash left behind in ``directory`` (a node's own spool directory); how many."""
    removed = 0
    if not directory.is_dir():
        return 0
    for entry in os.scandir(directory):
        if entry.name.startswith(f"{TEMP_PREFIX}spool-"):
            try:
                os.unlink(entry.path)
                removed += 1
            except OSError:
                pass
    return removed
