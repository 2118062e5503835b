"""The state's one schema as numbered migrations; `meta.schema` holds the last one applied.

Version 1 is the layout `connector/state.py` created up to now (a file of that time says schema 1).
Version 2 adds the tables other modules used to create on first use (installs, amoCRM tokens, card
fields, feedback answers, saved playbooks), with IF NOT EXISTS, so a file that already has some of
them keeps their rows. Version 3 files installs per tenant (connector/tenants.py). Version 5 adds the
queue's inbox (connector/webapp/inbox.py created it itself before; IF NOT EXISTS keeps its rows); 6 adds
the tenants' settings overrides; 9 keeps the columnar read's columns narrow (an index, line items as
rows: connector.store.snapshot keeps them with each purchase). Never edit a migration that has shipped: add the next one.
`{real}` and `{serial}` are the engine's types for a float and an auto-numbered key (engine.DDL).
"""

from __future__ import annotations

import sqlite3
import time

from connector.errors import StateSchemaError
from connector.store import snapshot
from connector.store.engine import Db

OPEN_ATTEMPTS = 20  # tries to set up a state file another thread or process is creating right now
OPEN_RETRY_SECONDS = 0.02

MIGRATIONS: list[tuple[int, str, str]] = [
    (1, "the snapshot, cursors, ledger, runs and run locks", """
CREATE TABLE IF NOT EXISTS cursors (account TEXT PRIMARY KEY, value TEXT NOT NULL, saved_at {real} NOT NULL);
CREATE TABLE IF NOT EXISTS customers (account TEXT NOT NULL, id TEXT NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (account, id));
CREATE TABLE IF NOT EXISTS purchases (account TEXT NOT NULL, id TEXT NOT NULL, customer_id TEXT NOT NULL,
    data TEXT NOT NULL, seen_run INTEGER, PRIMARY KEY (account, id));
CREATE INDEX IF NOT EXISTS purchases_by_customer ON purchases (account, customer_id);
CREATE TABLE IF NOT EXISTS products (account TEXT NOT NULL, id TEXT NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (account, id));
CREATE TABLE IF NOT EXISTS ledger (account TEXT NOT NULL, key TEXT NOT NULL, status TEXT NOT NULL,
    kind TEXT NOT NULL, customer_id TEXT NOT NULL, rule TEXT NOT NULL, action TEXT NOT NULL,
    crm_kind TEXT, crm_id TEXT, attempts INTEGER NOT NULL DEFAULT 0, reason TEXT,
    updated_at {real} NOT NULL, applied_on TEXT, PRIMARY KEY (account, key));
CREATE INDEX IF NOT EXISTS ledger_by_status ON ledger (account, status);
CREATE INDEX IF NOT EXISTS ledger_by_customer ON ledger (account, customer_id);
CREATE TABLE IF NOT EXISTS runs (id {serial}, account TEXT, kind TEXT,
    started {real} NOT NULL, finished {real}, dry_run INTEGER, stats TEXT, error TEXT);
CREATE TABLE IF NOT EXISTS locks (name TEXT PRIMARY KEY, holder TEXT NOT NULL, acquired {real} NOT NULL)
"""),
    (2, "tables once created on first use: installs, amoCRM tokens, card fields, feedback, saved playbooks", """
CREATE TABLE IF NOT EXISTS app_installs (crm TEXT PRIMARY KEY, data TEXT NOT NULL, updated_at {real} NOT NULL);
CREATE TABLE IF NOT EXISTS app_seen (key TEXT PRIMARY KEY, seen_at {real} NOT NULL);
CREATE TABLE IF NOT EXISTS app_oauth_states (state_sha TEXT PRIMARY KEY, crm TEXT NOT NULL,
    expires_at {real} NOT NULL);
CREATE TABLE IF NOT EXISTS amocrm_tokens (
    account TEXT PRIMARY KEY, access_token TEXT NOT NULL, refresh_token TEXT NOT NULL,
    expires_at {real} NOT NULL, auth_code_sha TEXT, rotated_at {real} NOT NULL, generation INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS card_fields (account TEXT NOT NULL, customer_id TEXT NOT NULL,
    generation INTEGER NOT NULL, digest TEXT NOT NULL, card_values TEXT NOT NULL, key TEXT NOT NULL,
    written_at {real} NOT NULL, PRIMARY KEY (account, customer_id));
CREATE TABLE IF NOT EXISTS feedback (account TEXT NOT NULL, purchase_id TEXT NOT NULL, score INTEGER NOT NULL,
    answered_on TEXT NOT NULL, received_at {real} NOT NULL, PRIMARY KEY (account, purchase_id));
CREATE TABLE IF NOT EXISTS playbook_versions (id {serial},
    saved_at {real} NOT NULL, user_id TEXT NOT NULL, user_name TEXT NOT NULL, note TEXT NOT NULL, data TEXT NOT NULL)
"""),
    (3, "installs per tenant: the single install of before is the tenant `default`'s", """
CREATE TABLE IF NOT EXISTS tenant_installs (tenant TEXT NOT NULL, crm TEXT NOT NULL, ref TEXT NOT NULL,
    data TEXT NOT NULL, updated_at {real} NOT NULL, PRIMARY KEY (tenant, crm));
CREATE INDEX IF NOT EXISTS tenant_installs_ref ON tenant_installs (crm, ref);
INSERT INTO tenant_installs SELECT 'default', crm, '', data, updated_at FROM app_installs WHERE true
    ON CONFLICT DO NOTHING;
DROP TABLE app_installs
"""),
    (4, "a purchase's day, amount, currency and posted score as columns: the columnar evaluation reads them "
        "on both engines without parsing each purchase's JSON", """
ALTER TABLE purchases ADD COLUMN day TEXT;
ALTER TABLE purchases ADD COLUMN amount {real};
ALTER TABLE purchases ADD COLUMN currency TEXT;
ALTER TABLE purchases ADD COLUMN nps INTEGER;
UPDATE purchases SET day={data[date]}, amount=CAST({data[amount]} AS {real}), currency={data[currency]},
    nps=CAST({data[nps]} AS INTEGER)
"""),
    (5, "the queue's inbox: each event, robot call and install kept before the answer (QUEUE_URL)", """
CREATE TABLE IF NOT EXISTS app_inbox (id {serial}, tenant TEXT NOT NULL, kind TEXT NOT NULL,
    lane TEXT NOT NULL, payload TEXT NOT NULL, created_at {real} NOT NULL, enqueued_at {real},
    started_at {real}, done_at {real}, attempts INTEGER NOT NULL DEFAULT 0, error TEXT);
CREATE INDEX IF NOT EXISTS app_inbox_open ON app_inbox (done_at, tenant, kind)
"""),
    (6, "each tenant's own settings overrides (`repeat-sales tenants set`), a secret one sealed", """
CREATE TABLE IF NOT EXISTS tenant_settings (tenant TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL,
    sealed INTEGER NOT NULL, updated_at {real} NOT NULL, PRIMARY KEY (tenant, name))
"""),
    (7, "which portal the tenant `default` is being installed for, taken when its install arrives: a second "
        "portal's install arriving before a worker stored the first is that portal's own tenant", """
CREATE TABLE IF NOT EXISTS tenant_claims (crm TEXT PRIMARY KEY, ref TEXT NOT NULL, claimed_at {real} NOT NULL)
"""),
    (8, "deliveries seen, by when: each delivery's check drops the expired ones, and without an index that "
        "read the whole table - the 100-portal benchmark spent most of PostgreSQL's CPU there (88,000 "
        "deliveries, 3.9 billion rows read)", """
CREATE INDEX IF NOT EXISTS app_seen_by_time ON app_seen (seen_at)
"""),
    (9, "the columnar evaluation's reads narrow: an index in the purchases' read order holding every column "
        "it reads (the read scanned each row's whole JSON: 4.3 s for 1M purchases, 1.2 s from the index), the "
        "deal fields as a column of their own, and each purchase's line items as rows naming their line's text "
        "(json_each over every purchase's JSON took 6.5 s for 2M lines; most lines repeat: one product, "
        "quantity and price). On SQLite the new index replaces purchases_by_customer (its first columns): "
        "absorbing 100,000 purchases took 4.6 s of CPU with both, 3.4 s with the new one alone. PostgreSQL "
        "keeps it: it looks a customer up only in an index of the column's own collation (EXPLAIN)", """
ALTER TABLE purchases ADD COLUMN fields TEXT;
UPDATE purchases SET fields={data[fields]} WHERE {data[fields]} IS NOT NULL;
CREATE INDEX IF NOT EXISTS purchases_in_columns ON purchases (account, customer_id{bytes}, day, id{bytes}, amount,
    currency, nps);
{sqlite_only}DROP INDEX IF EXISTS purchases_by_customer;
CREATE INDEX IF NOT EXISTS purchases_with_fields ON purchases (account) WHERE fields IS NOT NULL;
CREATE TABLE IF NOT EXISTS line_texts (account TEXT NOT NULL, id BIGINT NOT NULL, line TEXT NOT NULL,
    PRIMARY KEY (account, id)){without_rowid};
CREATE TABLE IF NOT EXISTS purchase_lines (account TEXT NOT NULL, purchase_id TEXT NOT NULL, place INTEGER NOT NULL,
    line BIGINT NOT NULL, PRIMARY KEY (account, purchase_id, place)){without_rowid}
"""),
]
BACKFILLS = {9: snapshot.backfill_lines}  # rows a migration fills in Python, after its statements
SCHEMA_VERSION = MIGRATIONS[-1][0]
META = "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)"


