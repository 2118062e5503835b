"""The one state layer on both engines: migrations, what the webhook app and the settings page keep,
locks across processes, and a state file of the previous layout opening with all its rows."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from datetime import date

import pytest

from connector.amocrm.oauth import TokenPair
from connector.amocrm.tokens import TokenStore
from connector.crm import PullPage
from connector.errors import StateError, StateLocked, StateSchemaError
from connector.feedback import FeedbackAnswers
from connector.installs import SEEN_KEEP_SECONDS, Installs
from connector.model import Customer, LineItem, Purchase
from connector.settings import load_settings
from connector.snapshot import customer_to_json, purchase_to_json
from connector.snapshot_columns import read_items, read_purchases
from connector.state import State
from connector.store import engine, migrations
from connector.webapp.pages import versions
from tests.store_engines import fresh_schema

# The layout the state file had before connector/store existed: state.py's schema (meta says 1) and the
# tables installs.py, amocrm/tokens.py, fields.py, feedback.py and pages/versions.py created on first use.
PREVIOUS_LAYOUT = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cursors (account TEXT PRIMARY KEY, value TEXT NOT NULL, saved_at REAL NOT NULL);
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
    updated_at REAL NOT NULL, applied_on TEXT, PRIMARY KEY (account, key));
CREATE INDEX IF NOT EXISTS ledger_by_status ON ledger (account, status);
CREATE INDEX IF NOT EXISTS ledger_by_customer ON ledger (account, customer_id);
CREATE TABLE IF NOT EXISTS runs (id INTEGER PRIMARY KEY AUTOINCREMENT, account TEXT, kind TEXT,
    started REAL NOT NULL, finished REAL, dry_run INTEGER, stats TEXT, error TEXT);
CREATE TABLE IF NOT EXISTS locks (name TEXT PRIMARY KEY, holder TEXT NOT NULL, acquired REAL NOT NULL);
"""
PREVIOUS_APP_TABLES = """
CREATE TABLE IF NOT EXISTS app_installs (crm TEXT PRIMARY KEY, data TEXT NOT NULL, updated_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS app_seen (key TEXT PRIMARY KEY, seen_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS app_oauth_states (state_sha TEXT PRIMARY KEY, crm TEXT NOT NULL, expires_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS amocrm_tokens (
    account TEXT PRIMARY KEY, access_token TEXT NOT NULL, refresh_token TEXT NOT NULL,
    expires_at REAL NOT NULL, auth_code_sha TEXT, rotated_at REAL NOT NULL, generation INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS card_fields (account TEXT NOT NULL, customer_id TEXT NOT NULL,
    generation INTEGER NOT NULL, digest TEXT NOT NULL, card_values TEXT NOT NULL, key TEXT NOT NULL,
    written_at REAL NOT NULL, PRIMARY KEY (account, customer_id));
CREATE TABLE IF NOT EXISTS feedback (account TEXT NOT NULL, purchase_id TEXT NOT NULL, score INTEGER NOT NULL,
    answered_on TEXT NOT NULL, received_at REAL NOT NULL, PRIMARY KEY (account, purchase_id));
CREATE TABLE IF NOT EXISTS playbook_versions (id INTEGER PRIMARY KEY AUTOINCREMENT,
    saved_at REAL NOT NULL, user_id TEXT NOT NULL, user_name TEXT NOT NULL, note TEXT NOT NULL, data TEXT NOT NULL);
"""


