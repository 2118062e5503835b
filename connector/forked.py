"""Work done by a forked child on the second core while the parent does its own (a big CSV's second half).

The child inherits the parent's memory (a fork copies nothing until written: fork early, while the
parent holds little, or both pay for copied pages), computes one answer and hands it back pickled
through an unnamed temporary file; the parent collects it when it needs it. Anything wrong in the
child - an exception, a kill, no fork on this system - gives None, and the caller does that work
itself: the answer is the same either way, only slower. A parent that stops early kills its child.
"""

from __future__ import annotations

import gc
import os
import pickle
import signal
import tempfile
from collections.abc import Callable


class Forked:
    """A child process computing one answer."""

    def __init__(self, pid: int, out) -> None:
        self.pid, self._out = pid, out

    def result(self):
        """The child's answer, or None when it failed (the caller computes it then)."""
        try:
            _pid, status = os.waitpid(self.pid, 0)
            self.pid = 0
            if not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0):
                return None
            self._out.seek(0)
            return pickle.load(self._out)
        finally:
            self.close()

    def close(self) -> None:
        """Kill the child if it still runs, and let its answer go."""
        if self.pid:
            try:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
            self.pid = 0
        self._out.close()


def started(compute: Callable[[], object]) -> Forked | None:
    """compute() begun in a forked child; None where this system cannot fork."""
    if not hasattr(os, "fork"):
        return None
    out = tempfile.TemporaryFile()  # unlinked at once: nothing is left behind whatever ends the processes
    gc.freeze()  # the parent's objects out of the child's collections: fewer of its pages copied
    try:
        pid = os.fork()
    finally:
        gc.unfreeze()
    if pid:
        return Forked(pid, out)
    code = 1
    try:  # the child: the parent's handlers (SIGTERM ends `analyze` as Ctrl-C does) are not its own
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        pickle.dump(compute(), out, protocol=pickle.HIGHEST_PROTOCOL)
        out.flush()
        code = 0
    finally:
        os._exit(code)  # no atexit handlers, no flush of the parent's buffered output, no finally above
