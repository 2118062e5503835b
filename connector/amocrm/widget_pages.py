"""The widget's pages inside amoCRM: the card tab (lcard, ccard, comcard) and the main page in the
widget's settings area (advanced_settings), rendered by the app's pages package as in Bitrix24.

The address was signed by `POST /amocrm/widget/session` after amoCRM's one-time token named the user
(widget_app.py); here it only has to be ours and fresh. Every answer is the pages' HTML without script
under their strict CSP (connector/webapp/pages/view.py), framed only by the account's own pages.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from connector.errors import WebhookRejected
from connector.webapp.pages.main_page import render_main
from connector.webapp.pages.snapshot import Views
from connector.webapp.pages.tab import render_tab
from connector.webapp.pages.view import esc, page
from connector.webapp.pages.words import Words

if TYPE_CHECKING:  # pragma: no cover
    from connector.webapp import WebApp

log = logging.getLogger(__name__)


class WidgetPages:
    def __init__(self, host: WebApp) -> None:
        self.runtime = host.runtime
        base = urlsplit((host.settings.AMOCRM_BASE_URL or "").strip())
        self.account = f"amocrm:{base.netloc}"
        # the account's web interface frames us; any port of its host (the emulator's stand-in pages use another)
        self.frame_ancestors = f"{base.scheme}://{base.hostname}:*" if base.scheme and base.hostname else ""
        self.views = Views(self.runtime.open_state)

    def answer(self, fields: dict[str, str] | None, refused: WebhookRejected | None = None):
        """The page the signed fields name, or the refusal as a page (401 for an address not ours)."""
        words = Words(self.runtime.playbook)
        try:
            if refused is not None:
                raise refused
            title, body = words["app"], self._body(fields, words)
            status = 200
        except WebhookRejected as exc:
            status = exc.status
            title = words["forbidden"] if status == 403 else words["app"]
            lead = words["widget_denied"] if status == 401 else words["admins_only"] if status == 403 else title
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
            return render_main(view, w, portal=self._origin(), names={}, form={}, admin=False,
                               crm="amocrm")
        finally:
            state.close()

    def _customer(self, state, fields: dict[str, str]) -> str:
        """The contact or company the card is; a lead's card shows the customer who bought it."""
        card = fields["id"]
        if fields["entity"] != "lcard" or not card:
            return card
        row = state.db.execute("SELECT customer_id FROM purchases WHERE account=? AND id=?",
                               (self.account, card)).fetchone()
        return str(row[0]) if row else card

    def _origin(self) -> str:
        base = urlsplit((self.runtime.settings.AMOCRM_BASE_URL or "").strip())
        return f"{base.scheme}://{base.netloc}"
