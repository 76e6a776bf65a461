"""asyncpg (binary results; types found by introspection): its statement cache and
explicit statements, every type, transactions, COPY text and binary, executemany,
masking in binary and in text (a text codec, COPY), held statements, cancel and its
pool, whose release resets each connection."""

import asyncio
import io
import json
import ssl

import asyncpg

from common import (BLOB, CA, DBNAME, DOC, HOST, ITEMS, NUMERIC, P, PASSWORD, PEOPLE, PORT, USER, WHEN, AIRLOCK,
                    decide_later, eq, expect, masked, timed, wrong)

COLS = ["id", "name", "amount", "at", "data"]


def tls():
    return ssl.create_default_context(cafile=CA)  # verifies the name, 127.0.0.1


async def connect(**kw):
    return await asyncpg.connect(host=HOST, port=PORT, user=USER, password=PASSWORD, database=DBNAME, ssl=tls(),
                                 timeout=10, **kw)


async def raises(sqlstate, what, awaitable):
    try:
        await awaitable
    except asyncpg.PostgresError as e:
        eq(e.sqlstate, sqlstate, f"{what}: SQLSTATE ({type(e).__name__}: {e})")
        return e
    wrong(f"{what}: no error, want {sqlstate}")


async def json_codecs(conn):
    for t in ("json", "jsonb"):
        await conn.set_type_codec(t, schema="pg_catalog", encoder=json.dumps, decoder=json.loads)


