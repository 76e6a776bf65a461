//! Masking of results against a real PostgreSQL, psql and tokio-postgres: column rules
//! by identity (aliases, joins, views), value detectors on every text value, COPY,
//! binary results, and the recording.
#![allow(clippy::unwrap_used)]

mod support;
use support::*;

const MASKING: &str = r#"
[[masking]]
connections = ["app-db"]
columns = ["public.mask_people.password_hash", "*.mask_people.national_id"]
"#;

const SETUP: &str = "
DROP VIEW IF EXISTS mask_view; DROP TABLE IF EXISTS mask_orders, mask_people;
CREATE TABLE mask_people (id int primary key, email text, card text, password_hash text,
                          national_id varchar(20), note text, balance bigint);
INSERT INTO mask_people VALUES
  (1, 'alice@example.com', '4111 1111 1111 1111', 'pbkdf2$310000$c2FsdA$aGFzaA', 'X-778-2231', 'order 12345 shipped 2024-05-01', 42),
  (2, 'bob@example.org', NULL, 'pbkdf2$310000$b3RoZXI$b3RoZXI', NULL, 'commit 9fceb02 v1.2.3', 7);
CREATE TABLE mask_orders (id int, person int);
INSERT INTO mask_orders VALUES (10, 1);
CREATE VIEW mask_view AS SELECT id, password_hash AS secret, lower(email) AS contact FROM mask_people;
";

/// Creates the tables once per test binary: the tests run in parallel and only read them.
fn setup(airlock: &Airlock) {
    static DONE: std::sync::Mutex<bool> = std::sync::Mutex::new(false);
    let mut done = DONE.lock().unwrap_or_else(|p| p.into_inner());
    if !*done {
        ok(&airlock.psql(&token("setup", FIXTURES), "app-db", &["-q", "-c", SETUP], None));
        *done = true;
    }
}

fn query(airlock: &Airlock, sql: &str) -> String {
    ok(&airlock.psql(&token("reader", &["agents"]), "app-db", &["-At", "-c", sql], None))
}

