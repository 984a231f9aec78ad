//! Coordinated-omission correction against a synthetic slow server: one response is
//! stalled for 500 ms under open-loop load. The corrected latency (from each request's
//! scheduled send time) must show the stall in its p99, because every request queued
//! behind the stalled one on that connection was sent late; the uncorrected service time
//! (from the actual send) sees only one slow request and its p99 stays low.

mod common;

use clap::Parser;
use corelink_load::cli::{Args, Config};
use corelink_load::report::percentile_ms;

fn config(args: &[&str]) -> Config {
    let mut argv = vec!["corelink-load"];
    argv.extend_from_slice(args);
    Config::from_args(&Args::parse_from(argv)).unwrap()
}

#[test]
fn open_loop_corrects_coordinated_omission() {
    let server = common::start(common::Options { stall_at: Some(400), ..Default::default() });
    let url = format!("http://{}/", server.addr);
    // 1000 req/s over 2 connections for 2 s: 2000 requests, 500/s per connection. The
    // stall delays ~250 requests on one connection (12.5% of all), by 500 ms down to 0.
    let cfg = config(&["-R", "1000", "-c", "2", "-t", "1", "-d", "2s", &url]);
    let r = corelink_load::run(&cfg, false).unwrap();
    let st = &r.stats;
    assert_eq!(st.total_errors(), 0);
    // The schedule holds: R * D requests (give or take the one in flight at the end).
    assert!((1990..=2000).contains(&st.responses), "responses {}", st.responses);
    let corrected_p99 = percentile_ms(&st.latency, 99.0);
    let uncorrected_p99 = percentile_ms(&st.service, 99.0);
    let uncorrected_max = st.service.max() as f64 / 1e3;
    eprintln!(
        "corrected p99 {corrected_p99} ms, uncorrected p99 {uncorrected_p99} ms, uncorrected max {uncorrected_max} ms"
    );
    assert!(corrected_p99 >= 400.0, "corrected p99 {corrected_p99} ms misses the stall");
    assert!(uncorrected_p99 < 100.0, "uncorrected p99 {uncorrected_p99} ms");
    // The stalled request itself is in the service times (once).
    assert!(uncorrected_max >= 500.0);
    assert!(st.service.count_between(400_000, u64::MAX) <= 1);
    // Many requests were delayed by the stall, not just one.
    assert!(st.latency.count_between(100_000, u64::MAX) >= 100);
}

#[test]
fn closed_loop_hides_the_stall_in_p99() {
    // The same stall in closed-loop mode is one slow request among many: this is the
    // coordinated omission that the open-loop mode corrects.
    let server = common::start(common::Options { stall_at: Some(400), ..Default::default() });
    let url = format!("http://{}/", server.addr);
    let cfg = config(&["-c", "2", "-n", "2000", &url]);
    let r = corelink_load::run(&cfg, false).unwrap();
    assert_eq!(r.stats.responses, 2000);
    assert!(percentile_ms(&r.stats.latency, 99.0) < 100.0);
    assert!(r.stats.latency.max() >= 500_000);
}
