//! Process metrics, exposed by the admin endpoint in the Prometheus text format.
//!
//! Sessions fetch their counter handles once ([`Metrics::session`]) so that the relay's
//! hot path increments plain atomics, never a labelled map.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    endpoint: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusedLabels {
    endpoint: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SessionLabels {
    protocol: &'static str,
    connection: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BytesLabels {
    protocol: &'static str,
    connection: String,
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AuthFailureLabels {
    protocol: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PolicyLabels {
    protocol: &'static str,
    connection: String,
    event: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// All metrics of one Airlock process.
pub struct Metrics {
    registry: Registry,
    connections_open: Family<EndpointLabels, Gauge>,
    connections_total: Family<EndpointLabels, Counter>,
    connections_refused: Family<RefusedLabels, Counter>,
    sessions_open: Family<SessionLabels, Gauge>,
    sessions_total: Family<SessionLabels, Counter>,
    bytes: Family<BytesLabels, Counter>,
    statement_seconds: HistogramFamily<SessionLabels>,
    auth_failures: Family<AuthFailureLabels, Counter>,
    policy_events: Family<PolicyLabels, Counter>,
    approvals_pending: Gauge,
    recorder: RecorderMetrics,
}

/// The recorder's counters (detached, unregistered ones by default).
#[derive(Debug, Clone, Default)]
pub struct RecorderMetrics {
    /// Frames written.
    pub frames: Counter,
    /// Uncompressed frame bytes written.
    pub bytes: Counter,
    /// Bytes appended to segment files (compressed blocks, headers, footers).
    pub disk_bytes: Counter,
    /// Blocks written.
    pub blocks: Counter,
    /// Segments sealed.
    pub sealed: Counter,
    /// Times the recorder failed (and the gateway stopped taking sessions).
    pub failures: Counter,
    /// Segments uploaded to object storage and verified there.
    pub uploaded: Counter,
    /// Upload rounds that failed (the segments stay local until a later round).
    pub upload_failures: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

fn statement_histogram() -> Histogram {
    // 50µs .. ~52s.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 21))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("airlock");
        let connections_open = Family::default();
        let connections_total = Family::default();
        let connections_refused = Family::default();
        let sessions_open = Family::default();
        let sessions_total = Family::default();
        let bytes = Family::default();
        let statement_seconds = HistogramFamily::new_with_constructor(statement_histogram as fn() -> Histogram);
        let auth_failures = Family::default();
        let policy_events = Family::default();
        let approvals_pending = Gauge::default();
        registry.register("connections_open", "Agent connections open, by endpoint", connections_open.clone());
        registry.register("connections", "Agent connections accepted, by endpoint", connections_total.clone());
        registry.register(
            "connections_refused",
            "Agent connections refused before a session started, by endpoint and reason",
            connections_refused.clone(),
        );
        registry.register(
            "sessions_open",
            "Authenticated sessions open, by protocol and connection",
            sessions_open.clone(),
        );
        registry.register(
            "sessions",
            "Authenticated sessions started, by protocol and connection",
            sessions_total.clone(),
        );
        registry.register("bytes", "Bytes relayed, by protocol, connection and direction", bytes.clone());
        registry.register(
            "statement_duration_seconds",
            "Time from a statement (or Sync) reaching the upstream to its ReadyForQuery",
            statement_seconds.clone(),
        );
        registry.register("auth_failures", "Rejected identity tokens, by protocol and reason", auth_failures.clone());
        registry.register(
            "policy_events",
            "Statements refused or held, and how holds ended (denied, held, granted, approved, expired, canceled)",
            policy_events.clone(),
        );
        registry.register("approvals_pending", "Statements waiting for an approver", approvals_pending.clone());
        let recorder = RecorderMetrics::default();
        registry.register("recording_frames", "Frames written to recordings", recorder.frames.clone());
        registry.register("recording_bytes", "Uncompressed frame bytes written to recordings", recorder.bytes.clone());
        registry.register("recording_disk_bytes", "Bytes appended to recording segments", recorder.disk_bytes.clone());
        registry.register("recording_blocks", "Recording blocks written", recorder.blocks.clone());
        registry.register("recording_segments_sealed", "Recording segments sealed", recorder.sealed.clone());
        registry.register(
            "recording_failures",
            "Recorder failures (sessions are refused while the recorder is down)",
            recorder.failures.clone(),
        );
        registry.register(
            "recording_segments_uploaded",
            "Recording segments uploaded to object storage and read back intact",
            recorder.uploaded.clone(),
        );
        registry.register(
            "recording_upload_failures",
            "Failed upload rounds (segments stay on disk until a later round)",
            recorder.upload_failures.clone(),
        );
        Metrics {
            registry,
            connections_open,
            connections_total,
            connections_refused,
            sessions_open,
            sessions_total,
            bytes,
            statement_seconds,
            auth_failures,
            policy_events,
            approvals_pending,
            recorder,
        }
    }

    /// The gauge of pending approvals, for the broker.
    pub fn approvals_pending(&self) -> Gauge {
        self.approvals_pending.clone()
    }

    /// Handles for the recorder.
    pub fn recorder(&self) -> RecorderMetrics {
        self.recorder.clone()
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Counts an accepted connection; the guard counts it closed when dropped.
    pub fn connection_opened(&self, endpoint: &'static str) -> ConnectionGuard {
        let labels = EndpointLabels { endpoint };
        self.connections_total.get_or_create(&labels).inc();
        let open = self.connections_open.get_or_create_owned(&labels);
        open.inc();
        ConnectionGuard { open }
    }

    /// Counts a connection refused before a session (limit, auth, unknown target...).
    pub fn connection_refused(&self, endpoint: &'static str, reason: &'static str) {
        self.connections_refused.get_or_create(&RefusedLabels { endpoint, reason }).inc();
    }

    /// Counts a rejected token.
    pub fn auth_failed(&self, protocol: &'static str, reason: &'static str) {
        self.auth_failures.get_or_create(&AuthFailureLabels { protocol, reason }).inc();
    }

    /// Starts a session's metrics; the handles live as long as the session.
    pub fn session(&self, protocol: &'static str, connection: &str) -> SessionMetrics {
        let labels = SessionLabels { protocol, connection: connection.to_owned() };
        self.sessions_total.get_or_create(&labels).inc();
        let open = self.sessions_open.get_or_create_owned(&labels);
        open.inc();
        let bytes = |direction| {
            self.bytes.get_or_create_owned(&BytesLabels { protocol, connection: connection.to_owned(), direction })
        };
        SessionMetrics {
            to_upstream: bytes("to_upstream"),
            to_agent: bytes("to_agent"),
            statement_seconds: self.statement_seconds.get_or_create_owned(&labels),
            policy_events: self.policy_events.clone(),
            labels,
            open,
        }
    }
}

/// Decrements `connections_open` when dropped.
#[derive(Debug)]
pub struct ConnectionGuard {
    open: Gauge,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.open.dec();
    }
}

/// Per-session metric handles.
#[derive(Debug)]
pub struct SessionMetrics {
    /// Bytes sent to the upstream.
    pub to_upstream: Counter,
    /// Bytes sent to the agent.
    pub to_agent: Counter,
    /// Statement latency.
    pub statement_seconds: Histogram,
    policy_events: Family<PolicyLabels, Counter>,
    labels: SessionLabels,
    open: Gauge,
}

impl SessionMetrics {
    /// Counts a policy event (`denied`, `held`, `approved`...) on this session's connection.
    pub fn policy_event(&self, event: &'static str) {
        let labels = PolicyLabels { protocol: self.labels.protocol, connection: self.labels.connection.clone(), event };
        self.policy_events.get_or_create(&labels).inc();
    }
}

impl Drop for SessionMetrics {
    fn drop(&mut self) {
        self.open.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_what_was_counted() {
        let m = Metrics::new();
        let g = m.connection_opened("postgres");
        m.connection_refused("postgres", "limit");
        let s = m.session("postgres", "app-db");
        s.to_agent.inc_by(10);
        s.statement_seconds.observe(0.001);
        let text = m.render();
        assert!(text.contains("airlock_connections_open{endpoint=\"postgres\"} 1"), "{text}");
        assert!(text.contains("airlock_connections_refused_total{endpoint=\"postgres\",reason=\"limit\"} 1"), "{text}");
        assert!(
            text.contains("airlock_bytes_total{protocol=\"postgres\",connection=\"app-db\",direction=\"to_agent\"} 10"),
            "{text}"
        );
        assert!(text.contains("airlock_sessions_open{protocol=\"postgres\",connection=\"app-db\"} 1"), "{text}");
        assert!(
            text.contains("airlock_statement_duration_seconds_count{protocol=\"postgres\",connection=\"app-db\"} 1"),
            "{text}"
        );
        s.policy_event("held");
        assert!(
            m.render()
                .contains("airlock_policy_events_total{protocol=\"postgres\",connection=\"app-db\",event=\"held\"} 1")
        );
        drop((g, s));
        assert!(m.render().contains("airlock_connections_open{endpoint=\"postgres\"} 0"));
    }
}
