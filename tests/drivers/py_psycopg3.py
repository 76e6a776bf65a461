"""psycopg 3: statements prepared past prepare_threshold, every type in text and
binary, transactions, COPY text and binary, a pipeline, masking, held statements and
both cancel APIs."""

import threading

import psycopg
from psycopg.types.composite import CompositeInfo, register_composite
from psycopg.types.enum import EnumInfo, register_enum
from psycopg.types.json import Json, Jsonb

from common import (BLOB, DOC, ITEMS, NUMERIC, P, PEOPLE, WHEN, AIRLOCK, decide_later, dsn, eq, expect,
                    masked, raises, timed, wrong)

conn = psycopg.connect(dsn(), autocommit=True, prepare_threshold=5)
eq(conn.pgconn.ssl_in_use, True, "TLS in use")


def one(query, params=(), binary=False):
    return conn.cursor(binary=binary).execute(query, params).fetchone()


def exists(table):
    return one("SELECT to_regclass(%s) IS NOT NULL", [table])[0]


# Prepared past the threshold (psycopg prepares on the 5th execution): same values
# every time, masked column masked in text and NULL in binary.
for binary in (False, True):
    for i in range(12):
        eq(one("SELECT %s::int AS n, %s::text || 'x' AS t", [i, f"v{i}"], binary), (i, f"v{i}x"),
           f"n, t at execution {i} (binary {binary})")
        pid = 1 + i % 2
        name, hash_ = one(f"SELECT name, password_hash FROM {P}_people WHERE id = %s", [pid], binary)
        eq(name, PEOPLE[pid][0], f"name at execution {i} (binary {binary})")
        masked(hash_, pid, f"password_hash at execution {i}", binary)
expect(len(conn._prepared._names) >= 2, f"psycopg prepared nothing: {conn._prepared._names}")
rows = conn.cursor(binary=True).execute(f"SELECT * FROM {P}_people ORDER BY id").fetchall()
eq([r[:2] for r in rows], [(1, "alice"), (2, "bob")], "SELECT * names")
for r in rows:
    masked(r[2], r[0], "SELECT * password_hash (binary)", binary=True)

# Types: registering the enum and composite reads the catalog.
mood = EnumInfo.fetch(conn, f"{P}_mood")
register_enum(mood, conn)
pair = CompositeInfo.fetch(conn, f"{P}_pair")
register_composite(pair, conn)
Mood, Pair = mood.enum, pair.python_type
TYPES = (f"SELECT %s::int[], %s::text[], %s::{P}_mood, %s::{P}_mood[], %s::{P}_pair, %s::json, %s::jsonb, "
         "%s::bytea, %s::numeric, %s::timestamptz, %s::timestamptz[]")
for binary in (False, True):
    for i in range(7):
        args = [[1, None, i], ["a", "b,c", 'q"\\', None], Mood.happy, [Mood.sad, Mood.ok], Pair(i, f"({i}, x)"),
                Json(DOC), Jsonb(DOC), BLOB, NUMERIC, WHEN, [WHEN, None]]
        want = ([1, None, i], ["a", "b,c", 'q"\\', None], Mood.happy, [Mood.sad, Mood.ok], Pair(i, f"({i}, x)"),
                DOC, DOC, BLOB, NUMERIC, WHEN, [WHEN, None])
        got = one(TYPES, args, binary)
        for k, (g, w) in enumerate(zip(got, want)):
            eq(g, w, f"type column {k} at execution {i} (binary {binary})")

# Transactions and savepoints; an error, then the connection is reused.
with conn.transaction():
    conn.execute(f"INSERT INTO {P}_items (id, name) VALUES (100, 'inserted')")
    eq(conn.execute(f"UPDATE {P}_items SET name = %s WHERE id = %s", ["kept", 100]).rowcount, 1, "UPDATE rows")
    try:
        with conn.transaction():
            conn.execute(f"INSERT INTO {P}_items (id, name) VALUES (101, 'rolled back')")
            conn.execute("SELECT 1 / 0")
        wrong("division by zero in a savepoint raised nothing")
    except psycopg.errors.DivisionByZero:
        pass
    eq(conn.info.transaction_status, psycopg.pq.TransactionStatus.INTRANS, "status after the savepoint rollback")
eq(one(f"SELECT array_agg(name) FROM {P}_items WHERE id >= 100"), (["kept"],), "savepoint effect")
raises("22012", "division by zero", conn.execute, "SELECT 1 / 0")
eq(one("SELECT 41 + %s", [1]), (42,), "after an error")
with psycopg.connect(dsn()) as tx:  # not autocommit: the error aborts the transaction
    raises("22012", "division by zero in a transaction", tx.execute, "SELECT 1 / 0")
    raises("25P02", "aborted transaction", tx.execute, "SELECT 1")
    tx.rollback()
    eq(tx.execute("SELECT 'again'").fetchone(), ("again",), "after rollback")

