"""Answer shapes of API v4: HAL list envelopes, 204 for nothing, problem+json errors, entity bodies.

Doc: kommo.com/developers/content/api_v4/leads-api - `_page`, `_links` (self/next/prev/first, absolute,
on the account's own host), `_embedded`; an empty result is 204 with no body
(Doc: amocrm.ru/developers/content/crm_platform/tags-api). Errors are application/problem+json with
`title`, `type`, `status`, `detail` (Doc: developers.kommo.com/docs/http-codes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlencode

from emulators.amocrm.store import AccountStore

DEFAULT_LIMIT = 50
MAX_LIMIT = 250  # Doc: amocrm-api-php PagesFilterTrait; maintainer in amocrm-api-php#209
HAL = "application/hal+json"
PROBLEM = "application/problem+json"
TITLES = {400: "Bad Request", 401: "Unauthorized", 402: "Payment Required", 403: "Forbidden", 404: "Not Found",
          405: "Method Not Allowed", 413: "Request Entity Too Large", 422: "Unprocessable Entity", 429: "Too Many Requests",
          500: "ErrInternalServer", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}


@dataclass
class Reply:
    status: int
    body: object = None
    content_type: str = HAL
    headers: dict[str, str] = field(default_factory=dict)


class ApiError(Exception):
    def __init__(self, status: int, detail: str, *, extra: dict | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.extra = status, detail, extra or {}

    def reply(self) -> Reply:
        return problem(self.status, self.detail, **self.extra)


def problem(status: int, detail: str, **extra) -> Reply:
    body = {"title": TITLES.get(status, "Error"), "type": f"https://httpstatus.es/{status}", "status": status,
            "detail": detail, **extra}
    if status == 500:  # Doc: reference §10 - the 500 body has a trace id and no type
        body.pop("type")
        body["trace_id"] = "emulator"
    return Reply(status, body, PROBLEM)


def validation_error(failures: list[tuple[str, str, str, str]]) -> ApiError:
    """[(request_id, code, path, detail)] -> 400 "Request validation failed" (Doc: amocrm.com/developers/content/api/errors)."""
    grouped: dict[str, list[dict]] = {}
    for request_id, code, path, detail in failures:
        grouped.setdefault(request_id, []).append({"code": code, "path": path, "detail": detail})
    return ApiError(400, "Request validation failed", extra={"validation-errors": [
        {"request_id": rid, "errors": errors} for rid, errors in grouped.items()]})


def paging(query: dict, max_limit: int = MAX_LIMIT) -> tuple[int, int]:
    """(page, limit). A `limit` over the list's maximum is refused, not cut down.

    Doc: developers.kommo.com/docs/http-codes (shared/reference/amocrm.md §10) - 422 "Limit 250 per
    page"; the maintainer in amocrm-api-php#210: API v4 returns at most 250 records a page.
    """
    try:
        page = max(1, int(query.get("page") or 1))
        limit = int(query.get("limit") or DEFAULT_LIMIT)
    except (TypeError, ValueError):
        raise ApiError(400, "page and limit must be integers") from None
    if limit > max_limit:
        raise ApiError(422, f"Limit {max_limit} per page")
    return page, max(1, limit)


def page_reply(base: str, path: str, pairs: list[tuple[str, str]], query: dict, key: str, items: list,
               render, *, max_limit: int = MAX_LIMIT) -> Reply:
    """One page of a list; `next` whenever the page is full, so a client may meet a final 204."""
    page, limit = paging(query, max_limit)
    chunk = items[(page - 1) * limit: page * limit]
    if not chunk:
        return Reply(204)

    def href(n: int) -> dict:
        rest = [(k, v) for k, v in pairs if k not in ("page", "limit")]
        return {"href": f"{base}{path}?{urlencode(rest + [('page', str(n)), ('limit', str(limit))])}"}

    links = {"self": href(page)}
    if len(chunk) == limit:
        links["next"] = href(page + 1)
    if page > 1:
        links["first"] = href(1)
        links["prev"] = href(page - 1)
    return Reply(200, {"_page": page, "_links": links, "_embedded": {key: [render(x) for x in chunk]}})


def total_reply(base: str, path: str, key: str, items: list) -> Reply:
    """A list that is not paged (pipelines, webhooks, links): `_total_items` instead of `_page`."""
    return Reply(200, {"_total_items": len(items), "_links": {"self": {"href": base + path}},
                       "_embedded": {key: items}})


def self_link(base: str, path: str) -> dict:
    return {"self": {"href": base + path}}


def with_set(query: dict) -> set[str]:
    return {w.strip() for w in str(query.get("with") or "").split(",") if w.strip()}


def render_entity(store: AccountStore, base: str, entity: str, obj: dict, withs: set[str]) -> dict:
    """A lead, contact or company as the API shows it."""
    out = {k: v for k, v in obj.items() if k not in ("tags", "contacts", "companies", "leads", "source_id",
                                                     "is_price_modified_by_robot")}
    out["_links"] = self_link(base, f"/api/v4/{entity}/{obj['id']}")
    tags = [store.tags[entity][t] for t in obj.get("tags", []) if t in store.tags[entity]]
    embedded: dict = {"tags": [({"id": t["id"], "name": t["name"], "color": t["color"]} if entity == "leads"
                                else {"id": t["id"], "name": t["name"], "color": None}) for t in tags]}
    if entity == "leads":
        embedded["companies"] = [{"id": c, "_links": self_link(base, f"/api/v4/companies/{c}")}
                                 for c in obj.get("companies", [])]
        if "contacts" in withs:
            embedded["contacts"] = [{"id": c, "is_main": bool(main), "_links": self_link(base, f"/api/v4/contacts/{c}")}
                                    for c, main in obj.get("contacts", [])]
        if "catalog_elements" in withs:
            embedded["catalog_elements"] = [{"id": link["to_entity_id"], "metadata": dict(link["metadata"])}
                                            for link in store.links.get(obj["id"], [])
                                            if link["to_entity_type"] == "catalog_elements"]
        if "loss_reason" in withs:
            embedded["loss_reason"] = []
        # Doc: developers.kommo.com/reference/leads-list - `source_id` and `is_price_modified_by_robot`
        # only with their `with=`
        if "source_id" in withs:
            out["source_id"] = obj.get("source_id")
        if "is_price_modified_by_robot" in withs:
            out["is_price_modified_by_robot"] = bool(obj.get("is_price_modified_by_robot", False))
    elif entity == "contacts":
        embedded["companies"] = [{"id": c, "_links": self_link(base, f"/api/v4/companies/{c}")}
                                 for c in obj.get("companies", [])]
        if "leads" in withs:
            embedded["leads"] = [{"id": lead_id, "_links": self_link(base, f"/api/v4/leads/{lead_id}")}
                                 for lead_id in store_leads_of(store, "contacts", obj["id"])]
    elif entity == "companies":
        if "contacts" in withs:
            embedded["contacts"] = [{"id": c, "_links": self_link(base, f"/api/v4/contacts/{c}")}
                                    for c in obj.get("contacts", [])]
        if "leads" in withs:
            embedded["leads"] = [{"id": lead_id, "_links": self_link(base, f"/api/v4/leads/{lead_id}")}
                                 for lead_id in store_leads_of(store, "companies", obj["id"])]
    out["_embedded"] = embedded
    return out


def store_leads_of(store: AccountStore, entity: str, entity_id: int) -> list[int]:
    if entity == "contacts":
        return [lead["id"] for lead in store.leads.values() if any(c == entity_id for c, _ in lead["contacts"])]
    return [lead["id"] for lead in store.leads.values() if entity_id in lead["companies"]]
