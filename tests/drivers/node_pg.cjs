// node-postgres (pg) with pg-copy-streams: named statements in text and binary
// results, every type, transactions, COPY text and binary, its pipeline mode,
// masking, held statements, cancel and its Pool.
'use strict'
const { pipeline } = require('stream/promises')
const { Readable } = require('stream')
const pg = require('pg')
const { from: copyFrom, to: copyTo } = require('pg-copy-streams')
const { AIRLOCK, BLOB, DOC, ITEMS, NUMERIC, P, PEOPLE, WHEN, copyText, decide, eq, expect, masked, raises, sleep, target, timed, watchHolds, wrong } = require('./common.cjs')

const config = { ...target, ssl: { ca: target.ca }, connectionTimeoutMillis: 10000 }

async function copyOut(client, sql) {
  const chunks = []
  await pipeline(client.query(copyTo(sql)), async function* (source) {
    for await (const c of source) chunks.push(c)
  })
  return Buffer.concat(chunks).toString()
}

async function main() {
  const unwatch = watchHolds()
  const client = new pg.Client(config)
  await client.connect()
  expect(client.connection.stream.encrypted, 'TLS in use')
  const one = async (q) => (await client.query(q)).rows[0]

  // Named statements: parsed once, then bound and executed; text and binary results.
  for (const binary of [false, true]) {
    for (let i = 0; i < 12; i++) {
      const n = await one({ name: `n${binary}`, text: "SELECT $1::int AS n, $2::text || 'x' AS t", values: [i, `v${i}`], binary })
      eq(n, { n: i, t: `v${i}x` }, `n, t at execution ${i} (binary ${binary})`)
      const id = 1 + (i % 2)
      const p = await one({ name: `p${binary}`, text: `SELECT name, password_hash FROM ${P}_people WHERE id = $1`, values: [id], binary })
      eq(p.name, PEOPLE[id][0], `name at execution ${i} (binary ${binary})`)
      masked(p.password_hash, id, `password_hash at execution ${i}`, binary)
    }
  }

  // Types: pg parses arrays, json and timestamps; an enum array and a composite stay text.
  for (let i = 0; i < 7; i++) {
    const row = await client.query({
      name: 'types',
      rowMode: 'array',
      text: `SELECT $1::int[], $2::text[], $3::${P}_mood, $4::${P}_mood[], $5::${P}_pair, $6::json, $7::jsonb, $8::bytea, $9::numeric, $10::timestamptz, $11::timestamptz[]`,
      values: [[1, null, i], ['a', 'b,c', 'q"\\', null], 'happy', ['sad', 'ok'], `(${i},"(${i}, x)")`, JSON.stringify(DOC), DOC, BLOB, NUMERIC, WHEN, [WHEN, null]],
    })
    const want = [[1, null, i], ['a', 'b,c', 'q"\\', null], 'happy', '{sad,ok}', `(${i},"(${i}, x)")`, DOC, DOC, BLOB, NUMERIC, WHEN, [WHEN, null]]
    want.forEach((w, k) => eq(row.rows[0][k], w, `type column ${k} at execution ${i}`))
  }

  // Transactions and savepoints; an error, then the connection is reused.
  await client.query('BEGIN')
  await client.query(`INSERT INTO ${P}_items (id, name) VALUES (100, 'kept')`)
  await client.query('SAVEPOINT s1')
  await client.query({ text: `INSERT INTO ${P}_items (id, name) VALUES ($1, $2)`, values: [101, 'rolled back'] })
  await raises('22012', 'division by zero in a savepoint', client.query('SELECT 1 / 0'))
  await raises('25P02', 'aborted transaction', client.query('SELECT 1'))
  await client.query('ROLLBACK TO SAVEPOINT s1')
  await client.query('COMMIT')
  eq(await one(`SELECT array_agg(id) AS ids FROM ${P}_items WHERE id >= 100`), { ids: [100] }, 'savepoint effect')
  await raises('22012', 'division by zero', client.query({ text: 'SELECT 1 / $1::int', values: [0] }))
  eq(await one({ text: 'SELECT 41 + $1::int AS n', values: [1] }), { n: 42 }, 'after an error')

  // COPY in, text and binary (built by hand); out, text (binary out is refused
  // through Airlock: it cannot mask it).
  const cols = `${P}_items (id, name, amount, at, data)`
  const lines = ITEMS.slice(0, 3).map((r) => r.map(copyText).join('\t') + '\n')
  await pipeline(Readable.from(lines), client.query(copyFrom(`COPY ${cols} FROM STDIN`)))
  const field = (b) => Buffer.concat([Buffer.from([0, 0, 0, 0].map((_, k) => (b.length >> (24 - 8 * k)) & 255)), b])
  const int4 = (n) => Buffer.from([n >> 24, (n >> 16) & 255, (n >> 8) & 255, n & 255])
  const tuples = ITEMS.slice(3).map(([id, name, , , data]) => Buffer.concat([Buffer.from([0, 3]), field(int4(id)), field(Buffer.from(name)), field(data)]))
  const binary = Buffer.concat([Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1'), int4(0), int4(0), ...tuples, Buffer.from([255, 255])])
  await pipeline(Readable.from([binary]), client.query(copyFrom(`COPY ${P}_items (id, name, data) FROM STDIN (FORMAT BINARY)`)))
  for (const [id, , amount, at] of ITEMS.slice(3)) {
    await client.query({ text: `UPDATE ${P}_items SET amount = $1, at = $2 WHERE id = $3`, values: [amount, at, id] })
  }
  const rows = await client.query({ text: `SELECT id, name, amount, at, data FROM ${P}_items WHERE id < 100 ORDER BY id`, rowMode: 'array' })
  eq(rows.rows, ITEMS, 'rows COPY wrote')
  const out = `COPY (SELECT id, name, amount, at, data FROM ${P}_items WHERE id < 100 ORDER BY id) TO STDOUT`
  const text = await copyOut(client, out)
  eq(text.split('\n').map((l) => l.split('\t').slice(0, 3).join('\t')), ITEMS.map((r) => r.slice(0, 3).map(copyText).join('\t')).concat(['']), 'COPY TO STDOUT text')
  for (const line of (await copyOut(client, `COPY ${P}_people TO STDOUT`)).trim().split('\n')) {
    const [id, name, hash] = line.split('\t')
    eq(name, PEOPLE[id][0], 'COPY people name')
    masked(hash, id, 'COPY people password_hash')
  }
  expect((await copyOut(client, `${out} (FORMAT BINARY)`)).startsWith('PGCOPY'), 'binary COPY TO STDOUT')
  eq(await one('SELECT count(*)::int AS n FROM ' + P + '_items'), { n: 6 }, 'after COPY')

  // Pipeline mode: every query is on the wire before the first answer is read.
  const piped = new pg.Client({ ...config, pipeline: true })
  await piped.connect()
  const results = await Promise.all([
    ...Array.from({ length: 20 }, (_, i) => piped.query({ name: 'double', text: 'SELECT $1::int * 2 AS n', values: [i] })),
    piped.query({ text: `SELECT id, password_hash FROM ${P}_people WHERE id = $1`, values: [2], binary: true }),
    piped.query({ text: `INSERT INTO ${P}_items (id, name) VALUES ($1, $2)`, values: [200, 'piped'] }),
  ])
  eq(results.slice(0, 20).map((r) => r.rows[0].n), Array.from({ length: 20 }, (_, i) => 2 * i), 'pipelined results')
  masked(results[20].rows[0].password_hash, 2, 'pipelined password_hash', true)
  const failed = await Promise.allSettled([piped.query('SELECT 1 / 0'), piped.query({ text: 'SELECT $1::text AS t', values: ['next'] })])
  eq(failed[0].reason && failed[0].reason.code, '22012', 'pipelined error')
  eq(failed[1].value && failed[1].value.rows, [{ t: 'next' }], 'pipelined query after an error (its own Sync)')
  await piped.end()

  // Held statements: one approved runs, one denied fails and changes nothing.
  const exists = async (t) => (await one({ text: 'SELECT to_regclass($1) IS NOT NULL AS e', values: [t] })).e
  const approved = decide(`${P}_held_a`, 'approve')
  await client.query(`DROP TABLE ${P}_held_a`)
  await approved
  eq(await exists(`${P}_held_a`), false, 'the approved DROP dropped')
  if (AIRLOCK) {
    const denied = decide(`${P}_held_b`, 'deny')
    const e = await raises('42501', 'the denied DROP', client.query(`DROP TABLE ${P}_held_b`))
    expect(e.message.includes('denied'), `the denial says so: ${e.message}`)
    await denied
    eq(await exists(`${P}_held_b`), true, 'the denied DROP left the table')
  }
  eq(await one("SELECT 'usable' AS u"), { u: 'usable' }, 'after the held statements')

  // Cancel: pg's cancel sends a CancelRequest on a new connection.
  await timed(10, 'pg_sleep(30) cancelled', async () => {
    let query
    const running = new Promise((resolve, reject) => {
      query = new pg.Query('SELECT pg_sleep(30)', undefined, (e, r) => (e ? reject(e) : resolve(r)))
    })
    client.query(query)
    await sleep(1000)
    new pg.Client(config).cancel(client, query)
    await raises('57014', 'cancelled pg_sleep', running)
  })
  eq(await one("SELECT 'after cancel' AS t"), { t: 'after cancel' }, 'after cancel')
  await client.end()

  // The Pool: more queries than connections, on statements each connection names.
  const pool = new pg.Pool({ ...config, max: 3 })
  await Promise.all(
    Array.from({ length: 30 }, async (_, i) => {
      const id = 1 + (i % 2)
      const c = await pool.connect()
      try {
        eq((await c.query({ name: 'pn', text: 'SELECT $1::int AS n', values: [i] })).rows, [{ n: i }], `pooled query ${i}`)
        const r = (await c.query({ name: 'pp', text: `SELECT name, password_hash FROM ${P}_people WHERE id = $1`, values: [id] })).rows[0]
        eq(r.name, PEOPLE[id][0], `pooled name ${i}`)
        masked(r.password_hash, id, `pooled password_hash ${i}`)
      } finally {
        c.release()
      }
    }),
  )
  eq((await pool.query({ text: 'SELECT $1::jsonb AS d', values: [DOC] })).rows, [{ d: DOC }], 'pool.query')
  await pool.end()
  unwatch()
  console.log('ok')
}

main().catch((e) => wrong(e.stack || e))
