"""Where gender comes from in each CRM: a Bitrix24 list field named in settings, the portal's own
HONORIFIC names, an amoCRM field by id, code or name; a bad gender setting is exit 2.

Greeting by gender on 23 February and 8 March, and the summary without a gender source, run against
every CRM in tests/contract/test_gender_holidays.py.
"""

from __future__ import annotations

import json
from datetime import date

import pytest

from connector.amocrm import mapping as amo_mapping
from connector.bitrix import mapping as bx_mapping
from tests.conftest import run_cli
from tests.contract.bitrix_harness import BitrixHarness

MARCH8 = date(2027, 3, 8)  # a Monday: not a quiet day of the default playbook
SEED = 11


def dry_run(env: dict, day: date):
    result = run_cli(["sync", "--dry-run", "--format", "json", "--as-of", day.isoformat()], env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_bitrix_gender_from_a_user_field_named_in_settings(tmp_path):
    """A portal that keeps gender in its own list field: its values are mapped by BITRIX_GENDER_VALUES."""
    with BitrixHarness(seed=SEED, today=MARCH8) as crm:
        emu, truth = crm.emulator, crm.genders()
        emu.store.userfields.insert(999, _list_field())
        for contact in emu.store.contacts.rows.values():
            contact.uf["UF_CRM_SEX"] = {"M": "71", "F": "72"}.get(truth[str(contact.id)] or "")
            contact.honorific = None
        env = crm.cli_env(tmp_path, BITRIX_GENDER_FIELD="UF_CRM_SEX", BITRIX_GENDER_VALUES="71=M,72=F")
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
