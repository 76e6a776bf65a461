#!/usr/bin/env python3
"""Writes the seed corpora in fixtures/fuzz/<target>/ from the repository's own fixtures
(SQL, shell, HTTP and masking corpora, the config examples in README.md) and from
messages, packets, tokens and recording segments built here byte by byte.

    python3 fuzz/seeds.py .      # from the repository root; needs the zstd command

The files are committed; run this again only to change them. Each seed starts with
the control bytes its target reads first (see the target's doc comment).
"""
import base64, hashlib, hmac, json, os, re, struct, subprocess, sys, urllib.parse

ROOT = sys.argv[1]
OUT = os.path.join(ROOT, "fixtures", "fuzz")


def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def read(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        return f.read()


# ---- SQL ----
def sql_cases():
    corpus = read("fixtures/sql/corpus.sql")
    cases = []
    for block in re.split(r"^-- expect:.*$", corpus, flags=re.M)[1:]:
        text = "\n".join(l for l in block.strip().splitlines() if not l.startswith("-- expect"))
        if text.strip():
            cases.append(text.strip())
    safe = read("fixtures/sql/safe.sql")
    for block in re.split(r"^-- case:.*$", safe, flags=re.M)[1:]:
        text = "\n".join(l for l in block.splitlines() if not l.startswith("-- params"))
        if text.strip():
            cases.append(text.strip())
    return cases


sql = sql_cases()
# Every case goes to the splitter and the classifier, but keep the set small.
for i, case in enumerate(sql[::2][:120]):
    put("sql_split", f"case-{i:03}.sql", case)
for i, case in enumerate(sql[1::2][:120]):
    put("sql_classify", f"case-{i:03}.sql", case)
put("sql_split", "multi.sql", "select ';'; select $$;$$ ;; -- x;\n select /* ; */ 3; CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END; E'\\\\';'")
put("sql_classify", "hidden.sql", "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d; EXPLAIN ANALYZE DELETE FROM t; select query_to_xml('drop table x', true, true, '')")


# ---- Postgres messages ----
def msg(tag, body):
    return tag.encode() + struct.pack(">i", len(body) + 4) + body


def cstr(s):
    return s.encode() + b"\0"


front = [
    msg("Q", cstr("SELECT 1")),
    msg("P", cstr("s1") + cstr("select * from t where id = $1") + struct.pack(">hI", 1, 23))
    + msg("B", cstr("") + cstr("s1") + struct.pack(">h", 0) + struct.pack(">h", 1) + struct.pack(">i", 2) + b"42" + struct.pack(">hh", 1, 1))
    + msg("D", b"P" + cstr(""))
    + msg("E", cstr("") + struct.pack(">i", 0))
    + msg("S", b""),
    msg("p", cstr("hunter2")),
    msg("Q", cstr("COPY t FROM STDIN")) + msg("d", b"1\tada@example.com\n2\t\\N\n") + msg("c", b""),
    msg("C", b"S" + cstr("s1")) + msg("X", b""),
]
for i, s in enumerate(front):
    put("pg_frontend", f"stream-{i}", bytes([255, 0xFF, 7, 13, 0]) + s)
for i, case in enumerate(sql[:8]):
    put("pg_frontend", f"query-{i}", bytes([40, 0x02, 5, 0, 0]) + msg("Q", cstr(case)))

fields = lambda d: b"".join(k.encode() + cstr(v) for k, v in d) + b"\0"
back = [
    msg("R", struct.pack(">i", 0)) + msg("S", cstr("server_version") + cstr("16.2")) + msg("K", struct.pack(">ii", 1234, 5678)) + msg("Z", b"I"),
    msg("R", struct.pack(">i", 10) + cstr("SCRAM-SHA-256") + b"\0"),
    msg("R", struct.pack(">i", 5) + b"abcd"),
    msg("T", struct.pack(">h", 2) + cstr("id") + struct.pack(">IhIhih", 16384, 1, 23, 4, -1, 0) + cstr("email") + struct.pack(">IhIhih", 16384, 2, 25, -1, -1, 0))
    + msg("D", struct.pack(">h", 2) + struct.pack(">i", 1) + b"7" + struct.pack(">i", 15) + b"ada@example.com")
    + msg("D", struct.pack(">h", 2) + struct.pack(">i", -1) + struct.pack(">i", 0))
    + msg("C", cstr("SELECT 2")) + msg("Z", b"T"),
    msg("E", fields([("S", "ERROR"), ("V", "ERROR"), ("C", "42501"), ("M", "permission denied"), ("H", "ask")])) + msg("Z", b"E"),
    msg("N", fields([("S", "NOTICE"), ("C", "00000"), ("M", "hello")])) + msg("C", cstr("DELETE 5")),
    msg("H", b"\0" + struct.pack(">h", 0)) + msg("d", b"a,b\n") + msg("c", b"") + msg("C", cstr("COPY 1")),
]
for i, s in enumerate(back):
    put("pg_backend", f"stream-{i}", bytes([255, 0xFF, 9, 2, 0]) + s)

startup = [
    struct.pack(">ii", 8, 80877103),
    struct.pack(">ii", 8, 80877104),
    struct.pack(">iiii", 16, 80877102, 42, 99),
]
params = cstr("user") + cstr("agent") + cstr("database") + cstr("app-db") + cstr("application_name") + cstr("psql") + cstr("_pq_.x") + cstr("1") + b"\0"
startup.append(struct.pack(">ii", 8 + len(params), 3 << 16) + params)
startup.append(startup[0] + startup[3])
for i, s in enumerate(startup):
    put("pg_startup", f"packet-{i}", bytes([3, 1, 0]) + s)


# ---- masking ----
lines = [l.split("\t", 1)[1] for l in read("fixtures/masking/corpus.tsv").splitlines() if "\t" in l and not l.startswith("#")]
for i, l in enumerate(lines[::5][:70]):
    put("masking_stream", f"line-{i:03}", bytes([i % 4, 0, 1 + i % 7, 3, 64, 0]) + l.replace("\\n", "\n").encode())


# ---- shell ----
def shell_cases():
    text = read("fixtures/shell/corpus.txt")
    cases, cur = [], None
    for line in text.splitlines():
        if line.startswith("== ") or line.startswith("!! "):
            cur = []
            cases.append(cur)
        elif line == "":
            cur = None
        elif cur is not None:
            cur.append(line)
    return ["\n".join(c) for c in cases if c]


for i, c in enumerate(shell_cases()[::3][:120]):
    put("shell", f"case-{i:03}", c)


# ---- HTTP ----
def unescape_line(line):
    out, i = bytearray(), 0
    while i < len(line):
        if line[i] == "\\" and i + 1 < len(line):
            n = line[i + 1]
            if n in "rnt0\\":
                out += {"r": b"\r", "n": b"\n", "t": b"\t", "0": b"\0", "\\": b"\\"}[n]
                i += 2
                continue
            if n == "x":
                out.append(int(line[i + 2 : i + 4], 16))
                i += 4
                continue
        out += line[i].encode()
        i += 1
    return bytes(out)


def http_cases(path):
    cases, cur = [], None
    for line in read(path).splitlines():
        if line.startswith("### "):
            cur = [line[4:].split(":")[0].strip(), b""]
            cases.append(cur)
        elif cur is not None:
            cur[1] += unescape_line(line)
    return cases


for path in ["fixtures/http/benign.txt", "fixtures/http/smuggling.txt"]:
    for name, req in http_cases(path):
        put("http_head", name, bytes([7, 1, 0]) + req)


# ---- GraphQL ----
docs = [
    "{ viewer { login } }",
    "query Q($id: ID!) { node(id: $id) { ... on User { name } ...F } } fragment F on User { email }",
    "mutation { deleteRepository(id: \"1\") { ok } }",
    "query A { a } mutation B { b }",
    "subscription S { events { id } }",
    "{ e: email, \"\"\"block\nstring\"\"\" }",
]
for i, d in enumerate(docs):
    put("graphql", f"doc-{i}", b"\0" + d.encode())
    put("graphql", f"body-{i}", b"\1" + json.dumps({"query": d, "operationName": None, "variables": {}}).encode())
    put("graphql", f"url-{i}", b"\2" + ("query=" + urllib.parse.quote(d) + "&operationName=Q").encode())
put("graphql", "batch", b"\1" + json.dumps([{"query": docs[0]}, {"query": docs[2]}]).encode())
put("graphql", "persisted", b"\1" + json.dumps({"extensions": {"persistedQuery": {"version": 1, "sha256Hash": "ab"}}}).encode())


# ---- JSON masking ----
docs = [
    ("$.user.password\n*token*", {"user": {"name": "ada", "password": "hunter2", "tags": ["a", "b"]}, "access_token": "x", "n": 4111111111111111}),
    ("$..secret\n$.items[*].card", {"items": [{"card": "4111 1111 1111 1111", "secret": 1}, {"card": None}], "meta": {"secret": [1, 2]}}),
    ("$['a b'][0]", {"a b": [{"k": "\u00e9\n\u2028"}], "dup": 1}),
]
for i, (sel, doc) in enumerate(docs):
    put("json_mask", f"doc-{i}", bytes([i]) + sel.encode() + b"\xff" + json.dumps(doc, indent=1).encode())
put("json_mask", "dup-keys", b"\x05$.a\xff" + b'{"a": 1, "a": "pass\\u0077ord", "b": [1e400, -0.0, true, null]}')
put("json_mask", "deep", b"\x06\xff" + b"[" * 130 + b"]" * 130)


# ---- urlencoded ----
for i, q in enumerate(["a=1&&b&c=x=y&=z&", "name=two%20words&n=1&flag", "_method=DELETE&x=%c3%A9+%2B", "%zz&%&%2"]):
    put("urlencoded", f"query-{i}", q)


# ---- config ----
readme = read("README.md")
blocks = re.findall(r"```toml\n(.*?)```", readme, flags=re.S)
for i, b in enumerate(blocks):
    put("config", f"readme-{i:02}.toml", b)
tests = read("src/config/tests.rs")
good = re.search(r'const GOOD: &str = r#"(.*?)"#;', tests, flags=re.S)
if good:
    put("config", "good.toml", good.group(1))
put("config", "rules.toml", read("fixtures/policy/rules.toml"))


# ---- JWT ----
def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=")


def token(header, claims, key=b"fuzz-secret"):
    signing = b64(header) + b"." + b64(claims)
    return signing + b"." + b64(hmac.new(key, signing, hashlib.sha256).digest())


hs = json.dumps({"alg": "HS256", "typ": "JWT"}).encode()
claims = json.dumps({"iss": "airlock", "aud": "airlock", "sub": "agent-1", "exp": 4102444800, "groups": ["agents"]}).encode()
put("jwt", "valid", b"\0" + token(hs, claims))
put("jwt", "wrong-key", b"\0" + token(hs, claims, b"other"))
put("jwt", "alg-none", b"\0" + b64(json.dumps({"alg": "none"}).encode()) + b"." + b64(claims) + b".")
put("jwt", "signed-claims", b"\1" + hs + b"\xff" + claims)
put("jwt", "signed-nbf", b"\1" + hs + b"\xff" + json.dumps({"iss": "airlock", "aud": ["x", "airlock"], "sub": "a", "exp": 1, "nbf": 4102444800}).encode())
put("jwt", "changed", b"\2\x10Aagent-1")


# ---- SFTP ----
def pkt(kind, body, id=None):
    payload = bytes([kind]) + (struct.pack(">I", id) if id is not None else b"") + body
    return struct.pack(">I", len(payload)) + payload


def sstr(b):
    if isinstance(b, str):
        b = b.encode()
    return struct.pack(">I", len(b)) + b


session = (
    pkt(1, struct.pack(">I", 3))
    + pkt(2, struct.pack(">I", 3))
    + pkt(16, sstr("."), 1)
    + pkt(104, struct.pack(">I", 1) + sstr("/home/agent") + sstr("") + struct.pack(">I", 0), 1)
    + pkt(3, sstr("/srv/a/../b.txt") + struct.pack(">II", 0x1A, 0), 2)
    + pkt(102, sstr("h1"), 2)
    + pkt(6, sstr("h1") + struct.pack(">Q", 0) + sstr("hello"), 3)
    + pkt(101, struct.pack(">I", 0) + sstr("ok") + sstr(""), 3)
    + pkt(4, sstr("h1"), 4)
    + pkt(101, struct.pack(">I", 0) + sstr("") + sstr(""), 4)
    + pkt(18, sstr("/tmp/a") + sstr("/tmp/b"), 5)
    + pkt(101, struct.pack(">I", 4) + sstr("failure") + sstr(""), 5)
    + pkt(200, sstr("posix-rename@openssh.com") + sstr("/x") + sstr("/y"), 6)
    + pkt(11, sstr("/etc"), 7)
    + pkt(102, sstr("d1"), 7)
    + pkt(12, sstr("d1"), 8)
    + pkt(104, struct.pack(">I", 2) + sstr("a") + sstr("-rw a") + struct.pack(">I", 0) + sstr("b") + sstr("-rw b") + struct.pack(">I", 0), 8)
)
put("sftp", "session", bytes([5, 1, 0]) + session)
put("sftp", "bad-length", bytes([0, 0, 0]) + struct.pack(">I", 0))


# ---- recording ----
def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


def frame(session, seq, direction, kind, payload):
    return struct.pack("<QQQBBI", session, seq, 1_700_000_000_000_000 + seq, direction, kind, len(payload)) + payload


start = json.dumps({"subject": "agent-1", "groups": ["agents"], "connection": "app-db", "protocol": "postgres", "client": "127.0.0.1:5", "tls": False, "airlock_version": "0.1.0"}).encode()
verdict = json.dumps({"event": "held", "approval": "ab12", "statement": "DELETE FROM t", "classes": ["write", "bulk"], "rule": "default", "reason": "bulk"}).encode()
end = json.dumps({"reason": "Terminated", "statements": 2, "duration_ms": 5}).encode()
frames = [
    frame(1, 0, 0, 1, start),
    frame(1, 1, 1, 10, front[0] + front[1]),
    frame(1, 2, 2, 11, back[3]),
    frame(1, 3, 0, 20, verdict),
    frame(1, 4, 2, 11, back[4]),
    frame(1, 5, 0, 2, end),
    frame(2, 0, 1, 30, json.dumps({"type": "exec", "command": "ls -la"}).encode()),
    frame(3, 0, 1, 40, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
]


def block(raw, count, prev):
    payload = subprocess.run(["zstd", "-1", "-c", "-q"], input=raw, capture_output=True, check=True).stdout
    head = b"BLK1" + struct.pack("<III", len(payload), len(raw), count) + prev
    crc = crc32c(payload, crc32c(head))
    return head + struct.pack("<I", crc) + payload, hashlib.sha256(head + payload).digest()


header = b"ALKSEG01" + struct.pack("<QQ", 0, 1_700_000_000_000_000) + b"\0" * 32 + struct.pack("<I", 0)
header += struct.pack("<I", crc32c(header))
seg = header
prev = b"\0" * 32
for chunk in (frames[:4], frames[4:]):
    raw = b"".join(chunk)
    b, prev = block(raw, len(chunk), prev)
    seg += b
footer = b"END1" + struct.pack("<Q", 2) + prev + struct.pack("<I", 0)
footer += struct.pack("<I", crc32c(footer))
put("recording", "segment-sealed", b"\0" + seg + footer)
put("recording", "segment-open", b"\0" + seg)
# Version 2: the replica's name and the segments uploaded since the last header.
header2 = b"ALKSEG02" + struct.pack("<QQ", 1, 1_700_000_000_000_000) + b"\0" * 32 + struct.pack("<I", 0)
header2 += bytes([9]) + b"replica-a" + struct.pack("<IQ", 1, 0) + b"\7" * 32
header2 += struct.pack("<I", crc32c(header2))
put("recording", "segment-v2", b"\0" + header2 + seg[len(header):] + footer)
odd_start = start.replace(b'"agent-1"', b'"agent\\u001b[2J"')
odd_verdict = verdict.replace(b'"bulk"}', b'"bulk\\r\\n[+0.000s] POLICY approved"}')
b, _ = block(b"".join([frame(1, 0, 0, 1, odd_start), frame(1, 1, 0, 20, odd_verdict)]), 2, b"\0" * 32)
put("recording", "segment-escapes", b"\0" + header + b)
raw = b"".join(frames)
payload = subprocess.run(["zstd", "-1", "-c", "-q"], input=raw, capture_output=True, check=True).stdout
put("recording", "block", b"\2" + struct.pack("<I", len(raw)) + bytes([len(frames), 0]) + payload)
put("recording", "built", b"\1\0\7\1\3\2" + b"\1\2\0\0\x0a\xfe" + b"\0\0\1\0\x0bQ\0\0\0\x05x\xfe" + b"\0\1\0\0\x09y\xfe\0\0")
