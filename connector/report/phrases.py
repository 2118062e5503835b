"""The report's words in the playbook's language: titles, leads, axis labels and table heads.

Names of segments, metrics and rules come from `playbooks.words` (the report dict carries them);
here are the sentences around them. `{...}` fields are filled with `str.format`.
"""

from __future__ import annotations

EN: dict[str, str] = {
    "title": "Repeat sales report", "as_of": "as of {day}", "customers_purchases": "{customers} customers, {purchases} purchases",
    "amounts_in": "amounts in {currency}", "footer": "repeat-sales report · actions in the ledger: {ledger} · last sync: {sync}",
    "none": "none", "unknown": "unknown", "none_yet": "(none yet)",
    "card_predicted": "Predicted revenue, next 12 months", "card_predicted_sub": "{value} per customer",
    "card_expected": "Purchases expected, next 90 days", "card_expected_sub": "{value} per customer",
    "since": "since {month}", "kpi_retention": "Retention, 12 months", "kpi_ltv": "Revenue per customer",
    "sec_trend": "Metrics and their trend",
    "lead_trend": "Each point is the metric as of that month end; the last point is today ({day}), a month "
                  "still running. The table holds today's values.",
    "axis_share": "share of customers", "axis_count": "customers", "axis_number": "purchases", "axis_month": "month end",
    "today": "today", "metric": "metric", "value": "value",
    "sec_segments": "Segments and migration",
    "lead_segments": "Named RFM segments today ({customers} customers). The hold-out group ({holdout} customers, "
                     "{share} chosen at random) is inside the segments, not one of them: its customers get no "
                     "touches, so the rules' effect can be measured against them.",
    "ch_segments": "Customers per segment", "ch_lifecycle": "Customers per lifecycle stage",
    "ax_lifecycle": "lifecycle stage", "ch_migration": "Segment migration, {start} to {end}",
    "ax_to": "segment today (to)", "ax_from": "segment 90 days ago (from)",
    "migration_sub": "{moved} of {total} customers changed segment; '{none}' / '{nop}': not a customer yet",
    "sec_rfm": "RFM grid", "ch_rfm": "RFM grid: recency × frequency",
    "lead_rfm": "Customers by recency and frequency score (quintiles unless the playbook fixes edges); each cell "
                "shows how many and their average spend.",
    "ax_f": "frequency score (F5 = most purchases)", "ax_r": "recency score (R5 = most recent)",
    "legend_rfm": "customers; second line: average spend", "avg": "avg {value}",
    "sec_cohorts": "Cohort retention", "ch_cohorts": "Monthly cohort retention",
    "lead_cohorts": "Cohort = month of the first purchase; a cell is the share of the cohort buying in month +k "
                    "(+0 is 100% by definition; the current month is partial).",
    "ax_cohort_x": "months after the first purchase", "ax_cohort_y": "cohort: month of first purchase",
    "legend_cohort": "share of the cohort buying that month",
    "sec_first": "Repeat rate by first product", "ch_first": "Repeat rate by category of the first purchase",
    "lead_first": "Grouped by the category (or product) of the biggest line of the first purchase. The {days}-day "
                  "rate counts only customers whose first purchase is at least {days} days old.",
    "s_ever": "bought again (ever)", "s_within": "bought again within {days} days",
    "ax_first": "category of the first purchase", "h_first": "first purchase", "h_customers": "customers",
    "h_repeat_rate": "repeat rate", "h_aged": "customers {days}+ days old", "h_repeat_within": "repeat within {days} days",
    "other": "other", "no_items": "(no line items)", "unnamed": "(unnamed product)",
    "sec_rules": "Did the rules sell?",
    "lead_rules": "Actions written by each rule (ledger) and purchases within {days} days, against the hold-out "
                  "group. {span}; with fewer than {min} episodes in a group there is no verdict.",
    "span": "Exposure days {first} to {last} ({days} sync days replayed)",
    "no_span": "No action has finished its {days}-day window yet",
    "ch_conv": "Bought within {days} days: treated vs hold-out", "s_treated": "treated", "s_holdout": "hold-out",
    "ax_conv_y": "bought within the window", "ax_conv_x": "rule (episodes: treated / held out)",
    "ch_uplift": "Uplift with 95% interval", "ax_uplift": "treated minus hold-out, percentage points",
    "h_rule": "rule", "h_written": "actions written", "h_treated": "episodes treated", "h_converted": "converted",
    "h_held": "hold-out episodes", "h_waiting": "window not over", "h_uplift": "uplift (95% CI)", "h_verdict": "verdict",
    "sec_lifetime": "Predicted customer lifetime",
    "lead_lifetime": "BG/NBD (Fader, Hardie & Lee 2005) for the chance a customer is still buying and the purchases "
                     "to expect; Gamma-Gamma for the spend per purchase; predicted LTV = expected spend × expected "
                     "purchases over the next 365 days, not discounted.",
    "one_time": "One-time buyers ({n}) get no chance of return: with a single purchase the model cannot tell "
                "whether they left (it would say 100 %); their expected purchases still fall as their silence grows.",
    "no_model": "no lifetime model", "no_model_why": "no lifetime model: see the note above",
    "ch_palive": "Chance the customer still buys (repeat buyers)", "ax_palive": "chance still a customer",
    "ch_ltv_seg": "Predicted LTV per customer, by segment", "ax_ltv_seg": "expected spend in the next 365 days ({currency})",
    "p_alive_note": "still buying {value}", "h_model": "model", "h_params": "parameters", "time_unit": "time unit",
    "top_title": "Top customers by predicted LTV", "h_customer": "customer", "h_manager": "manager",
    "h_segment": "segment", "h_purchases": "purchases", "h_spend": "spend", "h_palive": "chance still buying",
    "h_exp90": "purchases in 90 days", "h_pltv": "predicted LTV, 365 days", "one_purchase": "– (one purchase)",
    "manager_id": "ID {id}", "st_done": "written", "st_pending": "pending", "st_failed": "failed",
    # text report
    "t_head": "Repeat sales report: {account}, as of {day}: {customers} customers, {purchases} purchases "
              "(amounts in {currency})",
    "t_metrics": "Metrics", "t_now": "today", "t_then": "as of {day}", "t_segments": "Segments",
    "t_holdout": "Hold-out group (inside the segments): {n} customers",
    "t_moves": "Biggest segment moves, {start} to {end}", "t_from": "from", "t_to": "to",
    "t_rules": "Did the rules sell? Purchases within {days} days, treated vs hold-out",
    "t_actions": "actions", "t_conv": "conv.", "t_held": "held out", "t_uplift": "uplift",
    "t_lifetime": "Predicted lifetime: {purchases} purchases expected in 90 days, {revenue} predicted revenue in "
                  "365 days", "t_mean_palive": "chance still buying", "t_ltv_per": "predicted LTV per customer",
    "t_top": "Top customers by predicted LTV", "t_no_model": "Predicted lifetime: {note}",
    "t_charts": "For charts (trends, migration, RFM grid, cohorts, first product): repeat-sales report --html FILE",
}

