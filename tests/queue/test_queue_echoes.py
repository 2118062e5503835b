"""With QUEUE_URL: the portal's events about what the app itself wrote set off no sync run and hardly an
inbox row, while a manager's closed deal still gets its run and its task. Real Redis, a real
`repeat-sales worker`, the Bitrix24 emulator and `serve`'s app, no mocks."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from queue_support import all_done, inbox_rows, markers, wait_for

from connector.state import State


def state_db(values) -> Path:
    return Path(values["STATE_URL"].removeprefix("sqlite:///"))


def quiet(portal, values) -> None:
    """Every event delivered and every queued job done, twice over (an echo may queue one more check)."""
    for _ in range(2):
        assert portal.app.outbound.wait_idle(30)
        wait_for(lambda: all_done(state_db(values)), timeout=90)


def sync_runs(values) -> list[dict]:
    state = State(state_db(values))
    try:
        return [r for r in state.last_runs(100) if r["kind"] == "sync"]
    finally:
        state.close()


def test_the_apps_own_writes_set_off_no_sync_and_a_closed_deal_still_does(redis_server, portal, webapp, workers,
                                                                            values):
    workers.start()
    assert portal.app.install(webapp.url + "/bitrix/install") == 200
    wait_for(lambda: sync_runs(values) and sync_runs(values)[0]["finished"], timeout=90)
    quiet(portal, values)
    echoes = [d for d in portal.app.outbound.sent("event") if d["data"]["event"].startswith("ONCRM")]
    assert len(echoes) > 10, "the first sync's card writes come back as events"
    requests = [r for r in inbox_rows(state_db(values)) if r["kind"] == "sync"]
    assert len(sync_runs(values)) == 1, workers.logs()  # the first sync only
    # one request per event before; now an event joins a request no worker has taken yet
    assert len(requests) < len(echoes) // 3, (len(requests), len(echoes))

    contact = sorted(portal.store.contacts.rows)[3]  # a manager closes a deal of a card the app wrote
    deal = portal.add_deal(contact, won=True, amount=4200, closed=datetime(2026, 6, 13, 12, 0))
    wait_for(lambda: markers(portal)[f"v1:{contact}:calendar:{deal}:thanks"] == 1, timeout=60)
    quiet(portal, values)
    assert len(sync_runs(values)) == 2 and max(markers(portal).values()) == 1