#[test]
fn psql_results_are_masked_by_column_identity_and_by_value() {
    let airlock = Airlock::start_with("", MASKING);
    setup(&airlock);

    // A column rule follows the column, whatever the query calls it.
    assert_eq!(query(&airlock, "SELECT password_hash AS h FROM mask_people WHERE id = 1"), "[MASKED]\n");
    assert_eq!(
        query(&airlock, "SELECT o.id, p.national_id FROM mask_orders o JOIN mask_people p ON p.id = o.person"),
        "10|[MASKED]\n"
    );
    // ... and into views over the column.
    assert_eq!(query(&airlock, "SELECT id, secret FROM mask_view ORDER BY id"), "1|[MASKED]\n2|[MASKED]\n");
    // Detectors read every text value, aliased or computed.
    assert_eq!(query(&airlock, "SELECT email AS x FROM mask_people WHERE id = 1"), "[MASKED:email]\n");
    assert_eq!(
        query(&airlock, "SELECT upper('ada@example.com'), 'my card ' || '4111 1111 1111 1111'"),
        "[MASKED:email]|my card [MASKED:credit_card]\n"
    );
    // Computed from a table that holds masked columns: masked whole (fail closed), as is
    // a masked column renamed out of sight.
    assert_eq!(
        query(&airlock, "SELECT upper(email), 'my card ' || card FROM mask_people WHERE id = 1"),
        "[MASKED]|[MASKED]\n"
    );
    assert_eq!(query(&airlock, "SELECT reverse(x) FROM mask_people AS p(a, b, c, x) WHERE a = 1"), "[MASKED]\n");
    assert_eq!(query(&airlock, "SELECT lower(secret) FROM mask_view WHERE id = 1"), "[MASKED]\n");
    // SQL text sessions run, which the upstream role shows every agent of the connection.
    assert_eq!(query(&airlock, "SELECT query FROM pg_stat_activity WHERE pid = pg_backend_pid()"), "[MASKED]\n");
    // A column the view computes, in a view that shows a masked column, is masked whole.
    assert_eq!(query(&airlock, "SELECT contact FROM mask_view WHERE id = 2"), "[MASKED]\n");
    // Look-alikes and NULLs pass untouched.
    assert_eq!(
        query(&airlock, "SELECT note, balance, card FROM mask_people ORDER BY id"),
        "order 12345 shipped 2024-05-01|42|[MASKED:credit_card]\ncommit 9fceb02 v1.2.3|7|\n"
    );

    // COPY: the text and CSV rows are masked too.
    let copy = |sql: &str| query(&airlock, sql);
    assert_eq!(
        copy("COPY (SELECT id, email, password_hash, note FROM mask_people ORDER BY id) TO STDOUT"),
        "1\t[MASKED:email]\t[MASKED]\torder 12345 shipped 2024-05-01\n2\t[MASKED:email]\t[MASKED]\tcommit 9fceb02 v1.2.3\n"
    );
    assert_eq!(
        copy("COPY mask_people (id, national_id, card) TO STDOUT WITH (FORMAT csv, HEADER)"),
        "id,national_id,card\n1,[MASKED],[MASKED:credit_card]\n2,,\n"
    );
    // psycopg2's copy_to spells out the default layout.
    assert_eq!(
        copy("COPY mask_people (id, national_id) TO stdout WITH DELIMITER AS '\t' NULL AS '\\N'"),
        "1\t[MASKED]\n2\t\\N\n"
    );
    let out = airlock.psql(
        &token("reader", &["agents"]),
        "app-db",
        &["-At", "-c", "\\copy (select email, national_id from mask_people where id = 1) to stdout"],
        None,
    );
    assert_eq!(ok(&out), "[MASKED:email]\t[MASKED]\n");
    // Binary COPY: fields of rule-masked columns are NULL, text fields are scanned,
    // fixed-format fields pass exactly; also on a connection with no column rules.
    let binary = |groups: &[&str], db: &str, sql: &str| {
        let out = airlock.psql(&token("reader", groups), db, &["-c", sql], None);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        binary_copy_tuples(&out.stdout)
    };
    let text = |v: &str| Some(v.as_bytes().to_vec());
    assert_eq!(
        binary(
            &["agents"],
            "app-db",
            "COPY (SELECT id, email, password_hash, note FROM mask_people ORDER BY id) TO STDOUT (FORMAT binary)"
        ),
        vec![
            vec![
                Some(1i32.to_be_bytes().to_vec()),
                text("[MASKED:email]"),
                None,
                text("order 12345 shipped 2024-05-01")
            ],
            vec![Some(2i32.to_be_bytes().to_vec()), text("[MASKED:email]"), None, text("commit 9fceb02 v1.2.3")],
        ]
    );
    assert_eq!(
        binary(&["ops"], "ops-db", "COPY mask_people (id, card, balance) TO STDOUT WITH BINARY"),
        vec![
            vec![Some(1i32.to_be_bytes().to_vec()), text("[MASKED:credit_card]"), Some(42i64.to_be_bytes().to_vec())],
            vec![Some(2i32.to_be_bytes().to_vec()), None, Some(7i64.to_be_bytes().to_vec())],
        ]
    );

    // A cast to a type whose binary form is text (or that Airlock does not know)
    // keeps the value's bytes: they are read as text, or sent as NULL if they hide one.
    assert_eq!(
        binary(
            &["ops"],
            "ops-db",
            "COPY (SELECT email::refcursor, to_jsonb(email)::text::jsonpath FROM mask_people WHERE id = 1) TO STDOUT (FORMAT binary)"
        )[0][0],
        text("[MASKED:email]")
    );

    // A card number held by a binary number is read as the number's text: NULL.
    assert_eq!(
        binary(
            &["ops"],
            "ops-db",
            "COPY (SELECT 4111111111111111::int8, 4111111111111111::numeric, 42::int8) TO STDOUT (FORMAT binary)"
        ),
        vec![vec![None, None, Some(42i64.to_be_bytes().to_vec())]]
    );

    // ... and so is one inside a float8, money, an array, a record or a range.
    let row = binary(
        &["ops"],
        "ops-db",
        "COPY (SELECT 4111111111111111::float8, 4111111111111111::numeric::money, ARRAY[4111111111111111::int8], \
         row(4111111111111111::int8, 'x'), int8range(4111111111111111, null), 7::int8, ARRAY[7::int8]) TO STDOUT (FORMAT binary)",
    )
    .remove(0);
    assert_eq!(row[..6], [None, None, None, None, None, Some(7i64.to_be_bytes().to_vec())]);
    assert!(row[6].as_ref().is_some_and(|a| a.ends_with(&7i64.to_be_bytes())), "an array without a secret passes");
    // A whole float8 is read as its digits in text too.
    assert_eq!(query(&airlock, "SELECT 378282246310005::float8"), "[MASKED:credit_card]\n");

    // A row longer than one read is masked like any other, in results and COPY alike.
    let wide = "password_hash, email, repeat('x', 100000) FROM mask_people WHERE id = 1";
    assert_eq!(query(&airlock, &format!("SELECT {wide}")), "[MASKED]|[MASKED:email]|[MASKED]\n");
    assert_eq!(query(&airlock, &format!("COPY (SELECT {wide}) TO STDOUT")), "[MASKED]\t[MASKED:email]\t[MASKED]\n");
    assert_eq!(
        binary(&["agents"], "app-db", &format!("COPY (SELECT {wide}) TO STDOUT (FORMAT binary)")),
        vec![vec![None, text("[MASKED:email]"), None]]
    );
    let out = airlock.psql(
        &token("reader", &["ops"]),
        "ops-db",
        &["-c", "COPY (SELECT id, repeat('y', 300000), card FROM mask_people ORDER BY id) TO STDOUT (FORMAT binary)"],
        None,
    );
    let tuples = binary_copy_tuples(&out.stdout);
    assert_eq!(tuples.iter().map(|t| t[2].clone()).collect::<Vec<_>>(), vec![text("[MASKED:credit_card]"), None]);
    assert!(tuples.iter().all(|t| t[1].as_ref().is_some_and(|v| v.len() == 300_000)), "wide values pass whole");

    // A secret in a statement reaches the database, not the recording.
    assert_eq!(query(&airlock, "SELECT count(*) FROM mask_people WHERE email = 'alice@example.com'"), "1\n");

    // The recording holds only what the agent saw.
    let text = recorded(&airlock, "reader");
    assert!(text.contains("[MASKED:email]"), "{text}");
    for secret in ["alice@example.com", "4111 1111 1111 1111", "pbkdf2$", "X-778-2231"] {
        assert!(!text.contains(secret), "{secret} recorded in {text}");
    }
}

