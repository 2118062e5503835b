"""Work done by a forked child on the second core while the parent does its own: the second half of a
big CSV's lines split into columns (`analyze`), the second half of a big sync's due customers read and
planned, a big shop's lifetime model fitted while the parent counts the plan or reads the line items, a big
CSV's hold-out draws (a sha256 per customer) made while the parent puts its rows in order.

The child inherits the parent's memory (a fork copies nothing until written), computes one answer and
hands it back pickled through an unnamed temporary file; the parent collects it when it needs it. A
database connection is never used across the fork: a child that reads opens its own. Anything wrong in
the child - an exception, a kill, no fork on this system - gives None, and the caller does that work
itself: the answer is the same either way, only slower. A parent that stops early kills its child.
"""

from __future__ import annotations

import gc
import logging
import os
import pickle
import signal
import tempfile
from collections.abc import Callable

log = logging.getLogger(__name__)

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
                how = f"exit={os.WEXITSTATUS(status)}" if os.WIFEXITED(status) else f"signal={os.WTERMSIG(status)}"
                log.warning("second_process=failed %s: its part is done in this process", how)
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


def alongside(there: Callable[[], object], here: Callable[[], object]) -> tuple[object, object]:
    """(there(), here()): there() computed by a forked child while this process runs here(), or
    computed here afterwards when the child fails (or this system cannot fork)."""
    child = started(lambda: (there(),))  # in a tuple: a None from there() is an answer, not a failure
    try:
        mine = here()
        theirs = child.result() if child is not None else None
    finally:
        if child is not None:
            child.close()
    return (there() if theirs is None else theirs[0]), mine


APART_FROM = 50_000  # customers: for fewer, the lifetime model's fit or the hold-out's digests take a tenth of a
# second or less, about what the fork and the hand-back of the answer would save


PLAN_SPLIT_FROM = 20_000  # due customers: below it the plan takes a few seconds, and the fork, the child's
# own connection and the hand-back of its actions cost a good part of what the second core saves


PARENTS_SHARE = 0.45  # of the due customers: the parent makes the customers' reports meanwhile, then takes
# the child's actions back (the shares that ended the two together at 200,000 customers)


def plan_on_two_cores(people, meanwhile: Callable[[], None] = lambda: None, split: bool = True):
    """A `spread` for playbooks.columnar_sync.plan_due: the due customers after the parent's share read
    (over a connection of the child's own: a connection is never used across a fork) and planned by a
    child while the parent plans its share, then does `meanwhile()`; the child's (kept, suppressed) lists
    come back pickled, in order. Not `split`, or with few due customers, all are planned here, then
    `meanwhile()`."""

    def spread(due: list[int], plan):
        if not split or len(due) < PLAN_SPLIT_FROM or not hasattr(people, "reopened"):
            yield from plan(due, people)
            meanwhile()
            return
        mid = int(len(due) * PARENTS_SHARE)
        child = started(lambda: _planned(plan, due[mid:], people))
        try:
            yield from plan(due[:mid], people)
            meanwhile()
            rest = child.result() if child is not None else None
        finally:
            if child is not None:
                child.close()
        yield from plan(due[mid:], people) if rest is None else rest

    return spread


def _planned(plan, due: list[int], people) -> list:
    with people.reopened() as own:
        return list(plan(due, own))
