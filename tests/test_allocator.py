"""glibc keeps freed memory for reuse once genie.allocator says so: no fresh pages per batch."""

import platform
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Four 8 MiB arrays made and freed six times; prints the page faults of each round.
SCRIPT = """
import resource, sys
import numpy as np
from genie.allocator import retain_freed_memory
if sys.argv[1] == "retain":
    assert retain_freed_memory() and retain_freed_memory()
for _ in range(6):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    arrays = [np.ones(2 ** 20) for _ in range(4)]
    del arrays
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> list[int]:
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, check=True,
                         cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": ""})
    return [int(line) for line in out.stdout.split()]


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_freed_blocks_are_reused_without_page_faults():
    plain, kept = _faults("plain"), _faults("retain")
    # By default the 32 MiB freed each round go back to the system (over twice the 8 MiB the
    # dynamic threshold allows) and the next round faults them in again: 2,048 pages per 8 MiB.
    assert min(plain[1:]) > 1000
    # Kept: only the first round touches new pages.
    assert plain[0] > 1000 and kept[0] > 1000 and max(kept[1:]) < 50


def test_elsewhere_nothing_changes(monkeypatch):
    import genie.allocator as allocator

    monkeypatch.setattr(allocator, "_applied", None)
    monkeypatch.setattr(allocator.platform, "system", lambda: "Darwin")
    assert allocator.retain_freed_memory() is False
