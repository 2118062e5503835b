"""The report in the team's language (issue 18, items 6 and 7): Russian by default, English with
default.en.toml; names instead of codes, Russian numbers and ₽; top customers one can act on; one
horizon per headline card; the hold-out group inside the segments, not one of them.

The State is built directly from the synthetic shop (tests/report_browser), as in test_report.py.
"""

from __future__ import annotations

import re
from html import escape, unescape
from types import SimpleNamespace

import pytest

from connector.links import card_url
from connector.render import render_segments
from connector.report import build_report, render_html, render_text
from connector.state import State
from playbooks import evaluate, load_playbook, numbers
from tests.report_browser.shop_state import TODAY, shop_state

ACCOUNT = "bitrix:portal.example"
ENGLISH_TITLES = ("Metrics and their trend", "Segments and migration", "RFM grid", "Cohort retention",
                  "Repeat rate by first product", "Did the rules sell?", "Predicted customer lifetime",
                  "Repeat sales report", "Top customers")
CODES = ("repeat_rate", "ltv_3f", "crr_12m", "lost_champions", "hibernating", "purchase_frequency")


@pytest.fixture(scope="module")
def state_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("lang") / "state.db"
    shop_state(path, customers=300, seed=11, syncs=6, account=ACCOUNT).close()
    return path


def report_for(state_file, playbook) -> dict:
    state = State(state_file, writable=False)
    try:
        return build_report(state, ACCOUNT, TODAY, playbook)
    finally:
        state.close()


@pytest.fixture(scope="module")
def ru(state_file) -> dict:
    return report_for(state_file, load_playbook())


@pytest.fixture(scope="module")
def en(state_file) -> dict:
    return report_for(state_file, load_playbook(lang="en"))


def visible(page: str) -> str:
    """The page's text as a reader sees it (tags and the style sheet removed)."""
    return unescape(re.sub(r"<[^>]+>", " ", re.sub(r"<style>.*?</style>", "", page, flags=re.S)))


def headings(page: str) -> list[str]:
    return [unescape(h) for h in re.findall(r"<h[123]>(.*?)</h[123]>", page)]


def test_russian_numbers_and_money_use_no_break_spaces_and_the_rouble_sign():
    assert numbers.money(29663656, "RUB", "ru") == "29\u00a0663\u00a0656\u00a0₽"
    assert numbers.share(0.1234, "ru") == "12,3\u00a0%" and numbers.number(4.785, "ru", 2) == "4,79"
    assert numbers.money(29663656, "RUB", "en") == "29,663,656 RUB" and numbers.share(0.1234, "en") == "12.3%"
    assert numbers.points(-0.012, "ru") == "-1,2\u00a0п.\u00a0п." and numbers.points(0.012, "en") == "+1.2 pp"


def test_the_russian_report_page_is_russian(ru):
    page = render_html(ru)
    assert page.startswith('<!DOCTYPE html><html lang="ru">')
    titles = headings(page)
    assert "Отчёт о повторных продажах" in titles and "Продали ли правила?" in titles
    assert not [t for t in titles if any(e in t for e in ENGLISH_TITLES)]
    text = visible(page)
    assert not [code for code in CODES if code in text]  # metric and segment names, not keys
    for words in ("Чемпионы", "Доля повторных покупателей", "Удержание клиентов за 12 месяцев", "Прогнозная LTV"):
        assert words in text
    revenue = numbers.money(ru["metrics"]["revenue"], "RUB", "ru")
    assert re.fullmatch(r"\d{1,3}(\u00a0\d{3})+\u00a0₽", revenue) and revenue in text
    assert "Чемпионы" in re.search(r'data-chart="segments".*?</svg>', page, re.S).group(0)  # inside charts too


def test_the_russian_text_report_is_russian(ru):
    text = render_text(ru)
    assert text.startswith("Отчёт о повторных продажах") and "Сегменты" in text and "Метрики" in text
    assert not [t for t in ENGLISH_TITLES if t in text]
    assert not [code for code in CODES if code in text]
    assert "Чемпионы" in text and "\u00a0₽" in text


