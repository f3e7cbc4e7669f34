"""Removed bundle files are kept as spares and written over in place (PayloadFiles), never while being read."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dtn.storage.payloads import SPARE_FILES, SPARE_MAX_BYTES, PayloadFiles
from dtn.storage.sql import open_store
from tests.storage.conformance import meta, payload, put


def files_in(directory: Path) -> list[str]:
    return sorted(os.listdir(directory))


def inodes(directory: Path) -> set[int]:
    return {entry.inode() for entry in os.scandir(directory)}


@pytest.mark.parametrize("sync", [False, True])
def test_a_removed_file_is_written_over_and_cut_to_the_new_length(tmp_path: Path, sync: bool) -> None:
    files = PayloadFiles(tmp_path, sync=sync)
    old, _ = files.write(b"o" * 5000, [b"p" * 3000])
    inode = os.stat(tmp_path / old).st_ino
    files.remove([old])
    assert files_in(tmp_path) == [old], "a spare stays where it is"
    new = files.take_name()
    assert new == old, "the spare is the next new file"
    files.persist({new: b"n" * 100}, [])
    assert os.stat(tmp_path / new).st_ino == inode, "the spare was not reused"
    assert files.read(new) == b"n" * 100, "the old bundle's bytes must not remain"
    streamed, size = files.write(b"s" * 10, [b"t" * 20])  # no spare left: a new file
    assert streamed != new and size == 30 and files.read(streamed) == b"s" * 10 + b"t" * 20
    assert os.stat(tmp_path / streamed).st_ino != inode
    files.close()
    assert sorted(files_in(tmp_path)) == sorted([new, streamed]), "closing keeps the bundle files"


def test_names_taken_and_not_written_are_given_back(tmp_path: Path) -> None:
    files = PayloadFiles(tmp_path, sync=False)
    name, _ = files.write(b"a" * 100, [])
    files.remove([name])
    taken = files.take_name()
    fresh = files.take_name()
    assert taken == name and fresh != name
    files.give_back([fresh, taken])
    assert files.take_name() == taken and files.take_name() == fresh
    files.give_back([taken, fresh])
    files.close()
    assert files_in(tmp_path) == []


def test_a_file_being_read_is_not_written_over(tmp_path: Path) -> None:
    files = PayloadFiles(tmp_path, sync=False)
    name, _ = files.write(b"a" * 4096, [])
    reader = files.open(name)
    assert reader.read(10) == b"a" * 10
    files.remove([name])
    assert files_in(tmp_path) == [], "a file open for reading became a spare"
    other, _ = files.write(b"b" * 4096, [])
    assert other != name
    assert reader.read() == b"a" * 4086, "the reader saw another bundle's bytes"
    reader.close()
    files.remove([other])  # no reader now: kept
    assert files_in(tmp_path) == [other] and files.take_name() == other
    files.close()


def test_a_failed_write_leaves_no_file(tmp_path: Path) -> None:
    files = PayloadFiles(tmp_path, sync=False)

    def chunks() -> object:
        yield b"x" * 100
        raise RuntimeError("the source failed")

    with pytest.raises(RuntimeError):
        files.write(b"head", chunks())  # type: ignore[arg-type]
    assert files_in(tmp_path) == []
    files.close()


def test_large_files_are_unlinked_and_the_spares_are_bounded(tmp_path: Path) -> None:
    files = PayloadFiles(tmp_path, sync=False)
    large, _ = files.write(b"x" * (SPARE_MAX_BYTES + 1), [])
    files.remove([large])
    assert files_in(tmp_path) == []
    names = [files.write(bytes([n % 256]) * 64, [])[0] for n in range(SPARE_FILES + 5)]
    files.remove(names)
    assert len(files_in(tmp_path)) == SPARE_FILES
    files.remove(["0" * 32 + ".bundle"])  # missing: fine
    files.close()
    assert files_in(tmp_path) == [], "a closed store leaves no spare"


def test_the_store_reuses_spares_and_recovery_removes_them(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = open_store(url, large_payload_bytes=100)
    directory = store.payload_dir
    assert directory is not None
    put(store, meta(1, size=500))
    store.commit()
    first = inodes(directory)
    store.delete(meta(1).id)
    store.commit()
    assert inodes(directory) == first, "the removed file is kept as a spare"
    put(store, meta(2, size=300))
    store.commit()
    assert inodes(directory) == first, "the spare was written over"
    assert store.raw(meta(2).id) == payload(meta(2).id, 300)
    put(store, meta(3, size=400))  # stored and deleted before a commit: its name is given back unwritten
    store.delete(meta(3).id)
    store.commit()
    put(store, meta(4, size=400))
    store.commit()
    store.delete(meta(4).id)
    store.commit()
    assert len(files_in(directory)) == 2  # meta 2's file and a spare
    # a crash leaves the spare behind: another opening of the same store recovers as after a crash
    recovered = open_store(url, large_payload_bytes=100)
    assert len(files_in(directory)) == 1, "a spare has no row: recovery removes it"
    assert recovered.recovery.orphan_files_removed == 1
    assert recovered.raw(meta(2).id) == payload(meta(2).id, 300)
    recovered.close()
    put(store, meta(5, size=200))  # the first store's spare is gone: it is written anew
    store.commit()
    assert store.raw(meta(5).id) == payload(meta(5).id, 200)
    store.delete(meta(5).id)
    store.commit()
    assert len(files_in(directory)) == 2
    store.close()
    assert len(files_in(directory)) == 1, "a closed store leaves no spare"
    store = open_store(url, large_payload_bytes=100)
    assert store.recovery.clean
    store.close()
