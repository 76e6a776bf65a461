"""SQLAlchemy 2 over psycopg 3, psycopg2 and asyncpg: table reflection, then its
connection pools (pre-ping, reset on return) under more workers than connections,
each worker checking its values, masking, a savepoint and an error on a pooled
connection."""

import asyncio
import decimal
import ssl
from concurrent.futures import ThreadPoolExecutor

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from common import CA, DBNAME, HOST, P, PASSWORD, PEOPLE, PORT, USER, WHEN, eq, expect, masked, wrong

WORKERS, TASKS = 6, 24
URL = sa.URL.create("postgresql", username=USER, password=PASSWORD, host=HOST, port=PORT, database=DBNAME)
POOL = dict(pool_size=2, max_overflow=1, pool_timeout=60, pool_pre_ping=True)
people = sa.table(f"{P}_people", sa.column("id"), sa.column("name"), sa.column("password_hash"))


def sqlstate(e):
    return getattr(e.orig, "sqlstate", None) or getattr(e.orig, "pgcode", None)


def reflect(c):
    """Reflection reads the catalog with pg_catalog functions (format_type, ...)."""
    items = sa.Table(f"{P}_items", sa.MetaData(), autoload_with=c)
    eq([(col.name, type(col.type).__name__) for col in items.columns],
       [("id", "INTEGER"), ("name", "TEXT"), ("amount", "NUMERIC"), ("at", "TIMESTAMP"), ("data", "BYTEA")],
       "reflected columns")
    expect(items.c.at.type.timezone, "reflected timestamptz")
    enums = {e["name"]: e["labels"] for e in sa.inspect(c).get_enums()}
    eq(enums.get(f"{P}_mood"), ["sad", "ok", "happy"], "reflected enum")
    return items


def work(c, items, base, i, binary):
    """One checkout: values, masking, a savepoint rolled back inside a committed
    transaction, an error and the connection's reuse after its rollback."""
    pid = 1 + i % 2
    eq(c.execute(sa.text("SELECT CAST(:n AS int) + 1"), {"n": i}).scalar_one(), i + 1, f"worker {i} value")
    row = c.execute(sa.select(people.c.id, people.c.name, people.c.password_hash).where(people.c.id == pid)).one()
    eq((row.id, row.name), (pid, PEOPLE[pid][0]), f"worker {i} row")
    masked(row.password_hash, pid, f"worker {i} password_hash", binary)
    amount = decimal.Decimal(i) / 4
    c.execute(items.insert().values(id=base + i, name=f"worker {i}", amount=amount, at=WHEN, data=bytes([i, 0])))
    try:
        with c.begin_nested():
            c.execute(items.insert().values(id=base + 500 + i, name="rolled back"))
            c.execute(sa.text("SELECT 1 / 0"))
        wrong(f"worker {i}: division by zero in a savepoint raised nothing")
    except sa.exc.DBAPIError as e:
        eq(sqlstate(e), "22012", f"worker {i} savepoint error")
    c.commit()
    got = c.execute(sa.select(items.c.amount, items.c.at, items.c.data).where(items.c.id == base + i)).one()
    eq(tuple(got), (amount, WHEN, bytes([i, 0])), f"worker {i} inserted row")
    try:
        c.execute(sa.text("SELECT 1 / 0"))
        wrong(f"worker {i}: division by zero raised nothing")
    except sa.exc.DBAPIError as e:
        eq(sqlstate(e), "22012", f"worker {i} error")
    c.rollback()
    eq(c.execute(sa.text("SELECT 'again'")).scalar_one(), "again", f"worker {i} after the error")


def check_rows(c, items, base, engine):
    ids = c.execute(sa.select(items.c.id).where(items.c.id.between(base, base + 999)).order_by(items.c.id)).scalars()
    eq(list(ids), [base + i for i in range(TASKS)], f"{engine}: committed rows, none from a savepoint")


def sync_engine(driver, base):
    engine = sa.create_engine(URL.set(drivername=f"postgresql+{driver}"),
                              connect_args=dict(sslmode="verify-full", sslrootcert=CA), **POOL)
    with engine.connect() as c:
        items = reflect(c)

    def checkout(i):
        with engine.connect() as c:
            work(c, items, base, i, binary=False)

    with ThreadPoolExecutor(WORKERS) as ex:
        list(ex.map(checkout, range(TASKS)))
    with engine.connect() as c:
        check_rows(c, items, base, driver)
    expect(engine.pool.checkedin() <= 3, f"{driver}: pool holds {engine.pool.checkedin()} connections")
    engine.dispose()
    print(f"{driver}: ok")


async def async_engine(base):
    engine = create_async_engine(URL.set(drivername="postgresql+asyncpg"),
                                 connect_args=dict(ssl=ssl.create_default_context(cafile=CA)), **POOL)
    async with engine.connect() as c:
        items = await c.run_sync(reflect)
    limit = asyncio.Semaphore(WORKERS)

    async def checkout(i):
        async with limit, engine.connect() as c:
            await c.run_sync(work, items, base, i, True)

    await asyncio.gather(*(checkout(i) for i in range(TASKS)))
    async with engine.connect() as c:
        await c.run_sync(check_rows, items, base, "asyncpg")
    await engine.dispose()
    print("asyncpg: ok")


sync_engine("psycopg", 1000)
sync_engine("psycopg2", 2000)
asyncio.run(async_engine(3000))
print("ok")
