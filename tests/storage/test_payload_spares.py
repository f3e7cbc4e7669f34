"""Removed bundle files are kept as spares and written over (PayloadFiles), never while being read."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dtn.storage.payloads import SPARE_FILES, SPARE_MAX_BYTES, SPARE_PREFIX, PayloadFiles
from dtn.storage.sql import open_store
from tests.storage.conformance import meta, payload, put


def spares(directory: Path) -> list[str]:
    return sorted(name for name in os.listdir(directory) if name.startswith(SPARE_PREFIX))


def bundle_files(directory: Path) -> list[str]:
    return sorted(name for name in os.listdir(directory) if not name.startswith("."))


@pytest.mark.parametrize("sync", [False, True])
def test_a_removed_file_is_written_over_and_cut_to_the_new_length(tmp_path: Path, sync: bool) -> None:
    files = PayloadFiles(tmp_path, sync=sync)
    old, _ = files.write(b"o" * 5000, [b"p" * 3000])
    inode = os.stat(tmp_path / old).st_ino
    files.remove([old])
    assert bundle_files(tmp_path) == [] and len(spares(tmp_path)) == 1
    new = files.new_name()
    files.persist({new: b"n" * 100}, [])
    assert os.stat(tmp_path / new).st_ino == inode, "the spare was not reused"
    assert files.read(new) == b"n" * 100, "the old bundle's bytes must not remain"
    assert spares(tmp_path) == []
    streamed, size = files.write(b"s" * 10, [b"t" * 20])  # no spare left: a new file
    assert size == 30 and files.read(streamed) == b"s" * 10 + b"t" * 20
    files.close()


def test_a_file_being_read_is_not_written_over(tmp_path: Path) -> None:
    files = PayloadFiles(tmp_path, sync=False)
    name, _ = files.write(b"a" * 4096, [])
    reader = files.open(name)
    assert reader.read(10) == b"a" * 10
    files.remove([name])
    assert spares(tmp_path) == [], "a file open for reading became a spare"
    other, _ = files.write(b"b" * 4096, [])
    assert reader.read() == b"a" * 4086, "the reader saw another bundle's bytes"
    reader.close()
    files.remove([other])  # no reader now: kept
    assert len(spares(tmp_path)) == 1
    files.close()


def test_large_files_are_unlinked_and_the_spares_are_bounded(tmp_path: Path) -> None:
    files = PayloadFiles(tmp_path, sync=False)
    large, _ = files.write(b"x" * (SPARE_MAX_BYTES + 1), [])
    files.remove([large])
    assert os.listdir(tmp_path) == []
    names = [files.write(bytes([n % 256]) * 64, [])[0] for n in range(SPARE_FILES + 5)]
    files.remove(names)
    assert len(spares(tmp_path)) == SPARE_FILES and bundle_files(tmp_path) == []
    files.remove(["0" * 32 + ".bundle"])  # missing: fine
    files.close()


def test_the_store_reuses_spares_and_recovery_removes_them(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = open_store(url, large_payload_bytes=100)
    directory = store.payload_dir
    assert directory is not None
    put(store, meta(1, size=500))
    store.commit()
    store.delete(meta(1).id)
    store.commit()
    assert bundle_files(directory) == [] and len(spares(directory)) == 1
    put(store, meta(2, size=300))
    store.commit()
    assert spares(directory) == [] and len(bundle_files(directory)) == 1
    assert store.raw(meta(2).id) == payload(meta(2).id, 300)
    put(store, meta(3, size=400))
    store.commit()
    store.delete(meta(3).id)
    store.commit()
    assert len(spares(directory)) == 1
    # a crash leaves the spare behind: another opening of the same store recovers as after a crash
    recovered = open_store(url, large_payload_bytes=100)
    assert spares(directory) == [], "spares are temporary files: recovery removes them"
    assert recovered.recovery.temp_files_removed == 1
    assert recovered.raw(meta(2).id) == payload(meta(2).id, 300)
    recovered.close()
    put(store, meta(4, size=200))  # the first store's spare is gone: it writes a new file
    store.commit()
    assert store.raw(meta(4).id) == payload(meta(4).id, 200)
    store.delete(meta(4).id)
    store.commit()
    assert len(spares(directory)) == 1
    store.close()
    assert spares(directory) == [], "a closed store leaves no spare"
    store = open_store(url, large_payload_bytes=100)
    assert store.recovery.clean
    store.close()
