//! The Prometheus text exposition format (0.0.4) of the merged metrics, with
//! labels rather than linkerd's flattened names:
//!
//! ```text
//! corelink_server_requests_total{router="outgoing",server="127.0.0.1/4141"} 25
//! corelink_client_responses_total{router="outgoing",client="/#/io.l5d.fs/serviceB",status_code="200",status_class="2XX"} 25
//! corelink_service_request_latency_seconds{router="outgoing",service="/svc/serviceB",quantile="0.99"} 0.0012
//! ```
//!
//! Each scope's counter `name` becomes `corelink_<kind>_<name>_total`
//! (`/` in a name becomes `_`). Gauges drop the suffix, counters by label
//! get a `reason` label, and latency histograms become summaries in seconds
//! (quantiles 0.5, 0.9, 0.99, 0.999, plus `_sum` and `_count`).

use std::collections::BTreeMap;
use std::fmt::Write;

use super::snapshot::{Merged, ScopeKind};

const QUANTILES: [f64; 4] = [0.5, 0.9, 0.99, 0.999];

/// One metric family: its type, help text and sample lines.
struct Family {
    kind: &'static str,
    help: String,
    samples: Vec<String>,
}

fn kind_name(kind: ScopeKind) -> &'static str {
    match kind {
        ScopeKind::Server => "server",
        ScopeKind::Client => "client",
        ScopeKind::Service => "service",
    }
}

/// A metric name fragment: ASCII letters, digits and `_` only.
fn sanitize(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect()
}

/// A label value, escaped as the format requires.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn labels(pairs: &[(&str, &str)]) -> String {
    let inner: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
    format!("{{{}}}", inner.join(","))
}

/// One process-wide number (not per scope): `corelink/<name>` in
/// `/admin/metrics.json`, `corelink_<name>[_total]` here. With labels (one
/// per Kubernetes watch, say), the JSON name carries the label values before
/// its last segment (`namer/io.l5d.k8s/localhost:8001/services/reconnects`)
/// and Prometheus gets them as labels.
#[derive(Debug, Clone)]
pub struct ProcessMetric {
    /// Path-like, e.g. `config/reloads`.
    pub name: &'static str,
    pub kind: ProcessKind,
    pub help: &'static str,
    pub value: u64,
    pub labels: Vec<(&'static str, String)>,
}

impl ProcessMetric {
    pub fn new(name: &'static str, kind: ProcessKind, help: &'static str, value: u64) -> ProcessMetric {
        ProcessMetric { name, kind, help, value, labels: Vec::new() }
    }

