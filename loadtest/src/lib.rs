//! corelink-load: an HTTP/1.1 load generator (closed-loop like wrk, open-loop with
//! coordinated-omission correction like wrk2). See README.md.

pub mod cli;
pub mod client;
pub mod report;
pub mod response;
pub mod schedule;
pub mod stats;
pub mod tls;

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::time::Instant;

use crate::cli::Config;
use crate::client::{AnyConnector, ConnSpec, PlainConnector, Plan, TlsConnector};
use crate::stats::Stats;

/// The outcome of a run.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub stats: Stats,
    /// Length of the measured window (after warm-up).
    pub elapsed: Duration,
}

impl RunResult {
    pub fn requests_per_sec(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.stats.responses as f64 / secs
        } else {
            0.0
        }
    }
}

/// Split `n` measured requests among `c` connections as evenly as possible.
pub fn quotas(n: Option<u64>, c: usize) -> Vec<Option<u64>> {
    (0..c as u64).map(|i| n.map(|n| n / c as u64 + u64::from(i < n % c as u64))).collect()
}

/// Run the load as configured. With `show_progress`, a progress line goes to stderr
/// once a second.
pub fn run(cfg: &Config, show_progress: bool) -> Result<RunResult> {
    let connector = Arc::new(match &cfg.tls {
        None => AnyConnector::Plain(PlainConnector { addr: cfg.addr }),
        Some(opts) => {
            let (config, server_name) = tls::client_config(opts)?;
            AnyConnector::Tls(TlsConnector {
                addr: cfg.addr,
                connector: tokio_rustls::TlsConnector::from(config),
                server_name,
            })
        }
    });
    let start = Instant::now();
    let warmup_end = start + cfg.warmup;
    let plan = Arc::new(Plan {
        request: cfg.request.clone(),
        head_request: cfg.head_request,
        rate: cfg.rate,
        connections: cfg.connections,
        new_conn: cfg.new_conn,
        timeout: cfg.timeout,
        start,
        warmup_end,
        end: cfg.limits.duration.map(|d| warmup_end + d),
    });

    // Connection i runs on thread i % threads.
    let quotas = quotas(cfg.limits.requests, cfg.connections);
    let mut per_thread: Vec<Vec<ConnSpec>> = vec![Vec::new(); cfg.threads];
    for (index, quota) in quotas.into_iter().enumerate() {
        per_thread[index % cfg.threads].push(ConnSpec { index, quota });
    }
    let counters: Vec<Arc<AtomicU64>> = (0..cfg.threads).map(|_| Arc::new(AtomicU64::new(0))).collect();
    let mut handles = Vec::with_capacity(cfg.threads);
    for (i, specs) in per_thread.into_iter().enumerate() {
        let (connector, plan, counter) = (connector.clone(), plan.clone(), counters[i].clone());
        handles.push(
            std::thread::Builder::new()
                .name(format!("load-{i}"))
                .spawn(move || client::run_thread(connector, plan, specs, counter))
                .context("spawning a load thread")?,
        );
    }

    let finished = Arc::new(AtomicBool::new(false));
    let reporter = show_progress.then(|| {
        let (finished, counters) = (finished.clone(), counters.clone());
        std::thread::spawn(move || progress_loop(start, warmup_end, &finished, &counters))
    });

    let mut stats = Stats::new();
    let mut first_err = None;
    for h in handles {
        match h.join() {
            Ok(Ok(s)) => stats.merge(&s),
            Ok(Err(e)) => first_err = Some(anyhow::Error::from(e).context("load thread")),
            Err(_) => first_err = Some(anyhow::anyhow!("a load thread panicked")),
        }
    }
    let now = Instant::now();
    finished.store(true, Ordering::Relaxed);
    if let Some(r) = reporter {
        let _ = r.join();
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    let finish = plan.end.map_or(now, |end| end.min(now));
    Ok(RunResult { stats, elapsed: finish.saturating_duration_since(warmup_end) })
}

fn progress_loop(start: Instant, warmup_end: Instant, finished: &AtomicBool, counters: &[Arc<AtomicU64>]) {
    let total = || counters.iter().map(|c| c.load(Ordering::Relaxed)).sum::<u64>();
    let mut last = 0;
    let mut next = start + Duration::from_secs(1);
    let mut err = std::io::stderr();
    while !finished.load(Ordering::Relaxed) {
        // Poll finish often so the run's end is not delayed by a second.
        std::thread::sleep(Duration::from_millis(50));
        let now = Instant::now();
        if now < next {
            continue;
        }
        next += Duration::from_secs(1);
        let t = total();
        let phase = if now < warmup_end { " (warm-up)" } else { "" };
        let _ = write!(
            err,
            "\r{:>6.1}s  {:>10} req/s  {:>12} requests{}   ",
            (now - start).as_secs_f64(),
            t - last,
            t,
            phase
        );
        let _ = err.flush();
        last = t;
    }
    let _ = write!(err, "\r{:60}\r", "");
    let _ = err.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_sum_to_n() {
        assert_eq!(quotas(None, 3), vec![None, None, None]);
        let q = quotas(Some(10), 4);
        assert_eq!(q, vec![Some(3), Some(3), Some(2), Some(2)]);
        assert_eq!(quotas(Some(2), 4).iter().flatten().sum::<u64>(), 2);
    }
}