def version(db: Db) -> int | None:
    row = db.execute("SELECT value FROM meta WHERE name='schema'").fetchone()
    return int(row[0]) if row else None


def prepare(db: Db, *, writable: bool = True) -> None:
    """Bring the state to SCHEMA_VERSION (a state newer than this code is a StateSchemaError).

    SQLite: WAL first; a new file being set up by another thread or process at this moment answers
    "locked" without waiting, so wait a little and look again.
    """
    for attempt in range(1, OPEN_ATTEMPTS + 1):
        try:
            _prepare(db, writable)
            return
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) and attempt < OPEN_ATTEMPTS:
                time.sleep(OPEN_RETRY_SECONDS * attempt)
                continue
            raise


def _prepare(db: Db, writable: bool) -> None:
    if not db.pg:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
    found = version(db) if _has_meta(db) else None
    if found is None or found < SCHEMA_VERSION:
        try:
            _migrate(db)
        except sqlite3.OperationalError as exc:
            if writable or "readonly" not in str(exc):
                raise
            return  # a report reads an older read-only file as it is
        found = version(db)
    elif writable and not db.pg:
        with db.tx():  # a write that changes nothing: SQLite refuses it on a read-only file
            db.execute("UPDATE meta SET value=value WHERE name='schema'")
    if found is not None and found > SCHEMA_VERSION:
        raise StateSchemaError(f"state {db.where} has schema {found}, this version needs {SCHEMA_VERSION}",
                               hint="use a new STATE_URL or the matching version")


def _has_meta(db: Db) -> bool:
    if db.pg:
        return db.execute("SELECT to_regclass('meta') IS NOT NULL").fetchone()[0]
    return db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone() is not None


def _migrate(db: Db) -> None:
    """Every migration after the state's version, in one transaction (re-read under the lock: another
    process may have migrated while we waited)."""
    with db.tx(lock="schema"):
        db.execute(META)
        found = version(db) or 0
        if found > SCHEMA_VERSION:
            return
        for number, _about, text in MIGRATIONS:
            if number > found:
                db.script(db.ddl(text))
                if number in BACKFILLS:
                    BACKFILLS[number](db)
        db.execute("INSERT INTO meta VALUES ('schema', ?) ON CONFLICT(name) DO UPDATE SET value=excluded.value",
                   (str(SCHEMA_VERSION),))
