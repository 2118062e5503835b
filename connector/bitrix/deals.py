"""Repeat deals in Bitrix24: the deal, its products and a comment saying why, in one request.

Per action, three chained commands in one `batch`: `crm.deal.add` (pipeline and stage from the
playbook's [writeback], the customer, the manager, IS_RETURN_CUSTOMER, and the action key as
ORIGINATOR_ID "repeat-sales" + ORIGIN_ID, the fields the docs keep for an external system's id),
`crm.deal.productrows.set` with `id=$result[d<i>]`, and `crm.timeline.comment.add` whose text
ends with `rs:<key>`. Sixteen deals fit in a batch of 50 commands.
Doc: crm/deals/crm-deal-add.md, crm-deal-productrows-set.md, crm/timeline/comments/crm-timeline-comment-add.md.
A deal whose rows or comment were refused is deleted again and reported, so a retry makes it whole.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import date, timedelta

from connector.bitrix.batching import reason, ref, send_groups, send_in_slices
from connector.bitrix.client import BitrixClient
from connector.bitrix.pull import list_pages
from connector.crm import CrmRef, WriteOutcome, marker
from connector.model import Action

log = logging.getLogger(__name__)

ORIGINATOR = "repeat-sales"
KEYS_PER_READ = 25  # ORIGIN_ID values per list command: a page (50) holds them even twice over
DEAL_OPEN_DAYS = 14  # CLOSEDATE (the planned close) when the action names no run-out day


class Target:
    """Pipelines and stages, read once; the playbook names them by name or id."""

    def __init__(self, client: BitrixClient) -> None:
        self.client = client
        self._categories: list[dict] | None = None
        self._stages: dict[int, list[dict]] = {}

    def resolve(self, pipeline: str, stage: str) -> tuple[int, str]:
        """(CATEGORY_ID, STAGE_ID); raises LookupError with the known names when one is unknown."""
        if self._categories is None:
            # Doc: crm/universal/category/crm-category-list.md - deal pipelines, the default is id 0
            answer = self.client.call("crm.category.list", {"entityTypeId": 2})["result"]
            self._categories = list((answer or {}).get("categories") or [])
        if pipeline:
            found = [c for c in self._categories if str(c.get("id")) == pipeline
                     or str(c.get("name", "")).casefold() == pipeline.casefold()]
            if not found:
                names = ", ".join(str(c.get("name")) for c in self._categories)
                raise LookupError(f"no deal pipeline {pipeline!r} in Bitrix24 (there are: {names})")
            category = int(found[0]["id"])
        else:
            category = next((int(c["id"]) for c in self._categories if c.get("isDefault") == "Y"), 0)
        if category not in self._stages:
            # Doc: crm/status/crm-status-list.md - DEAL_STAGE for pipeline 0, DEAL_STAGE_<id> for others
            entity = "DEAL_STAGE" if category == 0 else f"DEAL_STAGE_{category}"
            rows = [r for page in list_pages(self.client, "crm.status.list",
                                             {"filter": {"ENTITY_ID": entity}, "order": {"SORT": "ASC"}})
                    for r in page]
            self._stages[category] = rows
        stages = self._stages[category]
        if stage:
            found = [s for s in stages if str(s.get("STATUS_ID")) in (stage, f"C{category}:{stage}")
                     or str(s.get("NAME", "")).casefold() == stage.casefold()]
            if not found:
                names = ", ".join(str(s.get("NAME")) for s in stages)
                raise LookupError(f"no stage {stage!r} in that deal pipeline (there are: {names})")
            return category, str(found[0]["STATUS_ID"])
        open_stages = [s for s in stages if not s.get("SEMANTICS")]
        if not open_stages:
            raise LookupError("the deal pipeline has no open stage")
        return category, str(open_stages[0]["STATUS_ID"])


def deal_rows(action: Action) -> list[dict]:
    rows = []
    for line in action.payload.get("products") or []:
        pid = str(line.get("product_id") or "")
        row = {"PRODUCT_ID": int(pid) if pid.isdigit() else 0, "PRODUCT_NAME": str(line.get("name") or "?"),
               "QUANTITY": float(line.get("quantity") or 1)}
        if line.get("price") is not None:
            row["PRICE"] = float(line["price"])
        rows.append(row)
    return rows


class DealWriter:
    def __init__(self, client: BitrixClient, *, customer_key: str, responsible) -> None:
        self.client = client
        self.customer_key = customer_key
        self.responsible = responsible
        self.target = Target(client)
        self.duplicates_removed = 0

    def deal_fields(self, action: Action, category: int, stage: str) -> dict:
        runout = action.payload.get("runout")
        closes = date.fromisoformat(str(runout)) if runout else action.due + timedelta(days=DEAL_OPEN_DAYS)
        link = "COMPANY_ID" if self.customer_key == "company" else "CONTACT_ID"
        return {"TITLE": action.title[:255], "CATEGORY_ID": category, "STAGE_ID": stage,
                link: action.customer_id, "ASSIGNED_BY_ID": self.responsible(action.manager_id),
                "IS_RETURN_CUSTOMER": "Y", "OPENED": "Y", "CLOSEDATE": max(closes, action.due).isoformat(),
                "ORIGINATOR_ID": ORIGINATOR, "ORIGIN_ID": action.key, "COMMENTS": action.body[:2000]}

    def write(self, actions: Sequence[Action]) -> list[WriteOutcome]:
        outcomes: dict[str, WriteOutcome] = {}
        groups, placed = [], []
        for i, action in enumerate(actions):
            try:
                category, stage = self.target.resolve(str(action.payload.get("pipeline") or ""),
                                                      str(action.payload.get("stage") or ""))
            except LookupError as exc:
                outcomes[action.key] = WriteOutcome(action.key, False, reason=str(exc))
                continue
            group = {f"d{i}": ("crm.deal.add", {"fields": self.deal_fields(action, category, stage),
                                                "params": {"REGISTER_SONET_EVENT": "Y"}})}
            rows = deal_rows(action)
            if rows:
                group[f"r{i}"] = ("crm.deal.productrows.set", {"id": ref(f"d{i}"), "rows": rows})
            why = "\n\n".join(x for x in (action.title, action.body.strip(), marker(action.key)) if x)
            group[f"c{i}"] = ("crm.timeline.comment.add", {"fields": {
                "ENTITY_ID": ref(f"d{i}"), "ENTITY_TYPE": "deal", "COMMENT": why}})
            groups.append(group)
            placed.append((i, action))
        sent = send_groups(self.client, groups) if groups else None
        undo: list[int] = []
        for i, action in placed:
            deal_id = sent.result.get(f"d{i}")
            if f"d{i}" in sent.errors or not deal_id:
                outcomes[action.key] = WriteOutcome(action.key, False, reason=reason(sent.errors.get(f"d{i}")))
                continue
            refused = next((sent.errors[x] for x in (f"r{i}", f"c{i}") if x in sent.errors), None)
            if refused is not None:  # half a deal helps nobody: remove it, the retry makes it whole
                undo.append(int(deal_id))
                outcomes[action.key] = WriteOutcome(action.key, False, reason=reason(refused))
                continue
            outcomes[action.key] = WriteOutcome(action.key, True, CrmRef("deal", str(deal_id)))
        if undo:
            self._delete(undo)
        if sent is not None and sent.resent:  # the batch went out twice: markers show what it made twice
            found = self.find([a.key for _i, a in placed])
            for key, found_ref in found.items():
                if key in outcomes and outcomes[key].ok:
                    outcomes[key] = WriteOutcome(key, True, found_ref)
        return [outcomes[a.key] for a in actions]

    def find(self, keys: Iterable[str]) -> dict[str, CrmRef]:
        """Deals carrying these keys in ORIGIN_ID; duplicates of one key are deleted, the oldest kept."""
        keys = sorted(set(keys))
        seen: dict[str, list[int]] = {}
        groups = ({f"k{n}": ("crm.deal.list", {"filter": {"=ORIGINATOR_ID": ORIGINATOR, "@ORIGIN_ID": keys[n:n + KEYS_PER_READ]},
                                                "select": ["ID", "ORIGIN_ID"], "order": {"ID": "ASC"}})}
                  for n in range(0, len(keys), KEYS_PER_READ))
        for sent in send_in_slices(self.client, groups):
            for label, rows in sent.result.items():
                if label in sent.next:  # more than a page: read that chunk to its end
                    n = int(label[1:])
                    rows = [r for page in list_pages(self.client, "crm.deal.list", {
                        "filter": {"=ORIGINATOR_ID": ORIGINATOR, "@ORIGIN_ID": keys[n:n + KEYS_PER_READ]},
                        "select": ["ID", "ORIGIN_ID"]}) for r in page]
                self._collect(rows, seen)
        return self._settle(seen)

    def all_markers(self) -> dict[str, CrmRef]:
        seen: dict[str, list[int]] = {}
        for rows in list_pages(self.client, "crm.deal.list", {"filter": {"=ORIGINATOR_ID": ORIGINATOR},
                                                              "select": ["ID", "ORIGIN_ID"]}):
            self._collect(rows, seen)
        return self._settle(seen)

    @staticmethod
    def _collect(rows: object, seen: dict[str, list[int]]) -> None:
        for row in rows if isinstance(rows, list) else []:
            key = str(row.get("ORIGIN_ID") or "")
            if key.startswith("v"):
                seen.setdefault(key, []).append(int(row["ID"]))

    def _settle(self, seen: dict[str, list[int]]) -> dict[str, CrmRef]:
        extra = [d for ids in seen.values() for d in sorted(set(ids))[1:]]
        if extra:
            removed = self._delete(extra)  # a deal another run deleted a moment ago is refused: gone either way
            self.duplicates_removed += removed
            log.warning("bitrix duplicate_deals_deleted=%d", removed)
        return {key: CrmRef("deal", str(min(ids))) for key, ids in seen.items()}

    def _delete(self, deal_ids: list[int]) -> int:
        sent = send_groups(self.client, [{f"x{d}": ("crm.deal.delete", {"id": d})} for d in deal_ids])
        return len(deal_ids) - len(sent.errors)
