"""The allocator settings keep large request buffers from paying a page fault per 4 KiB, without
holding memory the process does not use."""

import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt only")

# Four rounds of 40 buffers of ~800 KB kept and then freed (as requests and the entry cache
# keep stored batches, and free them again); prints the minor page faults of rounds 2-4, and
# how much the settings alone grew the resident set.
PROGRAM = """
import os, resource, sys
from kop_fast.allocator import tune_allocator

def rss_kb():
    with open("/proc/self/status") as fh:
        return next(int(l.split()[1]) for l in fh if l.startswith("VmRSS"))

before = rss_kb()
if sys.argv[1] == "tuned":
    assert tune_allocator(cache_bytes=512 << 20)
grown = rss_kb() - before
src = os.urandom(800_000)
faults = 0
for round_ in range(4):
    start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    kept = [bytes(bytearray(src)) for _ in range(40)]
    del kept
    if round_:
        faults += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start
print(faults, grown)
"""


def run(mode: str) -> tuple[int, int]:
    out = subprocess.run([sys.executable, "-c", PROGRAM, mode], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    faults, grown = out.stdout.split()
    return int(faults), int(grown)


def test_freed_large_buffers_are_reused_without_faults():
    (untuned, _), (tuned, _) = run("default"), run("tuned")
    # 32 MB per round: ~7,800 pages. By default glibc gives the freed buffers back (trim or
    # munmap) and every round faults them in again; tuned, rounds 2-4 reuse the first's pages.
    assert untuned > 3 * 4000
    assert tuned < untuned // 20


def test_settings_touch_no_memory():
    # The cache budget (512 MB here) is not touched in advance: an idle proxy holds what it uses.
    _, grown = run("tuned")
    assert grown < 4096  # KB

