"""The Bitrix24 app's pages over HTTP: opened as the portal opens them (POST /_emulator/app/open), trusted only
after the portal confirms AUTH_ID, admin-only settings with CSRF, every value escaped, in the playbook's language."""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from pages_support import (
    ADMIN_USER,
    HOSTILE_NAME,
    HOSTILE_PRODUCT,
    PLAIN_USER,
    hidden_fields,
    open_form,
    post,
    start,
)
from web_support import wait_for


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    emu, app, customer = start(tmp_path_factory.mktemp("pages"))
    yield emu, app, customer
    app.stop(timeout=30)
    emu.stop()


def text_of(page: str) -> str:
    page = re.sub(r"<(style|svg)\b.*?</\1>", " ", page, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


def test_install_binds_the_card_tabs_and_the_portal_opens_them_with_the_documented_fields(shop):
    emu, app, customer = shop
    bound = {(p["placement"], p["handler"]) for p in emu.app.placements()}
    assert bound == {("CRM_CONTACT_DETAIL_TAB", app.public_url + "/bitrix/tab"),
                     ("CRM_COMPANY_DETAIL_TAB", app.public_url + "/bitrix/tab")}
    opened = open_form(emu, "CRM_CONTACT_DETAIL_TAB", {"ID": str(customer)})
    query = parse_qs(urlsplit(opened["url"]).query)
    assert urlsplit(opened["url"]).path == "/bitrix/tab" and query["LANG"] == ["ru"] and query["DOMAIN"]
    form = opened["form"]
    assert {"AUTH_ID", "REFRESH_ID", "member_id", "PLACEMENT", "PLACEMENT_OPTIONS"} <= set(form)
    assert json.loads(form["PLACEMENT_OPTIONS"]) == {"ID": str(customer)}  # a JSON string, as documented
    assert requests.post(emu.base_url + "/_emulator/app/open", json={"placement": "CRM_DEAL_DETAIL_TAB"},
                         timeout=10).status_code == 400  # nothing bound there


def test_pages_speak_russian_and_show_markup_from_the_crm_as_text(shop):
    emu, app, customer = shop
    main = post(open_form(emu))
    assert main.status_code == 200 and main.headers["Content-Type"].startswith("text/html")
    assert '<html lang="ru">' in main.text
    shown = text_of(main.text)
    for words in ("Сегодня", "Что сделал плагин", "Сегменты", "Доля вернувшихся клиентов"):
        assert words in shown
    for slug in ("lost_champions", "at_risk", "hibernating", "reactivation", "crr_12m", "ltv_3f"):
        assert slug not in shown, slug
    tab = post(open_form(emu, "CRM_CONTACT_DETAIL_TAB", {"ID": str(customer)}))
    assert tab.status_code == 200
    assert HOSTILE_PRODUCT not in tab.text and HOSTILE_NAME not in tab.text  # never as markup
    assert HOSTILE_PRODUCT in text_of(tab.text) and HOSTILE_NAME in text_of(tab.text)  # but shown, as text
    csp = tab.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp and "frame-ancestors http://" in csp
    for words in ("Сегмент", "Жизненный цикл", "Уровень", "Бонусный баланс", "Касания"):
        assert words in text_of(tab.text)


def test_a_forged_wrong_portal_or_expired_auth_id_is_refused_and_shows_nothing(shop):
    emu, app, customer = shop
    opened = open_form(emu)
    forged = post(opened, {"AUTH_ID": "f" * 32})
    other_portal = post(opened, {"member_id": "0" * 32})
    no_token = post(opened, {"AUTH_ID": ""})
    for answer in (forged, other_portal, no_token):
        assert answer.status_code == 401
        assert "Иван" not in answer.text and "Клиентов" not in answer.text
    late = open_form(emu)
    emu.app.expire_access_tokens()  # the user's hour is over before the page asked the portal
    assert post(late).status_code == 401
    assert post(open_form(emu)).status_code == 200  # a fresh opening works again


def test_settings_are_for_admins_and_every_change_needs_the_forms_csrf_token(shop):
    emu, app, customer = shop
    opened = open_form(emu, user_id=PLAIN_USER)
    main = post(opened)
    assert main.status_code == 200 and "/bitrix/app/settings" not in main.text  # no way in for a manager
    settings = app.url + "/bitrix/app/settings"
    for action in ("", "save", "restore"):  # with the portal's own fields, however the form is made up
        refused = requests.post(settings, data={**opened["form"], "action": action, "guards.holdout.percent": "5"},
                                timeout=60)
        assert refused.status_code == 403 and "администратор" in text_of(refused.text)
    admin_opened = open_form(emu, user_id=ADMIN_USER)
    admin = hidden_fields(post(admin_opened).text)
    assert admin["csrf"] and admin["AUTH_ID"] == admin_opened["form"]["AUTH_ID"]
    other = hidden_fields(post(open_form(emu, user_id=ADMIN_USER)).text)["csrf"]
    for csrf in ("", "0" * 64, other):  # missing, made up, or another opening's
        answer = requests.post(settings, data={**admin, "csrf": csrf, "action": "save"}, timeout=60)
        assert answer.status_code == 403
    page = requests.post(settings, data=admin, timeout=60)
    assert page.status_code == 200 and "Контрольная группа" in text_of(page.text)
    assert 'name="guards.holdout.percent"' in page.text and 'name="csrf"' in page.text


def test_managers_tasks_done_and_overdue_come_from_the_portal(shop):
    emu, app, customer = shop
    state = app.runtime.open_state()
    try:
        ids = [int(r[0]) for r in state.db.execute("SELECT crm_id FROM ledger WHERE status='done' AND crm_kind='task'")]
        with emu.store.lock:
            tasks = [emu.store.tasks.rows[i] for i in sorted(ids)[:3]]
            tasks[0].status = 5  # completed
            tasks[1].deadline = int(datetime(2026, 6, 1, 12, tzinfo=UTC).timestamp())  # two weeks late
            tasks[1].status = 2
            people = {t.responsible_id for t in tasks[:2]}
        views = app.apps["bitrix"].pages.views
        builds = views.builds
        state.finish_run(state.start_run(f"bitrix:{app.installs.get('bitrix')['domain']}", "sync", False), {})
    finally:
        state.close()
    post(open_form(emu))  # answered by the view in hand; the next is built behind it
    wait_for(lambda: views.builds > builds, timeout=120)
    counts = views._view.extra["tasks"]
    assert sum(c["done"] for c in counts.values()) >= 1 and sum(c["overdue"] for c in counts.values()) >= 1
    assert {int(m) for m, c in counts.items() if c["done"] or c["overdue"]} >= people
    shown = text_of(post(open_form(emu)).text)
    assert "Задачи менеджерам: выполнено" in shown and "Задачи менеджерам: просрочено" in shown

def test_placements_need_an_administrator_in_the_apps_context_and_leave_with_the_app(tmp_path):
    emu, app, customer = start(tmp_path)
    try:
        endpoint = app.installs.get("bitrix")["client_endpoint"]
        as_manager = requests.post(endpoint + "placement.bind", json={
            "auth": emu.app.issue_token(PLAIN_USER), "PLACEMENT": "CRM_DEAL_DETAIL_TAB", "HANDLER": app.url + "/x"},
            timeout=10)
        assert as_manager.status_code == 403 and as_manager.json()["error"] == "ACCESS_DENIED"
        as_webhook = requests.post(emu.webhook_url + "placement.bind", json={
            "PLACEMENT": "CRM_DEAL_DETAIL_TAB", "HANDLER": app.url + "/x"}, timeout=10)
        assert as_webhook.status_code == 403 and as_webhook.json()["error"] == "WRONG_AUTH_TYPE"
        assert len(emu.app.placements()) == 2
        emu.app.uninstall()
        assert emu.app.placements() == []
        gone = requests.post(emu.base_url + "/_emulator/app/open", json={"placement": "CRM_CONTACT_DETAIL_TAB"},
                             timeout=10)
        assert gone.status_code == 400
    finally:
        app.stop(timeout=30)
        emu.stop()


def test_the_english_playbook_gets_english_pages(tmp_path):
    emu, app, customer = start(tmp_path, PLAYBOOK_LANG="en")
    try:
        main = post(open_form(emu))
        assert main.status_code == 200 and '<html lang="en">' in main.text
        shown = text_of(main.text)
        assert "Who to call today" in shown and "What the plugin did and earned" in shown
        for russian in ("Сегодня", "Кому позвонить", "Сегменты", "Доля вернувшихся"):  # customers' names stay as they are
            assert russian not in shown
        tab = text_of(post(open_form(emu, "CRM_CONTACT_DETAIL_TAB", {"ID": str(customer)})).text)
        assert "Lifecycle" in tab and "Touches" in tab and "Жизненный цикл" not in tab
    finally:
        app.stop(timeout=30)
        emu.stop()
