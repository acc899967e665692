"""The allocator settings keep large request buffers from paying a page fault per 4 KiB."""

import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt only")

# Keeps 40 buffers of ~800 KB (as the entry cache keeps stored batches) and prints how many
# minor page faults that took.
PROGRAM = """
import os, resource, sys
from kop_fast.allocator import tune_allocator
if sys.argv[1] == "tuned":
    assert tune_allocator(reserve_bytes=64 << 20)
src = os.urandom(800_000)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
kept = [bytes(bytearray(src)) for _ in range(40)]
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", PROGRAM, mode], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return int(out.stdout)


def test_reserved_heap_serves_large_buffers_without_faults():
    untuned, tuned = faults("default"), faults("tuned")
    # 32 MB kept: ~7,800 pages. By default glibc maps each 800 KB buffer fresh (a fault per
    # page, the kernel zeroing it); from the reserve it costs (almost) none.
    assert untuned > 4000
    assert tuned < untuned // 20
