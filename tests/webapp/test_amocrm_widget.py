"""The amoCRM widget (issue 18, item 5): the archive `repeat-sales amocrm widget` builds, the one-time
token checked by `serve`, and script.js run in Chromium by a stand-in of amoCRM's widget loader.

The account emulator signs the one-time tokens as amoCRM does (HS256, the integration's secret);
the stand-in page plays the account's web interface: `define`, `$authorizedAjax` adding
`X-Auth-Token`, `render_template`, `i18n`, `system()`, `get_settings()`.
"""

from __future__ import annotations

import functools
import json
import struct
import threading
import zipfile
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from web_support import ADMIN, CUSTOMERS, SEED, TODAY, write_playbook

from connector.cli import main
from connector.settings import load_settings
from connector.webapp import WebApp
from emulators.amocrm import AmoEmulator

SESSION = "/amocrm/widget/session"


@pytest.fixture
def account():
    with AmoEmulator(customers=CUSTOMERS, seed=SEED, today=TODAY) as emu:
        yield emu


@pytest.fixture
def amo_app(account, tmp_path):
    settings = load_settings(CRM="amocrm", AMOCRM_BASE_URL=account.base_url, AMOCRM_CLIENT_ID=account.client_id,
                             AMOCRM_CLIENT_SECRET=account.client_secret, AMOCRM_REDIRECT_URI=account.redirect_uri,
                             STATE_URL=f"sqlite:///{tmp_path / 's.db'}", ADMIN_TOKEN=ADMIN,
                             PLAYBOOK=write_playbook(tmp_path), PLAYBOOK_LANG="en")
    app = WebApp(settings, port=0, today=lambda: TODAY).start()
    yield app
    app.stop(timeout=30)


def build(tmp_path: Path, url: str) -> zipfile.ZipFile:
    out = tmp_path / "widget.zip"
    assert main(["amocrm", "widget", "--out", str(out), "--url", url]) == 0
    return zipfile.ZipFile(out)


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_the_archive_holds_manifest_script_translations_and_images(tmp_path):
    archive = build(tmp_path, "https://rs.example.com")
    names = set(archive.namelist())
    assert {"manifest.json", "script.js", "i18n/ru.json", "i18n/en.json", "images/logo.png"} <= names
    manifest = json.loads(archive.read("manifest.json"))
    assert {"lcard-1", "ccard-1", "advanced_settings"} <= set(manifest["locations"])
    assert manifest["widget"]["interface_version"] == 2 and manifest["widget"]["locale"] == ["ru", "en"]
    for lang in ("ru", "en"):  # every text key of the manifest is translated
        words = json.loads(archive.read(f"i18n/{lang}.json"))
        for key in (manifest["widget"]["name"], manifest["widget"]["description"], manifest["advanced"]["title"]):
            group, _, name = key.partition(".")
            assert words[group][name]
    assert json.loads(archive.read("i18n/ru.json"))["widget"]["name"] == "Повторные продажи"
    assert png_size(archive.read("images/logo.png")) == (130, 100)
    assert png_size(archive.read("images/logo_min.png")) == (84, 84)
    script = archive.read("script.js").decode()
    assert "'https://rs.example.com'" in script and "__BASE_URL__" not in script and "$authorizedAjax" in script


def test_a_bad_address_is_refused_with_exit_2(tmp_path, capsys):
    assert main(["amocrm", "widget", "--out", str(tmp_path / "w.zip"), "--url", "rs.example.com"]) == 2
    assert "--url" in capsys.readouterr().err


def session(app, token: str | None, **form) -> requests.Response:
    headers = {"X-Auth-Token": token} if token is not None else {}
    return requests.post(app.url + SESSION, data={"place": "card", "entity": "ccard", "id": "7", **form},
                         headers=headers, timeout=5)


def test_only_the_account_one_time_token_opens_a_page(amo_app, account):
    good = session(amo_app, account.widget_token())
    assert good.status_code == 200 and good.headers["Access-Control-Allow-Origin"] == "*"
    page = requests.get(good.json()["url"], timeout=5)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert f"user={account.store.current_user_id}" in good.json()["url"] and "place=card" in good.json()["url"]
    assert requests.get(good.json()["url"].replace("id=7", "id=8"), timeout=5).status_code == 401  # tampered
    for token in (account.widget_token(secret="not-the-integration-secret"), account.widget_token(ttl_seconds=-120),
                  "", None, "a.b.c"):
        refused = session(amo_app, token)
        assert refused.status_code == 401 and "url" not in refused.json(), token
    preflight = requests.options(amo_app.url + SESSION, headers={
        "Origin": account.base_url, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "x-auth-token"}, timeout=5)
    assert preflight.status_code == 200 and "X-Auth-Token" in preflight.headers["Access-Control-Allow-Headers"]


