"""Large bundles as files beside the database.

A file is written under its final name before the row that points to it is committed; when the store must
survive power loss, ``persist`` fsyncs the files written since the last commit and then their directory, once for
the whole group, before the store commits those rows. A committed row therefore never lacks its file, and a crash
can only leave files that no committed row names (orphans, perhaps incomplete), which recovery removes. Removing
files needs no sync: a file whose removal a crash undid is an orphan too. Files are streamed in and out in chunks:
a 1 GiB bundle is never in memory.

Removed files of up to ``SPARE_MAX_BYTES`` are kept as spares (at most ``SPARE_FILES``) and the next new files
are written over them, under the spare's name: writing over a file's cached pages costs a quarter of creating a
file and allocating its pages (measured on ext4: 0.13 against 0.47 ms per MiB), and no unlink, rename or create
is needed. A file written over is cut to its new length, so nothing of the old bundle remains in it. After a crash
the spares are orphans like any other file without a row, and recovery removes them; a closed store leaves none.
"""

from __future__ import annotations

import collections
import concurrent.futures
import errno
import functools
import io
import os
import secrets
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from dtn.errors import DtnError, StoreError

TEMP_PREFIX = ".tmp-"
SUFFIX = ".bundle"
CHUNK_BYTES = 1 << 20
#: Threads that fsync the files of one commit at the same time.
SYNC_THREADS = 8
#: Removed files kept to be written over, and the largest file kept.
SPARE_FILES = 64
SPARE_MAX_BYTES = 4 << 20
_OPEN_FOR_WRITING = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC


def read_range(stream: BinaryIO, offset: int, length: int, chunk_bytes: int, what: str) -> Iterator[bytes]:
    """``length`` bytes of ``stream`` from ``offset``, in pieces of at most ``chunk_bytes``; ``DtnError`` naming
    ``what`` when the stream ends before."""
    stream.seek(offset)
    remaining = length
    while remaining:
        data = stream.read(min(chunk_bytes, remaining))
        if not data:
            raise DtnError(f"{what} is truncated")
        remaining -= len(data)
        yield data


