"""Shared by the Python driver programs: where to connect (the DRV_* variables
tests/drivers.rs sets), how to fail, and deciding held statements through the admin API."""

import datetime
import decimal
import json
import os
import re
import sys
import threading
import time
import urllib.request

HOST = os.environ["DRV_HOST"]
PORT = int(os.environ["DRV_PORT"])
DBNAME = os.environ["DRV_DBNAME"]
USER = os.environ["DRV_USER"]
PASSWORD = os.environ["DRV_PASSWORD"]
CA = os.environ["DRV_CA"]
ADMIN = os.environ["DRV_ADMIN"]
APPROVER = os.environ["DRV_APPROVER"]
P = os.environ["DRV_PREFIX"]
# Through Airlock the masked column is masked and DDL is held; directly neither.
AIRLOCK = os.environ["DRV_THROUGH"] == "airlock"

# Values every program round-trips, and the rows COPY writes.
NUMERIC = decimal.Decimal("12345678901234567890.000000001")
WHEN = datetime.datetime(2024, 2, 29, 23, 59, 58, 123456, tzinfo=datetime.timezone.utc)
BLOB = bytes(range(256))
DOC = {"k": [1, 2.5, None, "x"], "nested": {"ü": True}}
ITEMS = [(i, f"item {i}\t\\ \"q\"", decimal.Decimal(i) / 8, WHEN + datetime.timedelta(days=i), bytes([i, 0, 255]))
         for i in range(1, 6)]
PEOPLE = {1: ("alice", "bcrypt-secret-alice"), 2: ("bob", "bcrypt-secret-bob")}


def dsn(**extra):
    """A libpq connection string that verifies the server certificate."""
    parts = dict(host=HOST, port=PORT, dbname=DBNAME, user=USER, password=PASSWORD,
                 sslmode="verify-full", sslrootcert=CA, connect_timeout=10)
    parts.update(extra)
    return " ".join(f"{k}={v}" for k, v in parts.items())


def _report(kind, value, tb):
    """An exception nobody expected is a wrong result too, named like the others."""
    import traceback
    traceback.print_exception(kind, value, tb)
    wrong(f"{kind.__name__}: {value}")


sys.excepthook = _report
threading.excepthook = lambda args: _report(args.exc_type, args.exc_value, args.exc_traceback)


def wrong(what):
    """Reports the first wrong value and ends the program, from any thread or task."""
    print(f"WRONG: {what}", flush=True)
    sys.stderr.flush()
    os._exit(1)


def eq(got, want, what):
    if got != want:
        wrong(f"{what}: got {got!r}, want {want!r}")


def expect(ok, what):
    if not ok:
        wrong(what)


def masked(got, person_id, what, binary=False):
    """A password_hash as the driver received it: the real one directly; through
    Airlock `[MASKED]` in text and NULL in binary (the documented redact style)."""
    real = PEOPLE[person_id][1]
    if not AIRLOCK:
        eq(got, real, what)
    else:
        expect(got is None or real not in str(got), f"{what}: real value leaked: {got!r}")
        eq(got, None if binary else "[MASKED]", what)


def raises(sqlstate, what, fn, *args):
    """Runs fn(*args), which must fail with `sqlstate`; returns the exception."""
    try:
        fn(*args)
    except Exception as e:  # each driver has its own error class
        got = getattr(e, "sqlstate", None) or getattr(e, "pgcode", None)
        eq(got, sqlstate, f"{what}: SQLSTATE ({type(e).__name__}: {e})")
        return e
    wrong(f"{what}: no error, want {sqlstate}")


def _admin(method, path, body=None):
    req = urllib.request.Request(ADMIN + path, method=method, data=None if body is None else json.dumps(body).encode(),
                                 headers={"Authorization": "Bearer " + APPROVER, "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)


def decide(table, verdict, reason="the drivers test keeps it"):
    """Waits for the held statement naming `table` and approves or denies it."""
    deadline = time.monotonic() + 30
    while True:
        held = [a for a in _admin("GET", "/approvals") if re.fullmatch(f'DROP TABLE "?{table}"?', a["statement"])]
        if held:
            body = {} if verdict == "approve" else {"reason": reason}
            return _admin("POST", f"/approvals/{held[0]['id']}/{verdict}", body)
        if time.monotonic() > deadline:
            wrong(f"no approval pending for {table} after 30s")
        time.sleep(0.05)


def decide_later(table, verdict):
    """Decides in a background thread (the driver blocks on the held statement);
    directly nothing is held and nothing is decided. Join the returned thread once
    the statement is done."""
    t = threading.Thread(target=decide if AIRLOCK else lambda *_: None, args=(table, verdict), daemon=True)
    t.start()
    return t


def _watch_holds():
    """Fails at once, naming it, when Airlock holds a statement the program does not
    expect to be held (only the drops of the *_held_* tables are), instead of waiting
    for the approval to time out."""
    while True:
        for a in _admin("GET", "/approvals"):
            if not re.fullmatch(f'DROP TABLE "?{P}_held_[ab]"?', a["statement"]):
                wrong(f"held for approval ({a['reason']}): {a['statement'][:400]!r}")
        time.sleep(0.2)


if AIRLOCK:
    threading.Thread(target=_watch_holds, daemon=True).start()


def timed(seconds, what):
    """A context manager failing when its body takes longer than `seconds`."""
    class Timer:
        def __enter__(self):
            self.start = time.monotonic()

        def __exit__(self, *exc):
            took = time.monotonic() - self.start
            expect(took < seconds, f"{what} took {took:.1f}s, want under {seconds}s")
    return Timer()
