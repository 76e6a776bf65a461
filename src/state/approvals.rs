//! Approval requests and grants in the state database. The broker
//! ([`crate::approvals::Broker`]) decides what to do; this is how it is stored.

use std::time::{Duration, SystemTime};

use tokio_postgres::Row;

use super::{StateStore, Unavailable};
use crate::approvals::{Asked, DecideError, Outcome, Redeemed, Request, rfc3339, short_id};

/// The columns [`request`] reads, in order.
const COLUMNS: &str = "id, subject, groups, connection, protocol, statement, classes, rule, reason, \
                       fingerprints, created_at, expires_at";

fn request(row: &Row) -> Request {
    let created: SystemTime = row.get(10);
    let expires: SystemTime = row.get(11);
    let classes: Vec<String> = row.get(6);
    Request {
        id: row.get(0),
        asked: Asked {
            subject: row.get(1),
            groups: row.get(2),
            connection: row.get(3),
            protocol: known(row.get(4), &["postgres", "ssh", "http"]),
            statement: row.get(5),
            classes: classes.iter().map(|c| class_name(c)).collect(),
            rule: row.get(7),
            reason: row.get(8),
            fingerprints: row.get(9),
        },
        created_at: rfc3339(created),
        expires_at: rfc3339(expires),
    }
}