# COPY in, text and binary; out, text (binary out is refused through Airlock: it
# cannot mask it).
COLS = f"{P}_items (id, name, amount, at, data)"
TYPE_NAMES = ["int4", "text", "numeric", "timestamptz", "bytea"]
cur = conn.cursor()
with cur.copy(f"COPY {COLS} FROM STDIN") as cp:
    for r in ITEMS[:3]:
        cp.write_row(r)
with cur.copy(f"COPY {COLS} FROM STDIN (FORMAT BINARY)") as cp:
    cp.set_types(TYPE_NAMES)
    for r in ITEMS[3:]:
        cp.write_row(r)
OUT = f"COPY (SELECT id, name, amount, at, data FROM {P}_items WHERE id < 100 ORDER BY id) TO STDOUT"
with cur.copy(OUT) as cp:
    cp.set_types(TYPE_NAMES)
    eq(list(cp.rows()), ITEMS, "COPY TO STDOUT rows")
with cur.copy(f"COPY {P}_people TO STDOUT") as cp:
    cp.set_types(["int4", "text", "text"])
    for r in cp.rows():
        eq(r[1], PEOPLE[r[0]][0], "COPY people name")
        masked(r[2], r[0], "COPY people password_hash")


def copy_binary_out():
    with cur.copy(OUT + " (FORMAT BINARY)") as cp:
        cp.set_types(TYPE_NAMES)
        return list(cp.rows())


eq(copy_binary_out(), ITEMS, "binary COPY TO STDOUT rows")
with cur.copy(f"COPY {P}_people TO STDOUT (FORMAT BINARY)") as cp:
    cp.set_types(["int4", "text", "text"])
    for pid, name, hash_ in cp.rows():
        eq(name, PEOPLE[pid][0], "binary COPY people name")
        masked(hash_, pid, "binary COPY people password_hash", binary=True)
eq(one("SELECT count(*) FROM " + P + "_items"), (6,), "after COPY")

# A pipeline: many statements sent before any result is read, some past the
# prepare threshold, one masked.
with conn.pipeline():
    doubled = [conn.execute("SELECT %s::int * 2", [i]) for i in range(20)]
    people = conn.cursor(binary=True).execute(f"SELECT id, password_hash FROM {P}_people WHERE id = %s", [2])
    conn.execute(f"INSERT INTO {P}_items (id, name) VALUES (%s, %s)", [200, "piped"])
eq([c.fetchone()[0] for c in doubled], [2 * i for i in range(20)], "pipelined results")
pid, hash_ = people.fetchone()
masked(hash_, pid, "pipelined password_hash", binary=True)
try:
    with conn.pipeline():
        conn.execute("SELECT 1 / 0")
        conn.execute(f"INSERT INTO {P}_items (id, name) VALUES (201, 'after the error')")
    wrong("the pipeline's error raised nothing")
except psycopg.errors.DivisionByZero:
    pass
eq(one(f"SELECT array_agg(id ORDER BY id) FROM {P}_items WHERE id >= 200"), ([200],), "pipeline after its error")

# Held statements: one approved runs, one denied fails and changes nothing.
decider = decide_later(f"{P}_held_a", "approve")
conn.execute(f"DROP TABLE {P}_held_a")
decider.join()
eq(exists(f"{P}_held_a"), False, "the approved DROP dropped")
if AIRLOCK:
    decider = decide_later(f"{P}_held_b", "deny")
    e = raises("42501", "the denied DROP", conn.execute, f"DROP TABLE {P}_held_b")
    expect("denied" in str(e), f"the denial says so: {e}")
    decider.join()
    eq(exists(f"{P}_held_b"), True, "the denied DROP left the table")
eq(one("SELECT 'usable'"), ("usable",), "after the held statements")


# Cancel from another thread, with libpq's old PQcancel and the new encrypted
# PQcancelBlocking (cancel_safe).
def cancel_later(how):
    def run():
        try:
            how()
        except Exception as e:
            wrong(f"{how.__name__} raised {type(e).__name__}: {e}")
    threading.Timer(1.0, run).start()


for how in (conn.cancel, conn.cancel_safe):
    with timed(10, f"pg_sleep(30) cancelled by {how.__name__}"):
        cancel_later(how)
        raises("57014", f"pg_sleep cancelled by {how.__name__}", conn.execute, "SELECT pg_sleep(30)")
    eq(one("SELECT %s::text", ["after cancel"]), ("after cancel",), f"after {how.__name__}")

conn.close()
print("ok")
