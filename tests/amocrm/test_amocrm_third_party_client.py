"""A well-written third-party client, unmodified, against the emulator: aioamocrm (PyPI) with its own base URL."""

from __future__ import annotations

import asyncio

import pytest

aioamocrm = pytest.importorskip("aioamocrm")  # an optional test dependency: pip install aioamocrm


async def _session(emu) -> dict:
    out: dict = {}
    async with aioamocrm.AmoCRMClient(auth=aioamocrm.LongLivedToken(emu.access_token), base_url=emu.base_url,
                                      rate_limit=None) as amo:
        out["account"] = (await amo.account.get(with_=["datetime_settings"])).id
        out["pipelines"] = [p.id for p in await amo.pipelines.list()]
        # one stage in one pipeline a request (Kommo leads-list): won leads pipeline by pipeline
        out["won"] = [lead.id for p in out["pipelines"] async for lead in amo.leads.iterate(
            filter={"statuses": [{"pipeline_id": p, "status_id": 142}]}, with_=["contacts", "catalog_elements"])]
        out["nothing"] = [c.id async for c in amo.contacts.iterate(filter={"id": [987654]})]
        contact = next(iter(emu.store.contacts))
        [ref] = await amo.tasks.create([{"text": "rs:v1:x", "complete_till": 1_800_000_000,
                                        "entity_id": contact, "entity_type": "contacts"}])
        await amo.tasks.complete(ref.id, result="done")
        out["done"] = [t.id async for t in amo.tasks.iterate(filter={"is_completed": 1})]
        out["task"] = ref.id
    app = aioamocrm.OAuth2(emu.client_id, emu.client_secret, emu.redirect_uri)
    async with aioamocrm.AmoCRMClient(auth=app, base_url=emu.base_url, rate_limit=None) as amo:
        await amo.exchange_code(emu.issue_auth_code())
        emu.expire_access_tokens()
        out["after_refresh"] = (await amo.account.get()).id  # 401 -> refresh (rotation) -> retried
    return out


def test_aioamocrm_reads_writes_and_refreshes_against_the_emulator(account):
    got = asyncio.run(_session(account))
    assert got["account"] == got["after_refresh"] == account.store.account_id
    assert got["pipelines"] == sorted(account.store.pipelines)
    assert sorted(got["won"]) == sorted(d.id for d in account.shop.deals if d.won)
    assert got["nothing"] == [], "a 204 is an empty list to it too"
    assert got["done"] == [got["task"]]
    assert account.stats()["token_refreshes"] == 1
