//! What a scrape costs the core that answers it: `CoreMetrics::snapshot`,
//! which runs on the worker between requests (a request arriving meanwhile
//! waits that long). One server plus N clients and N services, each with a
//! latency distribution of 1,000 requests. Run with
//! `cargo bench --bench metrics`.

use std::hint::black_box;
use std::time::Duration;

use corelink::telemetry::metrics::CoreMetrics;
use criterion::{criterion_group, criterion_main, Criterion};

fn core_with_scopes(n: usize) -> CoreMetrics {
    let m = CoreMetrics::new(0, &["outgoing".to_string()], &[(0, "127.0.0.1/4141".to_string(), false)]);
    let server = m.server(0);
    for i in 0..n {
        let client = m.client(0, &format!("/#/io.l5d.fs/service{i}"));
        let service = m.service(0, &format!("/svc/service{i}"));
        for r in 0..1000u64 {
            // 100 µs to ~10 ms, a few failures.
            let us = 100 + (r * 7919) % 10_000;
            let status = if r % 97 == 0 { 503 } else { 200 };
            server.requests.record(status, us, 0);
            client.requests.record(status, us, 0);
            service.requests.record(status, us, 0);
        }
    }
    m
}

fn snapshot(c: &mut Criterion) {
    let mut group = c.benchmark_group("scrape: one core's snapshot");
    group.measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    for n in [1, 10, 100] {
        let m = core_with_scopes(n);
        group.bench_function(format!("{n} clients + {n} services"), |b| b.iter(|| black_box(m.snapshot())));
    }
    group.finish();
}

criterion_group!(benches, snapshot);
criterion_main!(benches);
