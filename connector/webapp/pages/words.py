"""The pages' words in the playbook's language (Russian by default): no slug or metric key reaches a person.

Segment, stage, value, tier and rule names come from `playbooks.words` (one table for the report,
tasks, cards and pages); a playbook renames them in `[names.<group>]`, a tier also by its `label`.
"""

from __future__ import annotations

from playbooks.words import names_for

WORDS: dict[str, dict[str, str]] = {
    "ru": {
        "app": "Повторные продажи", "today": "Сегодня", "call_today": "Кому позвонить сегодня",
        "customer": "Клиент", "phone": "Телефон", "manager": "Менеджер", "why": "Зачем", "segment": "Сегмент",
        "card": "Карточка", "open_card": "открыть", "tomorrow": "План на завтра", "rule": "Правило",
        "channel": "Канал", "count": "Количество", "did": "Что сделал плагин и что это дало",
        "week": "Касания за неделю", "by_rule": "По правилам", "by_channel": "По каналам",
        "by_manager": "По менеджерам", "deals": "Повторные сделки", "created": "создано", "won": "выиграно",
        "revenue": "выручка", "tasks": "Задачи менеджерам", "written": "поставлено", "overdue": "просрочено",
        "done": "выполнено", "returning": "Доля вернувшихся клиентов", "returning_orders": "заказов",
        "returning_revenue": "выручки", "uplift": "Эффект против контрольной группы",
        "uplift_wait": "Пока мало данных, чтобы сравнить с контрольной группой",
        "segments": "Сегменты", "lifecycle": "Жизненный цикл", "ltv": "Прогноз ценности клиентов",
        "ltv_total": "Ожидаемая выручка от текущих клиентов", "customers": "Клиентов", "nobody": "Сегодня звонить некому",
        "nothing": "Ничего не запланировано", "settings": "Настройки сценария", "back": "На главную",
        "save": "Сохранить", "preview": "Проверить: что будет запланировано завтра", "restore": "Вернуть",
        "versions": "Сохранённые версии", "version": "Версия", "saved_at": "Сохранена", "saved_by": "Кем",
        "saved": "Сохранено: новая версия", "restored": "Возвращена версия", "fix": "Исправьте ошибку",
        "preview_title": "Что будет запланировано завтра", "samples": "Пять клиентов для примера",
        "holdout": "Контрольная группа, % клиентов", "cap": "Не больше касаний", "cap_days": "за дней",
        "quiet_days": "Тихие дни недели", "quiet_dates": "Тихие даты (ММ-ДД через запятую)",
        "steps": "Шаги", "admins_only": "Настройки может менять только администратор портала",
        "denied": "Портал не подтвердил вход. Откройте приложение из Битрикс24 заново.",
        "widget_denied": "Адрес страницы устарел или изменён. Откройте виджет в amoCRM заново.",
        "widget_admins": "Настройки может менять только администратор аккаунта amoCRM",
        "widget_readonly": "Настройки может менять только администратор аккаунта amoCRM: здесь они только для чтения.",
        "forbidden": "Действие не разрешено", "stale_form": "Форма устарела: откройте страницу заново.",
        "no_customer": "Этот клиент ещё не покупал: данных для прогноза нет.", "rfm": "RFM",
        "tier": "Уровень", "bonus": "Бонусный баланс", "chance": "Вероятность, что клиент вернётся",
        "predicted": "Прогноз выручки на год вперёд", "next_purchase": "Следующая покупка ожидается",
        "touches": "Касания", "planned": "запланировано", "status": "Статус", "due": "Когда", "step": "Шаг",
        "failed": "не удалось", "pending": "в работе", "no_touches": "Касаний пока не было",
        "purchases": "Покупок", "spent": "Потрачено", "last_purchase": "Последняя покупка",
        "explain": "Клиент покупал {n} раз(а), последний раз {days} дн. назад; такие клиенты возвращаются с "
                   "вероятностью {p}.",
        "explain_one": "Клиент покупал один раз: вероятность возврата по одной покупке не считаем.",
        "charts": "Графики отчёта", "rfm_grid": "RFM: давность и частота покупок", "no_model": "Прогноз пока "
        "недоступен: истории покупок мало.", "value": "Ценность", "title": "Заголовок", "body": "Текст задачи",
        "subject": "Тема письма", "text": "Текст для клиента", "channels": "Каналы по порядку", "day": "День",
        "after_days": "Через дней", "days_before": "За дней до", "silence_days": "Дней тишины",
        "enabled": "Включено", "none": "нет", "week_from": "с", "lang": "ru",
    },
    "en": {
        "app": "Repeat sales", "today": "Today", "call_today": "Who to call today", "customer": "Customer",
        "phone": "Phone", "manager": "Manager", "why": "Why", "segment": "Segment", "card": "Card",
        "open_card": "open", "tomorrow": "Planned for tomorrow", "rule": "Rule", "channel": "Channel",
        "count": "Count", "did": "What the plugin did and earned", "week": "Touches this week",
        "by_rule": "By rule", "by_channel": "By channel", "by_manager": "By manager", "deals": "Repeat deals",
        "created": "created", "won": "won", "revenue": "revenue", "tasks": "Tasks for managers",
        "written": "set", "overdue": "overdue", "done": "done", "returning": "Share from returning customers",
        "returning_orders": "orders", "returning_revenue": "revenue", "uplift": "Effect against the hold-out group",
        "uplift_wait": "Not enough data yet to compare with the hold-out group", "segments": "Segments",
        "lifecycle": "Lifecycle", "ltv": "Predicted customer value", "ltv_total": "Expected revenue from current "
        "customers", "customers": "Customers", "nobody": "Nobody to call today", "nothing": "Nothing planned",
        "settings": "Playbook settings", "back": "Back to the main page", "save": "Save",
        "preview": "Check: what tomorrow would plan", "restore": "Restore", "versions": "Saved versions",
        "version": "Version", "saved_at": "Saved", "saved_by": "By", "saved": "Saved: new version",
        "restored": "Restored version", "fix": "Fix the error", "preview_title": "What tomorrow would plan",
        "samples": "Five sample customers", "holdout": "Hold-out group, % of customers", "cap": "At most touches",
        "cap_days": "per days", "quiet_days": "Quiet weekdays", "quiet_dates": "Quiet dates (MM-DD, comma separated)",
        "steps": "Steps", "admins_only": "Only a portal administrator may change the settings",
        "denied": "The portal did not confirm the sign-in. Open the app from Bitrix24 again.",
        "widget_denied": "This page's address has expired or was changed. Open the widget in amoCRM again.",
        "widget_admins": "Only an amoCRM account administrator may change the settings",
        "widget_readonly": "Only an amoCRM account administrator may change the settings: they are read-only here.",
        "forbidden": "Not allowed", "stale_form": "The form is stale: open the page again.",
        "no_customer": "This customer has not bought yet: nothing to predict from.", "rfm": "RFM",
        "tier": "Tier", "bonus": "Bonus balance", "chance": "Chance the customer returns",
        "predicted": "Predicted revenue over the next year", "next_purchase": "Next purchase expected",
        "touches": "Touches", "planned": "planned", "status": "Status", "due": "When", "step": "Step",
        "failed": "failed", "pending": "in progress", "no_touches": "No touches yet", "purchases": "Purchases",
        "spent": "Spent", "last_purchase": "Last purchase",
        "explain": "Bought {n} times, last {days} days ago; customers like this return with a chance of {p}.",
        "explain_one": "Bought once: a chance of return from a single purchase is not estimated.",
        "charts": "The report's charts", "rfm_grid": "RFM: recency and frequency", "no_model": "No prediction yet: "
        "the purchase history is too short.", "value": "Value", "title": "Title", "body": "Task text",
        "subject": "E-mail subject", "text": "Text for the customer", "channels": "Channels in order", "day": "Day",
        "after_days": "After days", "days_before": "Days before", "silence_days": "Days of silence",
        "enabled": "On", "none": "none", "week_from": "from", "lang": "en",
    },
}

