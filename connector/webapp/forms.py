"""Strict parsing of what CRMs POST: `application/x-www-form-urlencoded` with PHP bracket nesting.

`auth[member_id]=x&data[FIELDS][ID]=7&document_id[0]=crm` -> {"auth": {"member_id": "x"},
"data": {"FIELDS": {"ID": "7"}}, "document_id": {"0": "crm"}}. Anything malformed is a 400
(WebhookRejected) before any check or change.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

from connector.errors import WebhookRejected

MAX_FIELDS = 2000
MAX_DEPTH = 6
_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_PART = re.compile(r"\[([^\[\]]*)\]")


def parse_form(body: bytes, content_type: str | None) -> dict:
    ctype = (content_type or "").split(";", 1)[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        raise WebhookRejected(400, "expected an application/x-www-form-urlencoded body")
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text), max_num_fields=MAX_FIELDS,
                          errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise WebhookRejected(400, "the body is not a well-formed form") from None
    out: dict = {}
    for key, value in pairs:
        m = _KEY.match(key)
        if not m:
            raise WebhookRejected(400, "the body has a malformed field name")
        path = [m.group(1), *_PART.findall(m.group(2))]
        if len(path) > MAX_DEPTH:
            raise WebhookRejected(400, "the body nests too deep")
        node = out
        for i, part in enumerate(path):
            if part == "":  # `key[]`: the next free index, as PHP does
                part = str(sum(1 for k in node if k.isdigit()))
            if i == len(path) - 1:
                if isinstance(node.get(part), dict):
                    raise WebhookRejected(400, "the body gives a field both a value and sub-fields")
                node[part] = value
            else:
                child = node.setdefault(part, {})
                if not isinstance(child, dict):
                    raise WebhookRejected(400, "the body gives a field both a value and sub-fields")
                node = child
    return out


def text_field(form: dict, *path: str, max_len: int = 512) -> str:
    """A string at `path` (e.g. "auth", "member_id"), or "" when absent; a dict or an overlong value is a 400."""
    node: object = form
    for part in path:
        if not isinstance(node, dict):
            return ""
        node = node.get(part)
    if node is None:
        return ""
    if not isinstance(node, str) or len(node) > max_len:
        raise WebhookRejected(400, f"field {'/'.join(path)} is malformed")
    return node
