"""The webhook app's one worker thread: the HTTP side verifies and queues, this side does the work.

Bursts coalesce: every verified event only raises a "sync wanted" flag; the worker waits a short
debounce, clears the flag and runs one incremental sync for all of them (an event arriving during
that sync raises the flag again, so one more sync follows). Jobs (an install, a robot call, an OAuth
grant) run before that sync; a robot's answer runs after it, on the fresh evaluation. A sync only
CRM events asked for first checks whether the CRM changed in anything but the app's own writes
(connector.quiet): the events the sync's own writes set off end there.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass

from connector.errors import RepeatSalesError, StateLocked
from connector.state import State
from connector.sync import SyncReport

log = logging.getLogger(__name__)

CAPACITY = 1000  # queued jobs before the app answers 503
LOCK_RETRY_SECONDS = 1.0  # another run (the scheduled job) holds the sync lock: try again this often
LOCK_RETRIES = 300


class QueueFull(Exception):
    """The worker cannot take more work now (full, or stopping): the request is answered 503."""


@dataclass
class Job:
    """Work queued by a route. `run` goes first; if it raises, the job's sync and `after_sync` are skipped."""

    name: str
    run: Callable[[State], None] | None = None
    after_sync: Callable[[State, SyncReport | None], None] | None = None
    sync: bool = False


class Worker:
    def __init__(self, sync: Callable[..., SyncReport | None], open_state: Callable[[], State], *,
                 debounce_seconds: float = 1.0, capacity: int = CAPACITY,
                 lock_retry_seconds: float = LOCK_RETRY_SECONDS, lock_retries: int = LOCK_RETRIES) -> None:
        self._sync, self._open_state = sync, open_state
        self.debounce, self.capacity = debounce_seconds, capacity
        self.lock_retry, self.lock_retries = lock_retry_seconds, lock_retries
        self.stats: Counter[str] = Counter()
        self.last_error: str | None = None
        self.last_sync_at: float | None = None
        self._cond = threading.Condition()
        self._jobs: deque[Job] = deque()
        self._sync_wanted = False
        self._full_wanted = False  # a sync asked for by more than CRM events (a job, a robot, a feedback answer)
        self._busy = False
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="repeat-sales-worker", daemon=True)

    # --- the HTTP side ------------------------------------------------------------------------

    def start(self) -> Worker:
        self._thread.start()
        return self

    def alive(self) -> bool:
        return self._thread.is_alive()

    def submit(self, job: Job) -> None:
        with self._cond:
            if self._stopping or len(self._jobs) >= self.capacity or not self._thread.is_alive():
                self.stats["refused"] += 1
                raise QueueFull(f"the worker cannot take {job.name} now")
            self._jobs.append(job)
            self.stats["queued"] += 1
            self._cond.notify_all()

    def request_sync(self, *, crm_event: bool = False) -> None:
        """`crm_event`: asked for by a record changed in the CRM, which may be the app's own write."""
        with self._cond:
            if self._stopping or not self._thread.is_alive():
                self.stats["refused"] += 1
                raise QueueFull("the worker is stopping")
            self.stats["coalesced" if self._sync_wanted else "sync_requests"] += 1
            self._sync_wanted = True
            self._full_wanted = self._full_wanted or not crm_event
            self._cond.notify_all()

    def snapshot(self) -> dict:
        with self._cond:
            return {**dict(self.stats), "queued_now": len(self._jobs), "sync_pending": self._sync_wanted,
                    "busy": self._busy, "alive": self._thread.is_alive(), "last_error": self.last_error,
                    "last_sync_at": self.last_sync_at}

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """True once nothing is queued, pending or running (for tests and a clean stop)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._jobs or self._sync_wanted or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def stop(self, timeout: float = 60.0) -> None:
        """Take no more work; finish what was accepted (Bitrix24 never redelivers), then end the thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)

    # --- the worker side ----------------------------------------------------------------------

    def _run(self) -> None:
        state = self._open_state()
        try:
            while True:
                with self._cond:
                    while not self._jobs and not self._sync_wanted and not self._stopping:
                        self._cond.wait()
                    if not self._jobs and not self._sync_wanted:
                        return  # stopping, nothing left
                    batch = list(self._jobs)
                    self._jobs.clear()
                    self._busy = True
                try:
                    self._process(state, batch)
                finally:
                    with self._cond:
                        self._busy = False
                        self._cond.notify_all()
        finally:
            state.close()

    def _process(self, state: State, batch: list[Job]) -> None:
        ready = []
        for job in batch:
            if job.run is None or self._guard(job.name, job.run, state):
                ready.append(job)
        with self._cond:
            wanted = self._sync_wanted or any(j.sync for j in ready)
        report = None
        if wanted:
            self._pause(self.debounce)  # let the rest of a burst land; they all ride on this sync
            with self._cond:
                quiet = not self._full_wanted and not any(j.sync for j in ready)
                self._sync_wanted = self._full_wanted = False  # an event from now on asks for the next sync
            report = self._sync_once(state, quiet=quiet)
        for job in ready:
            if job.after_sync is not None:
                self._guard(job.name, lambda st, j=job: j.after_sync(st, report), state)

    def _sync_once(self, state: State, *, quiet: bool = False) -> SyncReport | None:
        for _ in range(self.lock_retries + 1):
            started = time.monotonic()
            try:
                report = self._sync(state, quiet_if_unchanged=True) if quiet else self._sync(state)
            except StateLocked:
                log.info("worker sync=waiting reason=locked")
                if self._stopping:
                    return None
                self._pause(self.lock_retry)
                continue
            except RepeatSalesError as exc:  # recorded in the runs table by run_sync; the next event retries
                self.stats["sync_errors"] += 1
                self.last_error = str(exc)
                log.warning("worker sync=failed error=%s", exc)
                return None
            except Exception:  # a bug: logged, the worker lives on
                self.stats["sync_errors"] += 1
                self.last_error = "internal error"
                log.exception("worker sync=crashed")
                return None
            if report is None:  # nothing changed but the app's own writes: no run
                self.stats["quiet"] += 1
                return None
            self.stats["syncs"] += 1
            self.last_sync_at = time.time()
            log.info("worker sync=done written=%s seconds=%.2f", report.stats.get("written"),
                     time.monotonic() - started)
            return report
        self.stats["sync_errors"] += 1
        self.last_error = "the sync lock stayed taken"
        return None

    def _guard(self, name: str, step: Callable[[State], None], state: State) -> bool:
        try:
            step(state)
        except RepeatSalesError as exc:
            self.stats["job_errors"] += 1
            self.last_error = f"{name}: {exc}"
            log.warning("worker job=%s failed error=%s", name, exc)
            return False
        except Exception:
            self.stats["job_errors"] += 1
            self.last_error = f"{name}: internal error"
            log.exception("worker job=%s crashed", name)
            return False
        self.stats["jobs_done"] += 1
        return True

    def _pause(self, seconds: float) -> None:
        """Wait, but wake at once on stop."""
        if seconds <= 0:
            return
        with self._cond:
            self._cond.wait_for(lambda: self._stopping, timeout=seconds)
