"""psycopg2 (text results only): parameters, SQL-level PREPARE/EXECUTE, every type,
transactions and savepoints, COPY text and binary in, batches, masking, held
statements, cancel and its thread pool."""

import io
import struct
import threading
from concurrent.futures import ThreadPoolExecutor

import psycopg2
import psycopg2.errors
import psycopg2.extras
import psycopg2.pool

from common import (BLOB, DOC, ITEMS, NUMERIC, P, PEOPLE, WHEN, AIRLOCK, decide_later, dsn, eq, expect,
                    masked, raises, timed, wrong)

conn = psycopg2.connect(dsn())
conn.autocommit = True
eq(conn.info.ssl_in_use, True, "TLS in use")
cur = conn.cursor()


def one(query, params=None, c=cur):
    c.execute(query, params)
    return c.fetchone()


def exists(table):
    return one("SELECT to_regclass(%s) IS NOT NULL", [table])[0]


# Parameters (psycopg2 interpolates them) and a server-side prepared statement,
# executed many times: same values every time, masked column masked.
cur.execute(f"PREPARE {P}_person (int) AS SELECT name, password_hash FROM {P}_people WHERE id = $1")
for i in range(12):
    eq(one("SELECT %s::int AS n, %s::text || 'x' AS t", [i, f"v{i}"]), (i, f"v{i}x"), f"n, t at execution {i}")
    pid = 1 + i % 2
    name, hash_ = one(f"SELECT name, password_hash FROM {P}_people WHERE id = %s", [pid])
    eq(name, PEOPLE[pid][0], f"name at execution {i}")
    masked(hash_, pid, f"password_hash at execution {i}")
    name, hash_ = one(f"EXECUTE {P}_person(%s)", [pid])
    eq(name, PEOPLE[pid][0], f"EXECUTE name at execution {i}")
    masked(hash_, pid, f"EXECUTE password_hash at execution {i}")
cur.execute(f"DEALLOCATE {P}_person")

# Types: register_composite reads the catalog.
Pair = psycopg2.extras.register_composite(f"{P}_pair", conn).type
psycopg2.extras.register_default_json(conn)
psycopg2.extras.register_default_jsonb(conn)
got = one(f"SELECT %s::int[], %s::text[], %s::{P}_mood, %s::{P}_mood[]::text[], %s::{P}_pair, %s::json, %s::jsonb, "
          "%s::bytea, %s::numeric, %s::timestamptz",
          [[1, None, 3], ["a", "b,c", 'q"\\', None], "happy", ["sad", "ok"], (7, "(7, x)"),
           psycopg2.extras.Json(DOC), psycopg2.extras.Json(DOC), BLOB, NUMERIC, WHEN])
want = ([1, None, 3], ["a", "b,c", 'q"\\', None], "happy", ["sad", "ok"], Pair(7, "(7, x)"), DOC, DOC, BLOB,
        NUMERIC, WHEN)
for k, (g, w) in enumerate(zip(got, want)):
    eq(bytes(g) if isinstance(g, memoryview) else g, w, f"type column {k}")

# Transactions and savepoints; an error, then the connection is reused.
tx = psycopg2.connect(dsn())
with tx, tx.cursor() as c:
    c.execute(f"INSERT INTO {P}_items (id, name) VALUES (100, 'kept')")
    c.execute("SAVEPOINT s1")
    c.execute(f"INSERT INTO {P}_items (id, name) VALUES (101, 'rolled back')")
    raises("22012", "division by zero in a savepoint", c.execute, "SELECT 1 / 0")
    raises("25P02", "aborted transaction", c.execute, "SELECT 1")
    c.execute("ROLLBACK TO SAVEPOINT s1")
    eq(one("SELECT 'in the transaction'", c=c), ("in the transaction",), "after ROLLBACK TO SAVEPOINT")
eq(one(f"SELECT array_agg(id) FROM {P}_items WHERE id >= 100"), ([100],), "savepoint effect")
with tx, tx.cursor() as c:
    raises("22012", "division by zero in a transaction", c.execute, "SELECT 1 / 0")
with tx, tx.cursor() as c:
    eq(one("SELECT 'again'", c=c), ("again",), "after the rolled back transaction")
tx.close()
raises("22012", "division by zero", cur.execute, "SELECT 1 / 0")
eq(one("SELECT 41 + %s", [1]), (42,), "after an error")

# COPY in, text and binary (built by hand: psycopg2 only moves the bytes); out, text.
COLS = f"{P}_items (id, name, amount, at, data)"
text = io.StringIO()
for id_, name, amount, at, data in ITEMS[:3]:
    esc = name.replace("\\", "\\\\").replace("\t", "\\t")
    text.write(f"{id_}\t{esc}\t{amount}\t{at.isoformat()}\t\\\\x{data.hex()}\n")