STAND_IN = """<!doctype html><html lang="ru"><head><meta charset="utf-8"><title>amoCRM stand-in</title><link rel="icon" href="data:,"></head>
<body><div id="widgets_block"></div><div id="work-area-rs_widget"></div>
<script>
// amoCRM's widget loader, as far as script.js uses it (Doc: developers.kommo.com/docs/script-js)
window.AMOCRM = {data: {current_card: {id: 42}}};
var TOKEN = __TOKEN__, I18N = __I18N__;
function define(deps, factory) { window.widgetFactory = factory; }
</script>
<script src="script.js"></script>
<script>
function authorizedAjax(opts) {  // jQuery-Deferred-like: done / fail
  var p = fetch(opts.url, {method: opts.method, headers: {'X-Auth-Token': TOKEN,
    'Content-Type': 'application/x-www-form-urlencoded'}, body: new URLSearchParams(opts.data).toString()})
    .then(function (r) { if (!r.ok) { throw new Error('HTTP ' + r.status); } return r.json(); });
  var api = {done: function (f) { p.then(f, function () {}); return api; },
             fail: function (f) { p.catch(f); return api; }};
  return api;
}
var Widget = window.widgetFactory();
Widget.prototype.system = function () { return {area: 'ccard', lang: 'ru'}; };
Widget.prototype.i18n = function (key) { return I18N[key]; };
Widget.prototype.get_settings = function () { return {widget_code: 'rs_widget'}; };
Widget.prototype.render_template = function (o) {
  document.getElementById('widgets_block').insertAdjacentHTML('beforeend', o.render); };
Widget.prototype.$authorizedAjax = authorizedAjax;
var widget = new Widget();
widget.callbacks.init();
widget.callbacks.render();
widget.callbacks.advancedSettings();
</script></body></html>"""


@pytest.fixture
def account_pages(tmp_path):
    """The account's web pages: a static server on another origin than `serve`."""
    root = tmp_path / "account"
    root.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - stdlib signature
        pass


def stand_in(root: Path, archive: zipfile.ZipFile, name: str, token: str) -> str:
    (root / "script.js").write_bytes(archive.read("script.js"))
    i18n = json.loads(archive.read("i18n/ru.json"))
    page = STAND_IN.replace("__TOKEN__", json.dumps(token)).replace("__I18N__", json.dumps(i18n, ensure_ascii=False))
    (root / name).write_text(page, encoding="utf-8")
    return name


