// postgres.js (`postgres`): statements it prepares by default, every type,
// transactions and savepoints, COPY streams, pipelined queries, cursors, masking,
// held statements, cancel (over TLS, as it connects) and its pool.
'use strict'
const { pipeline } = require('stream/promises')
const { Readable } = require('stream')
const postgres = require('postgres')
const { AIRLOCK, BLOB, DOC, ITEMS, NUMERIC, P, PEOPLE, WHEN, copyText, decide, eq, expect, masked, raises, sleep, target, timed, watchHolds } = require('./common.cjs')

// `ssl` with a CA verifies the certificate (and the name, 127.0.0.1).
const connect = (options = {}) =>
  postgres({ host: target.host, port: target.port, database: target.database, username: target.user, password: target.password, ssl: { ca: target.ca }, connect_timeout: 10, onnotice: () => {}, ...options })

async function copyOut(query) {
  let text = ''
  for await (const chunk of await query.readable()) text += chunk
  return text
}

async function main() {
  const unwatch = watchHolds()
  const sql = connect({ max: 1 })
  const people = sql(`${P}_people`)
  const items = sql(`${P}_items`)

  // Prepared on first use (after a Describe), then bound and executed.
  for (let i = 0; i < 12; i++) {
    eq([...(await sql`SELECT ${i}::int AS n, ${`v${i}`}::text || 'x' AS t`)], [{ n: i, t: `v${i}x` }], `n, t at execution ${i}`)
    const id = 1 + (i % 2)
    const [p] = await sql`SELECT name, password_hash FROM ${people} WHERE id = ${id}`
    eq(p.name, PEOPLE[id][0], `name at execution ${i}`)
    masked(p.password_hash, id, `password_hash at execution ${i}`)
  }
  for (const r of await sql`SELECT * FROM ${people} ORDER BY id`) masked(r.password_hash, r.id, 'SELECT * password_hash')

  // Types: postgres.js reads array types from the catalog when it connects.
  for (let i = 0; i < 7; i++) {
    const [row] = await sql`SELECT ${sql.array([1, -2, i])}::int[] AS a, ${sql.array(['a', 'b,c', 'q"\\', 'NULL'])}::text[] AS b, ${'happy'}::${sql(`${P}_mood`)} AS c,
      ${`(${i},"(${i}, x)")`}::${sql(`${P}_pair`)} AS d, ${sql.json(DOC)}::json AS e, ${sql.json(DOC)}::jsonb AS f,
      ${BLOB}::bytea AS g, ${NUMERIC}::numeric AS h, ${WHEN}::timestamptz AS i, ${sql.array([WHEN, WHEN])}::timestamptz[] AS j`.values()
    const want = [[1, -2, i], ['a', 'b,c', 'q"\\', 'NULL'], 'happy', `(${i},"(${i}, x)")`, DOC, DOC, BLOB, NUMERIC, WHEN, [WHEN, WHEN]]
    want.forEach((w, k) => eq(row[k], w, `type column ${k} at execution ${i}`))
  }

  // Transactions and savepoints; an error, then the connection is reused.
  await sql.begin(async (tx) => {
    await tx`INSERT INTO ${items} (id, name) VALUES (100, 'kept')`
    await raises('22012', 'division by zero in a savepoint', tx.savepoint(async (sp) => {
      await sp`INSERT INTO ${items} (id, name) VALUES (101, 'rolled back')`
      await sp`SELECT 1 / 0`
    }))
  })
  eq([...(await sql`SELECT array_agg(id) AS ids FROM ${items} WHERE id >= 100`)], [{ ids: [100] }], 'savepoint effect')
  await raises('22012', 'division by zero', sql`SELECT 1 / ${0}::int`)
  eq([...(await sql`SELECT 41 + ${1}::int AS n`)], [{ n: 42 }], 'after an error')

  // COPY streams (the simple protocol); a prepared COPY TO is refused through Airlock
  // (with column rules it cannot tell the COPY's columns).
  const lines = ITEMS.map((r) => r.map(copyText).join('\t') + '\n')
  await pipeline(Readable.from(lines), await sql`COPY ${items} (id, name, amount, at, data) FROM STDIN`.writable())
  eq((await sql`SELECT id, name, amount, at, data FROM ${items} WHERE id < 100 ORDER BY id`.values()).map((r) => [...r]), ITEMS, 'rows COPY wrote')
  const out = await copyOut(sql`COPY (SELECT id, name, amount FROM ${items} WHERE id < 100 ORDER BY id) TO STDOUT`)
  eq(out, ITEMS.map((r) => r.slice(0, 3).map(copyText).join('\t') + '\n').join(''), 'COPY TO STDOUT text')
  for (const line of (await copyOut(sql`COPY ${people} TO STDOUT`)).trim().split('\n')) {
    const [id, name, hash] = line.split('\t')
    eq(name, PEOPLE[id][0], 'COPY people name')
    masked(hash, id, 'COPY people password_hash')
  }
  // Through the extended protocol a COPY cannot be masked by column: refused before it runs.
  if (AIRLOCK) await raises('42501', 'prepared COPY TO STDOUT', sql`COPY ${people} TO STDOUT`)

  // Pipelined: with one connection, every query is written before its answer is read.
  const piped = await Promise.all([
    ...Array.from({ length: 20 }, (_, i) => sql`SELECT ${i}::int * 2 AS n`),
    sql`SELECT password_hash FROM ${people} WHERE id = ${2}`,
    sql`INSERT INTO ${items} (id, name) VALUES (${200}, 'piped')`,
  ])
  eq(piped.slice(0, 20).map((r) => r[0].n), Array.from({ length: 20 }, (_, i) => 2 * i), 'pipelined results')
  masked(piped[20][0].password_hash, 2, 'pipelined password_hash')
  const settled = await Promise.allSettled([sql`SELECT 1 / ${0}::int`, sql`SELECT ${'next'}::text AS t`])
  eq(settled[0].reason && settled[0].reason.code, '22012', 'pipelined error')
  eq(settled[1].value && [...settled[1].value], [{ t: 'next' }], 'pipelined query after an error')

  // A cursor: Execute with a row limit, answered by PortalSuspended.
  const seen = []
  const cursor = sql`SELECT p.id, p.name, p.password_hash FROM ${people} p CROSS JOIN generate_series(1, 4) g ORDER BY g, p.id`
  for await (const rows of cursor.cursor(3)) {
    seen.push(rows.map((r) => r.id))
    for (const r of rows) {
      eq(r.name, PEOPLE[r.id][0], 'cursor name')
      masked(r.password_hash, r.id, 'cursor password_hash')
    }
  }
  eq(seen, [[1, 2, 1], [2, 1, 2], [1, 2]], 'cursor batches')

  // Held statements: one approved runs, one denied fails and changes nothing.
  const exists = async (t) => (await sql`SELECT to_regclass(${t}) IS NOT NULL AS e`)[0].e
  const approved = decide(`${P}_held_a`, 'approve')
  await sql`DROP TABLE ${sql(`${P}_held_a`)}`
  await approved
  eq(await exists(`${P}_held_a`), false, 'the approved DROP dropped')
  if (AIRLOCK) {
    const denied = decide(`${P}_held_b`, 'deny')
    const e = await raises('42501', 'the denied DROP', sql`DROP TABLE ${sql(`${P}_held_b`)}`)
    expect(e.message.includes('denied'), `the denial says so: ${e.message}`)
    await denied
    eq(await exists(`${P}_held_b`), true, 'the denied DROP left the table')
  }
  eq([...(await sql`SELECT 'usable' AS u`)], [{ u: 'usable' }], 'after the held statements')

  // Cancel: postgres.js opens a new connection (TLS first) for the CancelRequest.
  await timed(10, 'pg_sleep(30) cancelled', async () => {
    const query = sql`SELECT pg_sleep(30)`
    const running = raises('57014', 'cancelled pg_sleep', query)
    await sleep(1000)
    await query.cancel()
    await running
  })
  eq([...(await sql`SELECT ${'after cancel'}::text AS t`)], [{ t: 'after cancel' }], 'after cancel')
  await sql.end()

  // Its pool: more queries than connections.
  const pool = connect({ max: 3 })
  await Promise.all(
    Array.from({ length: 30 }, async (_, i) => {
      const id = 1 + (i % 2)
      eq([...(await pool`SELECT ${i}::int AS n`)], [{ n: i }], `pooled query ${i}`)
      const [r] = await pool`SELECT name, password_hash FROM ${pool(`${P}_people`)} WHERE id = ${id}`
      eq(r.name, PEOPLE[id][0], `pooled name ${i}`)
      masked(r.password_hash, id, `pooled password_hash ${i}`)
    }),
  )
  const reserved = await pool.reserve()
  eq([...(await reserved`SELECT ${sql.json(DOC)}::jsonb AS d`)], [{ d: DOC }], 'reserved connection')
  reserved.release()
  await pool.end()
  unwatch()
  console.log('ok')
}

main().catch((e) => {
  console.log(`WRONG: ${e.stack || e}`)
  process.exit(1)
})