def os_error_message(exc: OSError, what: str) -> str:
    """A StoreError message for a failed file operation, saying what to do."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return (
            f"{what}: no space left ({exc.strerror}); free space on that file system or lower the store "
            "quota. Nothing since the last commit was kept."
        )
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"{what}: permission denied or read-only file system ({exc.strerror}); fix the directory's access"
    return f"{what}: {exc.strerror or exc} (errno {exc.errno}); check the disk and the system log"


class PayloadFiles:
    """A directory of bundle files, named by random tokens. ``sync``: fsync files and the directory."""

    def __init__(self, directory: Path, *, sync: bool) -> None:
        self.directory = directory
        self.sync = sync
        self._directory = str(directory)
        self._syncers: concurrent.futures.ThreadPoolExecutor | None = None
        # removed files to write over; appended and popped from the commit thread and the event loop's thread
        self._spares: collections.deque[str] = collections.deque()
        self._reading: collections.Counter[str] = collections.Counter()  # files open for reading: never spares
        self._reading_lock = threading.Lock()
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(os_error_message(exc, f"cannot create the payload directory {directory}")) from exc

    def path(self, name: str) -> Path:
        return Path(self._file(name))

    def _file(self, name: str) -> str:
        """The path of the bundle file ``name``, as a string (cheaper than a ``Path`` on the hot path)."""
        if "/" in name or name.startswith(".") or not name.endswith(SUFFIX):
            raise StoreError(f"bad payload file name {name!r} in the store database: the database is corrupt")
        return os.path.join(self._directory, name)

    @property
    def spares(self) -> frozenset[str]:
        """The names of the removed files kept to be written over."""
        return frozenset(self._spares)

    @staticmethod
    def new_name() -> str:
        """A fresh file name (nothing written yet)."""
        return secrets.token_hex(16) + SUFFIX

    def take_name(self) -> str:
        """The name of the next new file: a spare's (written over) or a fresh one. Give it back with
        ``give_back`` if it is not written after all."""
        try:
            return self._spares.pop()
        except IndexError:
            return self.new_name()

    def give_back(self, names: Iterable[str]) -> None:
        """Names from ``take_name`` that were never written: spares again (a fresh name has no file yet, and a
        spare beyond the bound is removed)."""
        for name in names:
            if len(self._spares) < SPARE_FILES:
                self._spares.append(name)
            else:
                self._unlink_quietly(self._file(name))

    def write(
        self,
        first: bytes | bytearray | memoryview,
        rest: Iterable[bytes | bytearray | memoryview],
        *,
        name: str | None = None,
        sync: bool = False,
    ) -> tuple[str, int]:
        """Write ``first`` then every chunk of ``rest`` to a new file (named ``name``, default ``take_name()``);
        returns (name, bytes written). ``sync``: its data is on disk when this returns. Durable against power
        loss only after ``persist`` (which syncs the directory). On failure no file of that name is left."""
        name = name or self.take_name()
        path = self._file(name)
        size = 0
        try:
            fd = os.open(path, _OPEN_FOR_WRITING, 0o644)
            try:
                size = _write_all(fd, first)
                for chunk in rest:
                    size += _write_all(fd, chunk)
                os.ftruncate(fd, size)  # written over a spare: nothing of the old bundle stays
                if sync:
                    os.fdatasync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            self._unlink_quietly(path)
            raise StoreError(os_error_message(exc, f"cannot write a bundle file in {self.directory}")) from exc
        except BaseException:
            self._unlink_quietly(path)
            raise
        return name, size

    def open(self, name: str) -> BinaryIO:
        """The file for reading; while it is open, removing it never makes it a spare."""
        path = self.path(name)
        with self._reading_lock:
            self._reading[name] += 1
        try:
            return _Reader(open(path, "rb", buffering=0), functools.partial(self._closed_reader, name))
        except FileNotFoundError as exc:
            self._closed_reader(name)
            raise StoreError(
                f"the bundle file {path} is missing: something removed it behind the store's back; "
                "reopen the store to drop the bundle"
            ) from exc
        except OSError as exc:
            self._closed_reader(name)
            raise StoreError(os_error_message(exc, f"cannot read the bundle file {path}")) from exc

    def _closed_reader(self, name: str) -> None:
        with self._reading_lock:
            self._reading[name] -= 1
            if not self._reading[name]:
                del self._reading[name]

    def read(self, name: str) -> bytes:
        with self.open(name) as f:
            return f.read()

    def remove(self, names: Iterable[str], *, spare: bool = True) -> None:
        """Remove files (missing ones are fine: a crash may have removed them already). Small ones are kept as
        spares to be written over, unless ``spare`` is false."""
        for name in names:
            path = self._file(name)
            if spare and len(self._spares) < SPARE_FILES and name not in self._reading:
                try:
                    if os.stat(path).st_size <= SPARE_MAX_BYTES:
                        self._spares.append(name)
                        continue
                except FileNotFoundError:
                    continue
            elif not spare and name in self._spares:
                self._spares.remove(name)
            self._unlink_quietly(path)

    def close(self) -> None:
        """Stop the sync threads and remove the spares (the bundle files stay)."""
        while self._spares:
            self._unlink_quietly(self.directory / self._spares.pop())
        if self._syncers is not None:
            self._syncers.shutdown()
            self._syncers = None

    def _sync_file(self, name: str) -> None:
        fd = os.open(self.path(name), os.O_RDONLY)
        try:
            os.fdatasync(fd)
        finally:
            os.close(fd)

    def persist(self, unwritten: dict[str, bytes], written: list[str]) -> None:
        """Write the files ``unwritten`` (name -> content) and, when the store survives power loss, fsync them
        with the files ``written`` before (by ``write``), then the directory. Several files are written and synced
        in threads at once (the file system joins concurrent syncs into fewer journal commits)."""
        if not self.sync:
            for name, data in unwritten.items():
                self.write(data, (), name=name)
            return

        jobs: list[Callable[[], object]] = [
            functools.partial(self.write, d, (), name=n, sync=True) for n, d in unwritten.items()
        ]
        jobs += [functools.partial(self._sync_file, name) for name in written]
        try:
            if len(jobs) == 1:
                jobs[0]()
            elif jobs:
                if self._syncers is None:
                    self._syncers = concurrent.futures.ThreadPoolExecutor(SYNC_THREADS, "dtn-fsync")
                for done in [self._syncers.submit(job) for job in jobs]:
                    done.result()
            self.sync_directory()
        except OSError as exc:
            raise StoreError(os_error_message(exc, f"cannot sync the bundle files in {self.directory}")) from exc

    def sync_directory(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def listing(self) -> tuple[set[str], list[str]]:
        """(finished file names, temporary file names) found in the directory."""
        finished: set[str] = set()
        temps: list[str] = []
        for entry in os.scandir(self.directory):
            if entry.name.startswith(TEMP_PREFIX):
                temps.append(entry.name)
            elif entry.name.endswith(SUFFIX):
                finished.add(entry.name)
        return finished, temps

    def remove_temps(self, temps: Iterable[str]) -> None:
        """Remove temporary files found by ``listing``."""
        for name in temps:
            self._unlink_quietly(self.directory / name)

    @staticmethod
    def _unlink_quietly(path: str | Path) -> None:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def _write_all(fd: int, data: bytes | bytearray | memoryview) -> int:
    """Write all of ``data`` to ``fd``; its length."""
    view = memoryview(data)
    total = len(view)
    written = os.write(fd, view)
    while written < total:  # a regular file takes it in one call below 2 GiB; signals can cut it short
        written += os.write(fd, view[written:])
    return total


class _Reader(io.BufferedReader):
    """A bundle file open for reading; tells its ``PayloadFiles`` when closed (a file being read is never written
    over as a spare)."""

    def __init__(self, raw: io.FileIO, on_close: Callable[[], None]) -> None:
        super().__init__(raw, CHUNK_BYTES)
        self._on_close: Callable[[], None] | None = on_close

    def close(self) -> None:
        on_close, self._on_close = self._on_close, None
        try:
            super().close()
        finally:
            if on_close is not None:
                on_close()
