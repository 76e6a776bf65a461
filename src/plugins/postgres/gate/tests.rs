//! The gate's unit tests.

use super::*;
use crate::identity::AuthMethod;
use airlock_postgres::Frame;
use bytes::{BufMut, BytesMut};

fn frame(tag: u8, parts: &[&[u8]]) -> Frame {
    let mut b = BytesMut::new();
    b.put_u8(tag);
    b.put_i32(0);
    for p in parts {
        b.put_slice(p);
    }
    airlock_postgres::message::set_length(&mut b);
    Frame::from_raw(b.freeze())
}

fn is_held(step: Step) -> bool {
    matches!(step, Step::Decide(_))
}

#[test]
fn extended_protocol_is_enforced_at_execute() {
    let policy = Policy::new(&[]).unwrap();
    let identity = Identity { subject: "a".into(), groups: vec![], method: AuthMethod::Jwt };
    let masking = ConnectionMasking::for_tests(&["*.users.password_hash"]);
    let mut gate = SessionGate::new(Some(&policy), &identity, "db", Some(&masking));
    let step = |gate: &mut SessionGate<'_>, f: Frame| gate.inspect(f.tag(), f.body()).unwrap();
    let mut step = |f: Frame| step(&mut gate, f);
    assert!(!is_held(step(frame(b'P', &[b"drop\0", b"DROP TABLE t\0", &[0, 0]]))));
    assert!(!is_held(step(frame(b'P', &[b"\0", b"SELECT 1\0", &[0, 0]]))));
    // Bound and executed: only the dangerous statement is held, at Execute. Rows
    // whose columns masking does not know are refused, not masked blind.
    assert!(!is_held(step(frame(b'B', &[b"\0", b"\0", &[0, 0, 0, 0, 0, 0]]))));
    assert!(is_held(step(frame(b'E', &[b"\0", &[0, 0, 0, 0]]))));
    assert!(!is_held(step(frame(b'D', &[b"P\0"]))));
    assert!(!is_held(step(frame(b'E', &[b"\0", &[0, 0, 0, 0]]))));
    assert!(!is_held(step(frame(b'B', &[b"p1\0", b"drop\0", &[0, 0, 0, 0, 0, 0]]))));
    let held = step(frame(b'E', &[b"p1\0", &[0, 0, 0, 0]]));
    assert!(matches!(&held, Step::Decide(h) if h.kind == HeldKind::Execute && h.text() == "DROP TABLE t"));
    // Closed statements and portals are forgotten: unknown, so held.
    assert!(!is_held(step(frame(b'C', &[b"Pp1\0"]))));
    assert!(is_held(step(frame(b'E', &[b"p1\0", &[0, 0, 0, 0]]))));
    // SQL PREPARE names are shared with the protocol's, once the server confirms.
    assert!(!is_held(step(frame(b'Q', &[b"PREPARE q AS SELECT 1\0"]))));
    assert!(!is_held(step(frame(b'B', &[b"\0", b"q\0", &[0, 0, 0, 0, 0, 0]]))));
    assert!(is_held(step(frame(b'E', &[b"\0", &[0, 0, 0, 0]]))));
    // ParseComplete twice, the first Execute's CommandComplete, then the Query's.
    gate.replies(b"11CCZ");
    let mut step = |f: Frame| gate.inspect(f.tag(), f.body()).unwrap();
    assert!(!is_held(step(frame(b'B', &[b"\0", b"q\0", &[0, 0, 0, 0, 0, 0]]))));
    assert!(!is_held(step(frame(b'E', &[b"\0", &[0, 0, 0, 0]]))));
    assert!(!is_held(step(frame(b'Q', &[b"EXECUTE q\0"]))));
    assert!(is_held(step(frame(b'Q', &[b"EXECUTE unknown_name\0"]))));
    assert!(is_held(step(frame(b'F', &[&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0]]))));
    assert!(step(frame(b'Q', &[b"SELECT 1\0"])).is_forward_query());
}

