"""Keeping freed memory in the process (glibc's malloc on Linux).

A window batch allocates and frees a few tensors of several MiB each, thousands of times a day
of picks. By default glibc serves blocks above 128 KiB by ``mmap`` and returns them to the
system on ``free`` (its dynamic threshold rises to a freed block's size, but it trims the heap
above twice that size), so each new tensor of that size touches fresh pages. In a loop of CPU forward passes
(product graphs of 6,000-7,000 pairs, 12-14 windows, the 2-core benchmark machine) the page
faults doubled the time (features 6.6 -> 14-15 ms, embedding 10.3 -> 21-23 ms); in a whole run,
where other work keeps part of the heap in use, they cost 5-10 % (two real Salton Sea days:
minor page faults 0.8-1.5 million -> 0.3-0.4 million per 6 h of picks).
:func:`retain_freed_memory` serves blocks up to 32 MiB (glibc's largest threshold) from the
heap and keeps up to ``TRIM_BYTES`` of freed heap for reuse; the process's peak memory stays
what its largest batch needs.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import platform

logger = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_BYTES = 32 * 2 ** 20
TRIM_BYTES = 2 ** 30

_applied: bool | None = None


def retain_freed_memory() -> bool:
    """Set glibc's ``M_MMAP_THRESHOLD`` (``MMAP_BYTES``) and ``M_TRIM_THRESHOLD``
    (``TRIM_BYTES``) once per process; True when they are in force, False elsewhere (another C
    library: nothing changes)."""
    global _applied
    if _applied is None:
        _applied = False
        if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
            try:
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                _applied = bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_BYTES)) and bool(
                    libc.mallopt(M_TRIM_THRESHOLD, TRIM_BYTES))
            except (OSError, AttributeError):
                _applied = False
        logger.debug("glibc malloc keeps freed memory: %s", _applied)
    return _applied
