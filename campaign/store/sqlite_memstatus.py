"""SQLite's memory statistics turned off, process-wide, before the first connection opens.

SQLite counts every allocation under one global mutex (SQLITE_CONFIG_MEMSTATUS, on in
Debian's build and most others). When two threads read through SQLite at once (the result
export reads its next chunks in two threads), they take turns on that mutex: on the
1,000,000-row CSV export, ~190,000 futex calls and about a quarter of its wall time (6.3 s
-> 4.7 s without them, BENCHMARKS.md). The statistics only feed `sqlite3_memory_used()`
and the soft heap limit, which nothing here uses.

The setting can only change while the library is shut down, and shutting it down is safe
only when nothing of it is in use. So it is tried once per process, and only while SQLite
reports no memory in use at all (no connection, no statement); otherwise, or where the
library's functions cannot be reached through ctypes, SQLite is left as it is. (A build
whose statistics are off already is recognised: a probe connection counts no memory.)
"""

from __future__ import annotations

import ctypes
import platform
import sqlite3
import sys
import threading

__all__ = ["memory_statistics_off"]

_SQLITE_OK = 0
_SQLITE_CONFIG_MEMSTATUS = 9
# sqlite3_config is variadic: its int argument is passed like a fixed one on these ABIs
_ABIS = {("linux", "x86_64"), ("linux", "aarch64")}

_lock = threading.Lock()
_tried = False
_off = False


def memory_statistics_off() -> bool:
    """Turn SQLite's memory statistics off if nothing of SQLite is in use yet (first call
    only); True when they are off for this process."""
    global _tried, _off
    with _lock:
        if not _tried:
            _tried = True
            try:
                _off = _turn_off()
            except (sqlite3.Error, OSError, ValueError):  # an optimisation: never a failure
                _off = False
        return _off


def _turn_off() -> bool:
    lib = _library()
    if lib is None:
        return False
    lib.sqlite3_memory_used.restype = ctypes.c_int64
    probe = sqlite3.connect(":memory:")
    counting = lib.sqlite3_memory_used() > 0  # else the statistics are off already
    probe.close()
    if not counting:
        return True
    if lib.sqlite3_memory_used() != 0:  # a connection or statement exists somewhere
        return False
    if lib.sqlite3_shutdown() != _SQLITE_OK:
        return False
    configured = lib.sqlite3_config(ctypes.c_int(_SQLITE_CONFIG_MEMSTATUS), ctypes.c_int(0))
    initialized = lib.sqlite3_initialize()
    return configured == _SQLITE_OK and initialized == _SQLITE_OK


def _library() -> ctypes.CDLL | None:
    """The SQLite library of Python's sqlite3 module (None where it cannot be reached)."""
    if (sys.platform, platform.machine()) not in _ABIS:
        return None
    try:
        import _sqlite3

        lib = ctypes.CDLL(_sqlite3.__file__)
        for name in ("sqlite3_shutdown", "sqlite3_config", "sqlite3_initialize"):
            getattr(lib, name).restype = ctypes.c_int
        lib.sqlite3_memory_used  # noqa: B018 - present, or AttributeError
    except (ImportError, OSError, AttributeError):
        return None
    return lib
