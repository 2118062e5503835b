"""What the webhook (or the app's token) may do on this portal, read once before writing, so each step
that needs more is said and done another way instead of failing the run.

One request: `scope` (the webhook's or app's scopes; Doc: api-reference/common/system/scope.md) and
`profile` (`ADMIN`: may the user manage the portal; Doc: api-reference/common/users/profile.md,
user-admin.md), both of the basic scope, in one `batch`. What needs what (each method's page, "Scope"
and "Кто может выполнять метод"): tasks `task`; business process starts and template lists `bizproc`
and an administrator (api-reference/bizproc/bizproc-workflow-start.md, template/bizproc-workflow-template-list.md);
card fields `crm` and a CRM administrator (crm/contacts/userfield/crm-contact-userfield-add.md); robots
`bizproc`, an administrator and the app (bizproc-robot/bizproc-robot-add.md); users `user`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from connector.bitrix.client import BitrixClient
from connector.errors import CrmError

log = logging.getLogger(__name__)

# feature -> (scope it needs, needs an administrator)
NEEDS = {
    "tasks": ("task", False),
    "workflows": ("bizproc", True),
    "card_fields": ("crm", True),
    "robots": ("bizproc", True),
    "users": ("user", False),
    "tabs": ("placement", True),  # Doc: api-reference/widgets/placement-bind.md (administrator, scope placement)
    "messenger": ("imopenlines", False),  # Doc: imopenlines/openlines/messages/imopenlines-crm-message-add.md
}
WHY = {  # why a step was done another way, in the playbook's language (it lands in a manager's task)
    "ru": {"scope": "у вебхука (приложения) нет права «{scope}»",
           "admin": "пользователь вебхука (приложения) не администратор портала"},
    "en": {"scope": "the webhook (app) lacks the scope \"{scope}\"",
           "admin": "the webhook's (app's) user is not a portal administrator"},
}
WHAT = {"tasks": "manager tasks (tasks.task.add)", "workflows": "business process starts (bizproc.workflow.start)",
        "card_fields": "card fields (crm.*.userfield.add)", "robots": "robots (bizproc.robot.add)",
        "tabs": "the customer's tab in contact and company cards (placement.bind)", "users": "checking that managers are still active (user.get)",
        "messenger": "messages into customers' open-line chats (imopenlines.crm.message.add)"}
INSTEAD = {"tasks": "written as comments on the customer's card", "workflows": "written as manager tasks",
           "card_fields": "not created; card values are not written", "robots": "not registered",
           "tabs": "not added; the app's page still works", "users": "tasks go to the customer's manager as the card names them",
           "messenger": "messenger steps go to their next channel"}


@dataclass(frozen=True)
class Rights:
    """None means not known (the check itself was refused): the step is tried and its own answer counts."""

    scopes: frozenset[str] | None = None
    admin: bool | None = None

    def lacks(self, feature: str) -> list[str]:
        """What `feature` lacks here: "scope" and/or "admin" (empty: it may run)."""
        scope, admin = NEEDS[feature]
        out = []
        if self.scopes is not None and scope not in self.scopes and not (
                scope == "user" and self.scopes & {"user_brief", "user_basic"}):
            out.append("scope")
        if admin and self.admin is False:
            out.append("admin")
        return out

    def allows(self, feature: str) -> bool:
        return not self.lacks(feature)

    def why(self, feature: str, lang: str = "ru") -> str:
        """Why `feature` cannot run, in the playbook's language ("" when it can)."""
        words = WHY.get(lang, WHY["ru"])
        scope = NEEDS[feature][0]
        return "; ".join(words[k].format(scope=scope) for k in self.lacks(feature))

    def missing(self, features=("tasks", "workflows", "card_fields", "robots", "users")) -> list[dict]:
        """What an admin reads in the run summary: each feature that cannot run, what it needs, what happens."""
        out = []
        for feature in features:
            lacks = self.lacks(feature)
            if lacks:
                needs = [f"scope {NEEDS[feature][0]}" if k == "scope" else "an administrator" for k in lacks]
                out.append({"feature": feature, "needs": needs,
                            "message": f"{WHAT[feature]} need {' and '.join(needs)}: {INSTEAD[feature]}"})
        return out


def read_rights(client: BitrixClient) -> Rights:
    """The webhook's scopes and whether its user is an administrator, in one request."""
    try:
        sent = client.batch({"scope": ("scope", {}), "profile": ("profile", {})})
    except CrmError as exc:  # an old portal or a network blip: every step is tried and answers for itself
        log.warning("bitrix rights=unknown error=%s", exc)
        return Rights()
    scopes = sent.result.get("scope")
    profile = sent.result.get("profile")
    rights = Rights(scopes=frozenset(str(s) for s in scopes) if isinstance(scopes, list) else None,
                    admin=_flag(profile.get("ADMIN")) if isinstance(profile, dict) else None)
    log.info("bitrix rights scopes=%s admin=%s", ",".join(sorted(rights.scopes or ())) or "?", rights.admin)
    return rights


def _flag(value) -> bool | None:
    if isinstance(value, bool):
        return value
    if value in (None, ""):
        return None
    return str(value).strip().lower() in ("true", "y", "1")