RU: dict[str, str] = {
    "title": "Отчёт о повторных продажах", "as_of": "на {day}", "customers_purchases": "клиентов: {customers}, покупок: {purchases}",
    "amounts_in": "суммы в {currency}", "footer": "repeat-sales · действия в журнале: {ledger} · последняя синхронизация: {sync}",
    "none": "нет", "unknown": "неизвестно", "none_yet": "(пока нет)",
    "card_predicted": "Прогноз выручки на 12 месяцев", "card_predicted_sub": "{value} на клиента",
    "card_expected": "Ожидаемые покупки за 90 дней", "card_expected_sub": "{value} на клиента",
    "since": "с {month}", "kpi_retention": "Удержание за 12 месяцев", "kpi_ltv": "Выручка на клиента",
    "sec_trend": "Метрики и их динамика",
    "lead_trend": "Каждая точка — значение метрики на конец месяца; последняя точка — сегодня ({day}), месяц ещё "
                  "идёт. В таблице — значения на сегодня.",
    "axis_share": "доля клиентов", "axis_count": "клиенты", "axis_number": "покупки", "axis_month": "конец месяца",
    "today": "сегодня", "metric": "метрика", "value": "значение",
    "sec_segments": "Сегменты и переходы",
    "lead_segments": "RFM-сегменты на сегодня ({customers} клиентов). Контрольная группа ({holdout} клиентов, "
                     "{share}, выбраны случайно) входит в сегменты, а не считается отдельным: её клиентам не пишут, "
                     "чтобы эффект правил было с чем сравнить.",
    "ch_segments": "Клиенты по сегментам", "ch_lifecycle": "Клиенты по стадиям жизненного цикла",
    "ax_lifecycle": "стадия жизненного цикла", "ch_migration": "Переходы между сегментами, {start} — {end}",
    "ax_to": "сегмент сегодня (куда)", "ax_from": "сегмент 90 дней назад (откуда)",
    "migration_sub": "сменили сегмент {moved} из {total} клиентов; «{none}» и «{nop}»: тогда ещё не клиенты",
    "sec_rfm": "RFM-таблица", "ch_rfm": "RFM: давность × частота",
    "lead_rfm": "Клиенты по баллам давности и частоты покупок (квинтили, если плейбук не задаёт границы); в ячейке — "
                "сколько клиентов и их средняя сумма покупок.",
    "ax_f": "балл частоты (F5 — больше всего покупок)", "ax_r": "балл давности (R5 — покупали недавно)",
    "legend_rfm": "клиенты; вторая строка — средняя сумма", "avg": "ср. {value}",
    "sec_cohorts": "Удержание когорт", "ch_cohorts": "Удержание по месячным когортам",
    "lead_cohorts": "Когорта — месяц первой покупки; ячейка — доля когорты, купившей в месяц +k (+0 — всегда 100 %; "
                    "текущий месяц неполный).",
    "ax_cohort_x": "месяцев после первой покупки", "ax_cohort_y": "когорта: месяц первой покупки",
    "legend_cohort": "доля когорты, купившей в этот месяц",
    "sec_first": "Повторные покупки по первому товару", "ch_first": "Доля повторных покупок по категории первой покупки",
    "lead_first": "Группы — категория (или товар) самой крупной строки первой покупки. Доля за {days} дней считается "
                  "только по клиентам, чья первая покупка не моложе {days} дней.",
    "s_ever": "купили снова (за всё время)", "s_within": "купили снова за {days} дней",
    "ax_first": "категория первой покупки", "h_first": "первая покупка", "h_customers": "клиенты",
    "h_repeat_rate": "доля повторных", "h_aged": "клиенты старше {days} дней", "h_repeat_within": "повтор за {days} дней",
    "other": "прочее", "no_items": "(без товаров)", "unnamed": "(товар без названия)",
    "sec_rules": "Продали ли правила?",
    "lead_rules": "Действия каждого правила (журнал) и покупки в течение {days} дней — в сравнении с контрольной "
                  "группой. {span}; если в группе меньше {min} эпизодов, вывода нет.",
    "span": "Дни воздействия с {first} по {last} (воспроизведено дней синхронизации: {days})",
    "no_span": "Ни одно действие ещё не прошло своё окно в {days} дней",
    "ch_conv": "Купили в течение {days} дней: с касанием и контрольная группа", "s_treated": "с касанием",
    "s_holdout": "контрольная группа", "ax_conv_y": "купили в окне", "ax_conv_x": "правило (эпизоды: с касанием / контроль)",
    "ch_uplift": "Прирост с 95 % интервалом", "ax_uplift": "с касанием минус контроль, процентные пункты",
    "h_rule": "правило", "h_written": "действий записано", "h_treated": "эпизодов с касанием", "h_converted": "купили",
    "h_held": "эпизодов в контроле", "h_waiting": "окно не закончилось", "h_uplift": "прирост (95 % ДИ)",
    "h_verdict": "вывод",
    "sec_lifetime": "Прогноз жизни клиента",
    "lead_lifetime": "BG/NBD (Fader, Hardie & Lee 2005) — вероятность, что клиент ещё покупает, и сколько покупок "
                     "ждать; Gamma-Gamma — сумма покупки; прогнозная LTV = ожидаемая сумма × ожидаемые покупки за "
                     "365 дней, без дисконтирования.",
    "one_time": "Для клиентов с одной покупкой ({n}) шанс возврата не показан: по одной покупке модель не может "
                "понять, ушёл ли клиент (она дала бы 100 %); ожидаемые покупки у них всё равно падают с каждым днём "
                "тишины.",
    "no_model": "модели жизни клиента нет", "no_model_why": "модели жизни клиента нет: см. примечание выше",
    "ch_palive": "Вероятность, что клиент ещё покупает (повторные покупатели)", "ax_palive": "вероятность, что клиент ещё с нами",
    "ch_ltv_seg": "Прогнозная LTV на клиента по сегментам", "ax_ltv_seg": "ожидаемая сумма покупок за 365 дней ({currency})",
    "p_alive_note": "ещё покупают: {value}", "h_model": "модель", "h_params": "параметры", "time_unit": "единица времени",
    "top_title": "Лучшие клиенты по прогнозной LTV", "h_customer": "клиент", "h_manager": "менеджер",
    "h_segment": "сегмент", "h_purchases": "покупки", "h_spend": "сумма покупок", "h_palive": "шанс, что ещё покупает",
    "h_exp90": "покупок за 90 дней", "h_pltv": "прогнозная LTV за 365 дней", "one_purchase": "– (одна покупка)",
    "manager_id": "ID {id}", "st_done": "записано", "st_pending": "ожидают", "st_failed": "с ошибкой",
    "t_head": "Отчёт о повторных продажах: {account}, на {day}: клиентов {customers}, покупок {purchases} "
              "(суммы в {currency})",
    "t_metrics": "Метрики", "t_now": "сегодня", "t_then": "на {day}", "t_segments": "Сегменты",
    "t_holdout": "Контрольная группа (входит в сегменты): {n} клиентов",
    "t_moves": "Крупнейшие переходы между сегментами, {start} — {end}", "t_from": "откуда", "t_to": "куда",
    "t_rules": "Продали ли правила? Покупки в течение {days} дней: с касанием и контрольная группа",
    "t_actions": "действий", "t_conv": "купили", "t_held": "контроль", "t_uplift": "прирост",
    "t_lifetime": "Прогноз: {purchases} покупок за 90 дней, {revenue} выручки за 365 дней",
    "t_mean_palive": "шанс, что ещё покупает", "t_ltv_per": "прогнозная LTV на клиента",
    "t_top": "Лучшие клиенты по прогнозной LTV", "t_no_model": "Прогноз жизни клиента: {note}",
    "t_charts": "Графики (динамика, переходы, RFM, когорты, первый товар): repeat-sales report --html ФАЙЛ",
}

