"""``tune_allocator``: on glibc, buffers of a bundle's size are reused instead of faulted in afresh."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

ROUNDS = """
import resource, sys
from dtn.cli.allocator import tune_allocator
if sys.argv[1] == "tuned":
    assert tune_allocator()
def rounds(n):
    for _ in range(n):
        buffers = [bytearray(1 << 20) for _ in range(4)]  # 4 MiB allocated, touched and freed per round
        del buffers
rounds(3)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
rounds(20)
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) // 20)
"""


def faults_per_round(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", ROUNDS, mode], capture_output=True, text=True, check=True, timeout=60)
    return int(out.stdout)


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_tuned_allocator_reuses_bundle_sized_buffers() -> None:
    # untuned glibc gives the freed 4 MiB back to the kernel (trim) and faults ~1,000 pages in again each round
    assert faults_per_round("default") > 256
    assert faults_per_round("tuned") < 64


def test_tune_allocator_answers_without_raising() -> None:
    from dtn.cli.allocator import tune_allocator

    assert tune_allocator() is (platform.system() == "Linux" and platform.libc_ver()[0] == "glibc")
