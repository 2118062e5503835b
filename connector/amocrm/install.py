"""`repeat-sales install` for amoCRM: the custom fields the plugin reads, idempotently.

Creates, when missing, the checkbox `NO_MARKETING` on contacts and companies (the opt-out a playbook's
`guards.opt_out.fields = ["no_marketing"]` reads) and the numeric `CYCLE_DAYS` on product catalogs
(how long one unit lasts). Uninstalling leaves fields alone: they hold the managers' data.
Doc: amocrm.ru/developers/content/crm_platform/custom-fields - at most 50 fields a page.
"""

from __future__ import annotations

from connector.amocrm.client import AmoClient
from connector.amocrm.mapping import PRODUCT_CYCLE_CODE
from connector.amocrm.pull import pages
from connector.crm import InstallReport

FIELDS_PAGE = 50
OPT_OUT_FIELD = {"name": "Не присылать рассылки", "type": "checkbox", "code": "NO_MARKETING", "sort": 520}
CYCLE_FIELD = {"name": "Срок потребления, дней", "type": "numeric", "code": PRODUCT_CYCLE_CODE, "sort": 510}


def _ensure(client: AmoClient, path: str, wanted: dict, report: InstallReport, label: str) -> None:
    codes = {f.get("code") for rows in pages(client, path, "custom_fields", limit=FIELDS_PAGE) for f in rows}
    if wanted["code"] in codes:
        report.existing.append(label)
        return
    client.request("POST", path, json_body=[wanted], kind="write")
    report.created.append(label)


def install(client: AmoClient, *, uninstall: bool = False) -> InstallReport:
    report = InstallReport()
    if uninstall:
        return report
    for entity in ("contacts", "companies"):
        _ensure(client, f"/api/v4/{entity}/custom_fields", OPT_OUT_FIELD, report, f"{entity} field NO_MARKETING")
    for rows in pages(client, "/api/v4/catalogs", "catalogs"):
        for catalog in rows:
            if catalog.get("type") == "products":
                _ensure(client, f"/api/v4/catalogs/{catalog['id']}/custom_fields", CYCLE_FIELD, report,
                        f"catalog {catalog['id']} field {PRODUCT_CYCLE_CODE}")
    return report
