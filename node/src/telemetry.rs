//! What a node tells Prometheus: every metric described (HELP text and unit), latencies as
//! histograms (which, unlike summaries, add up across nodes), and the process's own metrics
//! (CPU, resident memory, open files, threads), read from `/proc` at each scrape.
//!
//! `promtool check metrics` passes on a node's `/metrics` (tests/cluster.rs checks it), and the
//! Grafana dashboard in `deploy/grafana/` queries only metrics listed here.

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

/// Bucket bounds of every `_seconds` histogram: 100 µs to 10 s, about three per decade.
pub const LATENCY_BUCKETS_SECONDS: &[f64] =
    &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// Bucket bounds of `mortar_epoxy_batch_commands`: powers of two up to a full batch.
pub const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0];

/// Installs the process's Prometheus recorder, with histograms and descriptions.
pub fn install_recorder() -> Result<PrometheusHandle, BuildError> {
    let handle = builder()?.install_recorder()?;
    describe();
    Ok(handle)
}

/// The recorder's configuration (histogram buckets), for [`install_recorder`] and tests.
pub fn builder() -> Result<PrometheusBuilder, BuildError> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".to_string()), LATENCY_BUCKETS_SECONDS)?
        .set_buckets_for_metric(Matcher::Full("mortar_epoxy_batch_commands".to_string()), BATCH_BUCKETS)
}