def test_script_frames_our_pages_with_the_one_time_token_in_chromium(amo_app, account, account_pages, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    root, origin = account_pages
    archive = build(tmp_path, amo_app.url)
    good = stand_in(root, archive, "good.html", account.widget_token())
    forged = stand_in(root, archive, "forged.html", account.widget_token(secret="forged"))
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        try:
            page = browser.new_page()
            problems: list[str] = []
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.goto(f"{origin}/{good}")
            page.wait_for_function("document.querySelectorAll('iframe.rs-frame').length === 2", timeout=15000)
            card, settings = (page.locator(f"{box} iframe.rs-frame")
                              for box in (".rs-card[data-rs-area=ccard]", "#work-area-rs_widget"))
            for frame, place in ((card, "card"), (settings, "settings")):
                src = frame.get_attribute("src")
                assert src.startswith(amo_app.url + "/amocrm/widget/page?") and f"place={place}" in src
                assert requests.get(src, timeout=5).status_code == 200
                assert f"user={account.store.current_user_id}" in src
                heading = frame.content_frame.locator("h1").first
                heading.wait_for(timeout=15000)  # the page itself is shown in the frame (its CSP lets the account frame it)
                assert heading.inner_text() == ("#42" if place == "card" else "Repeat sales")
            assert "id=42" in card.get_attribute("src") and card.get_attribute("title") == "Повторные продажи"
            page.screenshot(path=str(tmp_path / "widget-card.png"))
            assert not problems, problems

            page = browser.new_page()
            page.goto(f"{origin}/{forged}")
            page.wait_for_selector(".rs-card.rs-failed", timeout=15000)
            assert page.locator("iframe").count() == 0
            assert "Не удалось открыть страницу" in page.locator(".rs-card").inner_text()
        finally:
            browser.close()


@pytest.fixture
def ru_connected(account, tmp_path):
    """The bundled Russian playbook, the account connected through OAuth and synced once."""
    from urllib.parse import parse_qs, urlencode, urlparse

    from web_support import admin

    settings = load_settings(CRM="amocrm", AMOCRM_BASE_URL=account.base_url, AMOCRM_CLIENT_ID=account.client_id,
                             AMOCRM_CLIENT_SECRET=account.client_secret, AMOCRM_REDIRECT_URI=account.redirect_uri,
                             STATE_URL=f"sqlite:///{tmp_path / 'ru.db'}", ADMIN_TOKEN=ADMIN, PLAYBOOK_LANG="ru")
    app = WebApp(settings, port=0, today=lambda: TODAY).start()
    try:
        consent = requests.get(app.url + "/amocrm/connect", headers=admin(), timeout=5).json()["url"]
        query = {"referer": urlparse(account.base_url).netloc, "client_id": account.client_id,
                 "code": account.issue_auth_code(), "state": parse_qs(urlparse(consent).query)["state"][0]}
        assert requests.get(f"{app.url}/amocrm/oauth?{urlencode(query)}", timeout=5).status_code == 200
        assert app.worker.wait_idle(60) and app.installs.get("amocrm"), app.worker.last_error
        yield app
    finally:
        app.stop(timeout=30)


def test_the_card_tab_and_main_page_are_the_pages_in_russian(ru_connected, account):
    from connector.state import State
    from connector.webapp.pages.words import Words

    app = ru_connected
    state = State(app.settings.state_path)
    try:
        key = f"amocrm:{account.base_url.split('//')[1]}"
        customer = next(c for c in state.customers(key) if len(c.purchases) >= 2)
    finally:
        state.close()
    url = session(app, account.widget_token(), id=customer.id).json()["url"]
    tab = requests.get(url, timeout=30)
    assert tab.status_code == 200 and tab.headers["Content-Type"].startswith("text/html")
    assert '<html lang="ru">' in tab.text and "Сегмент" in tab.text and "<script" not in tab.text
    words = Words(app.runtime.playbook)
    report = app.runtime.evaluation_from_state(State(app.settings.state_path), key)
    segment = next(r.segment for r in report.customers if r.customer_id == customer.id)
    assert words.segment(segment) in tab.text and segment not in tab.text.replace(words.segment(segment), "")
    assert "frame-ancestors http://127.0.0.1:*" in tab.headers["Content-Security-Policy"]
    main_url = session(app, account.widget_token(), place="settings", entity="", id="").json()["url"]
    main = requests.get(main_url, timeout=30)
    assert main.status_code == 200 and "Кому позвонить сегодня" in main.text
    for bad in (url.replace(f"id={customer.id}&", f"id={int(customer.id) + 1}&"), url.replace("sig=", "sig=0")):
        refused = requests.get(bad, timeout=5)
        assert refused.status_code == 401 and "Откройте виджет" in refused.text and "Сегмент" not in refused.text
    stale = dict(p.split("=", 1) for p in url.split("?", 1)[1].split("&"))
    stale["exp"] = "1000"  # long gone, signed with our key: only the time refuses it
    stale.pop("sig")
    from connector.amocrm.widget_app import WidgetRoutes

    sig = WidgetRoutes(app)._sign(stale)
    expired = requests.get(url.split("?")[0] + "?" + "&".join(f"{k}={v}" for k, v in stale.items()) + f"&sig={sig}",
                           timeout=5)
    assert expired.status_code == 401 and "Сегмент" not in expired.text


def signed_fields(url: str) -> dict[str, str]:
    from urllib.parse import parse_qsl, urlsplit

    return dict(parse_qsl(urlsplit(url).query))


def playbook_form(html: str) -> dict[str, str]:
    """What a browser would submit from the settings form: text fields, text areas and ticked boxes."""
    import html as htmllib
    import re

    form = html[html.index('id="playbook"'):html.index("</form>", html.index('id="playbook"'))]
    fields = {m[0]: htmllib.unescape(m[1]) for m in re.findall(r'<input type="(?:text|hidden)" name="([^"]+)" '
                                                                 r'value="([^"]*)">', form)}
    fields |= {m[0]: htmllib.unescape(m[1]) for m in re.findall(r'<textarea name="([^"]+)">(.*?)</textarea>',
                                                                 form, re.S)}
    fields |= {m: "on" for m in re.findall(r'<input type="checkbox" name="([^"]+)" checked>', form)}
    return fields


def test_only_an_account_administrator_saves_the_playbook_from_the_widget(ru_connected, account):
    app = ru_connected
    settings = app.url + "/amocrm/widget/settings"
    managers = sorted(u["id"] for u in account.store.users.values() if not u["rights"]["is_admin"])
    admin_user = next(u["id"] for u in account.store.users.values() if u["rights"]["is_admin"])
    plain = signed_fields(session(app, account.widget_token(user_id=managers[0]), place="settings", entity="",
                                  id="").json()["url"])
    shown = requests.post(settings, data=plain, timeout=60)
    assert shown.status_code == 200 and "только для чтения" in shown.text and "<fieldset disabled" in shown.text
    assert 'value="save"' not in shown.text  # no button a manager could press
    for action in ("save", "preview", "restore"):  # the account says no, however the form is made up
        refused = requests.post(settings, data={**playbook_form(shown.text), **plain, "action": action,
                                                "version": "1"}, timeout=60)
        assert refused.status_code == 403 and "администратор аккаунта" in refused.text
    assert app.runtime.playbook_version == 0
    admin = signed_fields(session(app, account.widget_token(user_id=admin_user), place="settings", entity="",
                                  id="").json()["url"])
    page = requests.post(settings, data=admin, timeout=60)
    assert page.status_code == 200 and 'value="save"' in page.text and "только для чтения" not in page.text
    form = playbook_form(page.text)
    form["guards.cap.max_touches"] = str(int(form["guards.cap.max_touches"]) + 1)
    saved = requests.post(settings, data={**form, **admin, "action": "save"}, timeout=60)
    assert saved.status_code == 200 and "Сохранено: новая версия 1" in saved.text, saved.text[-2000:]
    assert app.runtime.playbook_version == 1
    forged = {**admin, "user": str(managers[0])}  # the signature binds the user
    assert requests.post(settings, data={**form, **forged, "action": "save"}, timeout=60).status_code == 401
