"""The Bitrix24 app's pages, served by `repeat-sales serve` inside the portal's frame.

    POST /bitrix/app            the app's page (PLACEMENT=DEFAULT): today, what the plugin did, segments
    POST /bitrix/app/settings   the playbook settings (administrators; CSRF token): view, preview, save, restore
    POST /bitrix/tab            the customer's tab (CRM_CONTACT_DETAIL_TAB, CRM_COMPANY_DETAIL_TAB)

Doc: settings/oauth/simple-way.md, api-reference/widgets/crm/detail-tab.md (the portal POSTs `AUTH_ID`,
`member_id`, `PLACEMENT`, `PLACEMENT_OPTIONS`). Nothing is shown before the portal confirms the AUTH_ID
(portal.py); every answer is HTML without script under a strict CSP (view.py), in the playbook's language.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from connector.errors import WebhookRejected
from connector.settings import secret_text
from connector.webapp.forms import text_field
from connector.webapp.pages import settings_page, versions
from connector.webapp.pages.main_page import render_main
from connector.webapp.pages.portal import PortalCheck, Visitor, form_key
from connector.webapp.pages.snapshot import Views
from connector.webapp.pages.tab import render_tab
from connector.webapp.pages.view import esc, page
from connector.webapp.pages.words import Words
from playbooks import evaluate

if TYPE_CHECKING:  # pragma: no cover
    from connector.webapp import WebApp

log = logging.getLogger(__name__)

CRM = "bitrix"
TABS = ("CRM_CONTACT_DETAIL_TAB", "CRM_COMPANY_DETAIL_TAB")


class BitrixPages:
    def __init__(self, host: WebApp, app_client) -> None:
        self.host = host
        self.app_client = app_client  # () -> the installed app's BitrixClient (the portal's own token)
        self.runtime = host.runtime
        self.check = PortalCheck(form_key(secret_text(host.settings.BITRIX_APP_CLIENT_SECRET)))
        self.views = Views(self.runtime.open_state, self._task_counts)
        self._save_lock = threading.Lock()
        stored = host.installs.get(CRM)
        if stored:  # installed already: have the view ready before the first visitor
            self.views.warm(_account(stored), self.runtime.today(), self.runtime.playbook,
                            self.runtime.playbook_version)

    def routes(self) -> dict:
        return {("POST", "/bitrix/app"): self.main, ("POST", "/bitrix/app/settings"): self.settings,
                ("POST", "/bitrix/tab"): self.tab}

    # --- what every page does first ----------------------------------------------------------------

    def _answer(self, build, request):
        words = Words(self.runtime.playbook)
        stored = self.host.installs.get(CRM) or {}
        try:
            title, body = build(request, stored, words)
            status = 200
        except WebhookRejected as exc:
            status = exc.status
            title = words["forbidden"] if status == 403 else words["denied"] if status == 401 else words["app"]
            lead = words["admins_only"] if exc.message.startswith("administrators") else \
                words["stale_form"] if "CSRF" in exc.message else title
            body = f'<section class="bad"><h1>{esc(title)}</h1><p>{esc(lead)}</p></section>'
            log.info("bitrix page refused status=%s reason=%s", status, exc.message)
        html, headers = page(title, body, lang=words.lang, frame_ancestors=_origin(stored))
        return status, html, headers

    def _visitor(self, request, stored: dict, *, csrf: bool) -> tuple[Visitor, dict]:
        form = request.form()
        token = text_field(form, "AUTH_ID", max_len=512)
        visitor = self.check.visitor(stored, token, text_field(form, "member_id", max_len=64))
        if csrf:
            self.check.check_csrf(visitor, text_field(form, "csrf", max_len=128))
        carried = {"AUTH_ID": visitor.token, "member_id": visitor.member_id, "csrf": self.check.csrf(visitor)}
        return visitor, carried

    def _view(self, state, stored: dict):
        return self.views.get(state, _account(stored), self.runtime.today(), self.runtime.playbook,
                              self.runtime.playbook_version)

    def _task_counts(self, ids: list[str], today) -> dict:
        """The plugin's recent tasks as the portal holds them, read with the app's own token."""
        from connector.webapp.pages.task_states import task_counts

        if not ids:
            return {}
        client = self.app_client()
        try:
            return task_counts(client, ids, today)
        finally:
            client.close()

    # --- POST /bitrix/app ----------------------------------------------------------------------------

    def main(self, request):
        return self._answer(self._main, request)

    def _main(self, request, stored: dict, w: Words):
        visitor, carried = self._visitor(request, stored, csrf=False)
        state = self.runtime.open_state()
        try:
            view = self._view(state, stored)
        finally:
            state.close()
        names = self.check.manager_names(stored, visitor.token)
        return w["app"], render_main(view, w, portal=_origin(stored), names=names, form=carried, admin=visitor.admin)

    # --- POST /bitrix/tab ----------------------------------------------------------------------------

    def tab(self, request):
        return self._answer(self._tab, request)

    def _tab(self, request, stored: dict, w: Words):
        self._visitor(request, stored, csrf=False)
        form = request.form()
        placement = text_field(form, "PLACEMENT", max_len=64).upper()
        if placement not in TABS:
            raise WebhookRejected(400, "expected the contact's or the company's card tab")
        try:
            options = json.loads(text_field(form, "PLACEMENT_OPTIONS", max_len=4096) or "{}")
        except ValueError:
            raise WebhookRejected(400, "PLACEMENT_OPTIONS is not JSON") from None
        customer = str(options.get("ID", "") if isinstance(options, dict) else "")
        if not customer.isdigit():
            raise WebhookRejected(400, "PLACEMENT_OPTIONS has no card ID")
        state = self.runtime.open_state()
        try:
            view = self._view(state, stored)
            return w["app"], render_tab(view, w, state, _account(stored), customer)
        finally:
            state.close()

    # --- POST /bitrix/app/settings -------------------------------------------------------------------

    def settings(self, request):
        return self._answer(self._settings, request)

    def _settings(self, request, stored: dict, w: Words):
        visitor, carried = self._visitor(request, stored, csrf=False)
        if not visitor.admin:
            raise WebhookRejected(403, "administrators only: the portal says this user is not one")
        form = request.form()
        self.check.check_csrf(visitor, text_field(form, "csrf", max_len=128))
        state = self.runtime.open_state()
        try:
            data, errors, notice, preview = settings_page.take_action(
                state, form, self._current_data(state), w,
                preview=lambda playbook: self._preview(state, stored, playbook, w),
                adopt=lambda data, playbook, note: self._adopt(state, data, playbook, visitor, note=note))
            listing = versions.listing(state)
        finally:
            state.close()
        return w["settings"], settings_page.render_settings(data, errors, w, form=carried, versions=listing,
                                                            notice=notice, preview=preview)

    def _current_data(self, state) -> dict:
        saved = versions.latest(state)
        if saved is not None:
            return saved[1]
        return versions.file_data(self.runtime.settings.PLAYBOOK, self.runtime.settings.PLAYBOOK_LANG)

    def _preview(self, state, stored: dict, playbook, w: Words) -> str:
        """A dry run as of tomorrow with the edited playbook: nothing is written anywhere."""
        from playbooks import PlanHistory

        account = _account(stored)
        today = self.runtime.today()
        tomorrow = settings_page.tomorrow_of(today)
        customers = {c.id: c for c in state.customers(account, lean=True)}
        ev = evaluate(customers.values(), tomorrow, playbook, history=PlanHistory(state.applied_dates(account)),
                      catalogue=state.products(account).values(), predict=False)
        done = state.ledger_status(account, (a.key for a in ev.plan))
        plan = [a for a in ev.plan if done.get(a.key) != "done"]
        return settings_page.preview_section(plan, {c.customer_id: c for c in ev.customers}, customers, tomorrow, w)

    def _adopt(self, state, data: dict, playbook, visitor: Visitor, *, note: str) -> int:
        """Keep the version, then make it the playbook in force for the next sync and for the pages."""
        with self._save_lock:
            number = versions.save(state, data, user_id=visitor.user_id, user_name=visitor.name, note=note)
            self.runtime.playbook = playbook
            self.runtime.playbook_version = number
        stored = self.host.installs.get(CRM) or {}
        self.views.warm(_account(stored), self.runtime.today(), playbook, number)  # pages follow in the background
        log.info("bitrix playbook version=%s saved by user=%s", number, visitor.user_id)
        return number


def _account(stored: dict) -> str:
    return f"{CRM}:{stored.get('domain', '')}"


def _origin(stored: dict) -> str:
    parts = urlsplit(str(stored.get("client_endpoint", "")))
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""
