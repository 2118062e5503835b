"""The widget's pages inside amoCRM: the card tab (lcard, ccard, comcard) and the main page in the
widget's settings area (advanced_settings), rendered by the app's pages package as in Bitrix24.

The address was signed by `POST /amocrm/widget/session` after amoCRM's one-time token named the user
(widget_app.py); here it only has to be ours and fresh. Every answer is the pages' HTML without script
under their strict CSP (connector/webapp/pages/view.py), framed only by the account's own pages.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from connector.errors import CrmError, WebhookRejected
from connector.store import snapshot as store_snapshot
from connector.webapp.forms import text_field
from connector.webapp.pages import settings_page, versions
from connector.webapp.pages.main_page import render_main
from connector.webapp.pages.snapshot import Views
from connector.webapp.pages.tab import render_tab
from connector.webapp.pages.view import esc, page
from connector.webapp.pages.words import Words
from connector.webapp.runtime import build_adapter

if TYPE_CHECKING:  # pragma: no cover
    from connector.webapp import WebApp

log = logging.getLogger(__name__)

PAGE_PATH = "/amocrm/widget/page"
SETTINGS_PATH = "/amocrm/widget/settings"


class WidgetPages:
    def __init__(self, host: WebApp) -> None:
        self.runtime = host.runtime
        base = urlsplit((host.settings.AMOCRM_BASE_URL or "").strip())
        self.account = f"amocrm:{base.netloc}"
        # the account's web interface frames us; any port of its host (the emulator's stand-in pages use another)
        self.frame_ancestors = f"{base.scheme}://{base.hostname}:*" if base.scheme and base.hostname else ""
        self.views = Views(self.runtime.open_state)
        self._save_lock = threading.Lock()

    def answer(self, fields: dict[str, str] | None, refused: WebhookRejected | None = None, form=None):
        """The page the signed fields name (the settings page when a form is posted), or the refusal as a
        page (401 for an address not ours, 403 for a non-administrator's save)."""
        words = Words(self.runtime.playbook)
        try:
            if refused is not None:
                raise refused
            if form is not None:
                title, body = words["settings"], self._settings(fields, form, words)
            else:
                title, body = words["app"], self._body(fields, words)
            status = 200
        except WebhookRejected as exc:
            status = exc.status
            title = words["forbidden"] if status == 403 else words["app"]
            lead = words["widget_denied"] if status == 401 else words["widget_admins"] if status == 403 else title
            body = f'<section class="bad"><h1>{esc(title)}</h1><p>{esc(lead)}</p></section>'
            log.info("amocrm widget page refused status=%s reason=%s", status, exc.message)
        html, headers = page(title, body, lang=words.lang, frame_ancestors=self.frame_ancestors)
        return status, html, headers

    def _body(self, fields: dict[str, str], w: Words) -> str:
        state = self.runtime.open_state()
        try:
            view = self.views.get(state, self.account, self.runtime.today(), self.runtime.playbook,
                                  self.runtime.playbook_version)
            if fields["place"] == "card":
                return render_tab(view, w, state, self.account, self._customer(state, fields))
            return render_main(view, w, portal=self._origin(), names={}, form=fields, admin=True,
                               crm="amocrm", settings_action=SETTINGS_PATH)
        finally:
            state.close()

    # --- POST /amocrm/widget/settings: the playbook settings, saved by account administrators only -------

    def _settings(self, fields: dict[str, str], form: dict, w: Words) -> str:
        """View for everyone (read-only unless the account says the user is an administrator); preview,
        save and restore only for administrators (403 otherwise). The signed fields ride in the form: they
        name the user and expire, so a page elsewhere cannot post here for them."""
        action = text_field(form, "action", max_len=20)
        admin = self.is_admin(fields["user"])
        if action and not admin:
            raise WebhookRejected(403, "administrators only: the account says this user is not one")
        state = self.runtime.open_state()
        try:
            data, errors, notice, preview = settings_page.take_action(
                state, form, self._current_data(state), w,
                preview=lambda playbook: self._preview(state, playbook, w),
                adopt=lambda data, playbook, note: self._adopt(state, data, playbook, fields["user"], note=note))
            listing = versions.listing(state)
        finally:
            state.close()
        return settings_page.render_settings(data, errors, w, form=fields, versions=listing, notice=notice,
                                             preview=preview, action=SETTINGS_PATH, back=PAGE_PATH,
                                             readonly="" if admin else w["widget_readonly"])

    def is_admin(self, user_id: str) -> bool:
        """Whether the account calls this user an administrator. amoCRM's one-time token does not say, so
        the account is asked with the integration's own token (Doc: developers.kommo.com/reference/users-list,
        "Getting user data by its ID": GET /api/v4/users/{id}, `rights.is_admin`); unanswered means no."""
        adapter = build_adapter(self.runtime.settings, self.runtime.installs)
        try:
            user = adapter.client.request("GET", f"/api/v4/users/{int(user_id)}")
        except CrmError as exc:
            log.warning("amocrm widget: cannot ask the account about user=%s: %s", user_id, exc)
            return False
        finally:
            adapter.close()
        return isinstance(user, dict) and (user.get("rights") or {}).get("is_admin") is True

    def _current_data(self, state) -> dict:
        saved = versions.latest(state)
        if saved is not None:
            return saved[1]
        return versions.file_data(self.runtime.settings.PLAYBOOK, self.runtime.settings.PLAYBOOK_LANG)

    def _preview(self, state, playbook, w: Words) -> str:
        """A dry run as of tomorrow with the edited playbook: nothing is written anywhere."""
        from playbooks import PlanHistory, evaluate

        tomorrow = settings_page.tomorrow_of(self.runtime.today())
        customers = {c.id: c for c in state.customers(self.account, lean=True)}
        ev = evaluate(customers.values(), tomorrow, playbook, history=PlanHistory(state.applied_dates(self.account)),
                      catalogue=state.products(self.account).values(), predict=False)
        done = state.ledger_status(self.account, (a.key for a in ev.plan))
        plan = [a for a in ev.plan if done.get(a.key) != "done"]
        return settings_page.preview_section(plan, {c.customer_id: c for c in ev.customers}, customers, tomorrow, w)

    def _adopt(self, state, data: dict, playbook, user_id: str, *, note: str) -> int:
        """Keep the version, then make it the playbook in force for the next sync and for the pages."""
        with self._save_lock:
            number = versions.save(state, data, user_id=user_id, user_name=f"amoCRM #{user_id}", note=note)
            self.runtime.playbook = playbook
            self.runtime.playbook_version = number
        log.info("amocrm playbook version=%s saved by user=%s", number, user_id)
        return number

    def _customer(self, state, fields: dict[str, str]) -> str:
        """The contact or company the card is; a lead's card shows the customer who bought it."""
        card = fields["id"]
        if fields["entity"] != "lcard" or not card:
            return card
        return store_snapshot.customer_of_purchase(state.db, self.account, card) or card

    def _origin(self) -> str:
        base = urlsplit((self.runtime.settings.AMOCRM_BASE_URL or "").strip())
        return f"{base.scheme}://{base.netloc}"
