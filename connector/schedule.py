"""The scheduled job (`repeat-sales schedule`): the full cycle every N minutes, with `schedule`.

One run at a time even when two schedulers were started by mistake: each tick's sync takes the
state file's `sync` lock, and a tick that finds it taken is skipped and logged. A failed run is
logged and tried again at the next tick - never a crash loop. SIGTERM lets the run in flight finish
(every batch it started is written and recorded) and then ends the loop; a second signal stops at once.
The first run starts immediately. `sleep` is injectable, so tests never wait.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable

import schedule

from connector.errors import RepeatSalesError, StateLocked

log = logging.getLogger(__name__)

MAX_IDLE_STEP_SECONDS = 1.0  # how often the loop looks at the stop flag while idle


class ScheduledSync:
    def __init__(self, run_once: Callable[[], object], every_minutes: float, *,
                 sleep: Callable[[float], None] = time.sleep, scheduler: schedule.Scheduler | None = None,
                 stop: threading.Event | None = None) -> None:
        self.run_once = run_once
        self.every_minutes = every_minutes
        self.sleep = sleep
        self.stop_event = stop or threading.Event()
        self.scheduler = scheduler or schedule.Scheduler()  # our own, not the module-global one
        self.scheduler.every(every_minutes).minutes.do(self.tick)
        self.ticks: Counter[str] = Counter()

    def tick(self) -> str:
        """One scheduled run: "done", "skipped" (another run holds the lock) or "failed"."""
        started = time.monotonic()
        try:
            report = self.run_once()
        except StateLocked as exc:
            outcome = "skipped"
            log.info("schedule tick=skipped reason=locked detail=%s", exc)
        except RepeatSalesError as exc:
            outcome = "failed"
            log.error("schedule tick=failed error=%s (retried at the next tick)", exc)
        except Exception:  # a bug must not end the scheduler: the next tick tries again
            outcome = "failed"
            log.exception("schedule tick=crashed (retried at the next tick)")
        else:
            stats = getattr(report, "stats", {}) or {}
            failed = bool(getattr(report, "error", None)) or bool(getattr(report, "failed", None))
            outcome = "failed" if failed else "done"
            log.info("schedule tick=%s written=%s planned=%s requests=%s seconds=%.2f", outcome,
                     stats.get("written"), stats.get("planned"), stats.get("requests"), time.monotonic() - started)
        self.ticks[outcome] += 1
        return outcome

    def run(self) -> int:
        """Run now, then every `every_minutes`, until `stop_event` is set (checked between runs)."""
        log.info("schedule every_minutes=%s", self.every_minutes)
        if not self.stop_event.is_set():
            self.tick()
        while not self.stop_event.is_set():
            self.scheduler.run_pending()
            if self.stop_event.is_set():
                break
            idle = self.scheduler.idle_seconds
            self.sleep(min(max(idle if idle is not None else MAX_IDLE_STEP_SECONDS, 0.0), MAX_IDLE_STEP_SECONDS))
        log.info("schedule stopped ticks=%s", dict(self.ticks))
        return 0


def run_schedule(every_minutes: float | None) -> int:
    """`repeat-sales schedule`: settings, logging and signals around ScheduledSync."""
    from connector import clock
    from connector.redact import setup_logging
    from connector.settings import load_settings
    from connector.webapp import settings_secrets
    from connector.webapp.runtime import Runtime

    settings = load_settings()
    setup_logging(settings.LOG_LEVEL, secrets=settings_secrets(settings))
    runtime = Runtime(settings, lambda: clock.today(settings.TIMEZONE))
    state = runtime.open_state()
    stop = threading.Event()

    def on_signal(signum, _frame) -> None:
        if stop.is_set():
            raise KeyboardInterrupt  # a second signal: stop now (markers make a rerun safe)
        log.info("schedule signal=%s: finishing the run in flight, then stopping", signum)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    job = ScheduledSync(lambda: runtime.sync(state), every_minutes or settings.SCHEDULE_EVERY_MINUTES,
                        sleep=lambda seconds: stop.wait(seconds), stop=stop)
    print(f"scheduled: a sync now, then every {job.every_minutes:g} minutes (SIGTERM stops)",
          file=sys.stderr, flush=True)
    try:
        return job.run()
    finally:
        state.close()