def test_the_english_playbook_gives_the_english_report(en):
    page = render_html(en)
    assert page.startswith('<!DOCTYPE html><html lang="en">')
    assert "Did the rules sell?" in headings(page) and "Champions" in visible(page)
    # customers' and products' own names stay as the CRM holds them (here Russian); the page's words are English
    words = (headings(page) + re.findall(r'<p class="lead">(.*?)</p>', page)
             + re.findall(r"<svg[^>]*><title>(.*?)</title>", page))
    assert not [w for w in words if re.search(r"[А-Яа-яЁё]", w)]
    assert "Segments" in render_text(en) and "Сегменты" not in render_text(en)


def test_a_playbook_renames_a_segment_and_a_wrong_code_names_its_line(state_file, tmp_path):
    path = tmp_path / "p.toml"
    path.write_text('extends = "default"\n\n[names.segments]\nchampions = "Звёзды"\n', encoding="utf-8")
    page = render_html(report_for(state_file, load_playbook(path)))
    assert "Звёзды" in visible(page) and "Чемпионы" not in visible(page)
    path.write_text('extends = "default"\n\n[names.segments]\nchampoins = "Звёзды"\n', encoding="utf-8")
    with pytest.raises(Exception) as caught:
        load_playbook(path)
    said = str(caught.value)
    assert "p.toml:4" in said and "names.segments.champoins" in said and "champions" in said


def test_top_customers_have_a_name_a_manager_and_a_link_to_the_card(ru):
    top = ru["lifetime"]["top_customers"]
    assert top and all(c["name"] and c["manager_id"] for c in top)
    kinds = {c["url"].split("/")[4] for c in top}
    assert kinds <= {"contact", "company"} and all(
        c["url"] == f"https://portal.example/crm/{c['url'].split('/')[4]}/details/{c['customer_id']}/" for c in top)
    page = render_html(ru)
    for c in top:
        assert f'<a href="{c["url"]}" target="_blank" rel="noopener">{escape(c["name"])}</a>' in page
    assert card_url("amocrm:shop.amocrm.ru", "7", "company") == "https://shop.amocrm.ru/companies/detail/7"
    assert card_url("bitrix:127.0.0.1:8080", "7") == "http://127.0.0.1:8080/crm/contact/details/7/"


def test_each_headline_card_speaks_of_one_horizon(ru, en):
    horizons = re.compile(r"(\d+)\s*(месяц|месяцев|дней|дня|months?|days?)")
    for report in (ru, en):
        cards = re.findall(r'<div class="card">(.*?)</div></div>', render_html(report))
        assert len(cards) >= 7
        for card in cards:
            assert len({m.group(0) for m in horizons.finditer(visible(card))}) <= 1, visible(card)


def test_one_time_buyers_are_not_shown_as_certain_to_return(ru):
    life = ru["lifetime"]
    page = render_html(ru)
    assert life["one_time_buyers"] > 0
    assert numbers.number(life["one_time_buyers"], "ru") in visible(page) and "шанс возврата не показан" in page
    one_time = [c for c in life["top_customers"] if c["purchases"] == 1]
    for c in one_time:
        assert "одна покупка" in re.search(rf'>{re.escape(c["name"])}</a>.*?</tr>', page).group(0)


def test_the_segment_table_sums_to_the_customers_and_the_holdout_is_no_segment(state_file):
    state = State(state_file, writable=False)
    try:
        evaluation = evaluate(state.customers(ACCOUNT), TODAY, load_playbook(), predict=False)
    finally:
        state.close()
    assert evaluation.segments.get("holdout")  # the group exists...
    table = render_segments(SimpleNamespace(segments=evaluation.segments))[0]
    rows = [line for line in table.splitlines()[4:] if line.strip()]
    counts = [int(line.split()[-1]) for line in rows]
    assert sum(counts) == len([c for c in evaluation.customers])  # ...but it is not a row of the segments
    assert "holdout" not in table
