"""Card-field actions (keys that follow the values), task context, and the playbook's [writeback] table."""

from __future__ import annotations

from datetime import date

import pytest

from connector import briefing, fields
from connector.errors import PlaybookError
from connector.model import Action, ActionKind, Customer, LineItem, Purchase
from connector.state import State
from playbooks import load_playbook
from playbooks.api import CustomerReport

TODAY = date(2026, 6, 15)


def report(cid: str, segment: str = "loyal", lifecycle: str = "active") -> CustomerReport:
    return CustomerReport(cid, 3, date(2025, 1, 1), date(2026, 6, 1), 14, 3, 900.0, "545", lifecycle, "middle",
                          "stable", "silver", segment)


def customer(cid: str, days: list[date], tags=()) -> Customer:
    return Customer(cid, name="Анна", tags=frozenset(tags), purchases=tuple(
        Purchase(f"p{n}", cid, d, 100.0, items=(LineItem("7", "Кофе", 2, 50.0),)) for n, d in enumerate(days)))


def test_next_purchase_is_the_last_day_plus_the_median_interval():
    c = customer("1", [date(2026, 1, 1), date(2026, 1, 31), date(2026, 3, 2), date(2026, 3, 2)])
    assert fields.predicted_next_purchase(c) == "2026-04-01"  # distinct days: gaps 30, 30
    assert fields.predicted_next_purchase(customer("2", [date(2026, 1, 1)])) == ""


def test_the_key_follows_the_values_and_a_flip_back_is_written_again(state_at):
    state = State(state_at("s.db"))
    cards = fields.WrittenCards(state)
    facts = {"1": fields.card_facts(customer("1", [date(2026, 5, 1)], tags=["rs-segment:new", "vip"]))}
    first = fields.field_actions([report("1")], facts, cards.last("a"), TODAY)
    assert [a.kind for a in first] == [ActionKind.TAG] and first[0].key.startswith("v1:1:segment:g1-")
    assert first[0].payload["tag"] == "rs-segment:loyal" and first[0].payload["drop_tags"] == ["rs-segment:new"]
    assert fields.is_field_key(first[0].key) and fields.key_digest(first[0].key) == fields.digest(
        first[0].payload["fields"])
    assert fields.field_actions([report("1")], facts, cards.last("a"), TODAY)[0].key == first[0].key  # until written
    cards.record("a", first)
    assert fields.field_actions([report("1")], facts, cards.last("a"), TODAY) == []  # unchanged: nothing
    sleeping = fields.field_actions([report("1", lifecycle="sleeping")], facts, cards.last("a"), TODAY)
    cards.record("a", sleeping)
    back = fields.field_actions([report("1")], facts, cards.last("a"), TODAY)  # active again
    assert back and back[0].key not in (first[0].key, sleeping[0].key) and back[0].key.startswith("v1:1:segment:g3-")


@pytest.mark.parametrize("raw, normal", [("2026-07-01", "2026-07-01"), ("2026-07-01T00:00:00+03:00", "2026-07-01"),
                                         ("01.07.2026", "2026-07-01"), (None, ""), (" loyal ", "loyal")])
def test_values_read_back_in_any_form_hash_alike(raw, normal):
    assert fields.normal(raw) == normal


def test_task_context_says_what_was_bought_what_to_offer_and_what_was_tried():
    c = customer("1", [date(2026, 3, 1), date(2026, 5, 1)])
    action = Action("v1:1:replenishment:p1:remind:7", ActionKind.TASK, "1", "replenishment", "remind:7", TODAY,
                    "Пора пополнить", "Предложите повторить", payload={"products": [{"name": "Кофе", "quantity": 2.0}]})
    touches = {"1": [(date(2026, 6, 1), "reactivation", "Мы скучаем, Анна")]}
    [out] = briefing.with_context([action], {"1": c}, {"1": report("1")}, touches, "ru")
    assert out.body.startswith("Предложите повторить\n\nКлиент: Анна")
    assert "2026-05-01: 100.00 RUB - Кофе x2" in out.body and "Что предложить: Кофе x2" in out.body
    assert "2026-06-01 [Возврат уснувших] Мы скучаем, Анна" in out.body and out.payload["lang"] == "ru"
    assert "сегмент Лояльные, RFM 545, стадия Активный, уровень Серебро" in out.body  # names, not codes
    [en] = briefing.with_context([action], {"1": c}, {}, {}, "en")
    assert "Already tried: nothing: this is the first touch" in en.body


def test_the_writeback_table_has_defaults_and_is_validated(tmp_path):
    assert load_playbook().writeback.deal_pipeline == "" and load_playbook().writeback.card_fields
    book = load_playbook(overrides={"writeback": {"deal_pipeline": "Повторные", "deal_stage": "Новая"}})
    assert (book.writeback.deal_pipeline, book.writeback.deal_stage) == ("Повторные", "Новая")
    path = tmp_path / "p.toml"
    path.write_text('extends = "default"\n[writeback]\ndeal_pipline = "x"\n', encoding="utf-8")
    with pytest.raises(PlaybookError) as caught:
        load_playbook(path)
    assert "writeback.deal_pipline" in str(caught.value)
    path.write_text('extends = "default"\n[writeback]\ncard_fields = "yes"\n', encoding="utf-8")
    with pytest.raises(PlaybookError) as caught:
        load_playbook(path)
    assert "writeback.card_fields" in str(caught.value)
