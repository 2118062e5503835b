"""POST /feedback/<secret>: an answer to the feedback question comes back through `serve`, is kept in
the state, and the next sync acts on it (a detractor gets a manager call)."""

from __future__ import annotations

from datetime import datetime

import pytest
import requests
from web_support import TODAY, bitrix_settings, tasks_by_marker, wait_for

from connector.state import State
from connector.webapp import WebApp
from tests.store_engines import state_url

SECRET = "feedback-secret-0123456789"


@pytest.fixture
def app(portal, tmp_path, state_target):  # the webhook app on each engine of the state
    settings = bitrix_settings(portal, tmp_path, FEEDBACK_SECRET=SECRET, STATE_URL=state_url(state_target))
    webapp = WebApp(settings, port=0, today=lambda: TODAY).start()
    assert portal.app.install(webapp.url + "/bitrix/install") == 200
    assert webapp.worker.wait_idle(30) and webapp.installs.get("bitrix"), webapp.worker.last_error
    yield webapp
    webapp.stop(timeout=30)


def post(url: str, body: dict) -> requests.Response:
    return requests.post(url, json=body, timeout=10)


def test_a_posted_detractor_answer_is_kept_and_the_next_sync_calls_the_customer(portal, app):
    contact = sorted(portal.store.contacts.rows)[5]
    deal = portal.add_deal(contact, won=True, amount=1500, closed=datetime(2026, 6, 2, 10, 0))
    assert app.worker.wait_idle(30)
    answer = post(f"{app.url}/feedback/{SECRET}", {"purchase_id": str(deal), "score": 3})
    assert answer.status_code == 200, answer.text
    key = f"v1:{contact}:nps:{deal}:detractor"
    wait_for(lambda: tasks_by_marker(portal)[key] == 1, timeout=30)
    state = State(app.settings.state_target)
    try:
        kept = state.db.execute("SELECT purchase_id, score FROM feedback").fetchall()
    finally:
        state.close()
    assert kept == [(str(deal), 3)]


def test_a_forged_secret_or_a_bad_answer_is_refused_and_nothing_is_kept(portal, app):
    assert post(f"{app.url}/feedback/not-the-secret-at-all", {"purchase_id": "1", "score": 3}).status_code == 403
    for bad in ({"purchase_id": "1", "score": 11}, {"purchase_id": "1", "score": "seven"}, {"score": 5}):
        assert post(f"{app.url}/feedback/{SECRET}", bad).status_code == 400
    state = State(app.settings.state_target)
    try:
        assert state.db.execute("SELECT count(*) FROM feedback").fetchone() == (0,)
    finally:
        state.close()


def test_without_a_feedback_secret_the_address_does_not_exist(portal, tmp_path):
    webapp = WebApp(bitrix_settings(portal, tmp_path), port=0, today=lambda: TODAY).start()
    try:
        assert post(f"{webapp.url}/feedback/anything-at-all-here", {"purchase_id": "1", "score": 3}).status_code == 404
    finally:
        webapp.stop(timeout=30)
