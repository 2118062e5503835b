"""The Celery app on Redis, and the serving side of the queue: keep the job in the inbox, then queue it.

Delivery is at least once: acks_late (a message leaves Redis only when its task finished), a worker
process lost mid-task gives its message back (task_reject_on_worker_lost), and Redis hands a message
taken by a worker that died to another after QUEUE_REDELIVER_SECONDS (visibility_timeout). What Redis
itself loses (a restart without its append-only file) the inbox sweep queues again. Workers read the
`robots` queue before `jobs`: BRPOP over the queues in that order (RobotsFirst below).

Queues belong to one deployment (one state: its inbox and its `meta.deployment` id): `robots.<id>` and
`jobs.<id>`, and each message names its deployment too. Deployments sharing a Redis - a leftover worker
of an earlier run, staging beside production - never see each other's jobs; a worker that finds another
deployment's message in its queue anyway refuses it (tasks.py) and that deployment's sweep sends it again.
"""

from __future__ import annotations

import logging
import time
from functools import lru_cache

from celery import Celery
from kombu.utils.scheduling import priority_cycle
from redis import Redis

from connector.webapp.inbox import CRM_EVENT, Inbox  # noqa: F401  (CRM_EVENT: the reason serving and tasks use)

log = logging.getLogger(__name__)

ROBOTS, JOBS = "robots", "jobs"  # queue names, read in this order
TASKS = {"sync": "repeat_sales.sync", JOBS: "repeat_sales.job", ROBOTS: "repeat_sales.robot"}
SWEEP_TASK = "repeat_sales.sweep"
PUBLISH_RETRIES = 2  # Redis away while answering a portal: the job waits in the inbox for the sweep


def queue_name(lane: str, deployment: str | None) -> str:
    """The Redis queue of a lane ("robots" or "jobs") of one deployment: `robots.<deployment id>`."""
    return f"{lane}.{deployment}" if deployment else lane


def lane_of(queue: str) -> str:
    return queue.split(".", 1)[0]


def key(name: str, deployment: str | None, *rest: str) -> str:
    """A Redis key of ours, within one deployment: `rs:<name>:<deployment id>:<rest>`."""
    return ":".join(["rs", name, *([deployment] if deployment else []), *rest])


class RobotsFirst(priority_cycle):
    """The Redis transport's queue order: robots, then the rest. kombu's own "priority" order is the order
    of a set of queue names, which differs from process to process (string hashing), so half the workers
    read `jobs` first and a robot call waited behind a backlog of syncs (CI, a flaky robots-first test)."""

    def update(self, it) -> None:
        self.items[:] = sorted(it, key=lambda name: (lane_of(name) != ROBOTS, name))


def celery_app(settings, deployment: str | None = None) -> Celery:
    """`deployment`: the state's id (Inbox.deployment) that names its queues; None only where nothing is sent."""
    url = settings.QUEUE_URL.get_secret_value()
    app = Celery("repeat_sales", broker=url, set_as_current=False)
    app.conf.update(
        task_acks_late=True, task_reject_on_worker_lost=True, worker_prefetch_multiplier=1,
        task_serializer="json", accept_content=["json"], task_ignore_result=True, result_backend=None,
        task_default_queue=queue_name(JOBS, deployment), broker_connection_retry_on_startup=True, broker_connection_max_retries=None,
        worker_hijack_root_logger=False, worker_cancel_long_running_tasks_on_connection_loss=False,
        broker_transport_options={"visibility_timeout": settings.QUEUE_REDELIVER_SECONDS,
                                  "queue_order_strategy": f"{__name__}:RobotsFirst", "socket_connect_timeout": 2},
        task_publish_retry_policy={"max_retries": PUBLISH_RETRIES, "interval_start": 0.1, "interval_step": 0.2},
    )
    return app


@lru_cache(maxsize=8)
def _redis(url: str) -> Redis:
    return Redis.from_url(url, socket_connect_timeout=2, socket_timeout=10, health_check_interval=10)


def redis_client(settings) -> Redis:
    return _redis(settings.QUEUE_URL.get_secret_value())


def lock_seconds(settings) -> float:
    """The tenant lock's TTL: short enough that a killed worker's lock frees long before its job comes back."""
    return max(2.0, min(30.0, settings.QUEUE_REDELIVER_SECONDS / 2))


