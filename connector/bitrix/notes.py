"""Touches whose channel keeps nothing of ours (a chat message, an SMS): the card's timeline comment says
what the customer was sent and ends with `rs:<key>`, so the touch is found again by its key.

Why a comment: an open-line message (`imopenlines.crm.message.add`) takes only the text the customer
reads, and an SMS robot sends a field's value; neither has a hidden field like an activity's ORIGIN_ID.
The comment is written in the same `batch` as the send and before it (commands run in order), so a run
killed after sending its request leaves both or neither; a refused send takes its comment back. The
manager reading the card sees what the customer got, in the playbook's language.
Doc: api-reference/crm/timeline/comments/crm-timeline-comment-add.md, crm-timeline-comment-list.md
(ENTITY_ID and ENTITY_TYPE required in the filter), crm-timeline-comment-delete.md.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

from connector.bitrix.batching import send_groups, send_in_slices
from connector.bitrix.client import BitrixClient
from connector.bitrix.pull import list_pages
from connector.crm import CrmRef, WriteOutcome, marker
from connector.model import Action

MARKER_RE = re.compile(r"rs:(v\d+:\S+)")


class CardNotes:
    """Marker comments of touches, each kind told apart from other comments by its heads
    (`heads`: the first words of a comment -> the ref kind it records)."""

    def __init__(self, client: BitrixClient, *, customer_key: str, heads: Mapping[str, str]) -> None:
        self.client = client
        self.entity = "company" if customer_key == "company" else "contact"
        self.owner_type = 4 if self.entity == "company" else 3
        self.heads = dict(heads)

    def add(self, customer_id: str, text: str, key: str) -> tuple[str, dict]:
        return ("crm.timeline.comment.add", {"fields": {
            "ENTITY_ID": int(customer_id), "ENTITY_TYPE": self.entity, "COMMENT": f"{text}\n\n{marker(key)}"}})

    def delete(self, comment_id: object) -> tuple[str, dict]:
        return ("crm.timeline.comment.delete", {"id": comment_id, "ownerTypeId": self.owner_type})

    def settle(self, sendable: Sequence[Action], outcomes: dict[str, WriteOutcome], sent, undo: list[dict],
               redo: list[dict], kind: str) -> None:
        """After a batch of (marker comment, send) pairs: delete the markers of refused sends (`undo`),
        write again the markers a send went out without (`redo`, labelled c<i> like the batch), and when
        the batch itself went out twice keep the oldest marker of each key."""
        if undo or redo:
            again = send_groups(self.client, undo + redo)
            for i, action in enumerate(sendable):
                if again.result.get(f"c{i}"):
                    outcomes[action.key] = WriteOutcome(action.key, True, CrmRef(kind, str(again.result[f"c{i}"])))
        if sent.resent:
            found = self.find([a.key for a in sendable])
            outcomes.update({k: WriteOutcome(k, True, ref) for k, ref in found.items()})

    def find(self, keys: Iterable[str]) -> dict[str, CrmRef]:
        """Keys this kind's comments carry: one list command per customer, 50 to a request."""
        wanted = set(keys)
        customers = sorted({k.split(":")[1] for k in wanted if k.split(":")[1].isdigit()})
        if not customers:
            return {}

        def params(customer_id: str) -> dict:
            return {"filter": {"ENTITY_ID": int(customer_id), "ENTITY_TYPE": self.entity},
                    "select": ["ID", "COMMENT"], "order": {"ID": "ASC"}}

        seen: dict[str, list[int]] = defaultdict(list)
        kinds: dict[str, str] = {}
        groups = ({f"n{c}": ("crm.timeline.comment.list", params(c))} for c in customers)
        for sent in send_in_slices(self.client, groups):  # a slice's comment texts at a time
            for label, rows in sent.result.items():
                if label in sent.next:  # a long timeline: read it to its end
                    rows = [r for page in list_pages(self.client, "crm.timeline.comment.list", params(label[1:]))
                            for r in page]
                for row in rows if isinstance(rows, list) else []:
                    text = str(row.get("COMMENT") or "")
                    kind = next((k for head, k in self.heads.items() if text.startswith(head)), None)
                    if kind is None:
                        continue  # a business process note or a manager's comment, not a touch
                    for key in MARKER_RE.findall(text):
                        if key in wanted:
                            seen[key].append(int(row["ID"]))
                            kinds[key] = kind
        return {key: CrmRef(kinds[key], str(min(ids))) for key, ids in seen.items()}