def previous_file(path, *, app_tables: bool) -> None:
    db = sqlite3.connect(path)
    db.executescript(PREVIOUS_LAYOUT + (PREVIOUS_APP_TABLES if app_tables else ""))
    db.execute("INSERT INTO meta VALUES ('schema', '1')")
    db.execute("INSERT INTO cursors VALUES ('acc', '2026-06-01T00:00:00', 1.5)")
    db.execute("INSERT INTO customers VALUES ('acc', '7', ?)", (customer_to_json(Customer("7", name="Ольга")),))
    db.execute("INSERT INTO purchases VALUES ('acc', '11', '7', ?, 1)",
               (purchase_to_json(Purchase("11", "7", date(2026, 5, 1), 3180.0, title="Заказ",
                                          items=(LineItem("p1", "Кофе", 2.0, 1590.0),))),))
    db.execute("INSERT INTO ledger VALUES ('acc', 'v1:7:calendar:11:thanks', 'done', 'task', '7', 'calendar', '{}', "
               "'task', '501', 1, NULL, 2.5, '2026-06-01')")
    db.execute("INSERT INTO runs (account, kind, started, finished, dry_run, stats) VALUES "
               "('acc', 'sync', 1.0, 2.0, 0, '{\"written\": 1}')")
    if app_tables:
        db.execute("""INSERT INTO app_installs VALUES ('bitrix', '{"member_id":"m1"}', 3.0)""")
        db.execute("INSERT INTO amocrm_tokens VALUES ('amocrm:x', 'acc-token', 'ref-token', 9e9, NULL, 4.0, 3)")
        db.execute("INSERT INTO feedback VALUES ('acc', '11', 9, '2026-06-02', 5.0)")
        db.execute("INSERT INTO card_fields VALUES ('acc', '7', 2, 'abcd1234', '{\"segment\":\"new\"}', 'k', 6.0)")
        db.execute("INSERT INTO playbook_versions (saved_at, user_id, user_name, note, data) "
                   "VALUES (7.0, '1', 'Анна', 'first', '{\"lang\":\"ru\"}')")
    db.commit()
    db.close()


def test_a_state_file_of_the_previous_layout_opens_with_every_row(tmp_path):
    path = tmp_path / "old.db"
    previous_file(path, app_tables=True)
    state = State(path)
    assert migrations.version(state.db) == migrations.SCHEMA_VERSION
    assert state.cursor("acc").modified_since == "2026-06-01T00:00:00"
    assert [(c.id, c.name, [p.id for p in c.purchases]) for c in state.customers("acc")] == [("7", "Ольга", ["11"])]
    assert state.applied_dates("acc") == {"v1:7:calendar:11:thanks": date(2026, 6, 1)}
    assert state.last_runs()[0]["stats"] == {"written": 1}
    assert FeedbackAnswers(state).scores("acc") == {"11": 9}
    snap = read_purchases(state.db, "acc", date(2026, 6, 10), "RUB", {})  # the day and amount columns filled
    assert (snap.cols.ids, snap.cols.day.tolist(), snap.cols.amount.tolist()) == (
        ["7"], [date(2026, 5, 1).toordinal()], [3180.0])
    items = read_items(state.db, "acc", snap)  # the line items copied out of each purchase's JSON
    assert (items.keys, items.names, items.quantity.tolist()) == (["p1"], ["Кофе"], [2.0])
    assert versions.latest(state) == (1, {"lang": "ru"})
    assert versions.save(state, {"lang": "en"}, user_id="2", user_name="Bob") == 2, "numbering goes on"
    state.close()
    assert Installs(path).get("bitrix") == {"member_id": "m1"}
    store = TokenStore(path, "amocrm:x")
    assert store.load()[0].refresh_token == "ref-token" and store.generation() == 3
    store.close()


def test_a_state_file_without_the_app_tables_gets_them(tmp_path):
    path = tmp_path / "old.db"
    previous_file(path, app_tables=False)
    installs = Installs(path)
    installs.put("bitrix", {"member_id": "m2"})
    state = State(path)
    assert installs.get("bitrix") == {"member_id": "m2"} and state.counts("acc")["purchases"] == 1


def test_a_state_newer_than_the_code_is_refused_with_the_fix(state_target):
    State(state_target).close()
    state = State(state_target)
    state.db.execute("UPDATE meta SET value=? WHERE name='schema'", (str(migrations.SCHEMA_VERSION + 1),))
    state.close()
    with pytest.raises(StateSchemaError) as err:
        State(state_target)
    assert f"schema {migrations.SCHEMA_VERSION + 1}" in str(err.value) and "STATE_URL" in str(err.value)


