"""23 February and 8 March greet by gender: read from the CRM (Bitrix24 HONORIFIC, a field named in
settings), or, without any source, the run summary says which rule cannot run and what to set."""

from __future__ import annotations

import json
from datetime import date

import pytest

from connector.amocrm import mapping as amo_mapping
from connector.bitrix import mapping as bx_mapping
from emulators.amocrm import AmoEmulator
from emulators.amocrm.seed import GENDER_FIELD_ID
from emulators.bitrix import BitrixEmulator
from tests.conftest import run_cli

MARCH8 = date(2027, 3, 8)  # a Monday: not a quiet day of the default playbook
FEB23 = date(2027, 2, 23)  # a Tuesday
CUSTOMERS = 400
SEED = 11


def bitrix_genders(emu: BitrixEmulator) -> dict[str, str | None]:
    """Contact id -> the shop's gender of that person (the ground truth the portal was seeded from)."""
    out: dict[str, str | None] = {}
    for c in emu.shop.customers:
        kind, ref = emu.store.customer_refs[c.id]
        if kind == "contact":
            out[str(ref)] = c.gender
        else:
            for person, contact_id in zip(c.contacts, emu.store.company_contacts[ref], strict=True):
                out[str(contact_id)] = person.gender
    return out


def amocrm_genders(emu: AmoEmulator) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for c in emu.shop.customers:
        if c.kind == "company":
            for person, contact_id in zip(c.contacts, emu.store.companies[c.id]["contacts"], strict=True):
                out[str(contact_id)] = person.gender
        else:
            out[str(c.id)] = c.gender
    return out


def env_for(crm: str, emu, tmp_path, **extra) -> dict:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("BITRIX_", "AMOCRM_", "PLAYBOOK"))}
    env.update(CRM=crm, STATE_URL=f"sqlite:///{tmp_path / 'state.db'}")
    if crm == "bitrix":
        env["BITRIX_WEBHOOK_URL"] = emu.webhook_url
    else:
        env.update(AMOCRM_BASE_URL=emu.base_url, AMOCRM_ACCESS_TOKEN=emu.access_token)
    from tests.conftest import ROOT

    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def dry_run(env: dict, day: date, fmt: str = "json"):
    result = run_cli(["sync", "--dry-run", "--format", fmt, "--as-of", day.isoformat()], env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout) if fmt == "json" else result.stdout


@pytest.mark.parametrize("crm", ["bitrix", "amocrm"])
def test_march8_greets_only_women_and_february23_only_men(crm, tmp_path):
    emulator = BitrixEmulator if crm == "bitrix" else AmoEmulator
    extra = {} if crm == "bitrix" else {"AMOCRM_GENDER_FIELD": str(GENDER_FIELD_ID)}
    for day, step, gender in ((MARCH8, "march8", "F"), (FEB23, "february23", "M")):
        with emulator(customers=CUSTOMERS, seed=SEED, today=day) as emu:
            truth = bitrix_genders(emu) if crm == "bitrix" else amocrm_genders(emu)
            out = dry_run(env_for(crm, emu, tmp_path / step, **extra), day)
        greeted = [p["customer_id"] for p in out["plan"] if p["rule"] == "holidays"]
        assert greeted, f"no {step} greeting planned on {day}"
        assert all(p["step"] == step for p in out["plan"] if p["rule"] == "holidays")
        assert {truth[c] for c in greeted} == {gender}, f"{step} went to someone not {gender}"
        assert out["stats"]["rules_cannot_run"] == []


def test_amocrm_without_a_gender_field_says_the_holiday_rules_cannot_run(tmp_path):
    with AmoEmulator(customers=120, seed=SEED, today=MARCH8) as emu:
        env = env_for("amocrm", emu, tmp_path)
        out = dry_run(env, MARCH8)
        table = dry_run(env, MARCH8, fmt="table")
        english = dry_run({**env, "PLAYBOOK_LANG": "en"}, MARCH8, fmt="table")
    assert not [p for p in out["plan"] if p["rule"] == "holidays"]
    blocked = out["stats"]["rules_cannot_run"]
    assert {(b["rule"], b["step"], b["field"], b["setting"]) for b in blocked} == {
        ("holidays", "february23", "gender", "AMOCRM_GENDER_FIELD"),
        ("holidays", "march8", "gender", "AMOCRM_GENDER_FIELD")}
    assert "не сработает" in table and "AMOCRM_GENDER_FIELD" in table and "march8" in table
    assert "cannot run" in english and "AMOCRM_GENDER_FIELD" in english