MONTHS = {"ru": ["янв", "фев", "мар", "апр", "май", "июн", "июл", "авг", "сен", "окт", "ноя", "дек"],
          "en": ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]}

MONTHS_SINCE = ["января", "февраля", "марта", "апреля", "мая", "июня", "июля", "августа", "сентября", "октября",
                "ноября", "декабря"]  # "с июля 2025"


def phrases(lang: str) -> dict[str, str]:
    return RU if lang == "ru" else EN

METHOD_RU = (
    "Единица — эпизод (клиент, правило, якорь): например, одна цепочка возврата или одна цепочка после покупки; "
    "день воздействия — день, когда записано его первое действие (журнал, статус «done»).",
    "Контроль: каждый день, когда журнал показывает записанные действия, воспроизводится для клиентов "
    "контрольной группы: правила планируют для них, работают все ограничения, кроме контрольной группы, с учётом "
    "уже «отправленного» в воспроизведении (цепочки идут дальше, лимиты касаний заполняются); действие со сроком "
    "на этот день — касание, которое клиент получил бы. Так обе группы сравнимы по условиям правила, дням "
    "синхронизации и ограничениям; воспроизведение для клиентов с касаниями даёт ровно журнал. Если дней "
    "синхронизации больше 60, для обеих групп берутся 60 равномерно распределённых.",
    "Конверсия: покупка (с положительной суммой) в окне после дня воздействия, сам день не считается. Эпизоды, "
    "чьё окно ещё не закончилось, не учитываются (ожидают).",
    "Прирост = конверсия (с касанием) − конверсия (контроль), с 95 % интервалом Ньюкомба (метод 10 из Newcombe "
    "1998, по двум интервалам Уилсона). Если в какой-либо группе меньше минимума эпизодов, прирост не заявляется.",
)
