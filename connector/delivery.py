"""Touches (steps that name their channels) fitted to what this CRM can deliver, and the manager
task that ends a channel list saying why no channel reached the customer.

The playbook picked the first channel that can reach the customer (playbooks.channels); here a
channel this CRM cannot use (no such writer, no mailbox on the portal) moves the touch on to the
next one, and the last resort is a manager task holding the customer's text and the reasons, in the
playbook's language. CRM-neutral: capabilities are data (`CrmAdapter.capabilities`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import replace

from connector.model import Action, ActionKind
from playbooks.channels import KIND_OF, is_touch, next_channel

CHANNEL_NAMES = {
    "ru": {"email": "e-mail", "messenger": "мессенджер", "sms": "SMS", "task": "задача", "bot": "Salesbot"},
    "en": {"email": "e-mail", "messenger": "messenger", "sms": "SMS", "task": "task", "bot": "Salesbot"},
}
REASONS = {
    "ru": {"missing_value": "в тексте нет значения для этого клиента ({names})",
           "refused": "клиент отказался от этого канала", "no_email": "в карточке нет e-mail",
           "no_phone": "в карточке нет телефона",
           "no_contact": "в карточке нет ни телефона, ни e-mail", "not_supported": "CRM не отправляет через этот канал",
           "no_mailbox": "в CRM не подключён почтовый ящик для отправки",
           "no_chat": "у клиента нет открытого чата", "refused_by_crm": "CRM отклонила отправку",
           "no_bot": "в amoCRM не настроен Salesbot для наших текстов (AMOCRM_SALESBOT_ID)",
           "bot_busy": "клиенту уже отправляется другой текст в этом запуске",
           "no_openlines": "у вебхука (приложения) нет доступа к открытым линиям (право imopenlines)",
           "no_sms_robot": "администратор не отметил, что робот «Отправить SMS» привязан к триггеру "
                           "repeat-sales (BITRIX_SMS_ROBOT)",
           "no_app": "SMS отправляются только из приложения Битрикс24, не через входящий вебхук",
           "no_trigger": "триггер repeat-sales не зарегистрирован: выполните repeat-sales install из приложения",
           "no_deal": "у клиента нет сделки, на которой сработал бы робот SMS",
           "not_installed": "поле для текста не создано: выполните repeat-sales install"},
    "en": {"missing_value": "the text has no value for this customer ({names})",
           "refused": "the customer refused this channel", "no_email": "the card has no e-mail address",
           "no_phone": "the card has no phone",
           "no_contact": "the card has neither a phone nor an e-mail", "not_supported": "the CRM cannot send through this channel",
           "no_mailbox": "no mailbox is connected in the CRM to send from",
           "no_chat": "the customer has no open chat", "refused_by_crm": "the CRM refused to send it",
           "no_bot": "no amoCRM Salesbot is set for our texts (AMOCRM_SALESBOT_ID)",
           "bot_busy": "another text goes to this customer in this run",
           "no_openlines": "the webhook (app) has no access to open lines (scope imopenlines)",
           "no_sms_robot": "the admin has not confirmed that the robot \"Send SMS\" is bound to the "
                           "repeat-sales trigger (BITRIX_SMS_ROBOT)",
           "no_app": "SMS are sent only from the Bitrix24 app, not through an incoming webhook",
           "no_trigger": "the repeat-sales trigger is not registered: run repeat-sales install from the app",
           "no_deal": "the customer has no deal for the SMS robot to run on",
           "not_installed": "the field for the text is missing: run repeat-sales install"},
}
HEADS = {"ru": ("Клиенту не отправлено автоматически: {why}.", "Текст для клиента:"),
         "en": ("Not sent to the customer automatically: {why}.", "The customer's text:")}


def prepare(plan: Iterable[Action], capable: frozenset[ActionKind], *, lang: str, sender: str,
            why_not: Mapping[ActionKind, str] | None = None) -> list[Action]:
    """Touches in kinds this CRM delivers (or a manager task that says why); other actions as they are.

    `why_not`: kinds the CRM cannot deliver this run and why (no scope for chats), said instead of
    "not supported"."""
    out = []
    for action in plan:
        if not is_touch(action):
            out.append(action)
            continue
        said_how = {"lang": lang, **({"from": sender} if sender else {})}
        if type(action.payload) is dict:  # the touch's own dict (playbooks.rules.base.make_action): filled in
            action.payload.update(said_how)  # place: a copy beside the evaluation's was 30 MB at 200,000 customers
        else:
            action = replace(action, payload={**action.payload, **said_how})
        if action.kind not in capable:
            why = (why_not or {}).get(action.kind, "not_supported")
            action = said(next_channel(action, why, capable) or fallen(action, why), why_not)
        out.append(as_manager_task(action) if action.kind == ActionKind.TASK else action)
    return out


def fallen(action: Action, reason: str) -> Action:
    """No channel left: the touch as a manager task, its reasons recorded."""
    via = str(action.payload.get("via") or "")
    tried = [*action.payload.get("tried", []), [via, reason]] if via and via != "task" else action.payload.get("tried", [])
    return replace(action, kind=ActionKind.TASK, payload={**action.payload, "via": "task", "tried": tried})


def after_refusal(action: Action, reason: str, capable: Iterable[ActionKind],
                  why_not: Mapping[ActionKind, str] | None = None) -> Action:
    """The CRM could not deliver the touch by its channel: the next channel, or a manager task.

    `why_not`: kinds the CRM stopped delivering this run and why (no mailbox), said instead of
    "not supported" for the channels passed over on the way."""
    moved = said(next_channel(action, reason, capable) or fallen(action, reason), why_not)
    return as_manager_task(moved) if moved.kind == ActionKind.TASK else moved


def said(action: Action, why_not: Mapping[ActionKind, str] | None) -> Action:
    """The channels passed over as "not supported" with the CRM's own reason where it gave one."""
    if not why_not:
        return action
    tried = [[c, why_not.get(KIND_OF.get(c), r) if r == "not_supported" else r]
             for c, r in action.payload.get("tried") or []]
    return replace(action, payload={**action.payload, "tried": tried})


def why(action: Action) -> str:
    """The passed-over channels and their reasons, in the playbook's language ("" when none)."""
    lang = "en" if action.payload.get("lang") == "en" else "ru"
    names, reasons = CHANNEL_NAMES[lang], REASONS[lang]
    missing = ", ".join("{" + n + "}" for n in action.payload.get("missing") or [])
    return "; ".join(f"{names.get(c, c)} — {reasons.get(r, r).format(names=missing)}"
                     for c, r in action.payload.get("tried") or [])


def as_manager_task(action: Action) -> Action:
    """The manager's task for a touch no channel could deliver: why, what to do, the customer's text."""
    lang = "en" if action.payload.get("lang") == "en" else "ru"
    head, text_head = HEADS[lang]
    reasons = why(action)
    customer_text = "\n".join(x for x in (str(action.payload.get("subject") or ""),
                                          str(action.payload.get("text") or "")) if x)
    parts = [head.format(why=reasons) if reasons else "", action.body.strip(),
             f"{text_head}\n{customer_text}" if customer_text else ""]
    return replace(action, kind=ActionKind.TASK, body="\n\n".join(p for p in parts if p))


def fallbacks(actions: Iterable[Action]) -> dict[str, int]:
    """How many touches passed over which channel and why (`email:no_mailbox`), for the run summary."""
    counts = Counter(f"{c}:{r}" for a in actions if is_touch(a) for c, r in a.payload.get("tried") or [])
    return dict(sorted(counts.items()))