text.seek(0)
cur.copy_expert(f"COPY {COLS} FROM STDIN", text)


def field(b):
    return struct.pack("!i", len(b)) + b


binary = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
for id_, name, _, _, data in ITEMS[3:]:
    binary += struct.pack("!h", 3) + field(struct.pack("!i", id_)) + field(name.encode()) + field(data)
binary += struct.pack("!h", -1)
cur.copy_expert(f"COPY {P}_items (id, name, data) FROM STDIN (FORMAT BINARY)", io.BytesIO(binary))
cur.execute(f"UPDATE {P}_items SET amount = id / 8.0, at = %s + make_interval(days => id) WHERE id IN (4, 5)",
            [WHEN])
out = io.StringIO()
cur.copy_expert(f"COPY (SELECT id, name FROM {P}_items WHERE id < 100 ORDER BY id) TO STDOUT", out)
want = "".join(f"{i}\t{n.replace(chr(92), chr(92) * 2).replace(chr(9), chr(92) + 't')}\n" for i, n, *_ in ITEMS)
eq(out.getvalue(), want, "COPY TO STDOUT text")
cur.execute(f"SELECT id, name, amount, at, data FROM {P}_items WHERE id < 100 ORDER BY id")
eq([(r[0], r[1], r[2], r[3], bytes(r[4])) for r in cur.fetchall()], ITEMS, "rows COPY wrote")
out = io.StringIO()
cur.copy_expert(f"COPY {P}_people TO STDOUT", out)
for line in out.getvalue().splitlines():
    id_, name, hash_ = line.split("\t")
    eq(name, PEOPLE[int(id_)][0], "COPY people name")
    masked(hash_, int(id_), "COPY people password_hash")

# Batches.
psycopg2.extras.execute_batch(cur, f"INSERT INTO {P}_items (id, name) VALUES (%s, %s)",
                              [(200 + i, f"batch {i}") for i in range(50)], page_size=7)
psycopg2.extras.execute_values(cur, f"INSERT INTO {P}_items (id, name) VALUES %s",
                               [(300 + i, f"values {i}") for i in range(50)], page_size=9)
eq(one(f"SELECT count(*), sum(id) FROM {P}_items WHERE id >= 200"), (100, sum(range(200, 250)) + sum(range(300, 350))),
   "batched rows")
rows = psycopg2.extras.execute_values(cur, f"SELECT p.name, p.password_hash FROM {P}_people p JOIN (VALUES %s) v(id) "
                                      "USING (id) ORDER BY id", [(1,), (2,)], fetch=True)
for pid, (name, hash_) in zip((1, 2), rows):
    eq(name, PEOPLE[pid][0], "execute_values name")
    masked(hash_, pid, "execute_values password_hash")

# Held statements: one approved runs, one denied fails and changes nothing.
decider = decide_later(f"{P}_held_a", "approve")
cur.execute(f"DROP TABLE {P}_held_a")
decider.join()
eq(exists(f"{P}_held_a"), False, "the approved DROP dropped")
if AIRLOCK:
    decider = decide_later(f"{P}_held_b", "deny")
    e = raises("42501", "the denied DROP", cur.execute, f"DROP TABLE {P}_held_b")
    expect("denied" in str(e), f"the denial says so: {e}")
    decider.join()
    eq(exists(f"{P}_held_b"), True, "the denied DROP left the table")
eq(one("SELECT 'usable'"), ("usable",), "after the held statements")

# Cancel from another thread.
with timed(10, "pg_sleep(30) cancelled"):
    threading.Timer(1.0, conn.cancel).start()
    raises("57014", "cancelled pg_sleep", cur.execute, "SELECT pg_sleep(30)")
eq(one("SELECT 'after cancel'"), ("after cancel",), "after cancel")
conn.close()

# Its thread pool (which refuses rather than waits when all are out): each worker
# checks its own values on connections others used before.
pool = psycopg2.pool.ThreadedConnectionPool(1, 3, dsn())


def work(i):
    c = pool.getconn()
    try:
        with c, c.cursor() as k:
            eq(one("SELECT %s::int", [i], k), (i,), f"pooled query {i}")
            got = one(f"SELECT id, name, password_hash FROM {P}_people WHERE id = %s", [1 + i % 2], k)
        eq(got[:2], (1 + i % 2, PEOPLE[1 + i % 2][0]), f"pooled row {i}")
        masked(got[2], got[0], f"pooled password_hash {i}")
    finally:
        pool.putconn(c)


with ThreadPoolExecutor(3) as ex:
    list(ex.map(work, range(40)))
pool.closeall()
print("ok")
