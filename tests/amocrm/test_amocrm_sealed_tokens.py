"""Tokens at rest: with STATE_KEY a copied state file holds no usable token; keys rotate without a new grant."""

from __future__ import annotations

import pytest
from amo_support import oauth_adapter

from connector import sealing
from connector.cli import main
from connector.errors import StateError
from connector.installs import Installs
from connector.sealing import Sealer


def first_call(account, db, sealer, code=None):
    adapter = oauth_adapter(account, db, code=code, sealer=sealer)
    try:
        return adapter.client.request("GET", "/api/v4/account")
    finally:
        adapter.close()


def test_sealed_tokens_are_not_in_the_file_and_need_their_key(account, tmp_path):
    db, key = tmp_path / "state.db", sealing.new_key()
    first_call(account, db, Sealer(key), code=account.issue_auth_code())
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())  # the file and its WAL
    assert account.auth.current_refresh_tokens()
    for token in account.auth.current_refresh_tokens():
        assert token.encode() not in raw
    first_call(account, db, Sealer(key))  # the same key reads the pair back: no new grant
    assert account.stats()["token_exchanges"] == 1
    with pytest.raises(StateError, match="STATE_KEY is not set"):
        first_call(account, db, Sealer(None))
    with pytest.raises(StateError, match="does not open"):
        first_call(account, db, Sealer(sealing.new_key()))


def test_rotate_key_reseals_every_token_and_the_old_key_can_go(account, tmp_path, monkeypatch, capsys):
    db, old, new = tmp_path / "state.db", sealing.new_key(), sealing.new_key()
    first_call(account, db, Sealer(old), code=account.issue_auth_code())
    Installs(db, Sealer(old)).put("bitrix", {"access_token": "bx-secret-access", "member_id": "m1"})
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("STATE_URL", f"sqlite:///{db}")
    monkeypatch.setenv("STATE_KEY", f"{new},{old}")
    assert main(["state", "rotate-key"]) == 0
    assert "1 app install(s), 1 amoCRM token pair(s)" in capsys.readouterr().out
    first_call(account, db, Sealer(new))  # the new key alone opens them now
    assert Installs(db, Sealer(new)).get("bitrix")["access_token"] == "bx-secret-access"
    assert account.stats()["token_exchanges"] == 1
    with pytest.raises(StateError):
        Installs(db, Sealer(old)).get("bitrix")


def test_a_malformed_state_key_is_refused_naming_the_setting_not_the_key(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("STATE_KEY", "not-a-key-s3cr3t")
    assert main(["state", "rotate-key"]) == 2
    err = capsys.readouterr().err
    assert "STATE_KEY" in err and "new-key" in err and "s3cr3t" not in err
