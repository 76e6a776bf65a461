// Shared by the Node driver programs: where to connect (the DRV_* variables
// tests/drivers.rs sets), how to fail, and deciding held statements through the
// admin API.
'use strict'
const fs = require('fs')
const util = require('util')

const E = process.env
const P = E.DRV_PREFIX
// Through Airlock the masked column is masked and DDL is held; directly neither.
const AIRLOCK = E.DRV_THROUGH === 'airlock'
const target = {
  host: E.DRV_HOST,
  port: Number(E.DRV_PORT),
  database: E.DRV_DBNAME,
  user: E.DRV_USER,
  password: E.DRV_PASSWORD,
  ca: fs.readFileSync(E.DRV_CA),
}

// Values every program round-trips (JavaScript dates hold milliseconds), and people.
const NUMERIC = '12345678901234567890.000000001'
const WHEN = new Date('2024-02-29T23:59:58.123Z')
const BLOB = Buffer.from(Array.from({ length: 256 }, (_, i) => i))
const DOC = { k: [1, 2.5, null, 'x'], nested: { ü: true } }
const ITEMS = [1, 2, 3, 4, 5].map((i) => [i, `item ${i}\t\\ "q"`, String(i / 8), new Date(WHEN.getTime() + i * 86400000), Buffer.from([i, 0, 255])])
const PEOPLE = { 1: ['alice', 'bcrypt-secret-alice'], 2: ['bob', 'bcrypt-secret-bob'] }

function wrong(what) {
  console.log(`WRONG: ${what}`)
  process.exit(1)
}
process.on('uncaughtException', (e) => wrong(`uncaught ${e.stack || e}`))
process.on('unhandledRejection', (e) => wrong(`unhandled ${e && e.stack ? e.stack : e}`))

const show = (v) => util.inspect(v, { depth: 5, breakLength: Infinity })

function eq(got, want, what) {
  if (!util.isDeepStrictEqual(got, want)) wrong(`${what}: got ${show(got)}, want ${show(want)}`)
}

function expect(ok, what) {
  if (!ok) wrong(what)
}

// A password_hash as the driver received it: the real one directly; through Airlock
// `[MASKED]` in text and NULL in binary (the documented redact style).
function masked(got, id, what, binary = false) {
  const real = PEOPLE[id][1]
  if (!AIRLOCK) return eq(got, real, what)
  expect(got === null || !String(got).includes(real), `${what}: real value leaked: ${show(got)}`)
  eq(got, binary ? null : '[MASKED]', what)
}

// COPY text format for one field.
const copyText = (v) => (Buffer.isBuffer(v) ? `\\\\x${v.toString('hex')}` : v instanceof Date ? v.toISOString() : String(v).replace(/\\/g, '\\\\').replace(/\t/g, '\\t'))

// Awaits `promise`, which must fail with `sqlstate`; returns the error.
async function raises(sqlstate, what, promise) {
  try {
    await promise
  } catch (e) {
    eq(e.code, sqlstate, `${what}: SQLSTATE (${e.message})`)
    return e
  }
  wrong(`${what}: no error, want ${sqlstate}`)
}

async function admin(method, path, body) {
  const res = await fetch(E.DRV_ADMIN + path, {
    method,
    headers: { authorization: `Bearer ${E.DRV_APPROVER}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  if (!res.ok) wrong(`${method} ${path}: ${res.status} ${await res.text()}`)
  return res.json()
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

// Waits for the held statement naming `table` and approves or denies it; directly
// nothing is held and nothing is decided. Start it before running the statement
// and await it after.
async function decide(table, verdict) {
  if (!AIRLOCK) return
  const deadline = Date.now() + 30000
  for (;;) {
    const held = (await admin('GET', '/approvals')).filter((a) => new RegExp(`^DROP TABLE "?${table}"?$`).test(a.statement))
    if (held.length) return admin('POST', `/approvals/${held[0].id}/${verdict}`, verdict === 'approve' ? {} : { reason: 'the drivers test keeps it' })
    if (Date.now() > deadline) wrong(`no approval pending for ${table} after 30s`)
    await sleep(50)
  }
}

// Fails at once, naming it, when Airlock holds a statement the program does not
// expect to be held (only the drops of the *_held_* tables are), instead of waiting
// for the approval to time out.
function watchHolds() {
  if (!AIRLOCK) return () => {}
  const expected = new RegExp(`^DROP TABLE "?${P}_held_[ab]"?$`)
  const timer = setInterval(async () => {
    for (const a of await admin('GET', '/approvals')) {
      if (!expected.test(a.statement)) wrong(`held for approval (${a.reason}): ${show(a.statement.slice(0, 400))}`)
    }
  }, 200)
  return () => clearInterval(timer)
}

// Runs `fn`, failing when it takes longer than `seconds`.
async function timed(seconds, what, fn) {
  const start = Date.now()
  const result = await fn()
  const took = (Date.now() - start) / 1000
  expect(took < seconds, `${what} took ${took.toFixed(1)}s, want under ${seconds}s`)
  return result
}

module.exports = { AIRLOCK, BLOB, DOC, ITEMS, NUMERIC, P, PEOPLE, WHEN, copyText, decide, eq, expect, masked, raises, sleep, target, timed, watchHolds, wrong }