class JobQueue:
    """The serving side: `put` keeps a job in the inbox (committed), then queues its id; a queue that
    cannot take it now only delays it - the inbox has it, the sweep queues it again."""

    def __init__(self, settings, inbox: Inbox | None = None, app: Celery | None = None) -> None:
        self.settings = settings
        self.inbox = inbox or Inbox(settings.state_target, settings.sealer())
        self.deployment = self.inbox.deployment
        self.app = app or celery_app(settings, self.deployment)
        self.redis = redis_client(settings)

    def put(self, tenant: str, kind: str, lane: str, payload: dict, *, countdown: float = 0) -> int:
        entry_id = self.inbox.put(tenant, kind, lane, payload)
        self.send(entry_id, tenant, kind, lane, countdown=countdown)
        return entry_id

    def request_sync(self, tenant: str, reason: str = "event", where: dict | None = None) -> int:
        """`where`: the tenant's CRM and address, for the worker to rebuild its host (serving.where)."""
        entry_id, new = self.inbox.put_sync(tenant, {"reason": reason, **(where or {})})
        if new:  # else it joined a request still waiting for a worker, whose message is queued (or swept)
            self.send(entry_id, tenant, "sync", JOBS, countdown=self.settings.EVENT_DEBOUNCE_SECONDS)
        return entry_id

    def send(self, entry_id: int, tenant: str, kind: str, lane: str, *, countdown: float = 0) -> bool:
        task = TASKS["sync"] if kind == "sync" else TASKS[lane]
        try:
            self.app.send_task(task, args=[tenant, kind, entry_id, self.deployment],
                               queue=queue_name(lane, self.deployment), countdown=countdown or None,
                               retry=True, retry_policy=self.app.conf.task_publish_retry_policy)
        except Exception as exc:  # noqa: BLE001 - any broker failure: kept in the inbox, swept later
            log.warning("queue job=%s id=%s not queued now (%s); the sweep queues it", kind, entry_id,
                        type(exc).__name__)
            return False
        self.inbox.enqueued(entry_id)
        try:  # the message is in Redis (queued, or taken and given back by Redis if its worker dies)
            self.redis.set(queued_key(self.deployment, entry_id), "1", ex=queued_seconds(self.settings))
        except Exception:  # noqa: BLE001 - without the mark the sweep sends it again: at least once holds
            pass
        return True

    def forget(self, entry_id: int, deployment: str | None = None) -> None:
        """The job ran (done or failed), or another deployment's message was refused here: its message is gone
        from Redis, and the sweep of its deployment (ours unless named) may send it again."""
        try:
            self.redis.delete(queued_key(deployment or self.deployment, entry_id))
        except Exception:  # noqa: BLE001 - the mark expires on its own
            pass

    def _in_redis(self, ids: list[int]) -> set[int]:
        """Which of these jobs' messages Redis still holds (a Redis that lost its data lost the marks too)."""
        if not ids:
            return set()
        try:
            pipe = self.redis.pipeline(transaction=False)
            for i in ids:
                pipe.exists(queued_key(self.deployment, i))
            return {i for i, there in zip(ids, pipe.execute(), strict=True) if there}
        except Exception:  # noqa: BLE001 - Redis away: send them all again, the workers skip what is done
            return set()

    def sweep(self) -> int:
        """Queue again every job not done within QUEUE_REDELIVER_SECONDS whose message Redis no longer holds
        (lost with a Redis restart, or never queued); how many. A job still waiting its turn in a long queue
        is not sent twice: a backlog longer than QUEUE_REDELIVER_SECONDS (100 portals' first syncs on one
        worker) had every waiting job sent again at each sweep."""
        sent, syncs = 0, set()
        overdue = self.inbox.overdue(self.settings.QUEUE_REDELIVER_SECONDS)
        queued = self._in_redis([row[0] for row in overdue])
        for entry_id, tenant, kind, lane in overdue:
            if entry_id in queued:
                continue
            if kind == "sync":
                if tenant in syncs:
                    continue  # one sync answers every open request of its tenant: one message is enough
                syncs.add(tenant)
            log.info("queue sweep job=%s id=%s tenant=%s: queued again", kind, entry_id, tenant)
            sent += self.send(entry_id, tenant, kind, lane)
        return sent


def queued_key(deployment: str | None, entry_id: int) -> str:
    """Every deployment numbers its inbox from 1: the mark names the deployment too."""
    return key("queued", deployment, str(entry_id))


def queued_seconds(settings) -> int:
    """How long a queued mark lives: past any wait in the queue, so a lost mark only delays a job."""
    return int(max(600, 6 * settings.QUEUE_REDELIVER_SECONDS))


def sweep_once(redis: Redis, queue: JobQueue, every_seconds: float, *, now=time.time) -> int | None:
    """One sweep per `every_seconds` across all workers (a Redis key taken NX); None when another did it."""
    try:
        if not redis.set(key("sweep", queue.deployment), str(now()), nx=True, ex=max(1, int(every_seconds))):
            return None
    except Exception as exc:  # noqa: BLE001 - Redis away: sweep anyway, the inbox is the truth
        log.info("queue sweep without the Redis key (%s)", type(exc).__name__)
    return queue.sweep()


__all__ = ["JobQueue", "celery_app", "key", "queue_name", "redis_client", "sweep_once"]