#[test]
fn names_are_truncated_as_the_server_truncates_them() {
    let policy = Policy::new(&[]).unwrap();
    let identity = Identity { subject: "a".into(), groups: vec![], method: AuthMethod::Jwt };
    let mut gate = SessionGate::new(Some(&policy), &identity, "db", None);
    let long = "a".repeat(63);
    let name = |suffix: &str| format!("{long}{suffix}\0");
    let step = |gate: &mut SessionGate<'_>, f: Frame| gate.inspect(f.tag(), f.body()).unwrap();
    step(&mut gate, frame(b'P', &[name("").as_bytes(), b"select 1\0", &[0, 0]]));
    step(&mut gate, frame(b'S', &[]));
    gate.replies(b"1Z");
    // The server closes `a...a` and stores the DELETE under the same 63 bytes.
    step(&mut gate, frame(b'C', &[b"S", name("zzz").as_bytes()]));
    step(&mut gate, frame(b'S', &[]));
    gate.replies(b"3Z");
    step(&mut gate, frame(b'P', &[name("yyy").as_bytes(), b"delete from v\0", &[0, 0]]));
    step(&mut gate, frame(b'B', &[b"\0", name("").as_bytes(), &[0, 0, 0, 0, 0, 0]]));
    assert!(is_held(step(&mut gate, frame(b'E', &[b"\0", &[0, 0, 0, 0]]))));
}

#[test]
fn names_cut_inside_a_character_stay_apart() {
    let policy = Policy::new(&[]).unwrap();
    let identity = Identity { subject: "a".into(), groups: vec![], method: AuthMethod::Jwt };
    let mut gate = SessionGate::new(Some(&policy), &identity, "db", None);
    // Cut at 63 bytes, `é` (C3 A9) and `ę` (C4 99) leave different first bytes,
    // which lossy decoding would turn into one U+FFFD.
    let name = |c: char| format!("{}{c}\0", "a".repeat(62));
    let step = |gate: &mut SessionGate<'_>, f: Frame| gate.inspect(f.tag(), f.body()).unwrap();
    step(&mut gate, frame(b'P', &[name('é').as_bytes(), b"drop table victim\0", &[0, 0]]));
    step(&mut gate, frame(b'P', &[name('ę').as_bytes(), b"select 1\0", &[0, 0]]));
    step(&mut gate, frame(b'S', &[]));
    gate.replies(b"11Z");
    step(&mut gate, frame(b'B', &[b"\0", name('é').as_bytes(), &[0, 0, 0, 0, 0, 0]]));
    assert!(is_held(step(&mut gate, frame(b'E', &[b"\0", &[0, 0, 0, 0]]))));
    assert_ne!(name_of(name('é').as_bytes()), name_of(name('ę').as_bytes()));
    // Names that are not ASCII where the server keys them are refused outright: in
    // another client encoding the server converts them before it cuts them.
    let latin1 = [&[b'a'; 62][..], &[0xe9, 0]].concat();
    assert!(is_held(step(&mut gate, frame(b'P', &[&latin1, b"select 1\0", &[0, 0]]))));
    let long_ascii = [&[b'a'; 63][..], &[0xe9, 0]].concat();
    assert!(!is_held(step(&mut gate, frame(b'P', &[&long_ascii, b"select 1\0", &[0, 0]]))));
    assert_eq!(name_of(b"plain"), "plain");
}

#[test]
fn a_portal_fetched_as_a_cursor_keeps_its_statements_verdict() {
    let policy = Policy::new(&[]).unwrap();
    let identity = Identity { subject: "a".into(), groups: vec![], method: AuthMethod::Jwt };
    let mut gate = SessionGate::new(Some(&policy), &identity, "db", None);
    let mut step = |f: Frame| gate.inspect(f.tag(), f.body()).unwrap();
    assert!(!is_held(step(frame(b'P', &[b"d\0", b"delete from v returning id\0", &[0, 0]]))));
    assert!(!is_held(step(frame(b'B', &[b"c\0", b"d\0", &[0, 0, 0, 0, 0, 0]]))));
    for sql in ["FETCH ALL FROM c\0", "move all in \"c\"\0", "fetch c\0"] {
        assert!(is_held(step(frame(b'Q', &[sql.as_bytes()]))), "{sql}");
    }
    assert!(!is_held(step(frame(b'Q', &[b"fetch all from other\0"]))));
}