def test_bitrix_portal_without_honorifics_names_the_gender_setting(tmp_path):
    with BitrixEmulator(customers=120, seed=SEED, today=MARCH8) as emu:
        for contact in emu.store.contacts.rows.values():
            contact.honorific = None
        out = dry_run(env_for("bitrix", emu, tmp_path), MARCH8)
    assert {b["setting"] for b in out["stats"]["rules_cannot_run"]} == {"BITRIX_GENDER_FIELD"}
    assert "BITRIX_GENDER_FIELD" in out["stats"]["rules_cannot_run"][0]["message"]


def test_bitrix_gender_from_a_user_field_named_in_settings(tmp_path):
    """A portal that keeps gender in its own list field: its values are mapped by BITRIX_GENDER_VALUES."""
    with BitrixEmulator(customers=120, seed=SEED, today=MARCH8) as emu:
        truth = bitrix_genders(emu)
        emu.store.userfields.insert(999, _list_field())
        for contact in emu.store.contacts.rows.values():
            contact.uf["UF_CRM_SEX"] = {"M": "71", "F": "72"}.get(truth[str(contact.id)] or "")
            contact.honorific = None
        env = env_for("bitrix", emu, tmp_path, BITRIX_GENDER_FIELD="UF_CRM_SEX", BITRIX_GENDER_VALUES="71=M,72=F")
        out = dry_run(env, MARCH8)
    greeted = [p["customer_id"] for p in out["plan"] if p["rule"] == "holidays"]
    assert greeted and {truth[c] for c in greeted} == {"F"}


def _list_field():
    from emulators.bitrix.records import UserField

    return UserField(999, "CRM_CONTACT", "UF_CRM_SEX", "enumeration", xml_id="SEX", label="Пол")


@pytest.mark.parametrize(("name", "value"), [("BITRIX_GENDER_FIELD", "gender"),
                                             ("BITRIX_GENDER_VALUES", "71=male"),
                                             ("AMOCRM_GENDER_VALUES", "Мужской"),
                                             ("AMOCRM_GENDER_FIELD", " ")])
def test_a_bad_gender_setting_is_exit_2_naming_it(name, value, cli_env):
    result = run_cli(["sync", "--dry-run"], {**cli_env, name: value})
    assert result.returncode == 2, result.stderr
    assert name in result.stderr and "Traceback" not in result.stderr


def test_bitrix_honorific_maps_by_the_portals_own_names():
    source = bx_mapping.GenderSource()
    assert bx_mapping.customer_from_contact({"ID": "1", "HONORIFIC": "HNR_RU_1"}, source).fields["gender"] == "M"
    assert bx_mapping.customer_from_contact({"ID": "2", "HONORIFIC": "HNR_RU_2"}, source).fields["gender"] == "F"
    assert "gender" not in bx_mapping.customer_from_contact({"ID": "3", "HONORIFIC": ""}, source).fields
    source.learn_honorifics([{"STATUS_ID": "HNR_EN_3", "NAME": "Mrs."}, {"STATUS_ID": "HNR_X", "NAME": "Dr."}])
    assert bx_mapping.customer_from_contact({"ID": "4", "HONORIFIC": "HNR_EN_3"}, source).fields["gender"] == "F"
    assert "gender" not in bx_mapping.customer_from_contact({"ID": "5", "HONORIFIC": "HNR_X"}, source).fields


def test_amocrm_gender_field_by_id_code_or_name():
    raw = {"id": 5, "custom_fields_values": [
        {"field_id": 777, "field_name": "Пол", "field_code": None, "field_type": "select",
         "values": [{"value": "Женский", "enum_id": 7771}]}]}
    from zoneinfo import ZoneInfo

    tz = ZoneInfo("Europe/Moscow")
    for name in ("777", "Пол", "пол"):
        source = amo_mapping.GenderField(name)
        assert amo_mapping.customer_from_contact(raw, tz, source).fields["gender"] == "F"
    mapped = amo_mapping.GenderField("777", {"7771": "M"})
    assert amo_mapping.customer_from_contact(raw, tz, mapped).fields["gender"] == "M"
    assert "gender" not in amo_mapping.customer_from_contact(raw, tz).fields