def test_installs_deliveries_and_oauth_states(state_target):
    installs = Installs(state_target)
    assert installs.get("bitrix") is None
    installs.put("bitrix", {"member_id": "m1", "access_token": "t1"})
    with installs.locked("bitrix") as slot:
        slot.save({**slot.data, "access_token": "t2"})
    assert installs.get("bitrix")["access_token"] == "t2"
    with pytest.raises(RuntimeError), installs.locked("bitrix") as slot:
        slot.save({"member_id": "m1", "access_token": "lost"})
        raise RuntimeError("the CRM failed after the save")
    assert installs.get("bitrix")["access_token"] == "t2", "rolled back"
    assert installs.first_seen("event-1") and not installs.first_seen("event-1")
    installs.forget_seen("event-1")
    assert installs.first_seen("event-1")
    later = time.time() + SEEN_KEEP_SECONDS + 60  # any day: a resend after the keep time is new
    assert installs.first_seen("event-2", now=later) and installs.first_seen("event-1", now=later + 1)
    state = installs.new_oauth_state("amocrm", 60)
    assert installs.take_oauth_state("amocrm", state) and not installs.take_oauth_state("amocrm", state)
    installs.delete("bitrix")
    assert installs.get("bitrix") is None


def test_each_delivery_check_finds_the_expired_deliveries_by_index_not_by_reading_all(state_target):
    """Every event and robot call checks its delivery and drops the expired ones; with a table read per
    check, 100 portals' ~340,000 deliveries made PostgreSQL the benchmark's busiest process."""
    prune = "DELETE FROM app_seen WHERE seen_at < 0"
    state = State(state_target)
    try:
        db = state.db
        if isinstance(state_target, str):  # PostgreSQL plans a table scan for a small table: ask which it may use
            db.execute("SET enable_seqscan = off")
            plan = " ".join(str(r[0]) for r in db.execute("EXPLAIN " + prune).fetchall())
        else:
            plan = " ".join(str(r[-1]) for r in db.execute("EXPLAIN QUERY PLAN " + prune).fetchall())
    finally:
        state.close()
    assert "app_seen_by_time" in plan, plan


def test_line_items_follow_their_purchase_through_every_pull(state_target):
    """The columnar evaluation reads line items from their own rows (migration 9): a deal whose product
    rows changed, a deal no longer won and one the CRM dropped must leave them as the purchases say."""
    day = date(2026, 5, 1)
    coffee, tea, cup = (LineItem("p1", "Кофе", 1.0, 900.0), LineItem("p2", "Чай", 2.0, 300.0),
                        LineItem(None, "Кружка", 1.0, 250.0, category="Посуда"))
    state = State(state_target)
    try:
        run = state.start_run("acc", "sync", False)
        state.absorb("acc", PullPage(customers=[Customer("7", name="Ольга")], purchases=[
            Purchase("11", "7", day, 1500.0, items=(coffee, tea)), Purchase("12", "7", day, 250.0, items=(cup,)),
            Purchase("13", "7", day, 900.0, items=(coffee,))]), run)
        state.absorb("acc", PullPage(purchases=[Purchase("11", "7", day, 900.0, items=(coffee, tea, cup)),
                                                Purchase("11", "7", day, 900.0, items=(tea,))],  # listed twice
                                     removed_purchase_ids=["12"]), run)
        state.absorb("acc", PullPage(purchases=[Purchase("14", "7", day, 900.0, items=(coffee,))],
                                     removed_purchase_ids=["14"]), run)  # listed and removed at once: gone
        later = state.start_run("acc", "sync", False)
        state.absorb("acc", PullPage(purchases=[Purchase("11", "7", day, 600.0, items=(cup, tea))]), later)
        assert state.drop_unseen_purchases("acc", later) == 1  # 13: the full pull did not see it
        snap = read_purchases(state.db, "acc", date(2026, 6, 1), "RUB", {})
        items = read_items(state.db, "acc", snap)
        assert (items.keys, items.names, items.quantity.tolist()) == (["Кружка", "p2"], ["Кружка", "Чай"], [1.0, 2.0])
        assert items.categories == ["Посуда", None]
        lines = state.db.execute("SELECT purchase_id, place FROM purchase_lines ORDER BY purchase_id, place").fetchall()
        assert [tuple(r) for r in lines] == [("11", 0), ("11", 1)], "no line of a purchase that is gone"
        if not isinstance(state_target, str):  # the read is served by the index alone, never the JSON rows
            plan = state.db.execute("EXPLAIN QUERY PLAN SELECT customer_id, day, amount, currency, nps, id, rowid "
                                    "FROM purchases WHERE account='acc' ORDER BY customer_id, day, id").fetchall()
            assert "COVERING INDEX purchases_in_columns" in str(plan), plan
    finally:
        state.close()


