//! The state database's schema, created and upgraded by Airlock itself.
//!
//! Each migration runs once, in order, in one transaction with the version it brings,
//! under an advisory lock: replicas starting together wait for each other, and a
//! failed upgrade leaves the previous version whole. A database already at a version
//! newer than this binary knows is refused, so an old replica never works on a schema
//! it does not understand.

use anyhow::Context;
use tokio_postgres::Client;

/// The advisory lock key migrations hold (ASCII "airlock" as an integer).
const LOCK: i64 = 0x61_6972_6c6f_636b;

/// Version 1: approvals, grants and replica heartbeats. A trigger announces every new
/// request and every change of state on `airlock_approvals`, with the id as payload.
const V1: &str = r#"
CREATE TABLE airlock_replicas (
    id            text PRIMARY KEY,
    instance      text NOT NULL,
    heartbeat_ms  integer NOT NULL,
    started_at    timestamptz NOT NULL DEFAULT now(),
    seen_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE airlock_approvals (
    id              text PRIMARY KEY,
    replica         text NOT NULL,
    subject         text NOT NULL,
    groups          text[] NOT NULL,
    connection      text NOT NULL,
    protocol        text NOT NULL,
    statement       text NOT NULL,
    classes         text[] NOT NULL,
    rule            text NOT NULL,
    reason          text NOT NULL,
    fingerprints    text[] NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    parked          boolean NOT NULL DEFAULT false,
    state           text NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'approved', 'denied', 'expired', 'withdrawn')),
    decided_by      text,
    decided_reason  text,
    decided_at      timestamptz,
    redeemed        boolean NOT NULL DEFAULT false
);
CREATE INDEX airlock_approvals_pending ON airlock_approvals (created_at) WHERE state = 'pending';

CREATE TABLE airlock_grants (
    subject      text NOT NULL,
    connection   text NOT NULL,
    fingerprint  text NOT NULL,
    approval     text NOT NULL,
    until        timestamptz NOT NULL,
    PRIMARY KEY (subject, connection, fingerprint, approval)
);

CREATE FUNCTION airlock_approval_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('airlock_approvals', NEW.id);
    RETURN NULL;
END
$$;
CREATE TRIGGER airlock_approval_changed
    AFTER INSERT OR UPDATE OF state ON airlock_approvals
    FOR EACH ROW EXECUTE FUNCTION airlock_approval_changed();
"#;

/// Version 2: the session index, one row per recorded session of every replica.
const V2: &str = r#"
CREATE TABLE airlock_sessions (
    replica     text NOT NULL,
    session     text NOT NULL,
    started_at  timestamptz NOT NULL,
    segment     bigint NOT NULL,
    "offset"    bigint NOT NULL,
    start_info  jsonb NOT NULL,
    ended_at    timestamptz,
    end_info    jsonb,
    PRIMARY KEY (replica, session)
);
CREATE INDEX airlock_sessions_started ON airlock_sessions (started_at);
"#;

/// Every migration, version `i + 1` at index `i`.
const MIGRATIONS: &[&str] = &[V1, V2];

/// The schema version this binary works with.
pub const LATEST: u32 = MIGRATIONS.len() as u32;

/// Brings the schema to version `target` (at most [`LATEST`]) and returns the version
/// it found.
pub async fn migrate(client: &mut Client, target: u32) -> anyhow::Result<u32> {
    anyhow::ensure!(target <= LATEST, "schema version {target} does not exist (latest: {LATEST})");
    let tx = client.transaction().await.context("starting the migration")?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK]).await.context("taking the migration lock")?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS airlock_schema (
             version     integer PRIMARY KEY,
             applied_at  timestamptz NOT NULL DEFAULT now()
         )",
    )
    .await
    .context("creating airlock_schema")?;
    let found: i32 = tx.query_one("SELECT coalesce(max(version), 0) FROM airlock_schema", &[]).await?.get(0);
    let found = u32::try_from(found).unwrap_or(0);
    anyhow::ensure!(
        found <= LATEST,
        "the state database is at schema version {found}, newer than this Airlock knows ({LATEST}): upgrade Airlock"
    );
    for version in found + 1..=target {
        let sql = MIGRATIONS[version as usize - 1];
        tx.batch_execute(sql).await.with_context(|| format!("applying schema version {version}"))?;
        let v = i32::try_from(version).unwrap_or(i32::MAX);
        tx.execute("INSERT INTO airlock_schema (version) VALUES ($1)", &[&v]).await?;
        tracing::info!(version, "state schema upgraded");
    }
    tx.commit().await.context("committing the migration")?;
    Ok(found)
}
