"""campaign: bulk SMS campaigns from spreadsheets, with delivery reports joined back."""

import os as _os

# Arrow's allocator (mimalloc) backs its big buffers with 2 MiB pages where the OS allows it
# (transparent huge pages in "madvise" mode): a fresh `campaign plan` of a 1M-row list then
# takes ~1.5 s instead of 1.7-3 s, most of the difference being first-touch page faults
# (BENCHMARKS.md, "Planning"). mimalloc reads it when pyarrow loads, so it is set here,
# before any module of the package imports pyarrow; a value already in the environment wins.
_os.environ.setdefault("MIMALLOC_ALLOW_LARGE_OS_PAGES", "1")

__version__ = "0.1.0"
