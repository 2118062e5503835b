"""Texts for people name codes in the playbook's language (issue 18, item 6): task titles and bodies
say "уровень Золото" and "12 500 ₽", never "gold" or "12 500 RUB"; a playbook's own names win."""

from __future__ import annotations

from datetime import date

import pytest
from pb_builders import playbook, simple

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
