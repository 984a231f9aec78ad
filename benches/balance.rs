//! One balancer pick (the per-request cost of load balancing) for 3, 30 and
//! 300 endpoints, per algorithm. Run with `cargo bench --bench balance`.

use std::hint::black_box;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use config::{LoadBalancerConfig, LoadBalancerKind};
use corelink::balance::{Accrual, Balancer, Endpoint, InFlight, LazyNow};
use criterion::{criterion_group, criterion_main, Criterion};

fn balancer(kind: LoadBalancerKind, n: usize) -> Balancer {
    let endpoints = (0..n)
        .map(|i| (Rc::new(Endpoint::new(SocketAddr::from(([10, 0, (i / 256) as u8, i as u8], 8080)))), 1.0))
        .collect();
    Balancer::new(endpoints, LoadBalancerConfig { kind, ..Default::default() }, Rc::new(Accrual::default()))
}

fn picks(c: &mut Criterion) {
    let mut group = c.benchmark_group("balancer pick");
    group.measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    for kind in [LoadBalancerKind::P2c, LoadBalancerKind::Ewma, LoadBalancerKind::RoundRobin, LoadBalancerKind::Heap] {
        for n in [3, 30, 300] {
            let b = balancer(kind, n);
            // Some load, as under traffic: a few requests in flight.
            let now = LazyNow::default();
            let _held: Vec<InFlight> = (0..n.min(8)).filter_map(|_| b.pick(&now, None)).map(InFlight::new).collect();
            group.bench_function(format!("{kind:?} {n}"), |bench| {
                bench.iter(|| black_box(b.pick(&LazyNow::default(), None)))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, picks);
criterion_main!(benches);