async def main():
    conn = await connect()
    expect(conn._transport.get_extra_info("ssl_object") is not None, "TLS in use")
    exists = "SELECT to_regclass($1) IS NOT NULL"

    # The statement cache, and explicit statements, executed many times.
    person = await conn.prepare(f"SELECT name, password_hash FROM {P}_people WHERE id = $1")
    for i in range(12):
        eq(tuple(await conn.fetchrow("SELECT $1::int AS n, $2::text || 'x' AS t", i, f"v{i}")), (i, f"v{i}x"),
           f"n, t at execution {i}")
        pid = 1 + i % 2
        for got in (await conn.fetchrow(f"SELECT name, password_hash FROM {P}_people WHERE id = $1", pid),
                    await person.fetchrow(pid)):
            eq(got["name"], PEOPLE[pid][0], f"name at execution {i}")
            masked(got["password_hash"], pid, f"password_hash at execution {i}", binary=True)

    # Types: the enum and composite are introspected (which switches jit off for the
    # introspection query with set_config and back).
    await json_codecs(conn)
    for i in range(7):
        got = await conn.fetchrow(
            f"SELECT $1::int[], $2::text[], $3::{P}_mood, $4::{P}_mood[], $5::{P}_pair, $6::json, $7::jsonb, "
            "$8::bytea, $9::numeric, $10::timestamptz, $11::timestamptz[]",
            [1, None, i], ["a", "b,c", 'q"\\', None], "happy", ["sad", "ok"], (i, f"({i}, x)"), DOC, DOC, BLOB,
            NUMERIC, WHEN, [WHEN, None])
        want = ([1, None, i], ["a", "b,c", 'q"\\', None], "happy", ["sad", "ok"], (i, f"({i}, x)"), DOC, DOC, BLOB,
                NUMERIC, WHEN, [WHEN, None])
        for k, (g, w) in enumerate(zip(got, want)):
            eq(tuple(g) if isinstance(g, asyncpg.Record) else g, w, f"type column {k} at execution {i}")

    # Text format for text columns: the masked value arrives as text.
    text = await connect()
    await text.set_type_codec("text", schema="pg_catalog", encoder=str, decoder=str, format="text")
    for i in range(7):
        got = await text.fetchrow(f"SELECT name, password_hash FROM {P}_people WHERE id = $1", 1 + i % 2)
        eq(got["name"], PEOPLE[1 + i % 2][0], f"text name at execution {i}")
        masked(got["password_hash"], 1 + i % 2, f"text password_hash at execution {i}")
    await text.close()

    # Transactions and savepoints; an error, then the connection is reused.
    async with conn.transaction():
        await conn.execute(f"INSERT INTO {P}_items (id, name) VALUES (100, 'kept')")
        try:
            async with conn.transaction():
                await conn.execute(f"INSERT INTO {P}_items (id, name) VALUES (101, 'rolled back')")
                await conn.execute("SELECT 1 / 0")
            wrong("division by zero in a savepoint raised nothing")
        except asyncpg.DivisionByZeroError:
            pass
    eq(await conn.fetchval(f"SELECT array_agg(id) FROM {P}_items WHERE id >= 100"), [100], "savepoint effect")
    await raises("22012", "division by zero", conn.fetchval("SELECT 1 / $1::int", 0))
    eq(await conn.fetchval("SELECT 41 + $1::int", 1), 42, "after an error")

    # prepare() ends in a Flush, not a Sync: a simple-protocol execute() follows it.
    await conn.prepare(f"SELECT name FROM {P}_people WHERE id = $1")
    await conn.execute("SET application_name = 'prepared first'")

    # COPY in: binary (copy_records_to_table) and text; out: text, and binary, which
    # Airlock refuses (it cannot mask it).
    await conn.copy_records_to_table(f"{P}_items", records=ITEMS[:3], columns=COLS)
    lines = "".join(f"{i}\t{n.replace(chr(92), chr(92) * 2).replace(chr(9), chr(92) + 't')}\t{a}\t{t.isoformat()}"
                    f"\t\\\\x{d.hex()}\n" for i, n, a, t, d in ITEMS[3:])
    await conn.copy_to_table(f"{P}_items", source=io.BytesIO(lines.encode()), columns=COLS, format="text")
    rows = await conn.fetch(f"SELECT id, name, amount, at, data FROM {P}_items WHERE id < 100 ORDER BY id")
    eq([tuple(r) for r in rows], ITEMS, "rows COPY wrote")
    out = io.BytesIO()
    await conn.copy_from_query(f"SELECT id, name FROM {P}_items WHERE id < 100 ORDER BY id", output=out)
    want = "".join(f"{i}\t{n.replace(chr(92), chr(92) * 2).replace(chr(9), chr(92) + 't')}\n" for i, n, *_ in ITEMS)
    eq(out.getvalue().decode(), want, "COPY TO STDOUT text")
    out = io.BytesIO()
    await conn.copy_from_table(f"{P}_people", output=out)
    for line in out.getvalue().decode().splitlines():
        pid, name, hash_ = line.split("\t")
        eq(name, PEOPLE[int(pid)][0], "COPY people name")
        masked(hash_, int(pid), "COPY people password_hash")
    binary = io.BytesIO()
    await conn.copy_from_table(f"{P}_people", output=binary, format="binary")
    expect(binary.getvalue().startswith(b"PGCOPY"), "binary COPY TO STDOUT")
    for person_id, (name, hash_) in PEOPLE.items():
        expect(name.encode() in binary.getvalue(), f"binary COPY people name {name}")
        expect((hash_.encode() in binary.getvalue()) != AIRLOCK, f"binary COPY people password_hash {person_id}")
    eq(await conn.fetchval("SELECT 'after COPY'"), "after COPY", "after COPY")

    # executemany pipelines its executions; fetchmany returns every execution's rows.
    await conn.executemany(f"INSERT INTO {P}_items (id, name) VALUES ($1, $2)", [(200 + i, f"m{i}") for i in range(60)])
    eq(tuple(await conn.fetchrow(f"SELECT count(*), sum(id) FROM {P}_items WHERE id >= 200")),
       (60, sum(range(200, 260))), "executemany rows")
    if hasattr(conn, "fetchmany"):
        rows = await conn.fetchmany(f"SELECT id, name, password_hash FROM {P}_people WHERE id = $1", [(1,), (2,)] * 4)
        eq([(r["id"], r["name"]) for r in rows], [(1, "alice"), (2, "bob")] * 4, "fetchmany rows")
        for r in rows:
            masked(r["password_hash"], r["id"], "fetchmany password_hash", binary=True)

    # Held statements: one approved runs, one denied fails and changes nothing.
    decider = decide_later(f"{P}_held_a", "approve")
    await conn.execute(f"DROP TABLE {P}_held_a")
    decider.join()
    eq(await conn.fetchval(exists, f"{P}_held_a"), False, "the approved DROP dropped")
    if AIRLOCK:
        decider = decide_later(f"{P}_held_b", "deny")
        e = await raises("42501", "the denied DROP", conn.execute(f"DROP TABLE {P}_held_b"))
        expect("denied" in str(e), f"the denial says so: {e}")
        decider.join()
        eq(await conn.fetchval(exists, f"{P}_held_b"), True, "the denied DROP left the table")
    eq(await conn.fetchval("SELECT 'usable'"), "usable", "after the held statements")

    # Cancel from another task: asyncpg sends a CancelRequest and waits for the
    # server's 57014 before the connection runs anything else.
    with timed(10, "pg_sleep(30) cancelled"):
        sleep = asyncio.create_task(conn.fetchval("SELECT pg_sleep(30)"))
        await asyncio.sleep(1)
        sleep.cancel()
        await asyncio.wait([sleep])
        expect(sleep.cancelled(), "the cancelled pg_sleep task")
        eq(await conn.fetchval("SELECT 'after cancel'"), "after cancel", "after cancel")
    await conn.close()

    # The pool: more tasks than connections; release runs pg_advisory_unlock_all,
    # CLOSE ALL, UNLISTEN * and RESET ALL on each.
    pool = await asyncpg.create_pool(host=HOST, port=PORT, user=USER, password=PASSWORD, database=DBNAME, ssl=tls(),
                                     min_size=1, max_size=3, init=json_codecs)

    async def work(i):
        async with pool.acquire() as c:
            eq(await c.fetchval("SELECT $1::int", i), i, f"pooled query {i}")
            app = await c.fetchval("SELECT current_setting('application_name')")
            expect(app != "changed", f"the release's RESET ALL: application_name {app!r}")
            await c.execute("SET application_name = 'changed'")
            eq(await c.fetchval("SELECT $1::jsonb", DOC), DOC, f"pooled jsonb {i}")
            r = await c.fetchrow(f"SELECT id, name, password_hash FROM {P}_people WHERE id = $1", 1 + i % 2)
            eq(r["name"], PEOPLE[r["id"]][0], f"pooled name {i}")
            masked(r["password_hash"], r["id"], f"pooled password_hash {i}", binary=True)

    await asyncio.gather(*(work(i) for i in range(30)))
    await pool.close()
    print("ok")


asyncio.run(main())
