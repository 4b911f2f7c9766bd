"""Ending a finished command without tearing the interpreter down piece by piece.

After planning a million-row list, Python spends ~0.2 s freeing what the command built
(module teardown: frames, arrays, strings) before the process ends, memory the system
takes back at once anyway. A command that leaves much behind calls `allow()`; once it has
returned, `main()` calls `exit_now()`, which runs the atexit handlers (log handlers
flushed, temporary files removed), flushes stdout and stderr and ends the process with the
command's exit code. Only the console script does this: in-process callers (the tests'
CliRunner, the web console) never go through `main()`. With another thread still running,
or an exit code that is not a number, the normal exit happens.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading

_allowed = False


def allow(allowed: bool = True) -> None:
    """The running command may end the process without the teardown (see above)."""
    global _allowed
    _allowed = allowed


def exit_now(code: object) -> None:
    """End the process with `code` (a SystemExit's) when allowed and safe; else return."""
    if not _allowed or threading.active_count() > 1:
        return
    if code is None:
        status = 0
    elif isinstance(code, int) and not isinstance(code, bool):
        status = code
    else:
        return
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # a closed pipe or stream: Python's own exit reports it
        return
    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(status)
