"""All the SQL of the product: one schema, numbered migrations, two engines.

STATE_URL picks the engine: a path or `sqlite:///path` (the default; the file is created 0600, WAL)
or `postgresql://user:password@host/db` (psycopg 3; the password never appears in errors or logs).

Layout:
    engine.py      the connection (`Db`), and every difference between SQLite and PostgreSQL
    sqlite_file.py the SQLite file created 0600, and its errors as what to do about them
    migrations.py  the numbered migrations; `meta.schema` holds the last applied (a newer state than
                   this code is refused with StateSchemaError)
    snapshot.py    customers, purchases, products, cursors, meta
    ledger.py      the applied-action ledger, runs, run locks
    app.py         the webhook app's installs, deliveries seen, OAuth states; amoCRM tokens
    cards.py       card fields written, feedback answers, saved playbooks
    columns.py     the snapshot read in big chunks as columns for the columnar evaluation

The classes callers use (connector.state.State, connector.installs.Installs,
connector.amocrm.tokens.TokenStore, ...) hold no SQL: they call the query functions here with their `db`.

How to add a table or a column:
  1. Append `(N + 1, "why", "CREATE TABLE IF NOT EXISTS ...")` to `migrations.MIGRATIONS` (never edit
     one that shipped). Write SQLite's dialect with `{real}` for a float column and `{serial}` for an
     auto-numbered `id` key and `{data[name]}` for a top-level field of the row's `data` JSON (a
     backfill; a literal brace is doubled: '{{}}'); a column is
     `ALTER TABLE t ADD COLUMN c TEXT NOT NULL DEFAULT ''` (both engines take it). A new key
     (installs keyed by tenant) is a new table in the same migration:
     `CREATE TABLE t_new (...); INSERT INTO t_new SELECT ... FROM t; DROP TABLE t;
     ALTER TABLE t_new RENAME TO t` - one transaction, so a kill leaves the old layout whole.
  2. Add query functions taking `db: Db` to the module of that subject (or a new module here):
     `?` placeholders, `INSERT ... ON CONFLICT(key) DO UPDATE SET col=excluded.col` or `DO NOTHING`
     (never INSERT OR REPLACE/IGNORE), `RETURNING id` (never lastrowid), `with db.tx(lock="name"):`
     for read-modify-write (SQLite: BEGIN IMMEDIATE; PostgreSQL: an advisory lock on that name),
     `db.json_text(column, *keys)` for a JSON field. Anything else that differs goes into engine.py.
  3. Test it on both engines: tests using the `state_target` fixture (tests/store_engines.py) run
     on SQLite and on a private PostgreSQL.
"""
