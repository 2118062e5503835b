"""The app's pages in a real browser (Playwright driving Debian's chromium) against `serve` and the Bitrix24
emulator over HTTP: opened the way the portal opens them, rendered without a console error, screenshots kept
under pytest's temporary folder (the path is printed)."""

from __future__ import annotations

import shutil
from html import escape

import pytest
from pages_support import ADMIN_USER, HOSTILE_PRODUCT, PLAIN_USER, open_form, start

sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def browser():
    if not shutil.which("chromium"):
        pytest.skip("chromium is not installed: apt-get install -y chromium")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    emu, app, customer = start(tmp_path_factory.mktemp("browser-pages"))
    yield emu, app, customer
    app.stop(timeout=30)
    emu.stop()


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    folder = tmp_path_factory.mktemp("screenshots")
    print(f"page screenshots: {folder}")
    return folder


class Tab:
    """A browser tab that records console errors and uncaught exceptions."""

    def __init__(self, browser) -> None:
        self.page = browser.new_page(viewport={"width": 1280, "height": 900})
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def open(self, opened: dict, **changes) -> int:
        """POST the portal's form to the handler from a blank page, as the portal's frame does."""
        fields = {**opened["form"], **changes}
        inputs = "".join(f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">' for k, v in fields.items())
        self.page.set_content(f'<form method="post" action="{escape(opened["url"])}">{inputs}</form>')
        with self.page.expect_navigation() as nav:
            self.page.locator("form").evaluate("f => f.submit()")
        return nav.value.status

    def click(self, selector: str) -> int:
        with self.page.expect_navigation() as nav:
            self.page.locator(selector).first.click()
        return nav.value.status

    def shot(self, folder, name: str) -> None:
        path = folder / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 10_000


def test_main_page_renders_today_the_plugins_work_and_the_charts(browser, shop, shots):
    emu, app, customer = shop
    tab = Tab(browser)
    assert tab.open(open_form(emu)) == 200
    page = tab.page
    assert page.locator("html").get_attribute("lang") == "ru"
    assert page.locator("h1").first.inner_text() == "Повторные продажи"
    for section in ("#today", "#did", "#segments"):
        assert page.locator(section).is_visible()
    for chart in ("segments", "lifecycle", "rfm"):
        box = page.locator(f'svg[data-chart="{chart}"]').bounding_box()
        assert box and box["width"] > 200 and box["height"] > 100, chart
    assert "Календарь после покупки" in page.locator("#did").inner_text()  # touches by rule, in words
    tab.shot(shots, "main")
    assert tab.errors == []


def test_customer_tab_renders_and_shows_a_script_product_name_as_text(browser, shop, shots):
    emu, app, customer = shop
    tab = Tab(browser)
    assert tab.open(open_form(emu, "CRM_CONTACT_DETAIL_TAB", {"ID": str(customer)})) == 200
    page = tab.page
    assert HOSTILE_PRODUCT in page.locator("main").inner_text()
    assert page.locator("script").count() == 0 and page.locator("main img").count() == 0
    assert page.title() != "pwned"
    for label in ("Сегмент", "RFM", "Жизненный цикл", "Уровень", "Касания"):
        assert label in page.locator("main").inner_text()
    tab.shot(shots, "tab")
    assert tab.errors == []


def test_forged_or_expired_auth_id_gets_401_in_the_browser(browser, shop, shots):
    emu, app, customer = shop
    tab = Tab(browser)
    assert tab.open(open_form(emu), AUTH_ID="0123456789abcdef" * 2) == 401
    assert "Портал не подтвердил вход" in tab.page.locator("main").inner_text()
    late = open_form(emu)
    emu.app.expire_access_tokens()
    assert tab.open(late) == 401
    tab.shot(shots, "refused")


def test_a_manager_has_no_settings_and_cannot_save_them(browser, shop):
    emu, app, customer = shop
    tab = Tab(browser)
    opened = open_form(emu, user_id=PLAIN_USER)
    assert tab.open(opened) == 200
    assert tab.page.locator('form[action="/bitrix/app/settings"]').count() == 0
    # the same fields posted straight to the settings, as a crafted form would
    status = tab.open({**opened, "url": opened["url"].split("?")[0] + "/settings"}, action="save")
    assert status == 403 and "администратор" in tab.page.locator("main").inner_text()


def test_settings_edit_error_preview_save_and_restore(browser, shop, shots):
    emu, app, customer = shop
    tab = Tab(browser)
    page = tab.page
    assert tab.open(open_form(emu, user_id=ADMIN_USER)) == 200
    assert tab.click('form[action="/bitrix/app/settings"] button') == 200
    percent = 'input[name="guards.holdout.percent"]'
    original = page.locator(percent).input_value()
    title = 'input[name="rules.calendar.steps.0.title"]'
    first_title = page.locator(title).input_value()
    channels = 'input[name="rules.calendar.steps.1.channels"]'
    assert page.locator(channels).input_value() == "Мессенджер, Письмо, Задача"  # words, not codes

    page.fill(percent, "150")  # out of range: the playbook check's error, next to the field
    assert tab.click('button[value="save"]') == 200
    error = page.locator(f'{percent} ~ span.error')
    assert error.is_visible() and "150" in error.inner_text()
    assert page.locator("#versions tbody tr td.muted").count() == 1  # nothing saved
    tab.shot(shots, "settings-error")

    page.fill(percent, "7")
    assert tab.click('button[value="preview"]') == 200
    preview = page.locator("#preview")
    assert preview.is_visible() and "Что будет запланировано завтра" in preview.inner_text()
    assert page.locator("#preview table").nth(1).locator("tbody tr").count() <= 5
    assert page.locator("#versions tbody tr td.muted").count() == 1  # a preview saves nothing
    tab.shot(shots, "settings-preview")

    assert tab.click('button[value="save"]') == 200
    assert "Сохранено" in page.locator('[role="status"]').inner_text()
    assert app.runtime.playbook.guards.holdout.percent == 7.0  # in force for the next sync
    page.fill(title, "Позвонить {name} и поблагодарить")
    page.fill(channels, "Письмо, Задача")
    assert tab.click('button[value="save"]') == 200
    assert app.runtime.playbook.rule("calendar").steps[1].channels == ["email", "task"]
    assert page.locator("#versions tbody tr").count() == 2

    assert tab.click('#versions form:has(input[name="version"][value="1"]) button') == 200
    assert page.locator(title).input_value() == first_title  # version 1 is back in the form...
    assert page.locator(percent).input_value() == "7.0" != original
    assert page.locator("#versions tbody tr").count() == 3  # ... as a new version; history kept
    assert app.runtime.playbook.rule("calendar").steps[0].title == first_title
    tab.shot(shots, "settings-restored")
    assert tab.errors == []

    page.locator('#playbook input[name="csrf"]').evaluate("e => e.value = 'forged'")  # CSRF is enforced
    assert tab.click('button[value="save"]') == 403
    assert page.locator("#versions").count() == 0 and app.runtime.playbook_version == 3