CHANNELS = {
    "ru": {"task": "Задача", "call": "Звонок", "email": "Письмо", "sms": "SMS", "messenger": "Мессенджер"},
    "en": {"task": "Task", "call": "Call", "email": "E-mail", "sms": "SMS", "messenger": "Messenger"},
}
WEEKDAYS = {"ru": {"mon": "пн", "tue": "вт", "wed": "ср", "thu": "чт", "fri": "пт", "sat": "сб", "sun": "вс"},
            "en": {"mon": "Mon", "tue": "Tue", "wed": "Wed", "thu": "Thu", "fri": "Fri", "sat": "Sat", "sun": "Sun"}}
CURRENCY = {"RUB": "₽", "USD": "$", "EUR": "€"}


class Words:
    """Every word a page shows, for one playbook."""

    def __init__(self, playbook) -> None:
        self.lang = "en" if getattr(playbook, "lang", "ru") == "en" else "ru"
        self.w = WORDS[self.lang]
        self.currency = CURRENCY.get(getattr(playbook, "currency", "RUB"), getattr(playbook, "currency", ""))
        # one name table for the product (playbooks/words.py): the playbook's [names] reach the pages too
        self.names = names_for(playbook)

    def __getitem__(self, key: str) -> str:
        return self.w[key]

    def segment(self, name: str) -> str:
        return self.names.segment(name)

    def lifecycle(self, name: str) -> str:
        return self.names.lifecycle(name)

    def value(self, name: str) -> str:
        return self.names.value(name)

    def tier(self, name: str) -> str:
        return self.names.tier(name)

    def rule(self, name: str) -> str:
        return self.names.rule(name)

    def channel(self, name: str) -> str:
        return CHANNELS[self.lang].get(name, name)

    def status(self, name: str) -> str:
        return {"done": self.w["done"], "failed": self.w["failed"]}.get(name, self.w["pending"])

    def number(self, value: float | int | None, digits: int = 0) -> str:
        if value is None:
            return "—"
        text = f"{value:,.{digits}f}"
        return text.replace(",", "\u00a0").replace(".", ",") if self.lang == "ru" else text

    def money(self, value: float | None) -> str:
        if value is None:
            return "—"
        amount = self.number(round(value))
        return f"{amount}\u00a0{self.currency}" if self.lang == "ru" else f"{self.currency}{amount}"

    def share(self, value: float | None) -> str:
        if value is None:
            return "—"
        return f"{self.number(value * 100, 1)}\u00a0%" if self.lang == "ru" else f"{value * 100:.1f}%"

    def day(self, iso: str | None) -> str:
        if not iso:
            return "—"
        y, m, d = str(iso)[:10].split("-")
        return f"{d}.{m}.{y}" if self.lang == "ru" else f"{y}-{m}-{d}"