/// Describes every metric the node exports (tests/cluster.rs runs `promtool check metrics`,
/// which fails on a metric without HELP text).
pub fn describe() {
    // epoxy
    describe_histogram!("mortar_epoxy_batch_commands", Unit::Count, "Commands per epoxy instance proposed.");
    describe_counter!(
        "mortar_epoxy_execution_search_steps_total",
        "Dependency-graph steps taken to order committed instances for execution."
    );
    describe_counter!(
        "mortar_epoxy_fast_path_commits_total",
        "Instances committed on the fast path (one round trip)."
    );
    describe_counter!(
        "mortar_epoxy_slow_path_commits_total",
        "Instances committed on the slow path (Accept round)."
    );
    describe_counter!("mortar_epoxy_instances_committed_total", "Instances this replica learned committed.");
    describe_counter!("mortar_epoxy_instances_executed_total", "Instances this replica executed.");
    describe_gauge!(
        "mortar_epoxy_keys_held",
        "Keys in this replica's conflict index: those with an instance not yet executed everywhere."
    );
    describe_counter!(
        "mortar_epoxy_keys_forgotten_total",
        "Conflict records dropped because every instance they named executed on every replica."
    );
    describe_counter!(
        "mortar_epoxy_phase_resends_total",
        "Phases this node resent as a command leader to the replicas that had not answered."
    );
    describe_gauge!(
        "mortar_epoxy_resend_timeout_ticks",
        "The resend timeout this node learned from its own phases, in ticks (--tick-interval, 10 ms by default)."
    );
    describe_gauge!(
        "mortar_epoxy_instances_in_flight",
        "Instances this replica leads that are not yet committed."
    );
    // storage
    describe_histogram!("mortar_storage_write_seconds", Unit::Seconds, "Duration of a storage write batch.");
    describe_histogram!(
        "mortar_storage_sync_write_seconds",
        Unit::Seconds,
        "Duration of a synced (fsync) storage write batch."
    );
    // node: requests
    describe_histogram!("mortar_node_kv_request_seconds", Unit::Seconds, "Duration of a Kv request, by op.");
    describe_counter!("mortar_node_requests_refused_total", "Requests refused before any work, by reason.");
    describe_counter!("mortar_node_auth_refused_total", "Requests refused for their credentials, by reason.");
    describe_counter!(
        "mortar_node_gateway_requests_total",
        "Requests to the HTTP gateway, by route and HTTP status."
    );
    describe_gauge!(
        "mortar_node_request_bytes_in_flight",
        Unit::Bytes,
        "Client request bytes received and not yet decoded."
    );
    describe_counter!(
        "mortar_node_request_bytes_refused_total",
        "Client requests refused because the request-bytes budget was spent."
    );
    describe_counter!(
        "mortar_node_request_bodies_timed_out_total",
        "Client requests whose body did not arrive whole in time."
    );
    // node: connections and peers
    describe_gauge!("mortar_node_connections_open", "Connections open, by port.");
    describe_counter!(
        "mortar_node_connections_refused_total",
        "Connections closed at once for the cap, by port."
    );
    describe_counter!(
        "mortar_node_connections_timed_out_total",
        "Connections closed for sending too little within the handshake deadline, by port."
    );
    describe_gauge!(
        "mortar_node_members_reachable",
        "Members of the epoch this node reaches, itself included."
    );
    describe_counter!("mortar_node_peer_connects_total", "Connections made to a peer, by peer.");
    describe_counter!("mortar_node_peer_messages_sent_total", "Epoxy messages sent to a peer, by peer.");
    describe_counter!(
        "mortar_node_peer_messages_received_total",
        "Epoxy messages received from a peer, by peer."
    );
    describe_counter!(
        "mortar_node_peer_messages_dropped_total",
        "Epoxy messages dropped because a peer's queue was full or its connection down."
    );
    describe_counter!("mortar_node_peer_messages_invalid_total", "Peer messages that did not decode.");
    describe_counter!(
        "mortar_node_peer_stalls_total",
        "Connections to a peer abandoned because it did not answer in time, by peer and stage (connect, send)."
    );
    // node: actors
    describe_gauge!("mortar_node_actors_active", "Actors active (in memory) on this node.");
    describe_histogram!(
        "mortar_node_actor_call_seconds",
        Unit::Seconds,
        "Duration of an actor call on its owner, by actor."
    );
    describe_histogram!(
        "mortar_node_actor_activation_seconds",
        Unit::Seconds,
        "Duration of an actor's activation (state loaded, ownership fenced)."
    );
    describe_counter!(
        "mortar_node_actor_fenced_total",
        "Actor writes refused because another owner took over."
    );
    describe_counter!(
        "mortar_node_actor_lease_renewals_total",
        "Renewals of this node's lease for reads of its actors, by result (ok, failed)."
    );
    describe_counter!(
        "mortar_node_actor_read_confirms_total",
        "Reads that confirmed their actor's ownership through a quorum first (no lease held)."
    );
    describe_histogram!(
        "mortar_node_actor_alarm_lateness_seconds",
        Unit::Seconds,
        "How late actor alarms fired after their due time (long after a whole-cluster restart)."
    );
    describe_counter!("mortar_node_actor_alarms_fired_total", "Actor alarms fired (their action committed).");
    describe_counter!(
        "mortar_node_actor_alarm_failed_total",
        "Actor alarms whose action failed when fired (the alarm was removed all the same)."
    );
    describe_counter!("mortar_node_actor_queue_sent_total", "Messages appended to actors' durable queues.");
    describe_counter!(
        "mortar_node_actor_queue_handled_total",
        "Queued messages handled by run loops (each committed with its removal)."
    );
    // gossip
    describe_gauge!("mortar_gossip_live_members", "Members this node's gossip sees alive, itself included.");
    for (name, help) in [
        (
            "mortar_gossip_datagrams_unauthenticated_total",
            "Gossip datagrams dropped for a missing or wrong tag.",
        ),
        ("mortar_gossip_datagrams_rejected_total", "Gossip datagrams dropped as malformed."),
        (
            "mortar_gossip_identities_refused_total",
            "Gossip identities refused: not in the directory, or elsewhere.",
        ),
        (
            "mortar_gossip_generations_refused_total",
            "Claims of a newer generation of this node itself, refused.",
        ),
        ("mortar_gossip_sends_refused_total", "Gossip sends refused to addresses outside the directory."),
        ("mortar_gossip_renewals_total", "Times this node rejoined gossip after being declared down."),
        ("mortar_gossip_renewals_refused_total", "Rejoins held back (declared down again too soon)."),
        ("mortar_gossip_timers_dropped_total", "Gossip timers dropped because the timer queue was full."),
    ] {
        describe_counter!(name, help);
    }
}

/// The process's metrics in Prometheus text format, read from `/proc/self` (Linux); empty where
/// `/proc` cannot be read.
pub fn render_process() -> String {
    let mut out = String::new();
    let Some(sample) = ProcessSample::read() else { return out };
    let mut metric = |name: &str, kind: &str, help: &str, value: f64| {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"));
    };
    metric(
        "process_cpu_seconds_total",
        "counter",
        "Total user and system CPU time spent in seconds.",
        sample.cpu_seconds,
    );
    metric("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", sample.resident_bytes);
    metric("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", sample.virtual_bytes);
    metric("process_open_fds", "gauge", "Number of open file descriptors.", sample.open_fds);
    metric("process_max_fds", "gauge", "Maximum number of open file descriptors.", sample.max_fds);
    metric("process_threads", "gauge", "Number of OS threads in the process.", sample.threads);
    metric(
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since unix epoch in seconds.",
        sample.start_time_seconds,
    );
    out
}

