//! What a core reports when scraped, merging across cores, and linkerd's
//! flat JSON tree (`/admin/metrics.json`).

use std::collections::BTreeMap;
use std::fmt::Write;

use super::metrics::Histogram;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ScopeKind {
    Server,
    Client,
    Service,
}

/// Which metrics a scope holds: `rt/<router>/<kind>/<name>/`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Scope {
    pub kind: ScopeKind,
    pub router: String,
    /// Server: `ip/port`; client: the bound name; service: the logical name.
    pub name: String,
}

impl Scope {
    /// linkerd's prefix, e.g. `rt/outgoing/client/#/io.l5d.fs/serviceB`
    /// (names lose their leading `/`, as linkerd shows them).
    pub fn linkerd_prefix(&self) -> String {
        let kind = match self.kind {
            ScopeKind::Server => "server",
            ScopeKind::Client => "client",
            ScopeKind::Service => "service",
        };
        format!("rt/{}/{kind}/{}", self.router, self.name.trim_start_matches('/'))
    }
}

/// A latency distribution in µs as the cores send it: the non-empty
/// buckets (index, count), sorted. Merging adds counts; the HdrHistogram is
/// built on the admin thread when rendering, never on a core.
#[derive(Debug, Clone, Default)]
pub struct HistogramSnapshot {
    buckets: Vec<(u32, u64)>,
}

impl HistogramSnapshot {
    pub(super) fn from_buckets(buckets: Vec<(u32, u64)>) -> Self {
        HistogramSnapshot { buckets }
    }

    /// Adds another core's counts (both sorted by bucket).
    fn add(&mut self, other: &HistogramSnapshot) {
        let mut merged = Vec::with_capacity(self.buckets.len().max(other.buckets.len()));
        let (mut a, mut b) = (self.buckets.iter().peekable(), other.buckets.iter().peekable());
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(&&(i, x)), Some(&&(j, y))) if i == j => {
                    a.next();
                    b.next();
                    (i, x + y)
                }
                (Some(&&x), Some(&&y)) if x.0 < y.0 => {
                    a.next();
                    x
                }
                (_, Some(&&y)) => {
                    b.next();
                    y
                }
                (Some(&&x), None) => {
                    a.next();
                    x
                }
                (None, None) => break,
            };
            merged.push(next);
        }
        self.buckets = merged;
    }

    /// The distribution as an HdrHistogram, each bucket's count at its
    /// midpoint.
    pub fn histogram(&self) -> Histogram {
        let mut h = super::metrics::new_histogram();
        for &(i, n) in &self.buckets {
            let (low, width) = super::metrics::bucket_range(i as usize);
            h.saturating_record_n((low + (width - 1) / 2).max(1), u32::try_from(n).unwrap_or(u32::MAX));
        }
        h
    }
}

