//! Masking what PostgreSQL sends back.
//!
//! A RowDescription becomes a [`Plan`](plan::Plan): for each column, whether a `[[masking]]`
//! column rule covers it (by identity: the table OID and attribute number the server
//! reports, resolved to `schema.table.column` through the upstream's catalog), whether
//! its values are text the value detectors must read, or whether it can pass. DataRows
//! are then checked where they lie in the read buffer and rewritten only when a value
//! changes; binary values of rule-masked columns become NULL.
//!
//! In the extended protocol, rows often arrive without a RowDescription of their own:
//! the driver described the statement earlier and chose result formats at Bind. The
//! agent side therefore tells the result side, in order, what each Describe, Execute,
//! Query and Sync will be answered with ([`Expect`]); the result side pairs rows with
//! the statement's columns and the Bind's formats.
//!
//! - [`rules`]: the `[[masking]]` column rules that apply to a connection, and what
//!   `airlock explain` can tell of them without a database ([`static_masks`]).
//! - [`plan`]: a result's columns (type, format, rule) to one [`plan::Action`] each,
//!   and rows and values masked by it.
//! - [`catalog`]: table and view columns by OID, looked up on the upstream and cached.
//! - [`taint`]: how far a statement's computed results may carry masked values.
//! - [`result`]: the backend messages of one session, paired with what the agent asked.
//! - [`copy`]: the rows of a COPY TO STDOUT, in text, CSV or binary format.
//! - [`recorded`]: what the recording keeps of the agent's own messages.

use std::sync::Arc;

use super::upstream::UpstreamTarget;
use crate::config::Config;
use crate::masking::{Masker, Style};

mod catalog;
mod copy;
mod plan;
mod recorded;
mod result;
mod rules;
mod taint;

use catalog::Catalog;
pub use recorded::FrontendMasking;
pub use result::{Expect, ResultMasking};
use rules::column_rules;
pub use rules::static_masks;
pub use taint::Taint;

/// What one connection masks, built at start-up.
pub struct ConnectionMasking {
    masker: Masker,
    columns: Vec<(Vec<String>, Style)>,
    catalog: Catalog,
}

impl std::fmt::Debug for ConnectionMasking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionMasking").field("masker", &self.masker).field("columns", &self.columns).finish()
    }
}

impl ConnectionMasking {
    /// The masking of connection `name` under `config`, or `None` when nothing is ever
    /// masked there (no detectors, no patterns, no column rules).
    pub fn new(config: &Config, target: Arc<UpstreamTarget>, key: &[u8]) -> anyhow::Result<Option<ConnectionMasking>> {
        let name = target.conn.name.as_str();
        let masker = crate::masking::for_connection(config, name, key)?;
        let columns = column_rules(config, name);
        if masker.is_empty() && columns.is_empty() {
            return Ok(None);
        }
        Ok(Some(ConnectionMasking { masker, columns, catalog: Catalog::new(target) }))
    }

    /// Whether column rules apply on this connection.
    pub fn has_column_rules(&self) -> bool {
        !self.columns.is_empty()
    }

    /// Masking for a test connection `db` with these column rules (no upstream).
    #[cfg(test)]
    pub fn for_tests(columns: &[&str]) -> ConnectionMasking {
        let toml = format!(
            "[auth]\ndev_tokens = true\n[[connections]]\nname = \"db\"\nprotocol = \"postgres\"\n\
             address = \"127.0.0.1:1\"\ndatabase = \"d\"\nuser = \"u\"\nallow_groups = [\"a\"]\n[[masking]]\ncolumns = {columns:?}\n"
        );
        let config = Config::parse(&toml, std::path::PathBuf::new()).expect("test config");
        let conn = config.connections[0].clone();
        let target = UpstreamTarget {
            tls: crate::tls::UpstreamTlsPlan::new(&config, &conn).expect("tls plan"),
            conn,
            password: None,
            connect_timeout: std::time::Duration::from_secs(1),
            max_message: 1 << 20,
        };
        ConnectionMasking::new(&config, Arc::new(target), b"key").expect("masking").expect("something masked")
    }
}
