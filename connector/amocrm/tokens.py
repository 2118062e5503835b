"""amoCRM tokens in the state file: rotated safely, shared safely between processes.

A refresh token works once; so the new pair is committed to the state before its access token is
used, and refreshing happens under the state's write lock: a second process that wanted to refresh
waits, re-reads, and uses the pair the first one stored instead of burning it with a refresh of
its own. A process killed between amoCRM's answer and the commit loses nothing: the old refresh
token stays valid until the new pair is first used (Doc: developers.kommo.com/docs/oauth-20).
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from connector.amocrm.client import CRM, AmoClient
from connector.amocrm.oauth import REGRANT_HINT, OAuthApp, TokenPair, exchange_code, refresh_pair
from connector.errors import CrmAuthError, StateError
from connector.sealing import Sealer
from connector.state import state_failure
from connector.store import app, engine, migrations

log = logging.getLogger(__name__)

REFRESH_AHEAD_SECONDS = 300  # refresh a little before expiry rather than spend a request on a 401
LOCK_TIMEOUT_SECONDS = 60

LONG_LIVED_HINT = ("amoCRM refused AMOCRM_ACCESS_TOKEN (expired, revoked, or mistyped): an admin generates a "
                   "new long-lived token in the integration's \"Keys and scopes\" tab and sets AMOCRM_ACCESS_TOKEN")


def _sha(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


class TokenStore:
    """The `amocrm_tokens` table of the state file; its own connection, short transactions."""

    def __init__(self, path: str | Path, account: str, sealer: Sealer | None = None) -> None:
        self.path = path if engine.is_postgres(path) else engine.sqlite_path(path)
        self.account = account
        self.sealer = sealer or Sealer()  # STATE_KEY: the tokens are sealed at rest
        self.db = engine.connect(self.path, timeout=LOCK_TIMEOUT_SECONDS)  # tokens: created owner-only
        try:
            migrations.prepare(self.db)
        except sqlite3.Error as exc:
            self.db.close()
            raise state_failure(self.path, exc) from None
        except BaseException:
            self.db.close()
            raise

    def close(self) -> None:
        self.db.close()

    def load(self) -> tuple[TokenPair, str | None] | None:
        row = app.tokens(self.db, self.account)
        if not row:
            return None
        return TokenPair(self.sealer.open(row[0]), self.sealer.open(row[1]), row[2]), row[3]

    def save(self, pair: TokenPair, *, auth_code_sha: str | None = None) -> None:
        """Inside `locked()`: the caller's transaction commits it."""
        app.save_tokens(self.db, self.account, self.sealer.seal(pair.access_token),
                        self.sealer.seal(pair.refresh_token), pair.expires_at, auth_code_sha)

    def generation(self) -> int:
        return app.token_generation(self.db, self.account)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """One writer at a time across processes (and machines); rolled back if we fail or die."""
        with ExitStack() as stack:
            try:
                stack.enter_context(self.db.tx(lock=f"amocrm_tokens:{self.account}"))
            except sqlite3.OperationalError as exc:
                raise StateError(f"the token table is locked by another process: {exc}",
                                 hint="another run is refreshing the amoCRM token; try again") from None
            yield


def reseal_tokens(path: str | Path, sealer: Sealer) -> int:
    """Every stored token pair sealed with STATE_KEY's first key (key rotation); how many pairs."""
    store = TokenStore(path, "", sealer)
    try:
        with store.locked():
            rows = app.all_tokens(store.db)
            for account, access, refresh in rows:
                app.reseal_tokens(store.db, account, sealer.reseal(access), sealer.reseal(refresh))
    finally:
        store.close()
    return len(rows)


class LongLivedToken:
    """A private integration's long-lived token: no refresh exists (Doc: developers.kommo.com/docs/long-lived-token)."""

    can_refresh = False
    refused_hint = LONG_LIVED_HINT

    def __init__(self, token: str) -> None:
        self._token = token

    def token(self) -> str:
        return self._token

    def refresh(self, stale: str) -> str:  # pragma: no cover - never called, can_refresh is False
        raise CrmAuthError("a long-lived token cannot be refreshed", crm=CRM, hint=LONG_LIVED_HINT)


class OAuthTokens:
    """Access tokens of an OAuth grant, kept in the state file and rotated under a lock."""

    can_refresh = True
    refused_hint = REGRANT_HINT

    def __init__(self, client: AmoClient, store: TokenStore, app: OAuthApp, *, auth_code: str | None = None,
                 now: Callable[[], float] = time.time) -> None:
        self.client, self.store, self.app = client, store, app
        self.auth_code = auth_code or None
        self.now = now
        self.refreshes = 0  # token-endpoint calls this process made (for tests and stats)
        self._current: TokenPair | None = None

    def token(self) -> str:
        if self._current is None or self._current.expires_at - self.now() < REFRESH_AHEAD_SECONDS:
            self._current = self._fresh_pair(stale=self._current.access_token if self._current else None)
        return self._current.access_token

    def refresh(self, stale: str) -> str:
        """The server refused `stale`: rotate, unless another process already did."""
        self._current = self._fresh_pair(stale=stale, refused=True)
        return self._current.access_token

    def _fresh_pair(self, *, stale: str | None, refused: bool = False) -> TokenPair:
        loaded = self.store.load()
        if loaded and not self._new_code(loaded[1]) and self._usable(loaded[0], stale, refused):
            return loaded[0]  # the cheap path: no lock when the stored pair is good
        with self.store.locked():
            loaded = self.store.load()  # re-read under the lock: another process may have rotated
            if loaded is None or self._new_code(loaded[1]):
                if not self.auth_code:
                    raise CrmAuthError("no amoCRM token is stored for this account yet", crm=CRM,
                                       hint="set AMOCRM_AUTH_CODE to a fresh authorization code from the "
                                            "integration (or AMOCRM_ACCESS_TOKEN to a long-lived token)")
                pair = exchange_code(self.client, self.app, self.auth_code, now=self.now)
                self.refreshes += 1
                self.store.save(pair, auth_code_sha=_sha(self.auth_code))
                log.info("amocrm tokens=exchanged account=%s", self.store.account)
                return pair
            pair = loaded[0]
            if self._usable(pair, stale, refused):
                return pair  # another process rotated while we waited: use its pair, do not burn it
            fresh = refresh_pair(self.client, self.app, pair.refresh_token, now=self.now)
            self.refreshes += 1
            self.store.save(fresh)  # committed on leaving the block, before the new token is ever sent
            log.info("amocrm tokens=refreshed account=%s", self.store.account)
            return fresh

    def accept_code(self, code: str) -> None:
        """An admin's fresh grant (the OAuth redirect's `code`): exchange it and store the pair now.

        For the webapp's `GET /amocrm/oauth`; the code is single-use and lives 20 minutes.
        """
        with self.store.locked():
            pair = exchange_code(self.client, self.app, code, now=self.now)
            self.refreshes += 1
            self.store.save(pair, auth_code_sha=_sha(code))
        self.auth_code, self._current = code, pair

    def _new_code(self, stored_sha: str | None) -> bool:
        """An admin re-granted access: AMOCRM_AUTH_CODE holds a code we have not exchanged yet."""
        return bool(self.auth_code) and stored_sha is not None and stored_sha != _sha(self.auth_code)

    def _usable(self, pair: TokenPair, stale: str | None, refused: bool) -> bool:
        if refused and pair.access_token == stale:
            return False
        return pair.expires_at - self.now() >= REFRESH_AHEAD_SECONDS or (pair.access_token != stale and refused)