    /// The name in `/admin/metrics.json`, without `corelink/`.
    pub fn json_name(&self) -> String {
        if self.labels.is_empty() {
            return self.name.to_string();
        }
        let (scope, last) = self.name.rsplit_once('/').unwrap_or(("", self.name));
        let mut out = String::from(scope);
        for (_, v) in &self.labels {
            if !out.is_empty() {
                out.push('/');
            }
            out.push_str(v);
        }
        out.push('/');
        out.push_str(last);
        out
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessKind {
    Counter,
    Gauge,
}

/// Renders `merged` plus the process-wide metrics.
pub fn render(merged: &Merged, process: &[ProcessMetric]) -> String {
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    let mut add = |name: String, kind: &'static str, help: String, sample: String| {
        families.entry(name).or_insert_with(|| Family { kind, help, samples: Vec::new() }).samples.push(sample);
    };
    for (scope, s) in &merged.scopes {
        let kind = kind_name(scope.kind);
        let base = [("router", scope.router.as_str()), (kind, scope.name.as_str())];
        let scope_labels = labels(&base);
        for (name, v) in &s.counters {
            let family = format!("corelink_{kind}_{}_total", sanitize(name));
            add(
                family.clone(),
                "counter",
                format!("linkerd's {name}, per {kind}"),
                format!("{family}{scope_labels} {v}"),
            );
        }
        for (name, v) in &s.gauges {
            let family = format!("corelink_{kind}_{}", sanitize(name));
            add(family.clone(), "gauge", format!("{name} now, per {kind}"), format!("{family}{scope_labels} {v}"));
        }
        for (status, v) in &s.statuses {
            let family = format!("corelink_{kind}_responses_total");
            let code = status.to_string();
            let class = format!("{}XX", status / 100);
            let l = labels(&[base[0], base[1], ("status_code", &code), ("status_class", &class)]);
            add(family.clone(), "counter", format!("responses by status, per {kind}"), format!("{family}{l} {v}"));
        }
        for (name, counts) in &s.labelled {
            let family = format!("corelink_{kind}_{}_total", sanitize(name));
            for (reason, v) in counts {
                let l = labels(&[base[0], base[1], ("reason", reason)]);
                add(family.clone(), "counter", format!("{name} by reason, per {kind}"), format!("{family}{l} {v}"));
            }
        }
        for (name, h) in &s.histograms {
            let h = h.histogram();
            let family = format!("corelink_{kind}_{}_seconds", sanitize(name.trim_end_matches("_ms")));
            let help = format!("{name} over the last 30-60 s, per {kind}");
            for q in QUANTILES {
                let quantile = q.to_string();
                let l = labels(&[base[0], base[1], ("quantile", &quantile)]);
                let value = if h.is_empty() { 0.0 } else { h.value_at_quantile(q) as f64 / 1e6 };
                add(family.clone(), "summary", help.clone(), format!("{family}{l} {value}"));
            }
            let sum = h.mean() * h.len() as f64 / 1e6;
            add(family.clone(), "summary", help.clone(), format!("{family}_sum{scope_labels} {sum}"));
            add(family.clone(), "summary", help.clone(), format!("{family}_count{scope_labels} {}", h.len()));
        }
    }
    for (core, requests) in &merged.per_core_requests {
        let family = "corelink_core_requests_total".to_string();
        let l = labels(&[("core", &core.to_string())]);
        add(family.clone(), "counter", "requests finished per core".into(), format!("{family}{l} {requests}"));
    }
    for m in process {
        let family = match m.kind {
            ProcessKind::Counter => format!("corelink_{}_total", sanitize(m.name)),
            ProcessKind::Gauge => format!("corelink_{}", sanitize(m.name)),
        };
        let kind = if m.kind == ProcessKind::Counter { "counter" } else { "gauge" };
        let l = if m.labels.is_empty() {
            String::new()
        } else {
            labels(&m.labels.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>())
        };
        add(family.clone(), kind, m.help.to_string(), format!("{family}{l} {}", m.value));
    }
    let mut out = String::new();
    for (name, f) in families {
        let _ = writeln!(out, "# HELP {name} {}", f.help.replace('\\', "\\\\").replace('\n', "\\n"));
        let _ = writeln!(out, "# TYPE {name} {}", f.kind);
        for s in f.samples {
            out.push_str(&s);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::metrics::{merge, CoreMetrics};

    #[test]
    fn families_have_one_type_line_and_escaped_labels() {
        let routers = vec!["out\"er".to_string()];
        let m = CoreMetrics::new(0, &routers, &[(0, "127.0.0.1/4141".to_string(), false)]);
        m.server(0).requests.record(200, 1_500, 0);
        m.server(0).requests.record(503, 2_500, 0);
        m.client(0, "/#/io.l5d.fs/b").tls_failures.record("unknown_ca");
        let generation = ProcessMetric::new("routing/generation", ProcessKind::Gauge, "snapshot generation", 3);
        let reloads = ProcessMetric::new("config/reloads", ProcessKind::Counter, "reloads", 2);
        let mut watch = ProcessMetric::new("namer/io.l5d.k8s/reconnects", ProcessKind::Counter, "reconnects", 4);
        watch.labels = vec![("api", "localhost:8001".into()), ("resource", "services".into())];
        assert_eq!(watch.json_name(), "namer/io.l5d.k8s/localhost:8001/services/reconnects");
        let text = render(&merge(&[m.snapshot()]), &[generation, reloads, watch]);
        assert!(
            text.contains("corelink_namer_io_l5d_k8s_reconnects_total{api=\"localhost:8001\",resource=\"services\"} 4"),
            "{text}"
        );
        assert_eq!(text.matches("# TYPE corelink_server_requests_total counter").count(), 1);
        assert!(
            text.contains("corelink_server_requests_total{router=\"out\\\"er\",server=\"127.0.0.1/4141\"} 2"),
            "{text}"
        );
        assert!(text.contains("status_code=\"503\",status_class=\"5XX\"} 1"), "{text}");
        assert!(text.contains("corelink_client_tls_failures_total{router=\"out\\\"er\",client=\"/#/io.l5d.fs/b\",reason=\"unknown_ca\"} 1"), "{text}");
        assert!(text.contains("# TYPE corelink_server_request_latency_seconds summary"), "{text}");
        assert!(text.contains("corelink_server_request_latency_seconds_count{"), "{text}");
        assert!(text.contains("corelink_routing_generation 3"), "{text}");
        assert!(
            text.contains("# TYPE corelink_config_reloads_total counter\ncorelink_config_reloads_total 2"),
            "{text}"
        );
    }
}