def test_a_state_of_the_last_layout_gets_the_line_items_of_the_purchases_it_holds(state_target):
    """Migration 9 on a state with purchases (both engines): their line items, deal fields and the
    columnar read's index from the JSON they were kept as."""
    db = engine.connect(state_target, timeout=30)
    with db.tx():
        db.execute(migrations.META)
        for _number, _about, text in migrations.MIGRATIONS[:-1]:
            db.script(db.ddl(text))
        db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(migrations.MIGRATIONS[-2][0]),))
        paid = Purchase("11", "7", date(2026, 5, 1), 3180.0, fields={"bonus_paid": "500"},
                        items=(LineItem("p1", "Кофе", 2.0, 1590.0), LineItem(None, "Доставка", 1.0, 0.0)))
        plain = Purchase("12", "7", date(2026, 5, 9), 1590.0, items=(LineItem("p1", "Кофе", 2.0, 1590.0),))
        for p in (paid, plain):
            db.execute("INSERT INTO purchases (account, id, customer_id, data, seen_run, day, amount, currency) "
                       "VALUES ('acc', ?, '7', ?, 1, ?, ?, 'RUB')", (p.id, purchase_to_json(p), p.date.isoformat(), p.amount))
    db.close()
    state = State(state_target)
    try:
        assert migrations.version(state.db) == migrations.SCHEMA_VERSION
        snap = read_purchases(state.db, "acc", date(2026, 6, 1), "RUB", {}, paid_field="bonus_paid")
        assert snap.cols.paid.tolist() == [500.0, 0.0]
        items = read_items(state.db, "acc", snap)
        assert (items.keys, items.key.tolist(), items.quantity.tolist(), items.purchase.tolist()) == (
            ["p1", "Доставка"], [0, 1, 0], [2.0, 1.0, 2.0], [0, 0, 1])
        assert state.db.execute("SELECT COUNT(*) FROM line_texts").fetchone()[0] == 2, "a repeated line kept once"
    finally:
        state.close()


def test_a_ledger_that_grew_during_a_sync_is_updated_row_by_key_not_read_whole(pg_url):
    """The first sync fills an empty ledger 50 actions at a time; a statement whose plan was cached while the
    table was small then read every row of the account for each row it updated (quadratic: 10 s for 3,444
    actions in the 100-portal benchmark). Counted as rows PostgreSQL fetched, not as time."""
    import psycopg

    from connector.store import engine, ledger

    url = fresh_schema(pg_url, "growth")
    db = engine.connect(url, timeout=30)
    migrations.prepare(db)
    keys = [f"v1:{n}:calendar:{n * 7}:thanks" for n in range(1000)]
    for start in range(0, len(keys), 50):  # as a sync writes: each batch pending, then its answer
        chunk = keys[start:start + 50]
        ledger.mark_pending(db, "acc", [(k, "task", str(n), "calendar", "{}") for n, k in enumerate(chunk)])
        ledger.mark_failed(db, "acc", dict.fromkeys(chunk, "the CRM said no"))

    def fetched() -> int:
        db.execute("SELECT pg_stat_force_next_flush()")
        time.sleep(0.1)
        with psycopg.connect(url, autocommit=True) as other:
            return int(other.execute("SELECT COALESCE(idx_tup_fetch, 0) + COALESCE(seq_tup_read, 0) "
                                     "FROM pg_stat_user_tables WHERE relid = 'ledger'::regclass").fetchone()[0])

    before = fetched()
    ledger.mark_failed(db, "acc", dict.fromkeys(keys, "retried, refused again"))
    read = fetched() - before
    db.close()
    assert read <= 3 * len(keys), f"{read} rows read to update {len(keys)}"