/// One reading of `/proc/self`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessSample {
    pub cpu_seconds: f64,
    pub resident_bytes: f64,
    pub virtual_bytes: f64,
    pub open_fds: f64,
    pub max_fds: f64,
    pub threads: f64,
    pub start_time_seconds: f64,
}

impl ProcessSample {
    pub fn read() -> Option<ProcessSample> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let boot_time = std::fs::read_to_string("/proc/stat")
            .ok()?
            .lines()
            .find_map(|line| line.strip_prefix("btime ")?.trim().parse::<f64>().ok())?;
        let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok()?? as f64;
        let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE).ok()?? as f64;
        let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as f64;
        let max_fds =
            nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).ok()?.0 as f64;
        Self::parse(&stat, boot_time, ticks, page, open_fds, max_fds)
    }

    /// From the text of `/proc/self/stat` (fields after the command name, which may hold spaces
    /// and parentheses, so it is cut at the last `)`).
    pub fn parse(
        stat: &str,
        boot_time: f64,
        ticks: f64,
        page: f64,
        open_fds: f64,
        max_fds: f64,
    ) -> Option<Self> {
        let fields: Vec<&str> = stat.get(stat.rfind(')')? + 1..)?.split_whitespace().collect();
        // After the name: state is field 3 of proc(5), so field N is fields[N - 3].
        let field = |n: usize| fields.get(n - 3)?.parse::<f64>().ok();
        Some(ProcessSample {
            cpu_seconds: (field(14)? + field(15)?) / ticks,
            threads: field(20)?,
            start_time_seconds: boot_time + field(22)? / ticks,
            virtual_bytes: field(23)?,
            resident_bytes: field(24)? * page,
            open_fds,
            max_fds,
        })
    }
}

/// A tracer provider that sends spans to the OTLP collector at `endpoint` (gRPC, e.g.
/// `http://otel-collector:4317`) in batches, as service `mortar`. Call inside the Tokio runtime:
/// the exporter's calls run on it.
pub fn otlp_provider(endpoint: &str) -> Result<opentelemetry_sdk::trace::SdkTracerProvider, String> {
    use opentelemetry_otlp::WithExportConfig as _;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .with_timeout(OTLP_EXPORT_WAIT)
        .build()
        .map_err(|e| format!("--otlp-endpoint {endpoint}: {e}"))?;
    let exporter =
        OnRuntime { inner: std::sync::Arc::new(exporter), runtime: tokio::runtime::Handle::current() };
    let resource = opentelemetry_sdk::Resource::builder().with_service_name("mortar").build();
    Ok(opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

/// Bound on one export to the collector.
pub const OTLP_EXPORT_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Runs an exporter's calls on the Tokio runtime: the SDK's batch processor calls it from a
/// thread of its own, where the gRPC exporter finds no reactor.
#[derive(Debug)]
struct OnRuntime<E> {
    inner: std::sync::Arc<E>,
    runtime: tokio::runtime::Handle,
}

impl<E: opentelemetry_sdk::trace::SpanExporter + 'static> opentelemetry_sdk::trace::SpanExporter
    for OnRuntime<E>
{
    fn export(
        &self,
        batch: Vec<opentelemetry_sdk::trace::SpanData>,
    ) -> impl std::future::Future<Output = opentelemetry_sdk::error::OTelSdkResult> + Send {
        let inner = self.inner.clone();
        let task = self.runtime.spawn(async move { inner.export(batch).await });
        async move {
            task.await.unwrap_or_else(|e| {
                Err(opentelemetry_sdk::error::OTelSdkError::InternalFailure(e.to_string()))
            })
        }
    }

    fn shutdown_with_timeout(&self, timeout: std::time::Duration) -> opentelemetry_sdk::error::OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }
}

/// The span of one gRPC request to a client service (`grpc` with its `path`), for OTLP export;
/// none for the peers' long-lived streams.
pub fn request_span(request: &http::Request<()>) -> tracing::Span {
    let path = request.uri().path();
    if crate::budget::is_budgeted(path) {
        tracing::info_span!("grpc", path = %path)
    } else {
        tracing::Span::none()
    }
}

#[cfg(test)]
#[path = "telemetry_test.rs"]
mod tests;
