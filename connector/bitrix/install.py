"""`repeat-sales install` for Bitrix24: the user fields the plugin writes and reads, idempotently.

On contacts and on companies: segment, RFM code, lifecycle stage, loyalty tier (strings), the
predicted next purchase (date), the bonus balance (a number), the opt-out UF_CRM_RS_NO_MARKETING
(a checkbox) when the portal lacks it, and UF_CRM_RS_REFUSED_CHANNELS, the channels the customer refused as
a manager types them ("email, sms", read by playbooks.channels.refused_channels - a string, so any words and
separators do); on deals UF_CRM_RS_BONUS_PAID, the bonuses the customer paid with, the feedback answer
UF_CRM_RS_NPS and the referral code UF_CRM_RS_REFERRAL_CODE
(Doc: crm/deals/user-defined-fields/crm-deal-userfield-add.md), and UF_CRM_RS_MESSAGE, the SMS text the
admin's robot sends; from the app (not a webhook) also the automation trigger that robot is bound to
(sms.py). What install creates carries XML_ID "repeat-sales", and `--uninstall` deletes exactly
those fields (with their values), never one the portal had before.
Doc: crm/contacts/userfield/crm-contact-userfield-add.md (admin only; FIELD_NAME gets UF_CRM_),
crm-contact-userfield-list.md, crm-contact-userfield-delete.md, crm/companies/userfields/*.md.
Robots and event bindings need an application context and are installed by the webhook app.
Rights are checked first (rights.py): a webhook of a non-administrator, or without the `crm` scope,
creates nothing and says so (`missing`), instead of failing half-way.
"""

from __future__ import annotations

from connector import fields as card
from connector.bitrix import sms
from connector.bitrix.batching import reason, send_groups
from connector.bitrix.client import BitrixClient
from connector.bitrix.fields import OPT_OUT, uf_name
from connector.bitrix.pull import list_pages
from connector.bitrix.rights import Rights
from connector.crm import InstallReport
from connector.errors import CrmRequestRejected

XML_ID = "repeat-sales"
ENTITIES = ("contact", "company")
TYPES = {"string": "string", "date": "date", "boolean": "boolean", "number": "double"}
# on deals: the bonuses a customer paid with (a playbook's [bonuses] paid_field = "bonus_paid" reads it)
DEAL_FIELDS = (("bonus_paid", "number", "Оплачено бонусами", "Paid with bonuses"),
               ("message", "string", "Текст SMS клиенту (repeat-sales)", "SMS text to the customer (repeat-sales)"),
               # the feedback answer (0-10) and the referral code a new customer brought
               ("nps", "string", "Оценка 0-10 (NPS)", "Rating 0-10 (NPS)"),
               ("referral_code", "string", "Реферальный код", "Referral code"))


def wanted_fields(entity: str = "contact") -> list[dict]:
    """userfield.add `fields` of every field install makes on `entity`, in display order."""
    if entity == "deal":
        specs = list(DEAL_FIELDS)
    else:
        specs = [(f.name, f.kind, f.label_ru, f.label_en) for f in card.CARD_FIELDS]
        specs.append(("no_marketing", "boolean", "Не присылать рассылки", "No marketing messages"))
        specs.append(("refused_channels", "string", "Отказался от каналов (email, sms, мессенджер)",
                      "Refused channels (email, sms, messenger)"))
    out = []
    for n, (name, kind, ru, en) in enumerate(specs):
        label = {"ru": ru, "en": en}
        spec = {"FIELD_NAME": uf_name(name).removeprefix("UF_CRM_"), "USER_TYPE_ID": TYPES[kind], "XML_ID": XML_ID,
                "SORT": 500 + 10 * n, "MULTIPLE": "N", "MANDATORY": "N", "SHOW_FILTER": "Y",
                "EDIT_FORM_LABEL": label, "LIST_COLUMN_LABEL": label, "LIST_FILTER_LABEL": label}
        if kind == "boolean":
            spec["SETTINGS"] = {"DEFAULT_VALUE": 0, "DISPLAY": "CHECKBOX"}
        out.append(spec)
    return out


def install(client: BitrixClient, *, uninstall: bool = False, rights: Rights | None = None) -> InstallReport:
    report = InstallReport()
    lacks = (rights or Rights()).missing(["card_fields"])
    if lacks:  # userfield.add / .delete are an administrator's (400 "Access denied"): not even tried
        report.missing += [f"{entity} fields: {lacks[0]['message']} (use an administrator's incoming webhook "
                           "with scope crm)" for entity in ENTITIES]
        return report
    for entity in (*ENTITIES, "deal"):
        present = {str(r.get("FIELD_NAME")): r for rows in list_pages(client, f"crm.{entity}.userfield.list", {})
                   for r in rows}
        if uninstall:
            ours = {name: r for name, r in present.items() if str(r.get("XML_ID") or "") == XML_ID}
            _run(client, {f"d{r['ID']}": (f"crm.{entity}.userfield.delete", {"id": r["ID"]}) for r in ours.values()},
                 entity)
            report.removed += [f"{entity} field {name}" for name in sorted(ours)]
            continue
        add = {}
        for n, spec in enumerate(wanted_fields(entity)):
            name = "UF_CRM_" + spec["FIELD_NAME"]
            if name in present:
                report.existing.append(f"{entity} field {name}")
            else:
                add[f"a{n}"] = (f"crm.{entity}.userfield.add", {"fields": spec})
                report.created.append(f"{entity} field {name}")
        _run(client, add, entity)
    if client.webhook_user is not None:
        return report  # a webhook is no application: the SMS trigger is the app's (README, SMS)
    if uninstall:
        if sms.remove_trigger(client):
            report.removed.append(f"automation trigger {sms.TRIGGER}")
        return report
    why, there = sms.register_trigger(client)
    if why:
        report.missing.append(f"automation trigger {sms.TRIGGER} for SMS: {why} (SMS steps go to their next channel)")
    else:
        (report.existing if there else report.created).append(f"automation trigger {sms.TRIGGER}")
    return report


def _run(client: BitrixClient, commands: dict, entity: str) -> None:
    if not commands:
        return
    sent = send_groups(client, [{label: cmd} for label, cmd in commands.items()])
    if sent.errors:
        label, err = next(iter(sent.errors.items()))
        raise CrmRequestRejected(f"{commands[label][0]}: {reason(err)}", crm="bitrix", method=commands[label][0],
                                 crm_code=str(err.get("error", "")),
                                 hint="user fields are made by an administrator: use an administrator's "
                                      "incoming webhook (scope crm)")


__all__ = ["install", "OPT_OUT", "XML_ID"]
