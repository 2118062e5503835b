"""Texts for people name codes in the playbook's language (issue 18, item 6): task titles and bodies
say "уровень Золото" and "12 500 ₽", never "gold" or "12 500 RUB"; a playbook's own names win."""

from __future__ import annotations

from datetime import date

import pytest
from pb_builders import customer, playbook, simple

from connector.errors import PlaybookError
from playbooks import evaluate
from playbooks.words import Names, names_for

TODAY = date(2026, 6, 15)
GOLD = ["2026-01-10", "2026-02-10", "2026-03-10", "2026-04-10", "2026-05-10", "2026-06-13"]  # the 6th: gold today


def texts(book) -> str:
    ev = evaluate([simple("me", *GOLD, amount=12500)], TODAY, book, predict=False)
    return "\n".join(f"{a.title}\n{a.body}" for a in ev.plan)


def test_task_texts_name_the_tier_and_the_amount_in_russian():
    said = texts(playbook())
    assert "уровень Золото" in said and "12\u00a0500\u00a0₽" in said
    assert "gold" not in said and "RUB" not in said


def test_task_texts_in_english_with_the_english_playbook():
    said = texts(playbook(lang="en"))
    assert "Gold" in said and "12,500 RUB" in said and "Золото" not in said


def test_the_playbook_names_win_over_the_defaults():
    book = playbook({"names": {"tiers": {"gold": "Платина"}, "segments": {"champions": "Звёзды"}}})
    assert "уровень Платина" in texts(book)
    names = names_for(book)
    assert (names.segment("champions"), names.segment("loyal"), names.of("value", "vip")) == ("Звёзды", "Лояльные", "VIP")
    assert Names("en").of("segments", "lifecycle:sleeping") == "Sleeping" and Names("ru").segment("my_vips") == "My vips"


@pytest.mark.parametrize("names, path", [({"tierz": {"gold": "x"}}, "names.tierz"),
                                         ({"tiers": {"platinum": "x"}}, "names.tiers.platinum"),
                                         ({"segments": {"champions": " "}}, "names.segments.champions")])
def test_a_wrong_name_table_is_an_error_naming_its_key(names, path):
    with pytest.raises(PlaybookError) as caught:
        playbook({"names": names})
    assert path in str(caught.value)


def test_a_step_naming_every_shared_placeholder_gets_each_value_and_one_naming_few_gets_those():
    """A step's texts are filled only with what they name (a plan renders a hundred thousand steps):
    every placeholder a text names still gets its value, whichever step names it."""
    named = ("name", "tier", "next_tier", "to_next_tier", "benefits", "next_benefits", "manager", "currency",
             "segment", "lifecycle", "products", "purchase_date", "amount", "days", "date")
    book = playbook({"rules": {"reactivation": {"steps": [
        {"name": "email", "title": "|".join(f"{{{n}}}" for n in named), "body": "{name}"}]}}})
    me = customer({"id": "me", "name": "Анна", "manager_id": "7", "purchases": [
        {"id": "p1", "date": "2026-01-10", "amount": 12500}, {"id": "p2", "date": "2026-02-10", "amount": 12500},
        {"id": "p3", "date": "2026-04-06", "amount": 12500, "items": [{"product_id": "7", "name": "Чай"}]}]})
    [action] = [a for a in evaluate([me], TODAY, book, predict=False).plan if a.rule == "reactivation"]
    values = dict(zip(named, action.title.split("|"), strict=True))
    assert all(values.values()), values
    assert values["tier"] == "Серебро" and values["next_tier"] == "Золото" and values["to_next_tier"] == "3"
    assert values["benefits"] == "скидка 5% и бесплатная доставка" and values["manager"] == "7"
    assert values["amount"] == "12\u00a0500\u00a0₽" and values["purchase_date"] == "2026-04-06" and values["days"] == "70"
    assert values["products"] == "Чай" and action.body == "Анна"
