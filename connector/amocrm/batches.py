"""Array writes to amoCRM in chunks, where a refused item does not sink the rest.

Doc: amocrm.com/developers/content/api/errors - a batch refused by validation writes nothing and
names the refused items by `request_id`; so those are reported and the rest is sent again.
Doc: developers.kommo.com/docs/limitations - up to 250 items a request, 50 recommended.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from connector.amocrm.client import AmoClient, AmoValidationError

CHUNK = 50
ROUNDS = 3  # a chunk refused by validation is resent without the named items, at most this often


def items_of(answer: object, key: str) -> list[dict]:
    embedded = answer.get("_embedded") if isinstance(answer, dict) else None
    items = embedded.get(key) if isinstance(embedded, dict) else None
    return [x for x in items if isinstance(x, dict)] if isinstance(items, list) else []


def send_rounds(client: AmoClient, method: str, path: str, bodies: Sequence[tuple[str, dict]], *,
                key: str | None, chunk: int = CHUNK,
                request_ids: Callable[[int, dict], str] | None = None) -> tuple[dict[str, dict], dict[str, str]]:
    """Send `(our id, body)` pairs; returns (our id -> the answer's item, our id -> why it was refused).

    Items come back in request order with the `request_id` sent (the body's, or its index); an
    endpoint without an answer body (`key` None) maps every accepted id to {}.
    """
    done: dict[str, dict] = {}
    refused: dict[str, str] = {}
    for start in range(0, len(bodies), chunk):
        pending = list(bodies[start:start + chunk])
        for _round in range(ROUNDS):
            if not pending:
                break
            sent_ids = [str(b.get("request_id", n)) if request_ids is None else request_ids(n, b)
                        for n, (_our, b) in enumerate(pending)]
            try:
                answer = client.request(method, path, json_body=[b for _our, b in pending], kind="write")
            except AmoValidationError as exc:  # nothing was written: refuse the named items, resend the rest
                named = exc.errors or {rid: exc.message for rid in sent_ids}
                keep = []
                for rid, (our, body) in zip(sent_ids, pending, strict=True):
                    if rid in named:
                        refused[our] = named[rid]
                    else:
                        keep.append((our, body))
                if len(keep) == len(pending):  # the refusal named none of ours: give up on all
                    refused.update({our: exc.message for our, _b in pending})
                    keep = []
                pending = keep
                continue
            items = items_of(answer, key) if key else []
            by_rid = {str(x.get("request_id")): x for x in items if x.get("request_id") is not None}
            for n, (rid, (our, _body)) in enumerate(zip(sent_ids, pending, strict=True)):
                done[our] = by_rid.get(rid) or (items[n] if n < len(items) else {})
            pending = []
        for our, _body in pending:
            refused[our] = "refused by validation"
    return done, refused
