"""The in-memory portal: tables, pipelines and stages, user fields, and the writes users make.

One re-entrant lock guards everything; methods take it for the whole call. Every write
bumps the row's DATE_MODIFY to the portal clock (real wall time) so `>DATE_MODIFY`
incremental pulls see it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from .protocol import as_float, as_int, as_list, as_yn, bad_request, day_floor, now_ts, parse_datetime
from .query import QueryEngine, Table
from .records import MULTIFIELDS, Comment, Company, Contact, Deal, ProductRow, Status, UserField

CURRENCIES = ("RUB", "USD", "EUR", "KZT", "BYN", "UAH")
OPT_OUT_FIELD = "UF_CRM_RS_NO_MARKETING"  # "Y" / "N" string user field on contacts and companies
CYCLE_PROPERTY_ID = 101  # crm.product.property: CODE "RS_CYCLE_DAYS", value = days one unit lasts
CYCLE_PROPERTY_CODE = "RS_CYCLE_DAYS"
TERM_PROPERTY_ID = 102  # crm.product.property: CODE "RS_TERM_DAYS", value = days a subscription or service runs
TERM_PROPERTY_CODE = "RS_TERM_DAYS"
CATALOG_ID = 25
SECOND_CATEGORY_ID = 1

# The HONORIFIC list, as a Russian portal ships it. Doc: api-reference/crm/status/index.md ("Обращения",
# ENTITY_ID HONORIFIC: the values of the contact's and lead's HONORIFIC field) and
# api-reference/crm/universal/crm-item-add.md ("'HNR_RU_1' = 'г-н'").
HONORIFICS = (("HNR_RU_1", "г-н"), ("HNR_RU_2", "г-жа"))
HONORIFIC_BY_GENDER = {"M": "HNR_RU_1", "F": "HNR_RU_2"}

# Stages per pipeline: (STATUS_ID without the C{n}: prefix, name, semantics P/S/F).
# Doc: api-reference/crm/status/crm-status-list.md, crm/deals/crm-deal-get.md
_STAGES = (("NEW", "Новая", "P"), ("PREPARATION", "Подготовка документов", "P"),
           ("PREPAYMENT_INVOICE", "Счёт на предоплату", "P"), ("EXECUTING", "В работе", "P"),
           ("FINAL_INVOICE", "Финальный счёт", "P"), ("WON", "Сделка успешна", "S"),
           ("LOSE", "Сделка провалена", "F"), ("APOLOGY", "Анализ причины провала", "F"))
OPEN_STAGES = tuple(code for code, _, sem in _STAGES if sem == "P")


def stage_code(category_id: int, code: str) -> str:
    return code if category_id == 0 else f"C{category_id}:{code}"


class Portal:
    """Everything the emulated portal holds; `tables[kind]` per object kind."""

    def __init__(self, categories: dict[int, str] | None = None) -> None:
        self.lock = threading.RLock()
        self.engine = QueryEngine()
        self.contacts = Table("contact", indexed=("COMPANY_ID",))
        self.companies = Table("company")
        self.deals = Table("deal", indexed=("CONTACT_ID", "COMPANY_ID"))
        self.product_rows = Table("product_row", indexed=("OWNER_ID",))
        self.products = Table("product")
        self.sections = Table("section")
        self.users = Table("user")
        self.tasks = Table("task", indexed=("TAG", "UF_CRM_TASK", "RESPONSIBLE_ID"))
        self.comments = Table("comment", indexed=("ENTITY_ID",))
        self.activities = Table("activity", indexed=("OWNER_ID",))
        self.userfields = Table("userfield")
        self.categories: dict[int, str] = dict(categories or {0: "Общая", SECOND_CATEGORY_ID: "Опт"})
        self.stage_semantics: dict[str, str] = {}
        for cat in self.categories:
            for code, _, sem in _STAGES:
                self.stage_semantics[stage_code(cat, code)] = sem
        self.statuses = Table("status")
        self._seed_statuses()
        self.tags: dict[str, int] = {}  # task tag title -> tag id
        self.webhook_user = 1
        self.mailbox = True  # a mailbox to send e-mail activities from (`--mailbox`)
        self.outbox = None  # the emulator's emulators.kit.Outbox, once the emulator set it
        self.chats: dict = {}  # (entity type, id) -> open-line chats bound to the card (openlines.py)
        self.claimed_markers: set[str] = set()  # markers an outgoing chat message or SMS was keyed by
        self.message_seq = 19880000
        self.sms_automation = False  # the admin bound "send SMS" to the app's trigger (triggers.py)
        self.triggers: dict[str, dict] = {}  # the app's automation triggers by CODE
        self.next_multifield_id = 0
        # Shop customer id -> ("contact" | "company", CRM id); companies' contacts too.
        self.customer_refs: dict[int, tuple[str, int]] = {}
        self.company_contacts: dict[int, list[int]] = {}
        self.clock: Callable[[], int] = now_ts
        # (event, id) for each add/update, e.g. ("ONCRMDEALUPDATE", 12); the app context sends them on
        self.listeners: list[Callable[[str, int], None]] = []

    def _seed_statuses(self) -> None:
        colors = {"P": "#39A8EF", "S": "#7BD500", "F": "#FF5752"}
        sid = 0
        for cat in self.categories:
            entity = "DEAL_STAGE" if cat == 0 else f"DEAL_STAGE_{cat}"
            for n, (code, name, sem) in enumerate(_STAGES, start=1):
                sid += 1
                self.statuses.insert(sid, Status(sid, entity, stage_code(cat, code), name, n * 10,
                                                 code in ("NEW", "WON", "LOSE"), cat if cat else None,
                                                 None if sem == "P" else sem, colors[sem]))
        for entity, values in (("SOURCE", (("STORE", "Интернет-магазин"), ("WEB", "Веб-сайт"),
                                           ("CALL", "Звонок"), ("OTHER", "Другое"))),
                               ("DEAL_TYPE", (("SALE", "Продажа"), ("COMPLEX", "Комплексная продажа"),
                                              ("SERVICE", "Сервисное обслуживание"))),
                               ("CONTACT_TYPE", (("CLIENT", "Клиенты"), ("SUPPLIER", "Поставщики"),
                                                 ("PARTNER", "Партнеры"), ("OTHER", "Другое"))),
                               ("HONORIFIC", HONORIFICS)):
            for n, (code, name) in enumerate(values, start=1):
                sid += 1
                self.statuses.insert(sid, Status(sid, entity, code, name, n * 10, True, None, None))

    def emit(self, event: str, entity_id: int) -> None:
        """Doc: api-reference/events/index.md - ONCRM<ENTITY>ADD / UPDATE after every write."""
        for listener in self.listeners:
            listener(event, entity_id)

    # ---- overview ----
    def counts(self) -> dict[str, int]:
        """What the portal holds now, by kind (the `objects` of /_emulator/stats)."""
        return {"contact": len(self.contacts), "company": len(self.companies), "deal": len(self.deals),
                "product": len(self.products), "product_row": len(self.product_rows),
                "product_section": len(self.sections), "user": len(self.users), "task": len(self.tasks),
                "comment": len(self.comments), "activity": len(self.activities),
                "userfield": len(self.userfields)}

    def uf_names(self, entity_id: str) -> list[str]:
        return [u.field_name for u in self.userfields.rows.values() if u.entity_id == entity_id]

    def userfield(self, entity_id: str, name: str) -> UserField | None:
        for u in self.userfields.rows.values():
            if u.entity_id == entity_id and u.field_name == name:
                return u
        return None

    def stages(self, category_id: int) -> list[tuple[str, str, str]]:
        return [(stage_code(category_id, c), n, s) for c, n, s in _STAGES]

    def won_deals(self) -> list[Deal]:
        return [d for d in self.deals.rows.values() if d.semantic == "S"]

    # ---- field writes shared by contacts, companies, deals ----
    def _multi_id(self) -> int:
        self.next_multifield_id += 1
        return self.next_multifield_id

    def apply_multifields(self, row, fields: dict) -> None:
        """Doc: api-reference/crm/contacts/crm-contact-update.md - no ID adds, {ID, VALUE} replaces,
        {ID, DELETE: Y} or an empty VALUE deletes."""
        for type_id in MULTIFIELDS:
            if type_id not in fields:
                continue
            multi = row.multi or {}
            entries = list(multi.get(type_id, ()))
            for item in as_list(fields[type_id]):
                if not isinstance(item, dict):
                    item = {"VALUE": item}
                item = {str(k).upper(): v for k, v in item.items()}
                value = "" if item.get("VALUE") is None else str(item.get("VALUE"))
                mid = as_int(item.get("ID"))
                vtype = str(item.get("VALUE_TYPE") or "WORK")
                if mid:
                    pos = next((i for i, e in enumerate(entries) if e[0] == mid), None)
                    if pos is None:
                        continue
                    if as_yn(item.get("DELETE", "N")) or not value:
                        del entries[pos]
                    else:
                        entries[pos] = [mid, str(item.get("VALUE_TYPE") or entries[pos][1]), value]
                elif value:
                    if type_id == "EMAIL" and "@" not in value:
                        # Doc: api-reference/crm/contacts/crm-contact-add.md (ERROR_CORE, bad e-mail)
                        raise bad_request(f"Поле \"{value}\" содержит некорректный адрес<br>", "ERROR_CORE")
                    entries.append([self._multi_id(), vtype, value])
            if entries:
                multi[type_id] = entries
            else:
                multi.pop(type_id, None)
            row.multi = multi or None

    def apply_uf(self, row, entity_id: str, fields: dict) -> None:
        """Values of registered user fields only; unknown UF_ keys are ignored like the portal does."""
        for key, value in fields.items():
            if not key.startswith("UF_"):
                continue
            uf = self.userfield(entity_id, key)
            if uf is None:
                continue
            if row.uf is None:
                row.uf = {}
            row.uf[key] = as_list(value) if uf.multiple else (None if value is None else str(value))

    # ---- contacts and companies ----
    def write_contact(self, row: Contact | None, fields: dict) -> Contact:
        now = self.clock()
        if row is None:
            row = Contact(self.contacts.last_id + 1, "", "", created=now, created_by=self.webhook_user,
                          assigned=self.webhook_user, uf={})
            for name in self.uf_names("CRM_CONTACT"):
                row.uf.setdefault(name, None)
            is_new = True
        else:
            is_new = False
        old_company = row.company_id
        for key, attr in (("NAME", "name"), ("LAST_NAME", "last_name"), ("SECOND_NAME", "second_name"),
                          ("POST", "post"), ("TYPE_ID", "type_id"), ("SOURCE_ID", "source_id"),
                          ("COMMENTS", "comments")):
            if key in fields:
                setattr(row, attr, "" if fields[key] is None else str(fields[key]))
        if "HONORIFIC" in fields:  # a crm_status of the HONORIFIC list; empty clears it
            row.honorific = str(fields["HONORIFIC"] or "") or None
        if "COMPANY_ID" in fields:
            row.company_id = as_int(fields["COMPANY_ID"]) or None
        if "BIRTHDATE" in fields:
            row.birthdate = _day(fields["BIRTHDATE"])
        if "ASSIGNED_BY_ID" in fields:
            row.assigned = as_int(fields["ASSIGNED_BY_ID"]) or row.assigned
        if "OPENED" in fields:
            row.opened = as_yn(fields["OPENED"])
        if "EXPORT" in fields:
            row.export = as_yn(fields["EXPORT"])
        self.apply_multifields(row, fields)
        self.apply_uf(row, "CRM_CONTACT", fields)
        row.modified = now
        row.modify_by = self.webhook_user
        if is_new:
            self.contacts.insert(row.id, row, {"COMPANY_ID": row.company_id or 0})
        else:
            self.contacts.reindex(row.id, "COMPANY_ID", old_company or 0, row.company_id or 0)
            self.contacts.touch()
        self.emit("ONCRMCONTACTADD" if is_new else "ONCRMCONTACTUPDATE", row.id)
        return row

    def write_company(self, row: Company | None, fields: dict) -> Company:
        now = self.clock()
        is_new = row is None
        if row is None:
            row = Company(self.companies.last_id + 1, "", created=now, created_by=self.webhook_user,
                          assigned=self.webhook_user, uf={})
            for name in self.uf_names("CRM_COMPANY"):
                row.uf.setdefault(name, None)
        for key, attr in (("TITLE", "title"), ("COMPANY_TYPE", "company_type"), ("INDUSTRY", "industry"),
                          ("COMMENTS", "comments")):
            if key in fields:
                setattr(row, attr, "" if fields[key] is None else str(fields[key]))
        if "ASSIGNED_BY_ID" in fields:
            row.assigned = as_int(fields["ASSIGNED_BY_ID"]) or row.assigned
        self.apply_multifields(row, fields)
        self.apply_uf(row, "CRM_COMPANY", fields)
        row.modified = now
        row.modify_by = self.webhook_user
        if is_new:
            self.companies.insert(row.id, row)
        else:
            self.companies.touch()
        self.emit("ONCRMCOMPANYADD" if is_new else "ONCRMCOMPANYUPDATE", row.id)
        return row

    # ---- deals ----
    def write_deal(self, row: Deal | None, fields: dict) -> Deal:
        """Add (row None) or update a deal. CATEGORY_ID is fixed once the deal exists.

        Doc: api-reference/crm/deals/crm-deal-update.md (CATEGORY_ID not changeable here).
        Closing a deal without CLOSEDATE sets it to today (the portal's behaviour for closed deals).
        """
        now = self.clock()
        is_new = row is None
        currency = fields.get("CURRENCY_ID")
        if currency not in (None, "") and str(currency).upper() not in CURRENCIES:
            # Doc: api-reference/crm/deals/crm-deal-add.md (wrong currency)
            raise bad_request("Неверное значение поля «Валюта»")
        if row is None:
            stage = str(fields.get("STAGE_ID") or "")
            cat = as_int(fields.get("CATEGORY_ID"))
            if cat is None:
                cat = as_int(stage[1:stage.index(":")], 0) if stage.startswith("C") and ":" in stage else 0
            if cat not in self.categories:
                cat = 0
            row = Deal(self.deals.last_id + 1, None, stage_code(cat, "NEW"), category_id=cat,
                       created=now, created_by=self.webhook_user, assigned=self.webhook_user,
                       begindate=day_floor(now), closedate=day_floor(now) + 7 * 86400, moved_time=now)
            if self.uf_names("CRM_DEAL"):
                row.uf = dict.fromkeys(self.uf_names("CRM_DEAL"))
        old_contact = row.contact_ids[0] if row.contact_ids else 0
        old_company = row.company_id or 0
        old_semantic = row.semantic
        if "TITLE" in fields:
            row.title = "" if fields["TITLE"] is None else str(fields["TITLE"])
        stage = fields.get("STAGE_ID")
        if stage and str(stage) in self.stage_semantics and self._stage_category(str(stage)) == row.category_id:
            if str(stage) != row.stage_id:
                row.moved_time = now
            row.stage_id = str(stage)
        row.semantic = self.stage_semantics.get(row.stage_id, "P")
        if currency not in (None, ""):
            row.currency = str(currency).upper()
        if "OPPORTUNITY" in fields:
            row.opportunity = as_float(fields["OPPORTUNITY"], 0.0) or 0.0
        if "IS_MANUAL_OPPORTUNITY" in fields:
            row.is_manual = as_yn(fields["IS_MANUAL_OPPORTUNITY"])
        if "CONTACT_IDS" in fields:
            row.contact_ids = tuple(i for i in (as_int(v) for v in as_list(fields["CONTACT_IDS"])) if i)
        elif "CONTACT_ID" in fields:
            cid = as_int(fields["CONTACT_ID"])
            row.contact_ids = ((cid,) + tuple(c for c in row.contact_ids[1:] if c != cid)) if cid else ()
        if "COMPANY_ID" in fields:
            row.company_id = as_int(fields["COMPANY_ID"]) or None
        for key, attr in (("TYPE_ID", "type_id"), ("COMMENTS", "comments"), ("SOURCE_ID", "source_id"),
                          ("ORIGINATOR_ID", "originator_id"), ("ORIGIN_ID", "origin_id")):
            if key in fields:
                setattr(row, attr, "" if fields[key] is None else str(fields[key]))
        if "ASSIGNED_BY_ID" in fields:
            row.assigned = as_int(fields["ASSIGNED_BY_ID"]) or row.assigned
        if "BEGINDATE" in fields:
            row.begindate = parse_datetime(fields["BEGINDATE"]) or row.begindate
        if "CLOSEDATE" in fields:
            row.closedate = _day(fields["CLOSEDATE"]) or row.closedate
        elif row.semantic != "P" and (is_new or old_semantic == "P"):
            row.closedate = day_floor(now)
        if "IS_RETURN_CUSTOMER" in fields:
            row.is_return = as_yn(fields["IS_RETURN_CUSTOMER"])
        if "OPENED" in fields:
            row.opened = as_yn(fields["OPENED"])
        self.apply_uf(row, "CRM_DEAL", fields)
        if is_new and not row.title:
            row.title = f"Сделка #{row.id}"  # Doc: crm-deal-add.md - default title
        row.modified = now
        row.modify_by = self.webhook_user
        contact = row.contact_ids[0] if row.contact_ids else 0
        if is_new:
            self.deals.insert(row.id, row, {"CONTACT_ID": contact, "COMPANY_ID": row.company_id or 0})
        else:
            self.deals.reindex(row.id, "CONTACT_ID", old_contact, contact)
            self.deals.reindex(row.id, "COMPANY_ID", old_company, row.company_id or 0)
            self.deals.touch()
        self.emit("ONCRMDEALADD" if is_new else "ONCRMDEALUPDATE", row.id)
        return row

    def _stage_category(self, stage: str) -> int:
        if stage.startswith("C") and ":" in stage:
            return as_int(stage[1:stage.index(":")], -1)
        return 0

    def rows_of(self, deal_id: int) -> list[ProductRow]:
        rows = self.product_rows.rows
        return [rows[i] for i in self.product_rows.indexes["OWNER_ID"].get(deal_id, ())]

    def set_product_rows(self, deal: Deal, items: list) -> None:
        """Replace all rows of a deal. Doc: api-reference/crm/deals/crm-deal-productrows-set.md
        (rows are replaced; with PRODUCT_ID the name comes from the product)."""
        new_rows = []
        for n, item in enumerate(items, start=1):
            item = {str(k).upper(): v for k, v in (item if isinstance(item, dict) else {}).items()}
            pid = as_int(item.get("PRODUCT_ID"), 0) or 0
            product = self.products.rows.get(pid)
            name = product.name if product else str(item.get("PRODUCT_NAME") or "")
            price = as_float(item.get("PRICE"), product.price if product else 0.0) or 0.0
            qty = as_float(item.get("QUANTITY"), 1.0)
            new_rows.append((pid, name, price, 1.0 if qty is None else qty,
                             as_int(item.get("SORT"), n * 10) or n * 10))
        for old in self.rows_of(deal.id):
            self.product_rows.delete(old.id, {"OWNER_ID": deal.id})
        for pid, name, price, qty, sort in new_rows:
            rid = self.product_rows.new_id()
            self.product_rows.insert(rid, ProductRow(rid, deal.id, pid, name, price, qty, sort=sort),
                                     {"OWNER_ID": deal.id})
        self.product_rows.touch()
        if not deal.is_manual:
            deal.opportunity = round(sum(p * q for _, _, p, q, _ in new_rows), 2)
        deal.modified = self.clock()
        deal.modify_by = self.webhook_user
        self.deals.touch()

    # ---- timeline ----
    def add_comment(self, entity_type: str, entity_id: int, text: str) -> Comment:
        cid = self.comments.new_id()
        row = Comment(cid, entity_type, entity_id, text, self.webhook_user, self.clock())
        self.comments.insert(cid, row, {"ENTITY_ID": entity_id})
        return row

    def entity_exists(self, entity_type: str, entity_id: int) -> bool:
        table = {"deal": self.deals, "contact": self.contacts, "company": self.companies}.get(entity_type)
        return table is not None and entity_id in table.rows


def _day(value) -> int | None:
    """A date-only field keeps a day (its portal-time midnight), whatever time of day a write names.
    Doc: api-reference/data-types.md (`date`: YYYY-MM-DD)."""
    ts = parse_datetime(value)
    return day_floor(ts) if ts is not None else None