/// The static name equal to `name`, or `unknown`.
fn known(name: &str, names: &[&'static str]) -> &'static str {
    names.iter().find(|n| **n == name).copied().unwrap_or("unknown")
}

fn class_name(name: &str) -> &'static str {
    airlock_classes::Class::parse(name).map_or("unknown", |c| c.as_str())
}

/// How a decided row ended, or `None` while it is pending.
fn outcome(state: &str, by: Option<String>, reason: Option<String>) -> Option<Outcome> {
    match state {
        "pending" => None,
        "approved" => Some(Outcome::Approved { by: by.unwrap_or_default() }),
        "denied" => Some(Outcome::Denied { by: by.unwrap_or_default(), reason: reason.unwrap_or_default() }),
        _ => Some(Outcome::TimedOut),
    }
}

impl StateStore {
    /// Files a request held by a session of this replica; it expires after `timeout`.
    pub async fn file(&self, asked: &Asked, timeout: Duration) -> Result<Request, Unavailable> {
        let client = self.current()?;
        let classes: Vec<&str> = asked.classes.to_vec();
        let secs = timeout.as_secs_f64();
        // Ids are short for people to type; a clash is retried with another.
        for _ in 0..8 {
            let id = short_id();
            let row = client
                .query_opt(
                    &format!(
                        "INSERT INTO airlock_approvals (id, replica, subject, groups, connection, protocol,
                                statement, classes, rule, reason, fingerprints, expires_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, now() + make_interval(secs => $12))
                         ON CONFLICT (id) DO NOTHING
                         RETURNING {COLUMNS}"
                    ),
                    &[
                        &id,
                        &self.replica,
                        &asked.subject,
                        &asked.groups,
                        &asked.connection,
                        &asked.protocol,
                        &asked.statement,
                        &classes,
                        &asked.rule,
                        &asked.reason,
                        &asked.fingerprints,
                        &secs,
                    ],
                )
                .await?;
            if let Some(row) = row {
                return Ok(request(&row));
            }
        }
        Err(Unavailable("could not find a free approval id".into()))
    }

    /// How request `id` was decided, or `None` while it is pending.
    pub async fn decision(&self, id: &str) -> Result<Option<Outcome>, Unavailable> {
        let row = self
            .current()?
            .query_opt("SELECT state, decided_by, decided_reason FROM airlock_approvals WHERE id = $1", &[&id])
            .await?;
        Ok(match row {
            Some(r) => outcome(r.get(0), r.get(1), r.get(2)),
            None => Some(Outcome::TimedOut),
        })
    }

    /// Expires request `id` if it is still pending; returns how it ended (a decision
    /// that came first stands).
    pub async fn expire(&self, id: &str) -> Result<Outcome, Unavailable> {
        let expired = self
            .current()?
            .execute(
                "UPDATE airlock_approvals SET state = 'expired', decided_at = now()
                  WHERE id = $1 AND state = 'pending'",
                &[&id],
            )
            .await?;
        if expired == 1 {
            return Ok(Outcome::TimedOut);
        }
        Ok(self.decision(id).await?.unwrap_or(Outcome::TimedOut))
    }

    /// Withdraws request `id` if it is still pending (its session left).
    pub async fn withdraw(&self, id: &str) -> Result<bool, Unavailable> {
        let n = self
            .current()?
            .execute(
                "UPDATE airlock_approvals SET state = 'withdrawn', decided_at = now(),
                        decided_reason = 'the agent left'
                  WHERE id = $1 AND state = 'pending'",
                &[&id],
            )
            .await?;
        Ok(n == 1)
    }

    /// Marks request `id` parked: its agent stopped waiting and may come back to any
    /// replica, so it outlives this one.
    pub async fn park(&self, id: &str) -> Result<(), Unavailable> {
        self.current()?.execute("UPDATE airlock_approvals SET parked = true WHERE id = $1", &[&id]).await?;
        Ok(())
    }

    /// Pending requests of every replica, oldest first.
    pub async fn pending(&self) -> Result<Vec<Request>, Unavailable> {
        let rows = self
            .current()?
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM airlock_approvals
                      WHERE state = 'pending' AND expires_at > now() ORDER BY created_at, id"
                ),
                &[],
            )
            .await?;
        Ok(rows.iter().map(request).collect())
    }

    /// When pending request `id` expires.
    pub async fn expires_at(&self, id: &str) -> Result<Option<String>, Unavailable> {
        let row = self
            .current()?
            .query_opt("SELECT expires_at FROM airlock_approvals WHERE id = $1 AND state = 'pending'", &[&id])
            .await?;
        Ok(row.map(|r| rfc3339(r.get(0))))
    }

    /// Decides pending request `id` as `approver`, and with an approval grants its
    /// fingerprints for `grant`, in one statement. The trigger tells the replica that
    /// holds the session.
    pub async fn decide(
        &self,
        id: &str,
        approver: &str,
        outcome: &Outcome,
        grant: Option<Duration>,
    ) -> Result<Request, DecideError> {
        let unavailable = |e: Unavailable| DecideError::Unavailable(e.0);
        let client = self.current().map_err(unavailable)?;
        let (state, reason) = match outcome {
            Outcome::Approved { .. } => ("approved", None),
            Outcome::Denied { reason, .. } => ("denied", Some(reason.as_str())),
            Outcome::TimedOut => ("expired", None),
        };
        let grant_secs = grant.map_or(0.0, |d| d.as_secs_f64());
        let row = client
            .query_opt(
                &format!(
                    "WITH decided AS (
                         UPDATE airlock_approvals
                            SET state = $2, decided_by = $3, decided_reason = $4, decided_at = now()
                          WHERE id = $1 AND state = 'pending' AND expires_at > now() AND subject <> $3
                      RETURNING *
                     ), granted AS (
                         INSERT INTO airlock_grants (subject, connection, fingerprint, approval, until)
                         SELECT d.subject, d.connection, fp, d.id, now() + make_interval(secs => $5)
                           FROM decided d, unnest(d.fingerprints) AS fp
                          WHERE $5 > 0 AND $2 = 'approved'
                         ON CONFLICT DO NOTHING
                     )
                     SELECT {COLUMNS} FROM decided"
                ),
                &[&id, &state, &approver, &reason, &grant_secs],
            )
            .await
            .map_err(|e| unavailable(e.into()))?;
        if let Some(row) = row {
            return Ok(request(&row));
        }
        let own = client
            .query_opt(
                "SELECT 1 FROM airlock_approvals
                  WHERE id = $1 AND state = 'pending' AND expires_at > now() AND subject = $2",
                &[&id, &approver],
            )
            .await
            .map_err(|e| unavailable(e.into()))?;
        Err(match own {
            Some(_) => DecideError::OwnRequest(approver.to_owned()),
            None => DecideError::NotFound(id.to_owned()),
        })
    }

    /// Who filed request `id`, if it exists.
    pub async fn subject(&self, id: &str) -> Result<Option<String>, Unavailable> {
        let row = self.current()?.query_opt("SELECT subject FROM airlock_approvals WHERE id = $1", &[&id]).await?;
        Ok(row.map(|r| r.get(0)))
    }

    /// How parked request `id` stands for this identity, connection and request; an
    /// approval is handed out once.
    pub async fn redeem(
        &self,
        id: &str,
        subject: &str,
        connection: &str,
        fingerprints: &[String],
        timeout: Duration,
    ) -> Result<Redeemed, Unavailable> {
        let client = self.current()?;
        let fingerprints = fingerprints.to_vec();
        // An approval waits for its agent as long again as the request could wait.
        let late = timeout.as_secs_f64();
        let spent = client
            .query_opt(
                "UPDATE airlock_approvals SET redeemed = true
                  WHERE id = $1 AND subject = $2 AND connection = $3 AND fingerprints = $4
                    AND parked AND state = 'approved' AND NOT redeemed
                    AND expires_at > now() - make_interval(secs => $5)
              RETURNING decided_by",
                &[&id, &subject, &connection, &fingerprints, &late],
            )
            .await?;
        if let Some(row) = spent {
            return Ok(Redeemed::Approved { by: row.get::<_, Option<String>>(0).unwrap_or_default() });
        }
        let row = client
            .query_opt(
                "SELECT state, decided_by, decided_reason, expires_at > now() FROM airlock_approvals
                  WHERE id = $1 AND subject = $2 AND connection = $3 AND fingerprints = $4 AND parked",
                &[&id, &subject, &connection, &fingerprints],
            )
            .await?;
        let Some(row) = row else { return Ok(Redeemed::Unknown) };
        let (state, by, reason, live): (&str, Option<String>, Option<String>, bool) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        Ok(match state {
            "pending" if live => Redeemed::Pending,
            "pending" | "expired" | "withdrawn" => Redeemed::Expired,
            "denied" => Redeemed::Denied { by: by.unwrap_or_default(), reason: reason.unwrap_or_default() },
            // Approved and already redeemed: spent.
            _ => Redeemed::Unknown,
        })
    }

    /// Whether live grants cover every fingerprint for this identity and connection.
    pub async fn granted(&self, subject: &str, connection: &str, fingerprints: &[String]) -> Result<bool, Unavailable> {
        let mut wanted = fingerprints.to_vec();
        wanted.sort();
        wanted.dedup();
        let row = self
            .current()?
            .query_one(
                "SELECT count(DISTINCT fingerprint) FROM airlock_grants
                  WHERE subject = $1 AND connection = $2 AND fingerprint = ANY($3) AND until > now()",
                &[&subject, &connection, &wanted],
            )
            .await?;
        let covered: i64 = row.get(0);
        Ok(usize::try_from(covered).is_ok_and(|n| n == wanted.len()))
    }
}