def test_amocrm_tokens_rotate_under_the_lock(state_target):
    store = TokenStore(state_target, "amocrm:a")
    with store.locked():
        store.save(TokenPair("a1", "r1", 100.0), auth_code_sha="sha")
    with store.locked():
        store.save(TokenPair("a2", "r2", 200.0))
    assert store.load() == (TokenPair("a2", "r2", 200.0), "sha") and store.generation() == 2
    other = TokenStore(state_target, "amocrm:b")
    assert other.load() is None
    store.close()
    other.close()


def test_saved_playbooks_and_feedback_and_cards(state_target):
    from connector.fields import WrittenCards
    from connector.model import Action, ActionKind

    state = State(state_target)
    first = versions.save(state, {"lang": "ru"}, user_id="1", user_name="Анна", note="a")
    second = versions.save(state, {"lang": "en"}, user_id="1", user_name="Анна")
    assert [v["id"] for v in versions.listing(state)] == [second, first]
    assert versions.data_of(state, first) == {"lang": "ru"} and versions.latest(state) == (second, {"lang": "en"})
    answers = FeedbackAnswers(state)
    answers.record("acc", "11", 6, date(2026, 6, 1))
    answers.record("acc", "11", 9, date(2026, 6, 2))
    assert answers.scores("acc") == {"11": 9}, "a later answer replaces an earlier one"
    cards = WrittenCards(state)
    card = Action(key="v1:7:segment:g1-1a2b3c4d:fields", kind=ActionKind.TAG, customer_id="7", rule="segment",
                  step="fields", due=date(2026, 6, 1), title="t", payload={"codes": {"lifecycle": "active"}})
    cards.record("acc", [card])
    assert cards.last("acc") == {"7": (1, "1a2b3c4d")} and cards.holding_values("acc") == {"7"}


def test_a_postgresql_password_never_shows_in_the_error(pg_url):
    secret = "s3cr3t-pass"
    url = pg_url.replace("postgresql://postgres@", f"postgresql://postgres:{secret}@").replace(
        "repeat_sales", "no_such_database")
    with pytest.raises(StateError) as err:
        State(url)
    assert secret not in str(err.value) and "no_such_database" in str(err.value)
    with pytest.raises(Exception) as err:
        load_settings(STATE_URL=f"postgres://u:{secret}@h/db")
    assert secret not in str(err.value) and "STATE_URL" in str(err.value)


def test_a_second_process_is_refused_the_sync_lock_across_connections(state_target):
    code = ("import sys,time; from connector.state import State; s=State(sys.argv[1]); "
            "cm=s.lock('sync'); cm.__enter__(); print('held', flush=True); sys.stdin.readline()")
    holder = subprocess.Popen([sys.executable, "-c", code, str(state_target)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(StateLocked) as err, State(state_target).lock("sync"):
            pass
        assert "another run holds the sync lock" in str(err.value)
    finally:
        holder.stdin.close()  # the holder ends normally and lets go
        holder.wait(timeout=30)
    with State(state_target).lock("sync"):
        pass


def test_processes_opening_a_new_state_at_once_all_get_it(state_at):
    """Workers starting together on an empty database migrate it once; none sees a half-made schema."""
    code = "import sys; from connector.state import State; State(sys.argv[1]).close()"
    target = str(state_at("new"))
    procs = [subprocess.Popen([sys.executable, "-c", code, target], stderr=subprocess.PIPE, text=True)
             for _ in range(6)]
    errors = [p.communicate(timeout=60)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, errors
    state = State(target)
    assert migrations.version(state.db) == migrations.SCHEMA_VERSION
    state.close()