#[test]
fn naming_a_masked_column_taints_results_and_writes_with_it_are_held() {
    let policy = Policy::new(&[]).unwrap();
    let identity = Identity { subject: "a".into(), groups: vec![], method: AuthMethod::Jwt };
    let masking = ConnectionMasking::for_tests(&["*.users.password_hash"]);
    let mut gate = SessionGate::new(Some(&policy), &identity, "db", Some(&masking));
    let mut query = |sql: &str| gate.inspect(b'Q', format!("{sql}\0").as_bytes()).unwrap();
    let taint = |step: Step| match step {
        Step::Forward { expect: Some(Expect::Query { taint, .. }), .. } => taint,
        other => panic!("{other:?}"),
    };
    assert_eq!(taint(query("select password_hash || '' from users")), Taint::Column);
    assert_eq!(taint(query("select row_to_json(u) from \"users\" u")), Taint::Column);
    assert_eq!(
        taint(query("select array(select ascii(x) from regexp_split_to_table(u::text, '') x) from users u")),
        Taint::Column
    );
    assert_eq!(taint(query("select upper(u.email) from users as u")), Taint::Table);
    assert_eq!(taint(query("select count(*) from users")), Taint::Table);
    assert_eq!(taint(query("select count(*) from orders")), Taint::Clean);
    for sql in [
        "update users set note = password_hash where id = 1",
        "insert into notes select password_hash from users",
        "select set_config('my.x', password_hash, false) from users",
        "select pg_notify('c', password_hash) from users",
    ] {
        assert!(is_held(query(sql)), "{sql}");
    }
    assert!(!is_held(query("insert into notes values ('x')")));
    // A name given a new text by SQL PREPARE carries that text's taint to its portals.
    let step = |gate: &mut SessionGate<'_>, f: Frame| gate.inspect(f.tag(), f.body()).unwrap();
    step(&mut gate, frame(b'P', &[b"p\0", b"select 1\0", &[0, 0]]));
    step(&mut gate, frame(b'Q', &[b"PREPARE p AS SELECT password_hash || '' FROM users\0"]));
    step(&mut gate, frame(b'B', &[b"c\0", b"p\0", &[0, 0, 0, 0, 0, 0]]));
    step(&mut gate, frame(b'D', &[b"Pc\0"]));
    let execute = step(&mut gate, frame(b'E', &[b"c\0", &[0, 0, 0, 0]]));
    assert!(
        matches!(&execute, Step::Forward { expect: Some(Expect::Execute { taint: Taint::Column, .. }), .. }),
        "{execute:?}"
    );
}

impl Step {
    fn is_forward_query(&self) -> bool {
        matches!(self, Step::Forward { statement: true, expect: Some(Expect::Query { copy: None, .. }) })
    }
}

#[test]
fn without_enforcement_everything_is_allowed_and_masking_still_follows_statements() {
    let identity = Identity { subject: "a".into(), groups: vec![], method: AuthMethod::Jwt };
    let masking = ConnectionMasking::for_tests(&["*.users.password_hash"]);
    let mut gate = SessionGate::new(None, &identity, "db", Some(&masking));
    let mut step = |f: Frame| gate.inspect(f.tag(), f.body()).unwrap();
    assert!(!is_held(step(frame(b'Q', &[b"DROP TABLE t\0"]))));
    assert!(!is_held(step(frame(b'F', &[&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0]]))));
    // Rows whose columns masking does not know are still not sent unmasked.
    assert!(!is_held(step(frame(b'P', &[b"\0", b"SELECT * FROM users\0", &[0, 0]]))));
    assert!(!is_held(step(frame(b'B', &[b"\0", b"\0", &[0, 0, 0, 0, 0, 0]]))));
    let held = step(frame(b'E', &[b"\0", &[0, 0, 0, 0]]));
    assert!(matches!(&held, Step::Decide(h) if !h.decision.allowed()), "{held:?}");
}
