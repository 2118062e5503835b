"""`repeat-sales install` for amoCRM: the custom fields the plugin writes and reads, idempotently.

On contacts and companies: segment, RFM code, lifecycle stage, loyalty tier (text) and the
predicted next purchase (date), plus the checkbox `NO_MARKETING` (the opt-out a playbook's
`guards.opt_out.fields = ["no_marketing"]` reads) when missing, and the numeric bonus balance
`RS_BONUS`; on contacts only, the text fields the generic Salesbot sends from (`RS_MESSAGE`,
`RS_MESSAGE_KEY`, `RS_MESSAGE_SENT`); on leads the API-only text field `RS_ACTION_KEY` that marks repeat
deals and the numeric `RS_BONUS_PAID` (bonuses the customer paid with); on product catalogs the numeric
`CYCLE_DAYS` (how long one unit lasts). A field is found by its code. Every field install creates ends its name with
" (repeat-sales)", and `--uninstall` deletes exactly those (with their values), never a field the
account had before. Doc: amocrm.ru/developers/content/crm_platform/custom-fields - at most 50
fields a page; `POST` answers 201; `DELETE /api/v4/{entity}/custom_fields/{id}` answers 204.
"""

from __future__ import annotations

from connector import fields as card
from connector.amocrm.client import AmoClient
from connector.amocrm.deals import KEY_CODE
from connector.amocrm.fields import field_code
from connector.amocrm.mapping import BONUS_PAID_CODE, PRODUCT_CYCLE_CODE
from connector.amocrm.pull import pages
from connector.amocrm.touches import BOT_FIELDS, salesbot_steps
from connector.crm import InstallReport

FIELDS_PAGE = 50
SUFFIX = " (repeat-sales)"
OPT_OUT_FIELD = {"name": "Не присылать рассылки", "type": "checkbox", "code": "NO_MARKETING", "sort": 520}
CYCLE_FIELD = {"name": "Срок потребления, дней", "type": "numeric", "code": PRODUCT_CYCLE_CODE, "sort": 510}
KEY_FIELD = {"name": "Ключ действия", "type": "text", "code": KEY_CODE, "sort": 530, "is_api_only": True}
BONUS_PAID_FIELD = {"name": "Оплачено бонусами", "type": "numeric", "code": BONUS_PAID_CODE, "sort": 540}
TYPES = {"string": "text", "date": "date", "number": "numeric"}


def card_fields() -> list[dict]:
    out = [{"name": f.label_ru, "type": TYPES[f.kind], "code": field_code(f.name), "sort": 500 + n}
           for n, f in enumerate(card.CARD_FIELDS)]
    return [*out, OPT_OUT_FIELD]


def _fields(client: AmoClient, path: str) -> dict[str, dict]:
    return {str(f.get("code")): f for rows in pages(client, path, "custom_fields", limit=FIELDS_PAGE) for f in rows
            if f.get("code")}


def _ensure(client: AmoClient, path: str, wanted: list[dict], report: InstallReport, label: str) -> None:
    have = _fields(client, path)
    add = []
    for spec in wanted:
        if spec["code"] in have:
            report.existing.append(f"{label} field {spec['code']}")
        else:
            add.append({**spec, "name": spec["name"] + SUFFIX})
            report.created.append(f"{label} field {spec['code']}")
    if add:
        client.request("POST", path, json_body=add, kind="write")


def _remove(client: AmoClient, path: str, report: InstallReport, label: str) -> None:
    for code, spec in sorted(_fields(client, path).items()):
        if str(spec.get("name", "")).endswith(SUFFIX):
            client.request("DELETE", f"{path}/{spec['id']}", kind="write")
            report.removed.append(f"{label} field {code}")


def install(client: AmoClient, *, uninstall: bool = False) -> InstallReport:
    report = InstallReport()
    targets = [("/api/v4/contacts/custom_fields", [*card_fields(), *BOT_FIELDS], "contacts"),
               ("/api/v4/companies/custom_fields", card_fields(), "companies")]
    targets.append(("/api/v4/leads/custom_fields", [KEY_FIELD, BONUS_PAID_FIELD], "leads"))
    for rows in pages(client, "/api/v4/catalogs", "catalogs"):
        targets += [(f"/api/v4/catalogs/{c['id']}/custom_fields", [CYCLE_FIELD], f"catalog {c['id']}")
                    for c in rows if c.get("type") == "products"]
    for path, wanted, label in targets:
        if uninstall:
            _remove(client, path, report, label)
        else:
            _ensure(client, path, wanted, report, label)
    if not uninstall:
        report.admin_steps += salesbot_steps()
    return report