#[derive(Debug, Clone)]
pub struct ScopeSnapshot {
    pub scope: Scope,
    pub counters: Vec<(&'static str, u64)>,
    pub gauges: Vec<(&'static str, i64)>,
    pub statuses: Vec<(u16, u64)>,
    /// Counters by a label, e.g. (`tls/failures`, [(`unknown_ca`, 2)]).
    pub labelled: Vec<(&'static str, Vec<(&'static str, u64)>)>,
    pub histograms: Vec<(&'static str, HistogramSnapshot)>,
}

impl ScopeSnapshot {
    pub fn new(scope: Scope) -> Self {
        ScopeSnapshot {
            scope,
            counters: Vec::new(),
            gauges: Vec::new(),
            statuses: Vec::new(),
            labelled: Vec::new(),
            histograms: Vec::new(),
        }
    }

    pub fn counter(&self, name: &str) -> Option<u64> {
        self.counters.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }

    pub fn gauge(&self, name: &str) -> Option<i64> {
        self.gauges.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }

    pub fn histogram(&self, name: &str) -> Option<Histogram> {
        self.histograms.iter().find(|(n, _)| *n == name).map(|(_, h)| h.histogram())
    }

    fn add(&mut self, other: &ScopeSnapshot) {
        for (name, v) in &other.counters {
            add_to(&mut self.counters, name, *v);
        }
        for (name, v) in &other.gauges {
            match self.gauges.iter_mut().find(|(n, _)| n == name) {
                Some((_, x)) => *x += v,
                None => self.gauges.push((name, *v)),
            }
        }
        for (status, v) in &other.statuses {
            match self.statuses.iter_mut().find(|(s, _)| s == status) {
                Some((_, x)) => *x += v,
                None => self.statuses.push((*status, *v)),
            }
        }
        for (name, counts) in &other.labelled {
            match self.labelled.iter_mut().find(|(n, _)| n == name) {
                Some((_, mine)) => {
                    for (label, v) in counts {
                        add_to(mine, label, *v);
                    }
                }
                None => self.labelled.push((name, counts.clone())),
            }
        }
        for (name, h) in &other.histograms {
            match self.histograms.iter_mut().find(|(n, _)| n == name) {
                Some((_, mine)) => mine.add(h),
                None => self.histograms.push((name, h.clone())),
            }
        }
    }
}

fn add_to(list: &mut Vec<(&'static str, u64)>, name: &'static str, v: u64) {
    match list.iter_mut().find(|(n, _)| *n == name) {
        Some((_, x)) => *x += v,
        None => list.push((name, v)),
    }
}

/// One core's metrics at scrape time.
#[derive(Debug, Clone)]
pub struct CoreSnapshot {
    pub core: usize,
    pub requests: u64,
    pub scopes: Vec<ScopeSnapshot>,
}

/// All cores merged: each scope once, plus the per-core request counts.
#[derive(Debug, Clone, Default)]
pub struct Merged {
    pub scopes: BTreeMap<Scope, ScopeSnapshot>,
    pub per_core_requests: Vec<(usize, u64)>,
}

pub fn merge(cores: &[CoreSnapshot]) -> Merged {
    let mut merged = Merged::default();
    for core in cores {
        merged.per_core_requests.push((core.core, core.requests));
        for s in &core.scopes {
            match merged.scopes.get_mut(&s.scope) {
                Some(mine) => mine.add(s),
                None => {
                    merged.scopes.insert(s.scope.clone(), s.clone());
                }
            }
        }
    }
    merged
}

/// Quantiles linkerd (finagle) reports for a histogram, with their suffixes.
pub const QUANTILES: [(&str, f64); 6] =
    [("p50", 0.5), ("p90", 0.9), ("p95", 0.95), ("p99", 0.99), ("p9990", 0.999), ("p9999", 0.9999)];

/// µs to ms with µs precision, as a JSON number.
fn ms(us: f64) -> String {
    let v = us / 1000.0;
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() || s == "-" {
        "0".to_string()
    } else {
        s.to_string()
    }
}

impl Merged {
    /// linkerd's flat metric tree: `"rt/<router>/server/<ip>/<port>/requests": 12`,
    /// `".../status/200"`, `".../status/2XX"`, histograms as
    /// `request_latency_ms.{count,sum,avg,min,max,p50,...}` in milliseconds.
    /// `extra` adds process-wide entries (already formatted values).
    pub fn to_linkerd_json(&self, extra: &[(String, String)]) -> String {
        let mut entries: BTreeMap<String, String> = BTreeMap::new();
        for (scope, s) in &self.scopes {
            let p = scope.linkerd_prefix();
            for (name, v) in &s.counters {
                entries.insert(format!("{p}/{name}"), v.to_string());
            }
            for (name, v) in &s.gauges {
                entries.insert(format!("{p}/{name}"), v.to_string());
            }
            let mut classes: BTreeMap<u16, u64> = BTreeMap::new();
            for (status, v) in &s.statuses {
                entries.insert(format!("{p}/status/{status}"), v.to_string());
                *classes.entry(status / 100).or_default() += v;
            }
            for (class, v) in classes {
                entries.insert(format!("{p}/status/{class}XX"), v.to_string());
            }
            for (name, counts) in &s.labelled {
                for (label, v) in counts {
                    entries.insert(format!("{p}/{name}/{label}"), v.to_string());
                }
            }
            for (name, h) in &s.histograms {
                let h = h.histogram();
                let base = format!("{p}/{name}");
                entries.insert(format!("{base}.count"), h.len().to_string());
                if h.is_empty() {
                    continue;
                }
                let sum = h.mean() * h.len() as f64;
                entries.insert(format!("{base}.sum"), ms(sum));
                entries.insert(format!("{base}.avg"), ms(h.mean()));
                entries.insert(format!("{base}.min"), ms(h.min() as f64));
                entries.insert(format!("{base}.max"), ms(h.max() as f64));
                for (suffix, q) in QUANTILES {
                    entries.insert(format!("{base}.{suffix}"), ms(h.value_at_quantile(q) as f64));
                }
            }
        }
        for (core, requests) in &self.per_core_requests {
            entries.insert(format!("corelink/core/{core}/requests"), requests.to_string());
        }
        for (k, v) in extra {
            entries.insert(k.clone(), v.clone());
        }
        let mut out = String::with_capacity(64 * entries.len() + 2);
        out.push('{');
        for (i, (k, v)) in entries.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            let _ = write!(out, "\"{}\": {v}", json_escape(k));
        }
        out.push('}');
        out
    }
}

pub fn json_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::metrics::CoreMetrics;

    #[test]
    fn cores_merge_and_render_linkerd_names() {
        let routers = vec!["outgoing".to_string()];
        let servers = vec![(0, "127.0.0.1/4141".to_string(), false)];
        let (a, b) = (CoreMetrics::new(0, &routers, &servers), CoreMetrics::new(1, &routers, &servers));
        a.server(0).requests.record(200, 2_000, 0);
        b.server(0).requests.record(502, 4_000, 0);
        a.client(0, "/#/io.l5d.fs/serviceB").requests.record(200, 2_000, 0);
        b.service(0, "/svc/serviceB").requests.record(502, 4_000, 0);
        let merged = merge(&[a.snapshot(), b.snapshot()]);
        let json = merged.to_linkerd_json(&[]);
        for want in [
            "\"rt/outgoing/server/127.0.0.1/4141/requests\": 2",
            "\"rt/outgoing/server/127.0.0.1/4141/success\": 1",
            "\"rt/outgoing/server/127.0.0.1/4141/failures\": 1",
            "\"rt/outgoing/server/127.0.0.1/4141/status/502\": 1",
            "\"rt/outgoing/server/127.0.0.1/4141/status/2XX\": 1",
            "\"rt/outgoing/server/127.0.0.1/4141/request_latency_ms.count\": 2",
            "\"rt/outgoing/client/#/io.l5d.fs/serviceB/requests\": 1",
            "\"rt/outgoing/service/svc/serviceB/failures\": 1",
        ] {
            assert!(json.contains(want), "{want} missing from {json}");
        }
        let server = &merged.scopes.values().find(|s| s.scope.kind == ScopeKind::Server).unwrap();
        let p50 = server.histogram("request_latency_ms").unwrap().value_at_quantile(0.5);
        assert!((1_900..=2_100).contains(&p50), "{p50}");
    }

    #[test]
    fn milliseconds_keep_microseconds() {
        assert_eq!(ms(1500.0), "1.5");
        assert_eq!(ms(2000.0), "2");
        assert_eq!(ms(7.0), "0.007");
        assert_eq!(ms(0.0), "0");
    }

    #[test]
    fn sparse_histograms_merge_by_bucket() {
        let mut a = HistogramSnapshot::from_buckets(vec![(1, 2), (5, 1), (300, 4)]);
        a.add(&HistogramSnapshot::from_buckets(vec![(0, 1), (5, 2), (301, 1)]));
        assert_eq!(a.buckets, vec![(0, 1), (1, 2), (5, 3), (300, 4), (301, 1)]);
        assert_eq!(a.histogram().len(), 11);
        let mut empty = HistogramSnapshot::default();
        empty.add(&a);
        assert_eq!(empty.buckets, a.buckets);
    }
}
