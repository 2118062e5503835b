"""fast-bitrix24, a well-known third-party client, works against the emulator unmodified."""

from __future__ import annotations

from fast_bitrix24 import Bitrix


def test_get_all_returns_every_seeded_deal(shared):
    bx = Bitrix(shared.webhook_url, verbose=False)
    deals = bx.get_all("crm.deal.list", {"select": ["ID", "STAGE_SEMANTIC_ID"], "filter": {">ID": 0}})
    assert len(deals) == len(shared.shop.deals)
    assert len({d["ID"] for d in deals}) == len(shared.shop.deals)
    won = bx.get_all("crm.deal.list", {"select": ["ID"], "filter": {"STAGE_SEMANTIC_ID": "S"}})
    assert len(won) == len(shared.shop.won_deals())


def test_call_and_get_by_id_go_through_batch(emu):
    bx = Bitrix(emu.webhook_url, verbose=False)
    emu.reset_stats()
    ids = bx.call("crm.deal.add", [{"fields": {"TITLE": "a"}}, {"fields": {"TITLE": "b"}}])
    assert len(ids) == 2 and all(isinstance(i, int) for i in ids)
    rows = bx.get_by_ID("crm.deal.productrows.get", [1, 2])
    assert set(rows) == {"1", "2"}
    tasks = bx.get_all("tasks.task.list", {"select": ["ID", "TITLE"]})
    assert len(tasks) == len(emu.store.tasks)
    assert emu.stats()["commands"]["crm.deal.add"] == 2
