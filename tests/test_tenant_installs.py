"""The installs table by tenant: a state file from before tenants keeps its install as the default tenant's,
and one tenant's view of the table never shows another's install."""

from __future__ import annotations

import json
import sqlite3

from connector.installs import Installs
from connector.sealing import Sealer


def test_a_state_file_from_before_tenants_keeps_its_install_as_the_default_tenants(tmp_path):
    path = tmp_path / "state.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE app_installs (crm TEXT PRIMARY KEY, data TEXT NOT NULL, updated_at REAL NOT NULL)")
    db.execute("INSERT INTO app_installs VALUES ('bitrix', ?, 1.0)",
               (Sealer().seal(json.dumps({"member_id": "m-old", "access_token": "t"})),))
    db.commit()
    db.close()
    installs = Installs(path)
    assert installs.get("bitrix") == {"member_id": "m-old", "access_token": "t"}
    assert [(t["tenant"], t["ref"]) for t in installs.tenants()] == [("default", "m-old")]
    assert installs.tenant_of("bitrix", "m-old") == "default"
    assert Installs(path).get("bitrix")["member_id"] == "m-old"  # opened again: migrated once, nothing lost


def test_each_tenants_view_sees_its_own_install_only(state_target):
    installs = Installs(state_target)
    installs.for_tenant("b" * 32).put("bitrix", {"member_id": "b" * 32, "access_token": "tb"})
    installs.put("bitrix", {"member_id": "a" * 32, "access_token": "ta"})
    assert installs.get("bitrix")["access_token"] == "ta"
    assert installs.for_tenant("b" * 32).get("bitrix")["access_token"] == "tb"
    assert installs.for_tenant("c" * 32).get("bitrix") is None
    assert installs.tenant_of("bitrix", "b" * 32) == "b" * 32 and installs.tenant_of("bitrix", "a" * 32) == "default"
    assert installs.tenant_of("bitrix", "c" * 32) is None and installs.tenant_of("amocrm", "b" * 32) is None
    assert installs.remove_tenant("b" * 32) == 1 and installs.for_tenant("b" * 32).get("bitrix") is None
    assert installs.get("bitrix")["access_token"] == "ta"
