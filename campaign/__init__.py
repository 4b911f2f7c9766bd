"""campaign: bulk SMS campaigns from spreadsheets, with delivery reports joined back."""

import os as _os

# Arrow's memory pool: the system allocator (glibc malloc) rather than Arrow's default
# mimalloc. In a fresh process (every `campaign plan`/`send`), mimalloc's handling of freed
# pages cost 0.7-1.3 s of system time in most runs of a 1M-row plan (2.2-2.9 s instead of
# ~1.5 s); with the system allocator every run took 1.67-1.71 s
# (docs/performance-notes.md, "Planning"),
# and memory goes back to the OS when freed. Arrow reads this when pyarrow loads, so it is
# set here, before any module of the package imports pyarrow; a value already in the
# environment wins.
_os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")

__version__ = "0.1.0"