/// The tuples of a binary COPY stream, each field's bytes (`None` for NULL).
fn binary_copy_tuples(stream: &[u8]) -> Vec<Vec<Option<Vec<u8>>>> {
    assert!(stream.starts_with(b"PGCOPY\n\xff\r\n\0"), "not a binary COPY: {stream:?}");
    let be = |at: usize, n: usize| stream[at..at + n].iter().fold(0i64, |v, b| v << 8 | i64::from(*b));
    let mut at = 19 + be(15, 4) as usize;
    let mut tuples = Vec::new();
    loop {
        let count = be(at, 2) as i16;
        at += 2;
        if count == -1 {
            assert_eq!(at, stream.len(), "bytes after the trailer");
            return tuples;
        }
        let mut tuple = Vec::new();
        for _ in 0..count {
            let len = be(at, 4) as i32;
            at += 4;
            tuple.push((len >= 0).then(|| stream[at..at + len as usize].to_vec()));
            at += len.max(0) as usize;
        }
        tuples.push(tuple);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extended_protocol_and_binary_results_are_masked() {
    let airlock = Airlock::start_with("", MASKING);
    setup(&airlock);
    let client = airlock.connect(&token("driver", &["agents"]), "app-db").await.unwrap();

    // tokio-postgres describes the statement once, then asks for binary results.
    let stmt = client
        .prepare("SELECT id, email, password_hash, national_id, note FROM mask_people ORDER BY id")
        .await
        .unwrap();
    for _ in 0..2 {
        let rows = client.query(&stmt, &[]).await.unwrap();
        assert_eq!(rows.len(), 2);
        let row = &rows[0];
        assert_eq!(row.get::<_, i32>(0), 1);
        // Binary text values are text: the detectors still read them.
        assert_eq!(row.get::<_, &str>(1), "[MASKED:email]");
        // Binary values of masked columns are NULL.
        assert_eq!(row.get::<_, Option<&str>>(2), None);
        assert_eq!(row.get::<_, Option<&str>>(3), None);
        assert_eq!(row.get::<_, &str>(4), "order 12345 shipped 2024-05-01");
    }
    // Parameters, a pipeline, and an error in the middle keep rows paired with their plans.
    let (a, b, c) = tokio::join!(
        client.query_one("SELECT email FROM mask_people WHERE id = $1", &[&2i32]),
        client.query_one("SELECT 1/0", &[]),
        client.query_one("SELECT note FROM mask_people WHERE id = $1", &[&2i32]),
    );
    assert_eq!(a.unwrap().get::<_, &str>(0), "[MASKED:email]");
    assert!(b.is_err());
    assert_eq!(c.unwrap().get::<_, &str>(0), "commit 9fceb02 v1.2.3");
    let simple = client.simple_query("SELECT password_hash FROM mask_people WHERE id = 1").await.unwrap();
    let tokio_postgres::SimpleQueryMessage::Row(row) = &simple[1] else { panic!("{simple:?}") };
    assert_eq!(row.get(0), Some("[MASKED]"));

    // Parameters reach the database as sent and the recording masked.
    let n: i64 = client
        .query_one("SELECT count(*) FROM mask_people WHERE email = $1", &[&"bob@example.org"])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    drop(client);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let airlock = std::sync::Arc::new(airlock);
    let a = airlock.clone();
    let text = tokio::task::spawn_blocking(move || recorded(&a, "driver")).await.unwrap();
    for secret in ["bob@example.org", "alice@example.com", "pbkdf2$"] {
        assert!(!text.contains(secret), "{secret} recorded in {text}");
    }
}

#[test]
fn errors_notices_notifications_and_settings_are_masked() {
    let airlock = Airlock::start_with("", MASKING);
    setup(&airlock);
    let secrets = ["alice@example.com", "bob@example.org"];
    // A notification's payload, a setting the server reports back, and an error that
    // echoes the value it could not convert.
    let out = airlock.psql(
        &token("echoes", &["agents"]),
        "app-db",
        &[
            "-At",
            "-c",
            "LISTEN chan",
            "-c",
            "SELECT pg_notify('chan', email) FROM mask_people WHERE id = 1",
            "-c",
            "SELECT set_config('application_name', email, false) IS NOT NULL FROM mask_people WHERE id = 2",
            "-c",
            "SELECT email::int FROM mask_people WHERE id = 1",
        ],
        None,
    );
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("with payload \"[MASKED:email]\""), "{stdout}");
    // The statement reads a table with masked columns, so the quoted value is withheld
    // whole (elsewhere the detectors would have masked the email in it).
    assert!(stderr.contains("invalid input syntax for type integer: \"[MASKED]\""), "{stderr}");
    // A notice a function raises.
    let notice = airlock.psql(
        &token("echoes", FIXTURES),
        "app-db",
        &["-At", "-c", "DO $$ BEGIN RAISE NOTICE 'contact %', (SELECT email FROM mask_people WHERE id = 1); END $$"],
        None,
    );
    let notice_err = String::from_utf8_lossy(&notice.stderr);
    assert!(notice_err.contains("NOTICE:  contact [MASKED:email]"), "{notice_err}");
    let text = recorded(&airlock, "echoes");
    for secret in secrets {
        for seen in [&*stdout, &*stderr, &*notice_err, &text] {
            assert!(!seen.contains(secret), "{secret} reached the agent or the recording: {seen}");
        }
    }
}

/// DDL through Airlock makes the catalog be read again: a column renamed away and back
/// is masked again at once, not after the cache's lifetime.
#[test]
fn renames_through_airlock_refresh_column_identities() {
    let airlock =
        Airlock::start_with("", "[[masking]]\nconnections = [\"app-db\"]\ncolumns = [\"*.mask_ren.national_id\"]\n");
    let setup = |sql: &str| ok(&airlock.psql(&token("setup", FIXTURES), "app-db", &["-q", "-c", sql], None));
    setup(
        "DROP TABLE IF EXISTS mask_ren; CREATE TABLE mask_ren (id int, national_id text); INSERT INTO mask_ren VALUES (1, 'QQ-rename-77')",
    );
    assert_eq!(query(&airlock, "SELECT national_id FROM mask_ren"), "[MASKED]\n");
    setup("ALTER TABLE mask_ren RENAME COLUMN national_id TO nid");
    // No rule names `nid`: the value shows, and the cache now knows the column as `nid`.
    assert_eq!(query(&airlock, "SELECT nid FROM mask_ren"), "QQ-rename-77\n");
    setup("ALTER TABLE mask_ren RENAME COLUMN nid TO national_id");
    assert_eq!(query(&airlock, "SELECT national_id FROM mask_ren"), "[MASKED]\n");
    setup("DROP TABLE mask_ren");
}

/// A function of the database's own that the catalog shows cannot change anything is
/// called like a built-in read, but it may read a masked column the statement never
/// names: its results are masked.
#[test]
fn results_of_the_databases_own_functions_are_masked() {
    let airlock = Airlock::start_with("", MASKING);
    setup(&airlock);
    let setup = |sql: &str| ok(&airlock.psql(&token("setup", FIXTURES), "app-db", &["-q", "-c", sql], None));
    setup(
        "CREATE OR REPLACE FUNCTION mask_hash_of(int) RETURNS text LANGUAGE sql STABLE \
         AS 'SELECT password_hash FROM mask_people WHERE id = $1'",
    );
    assert_eq!(query(&airlock, "SELECT mask_hash_of(1)"), "[MASKED]\n");
    setup(
        "CREATE OR REPLACE FUNCTION mask_people_all() RETURNS SETOF mask_people LANGUAGE sql STABLE \
         AS 'SELECT * FROM mask_people'; \
         CREATE OR REPLACE VIEW mask_upper AS SELECT id, upper(password_hash) AS h FROM mask_people",
    );
    assert_eq!(query(&airlock, "SELECT password_hash FROM mask_people_all() WHERE id = 1"), "[MASKED]\n");
    assert_eq!(query(&airlock, "SELECT h FROM mask_upper WHERE id = 1"), "[MASKED]\n");
    // Cursors and prepared statements run text the statement does not show.
    let script = "BEGIN;\nDECLARE c CURSOR FOR SELECT password_hash || '' FROM mask_people WHERE id = 1;\nFETCH ALL c;\n\
                  COMMIT;\nPREPARE p AS SELECT password_hash || '' FROM mask_people WHERE id = 1;\nEXECUTE p;\n";
    let out = airlock.psql(&token("reader", &["agents"]), "app-db", &["-X", "-q", "-At"], Some(script));
    assert_eq!(ok(&out), "[MASKED]\n[MASKED]\n");
    let script = "BEGIN;\nDECLARE c CURSOR FOR SELECT password_hash::int FROM mask_people;\nFETCH 1 c;\n";
    let out = airlock.psql(&token("reader", &["agents"]), "app-db", &["-X", "-q", "-At"], Some(script));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("pbkdf2"), "{}", String::from_utf8_lossy(&out.stderr));
    // As for any statement that may carry a masked value, every computed column is masked.
    assert_eq!(query(&airlock, "SELECT upper(mask_hash_of(1)) AS h, 1 AS one"), "[MASKED]|[MASKED]\n");
    setup("DROP FUNCTION mask_hash_of(int), mask_people_all(); DROP VIEW mask_upper");
}
