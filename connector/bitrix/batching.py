"""Write commands packed 50 to a `batch`, chained by `$result[label]`, with per-command outcomes.

Doc: settings/how-to-call-rest-api/batch.md - at most 50 commands; a later command may use an
earlier one's result as `$result[cmd][field]` (sent as is, not percent-encoded); HTTP 200 even
when commands fail, each failure under `result_error`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import islice
from urllib.parse import unquote

from connector.bitrix.client import BATCH_LIMIT, BatchResult, BitrixClient, php_query

_ENCODED_REF = re.compile(r"%24(result|result_total|result_next)((?:%5B[A-Za-z0-9_]*%5D)+)")
Commands = Mapping[str, tuple[str, Mapping[str, object]]]
SLICE = 10 * BATCH_LIMIT  # groups a slice of send_in_slices: 10 whole batches (2,500 customers' tasks read back held ~11 MB)


def ref(label: str) -> str:
    """An earlier command's result inside a later command's parameters: `$result[d0]`."""
    return f"$result[{label}]"


def reason(err: Mapping | None) -> str:
    """The portal's words for a refused command (its text often ends in `<br>`)."""
    if not isinstance(err, Mapping):
        return "refused"
    text = str(err.get("error_description") or err.get("error") or "refused").strip()
    return text.removesuffix("<br>").strip() or "refused"


@dataclass
class Sent:
    """The merged outcome of several batches, and how many HTTP requests carried them."""

    result: dict[str, object] = field(default_factory=dict)
    errors: dict[str, dict] = field(default_factory=dict)
    next: dict[str, int] = field(default_factory=dict)
    batches: int = 0
    requests: int = 0

    @property
    def resent(self) -> bool:
        """fast-bitrix24 resent a batch after a 5xx or a dropped connection: writes may be doubled."""
        return self.requests > self.batches


def send(client: BitrixClient, commands: Commands) -> BatchResult:
    """One `batch` request of at most 50 commands; `$result[...]` references stay literal."""
    if len(commands) > BATCH_LIMIT:
        raise ValueError(f"a batch holds at most {BATCH_LIMIT} commands, got {len(commands)}")
    cmd = {label: _ENCODED_REF.sub(lambda m: unquote(m.group(0)), f"{method}?{php_query(params)}")
           for label, (method, params) in commands.items()}
    answer = client.call("batch", {"halt": 0, "cmd": cmd})["result"]
    out = BatchResult()
    for part, target in (("result", out.result), ("result_error", out.errors), ("result_total", out.total),
                         ("result_next", out.next)):
        value = answer.get(part) if isinstance(answer, dict) else None
        if isinstance(value, dict):  # empty parts come as [] (Doc: batch.md)
            target.update(value)
    return out


def send_groups(client: BitrixClient, groups: Iterable[Commands]) -> Sent:
    """Groups of chained commands, never split across batches, packed up to 50 commands a request."""
    sent = Sent()
    pending: dict[str, tuple[str, Mapping[str, object]]] = {}

    def flush() -> None:
        if not pending:
            return
        before = client.requests
        res = send(client, pending)
        sent.requests += client.requests - before
        sent.batches += 1
        sent.result.update(res.result)
        sent.errors.update(res.errors)
        sent.next.update(res.next)
        pending.clear()

    for group in groups:
        if len(pending) + len(group) > BATCH_LIMIT:
            flush()
        pending.update(group)
    flush()
    return sent


def send_in_slices(client: BitrixClient, groups: Iterable[Commands], per: int | None = None) -> Iterator[Sent]:
    """send_groups a slice of `per` groups at a time, the groups made as they are taken (a generator)
    and each slice's answers let go before the next is read: a read-back of a whole run's writes
    otherwise holds a command and an answer for every customer written to at once. One-command
    groups cost the same requests as one send_groups."""
    groups = iter(groups)
    while piece := list(islice(groups, per or SLICE)):
        yield send_groups(client, piece)
