//! One worker: a pinned OS thread running its own event loop, with its own
//! SO_REUSEPORT listener per configured server, its own pool and buffers.

use std::io;
use std::rc::Rc;
use std::sync::mpsc;
use std::time::Duration;

use tokio::sync::watch;

use crate::io::{Backend, Listener};
use crate::proxy::{serve_connection, Core};
use crate::table::{RouteTable, SharedSnapshot};
use crate::telemetry::metrics::CoreMetrics;

/// What the control thread tells the workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Running,
    /// Stop accepting (after serving what is queued), let in-flight requests
    /// finish until the deadline, then exit.
    Draining {
        deadline: std::time::Instant,
    },
}

pub struct WorkerSpec {
    pub core: usize,
    pub cpu: Option<usize>,
    /// (server index in the routing snapshot, this worker's listener for it)
    pub listeners: Vec<(usize, std::net::TcpListener)>,
    pub snapshot: SharedSnapshot,
    pub phase: watch::Receiver<Phase>,
    pub buffer_size: usize,
    /// Reports start-up success or failure to the control thread.
    pub started: mpsc::Sender<Result<(), String>>,
    /// Router labels and (router, `ip/port`) of each server, to name this
    /// core's metric scopes (built on the worker thread: they are `Rc`s).
    pub metric_routers: Vec<String>,
    pub metric_servers: Vec<(usize, String, bool)>,
    /// Where the admin server asks this core for its metrics.
    pub scrape: crate::telemetry::metrics::Scrape,
    /// How many workers share the per-host pool limits.
    pub workers: usize,
    /// This core's channel to the control thread for host names only
    /// requests supply (`namer::dns::request`).
    pub names: Option<crate::namer::dns::request::CoreChannel>,
}

pub fn run_worker<B: Backend>(spec: WorkerSpec) {
    if let Some(cpu) = spec.cpu {
        if let Err(e) = super::sys::pin_current_thread(cpu) {
            tracing::warn!(core = spec.core, cpu, error = %e, "could not pin worker to its CPU");
        }
    }
    let started = spec.started.clone();
    let buffer_size = spec.buffer_size;
    if let Err(e) = B::run(buffer_size, worker_main::<B>(spec)) {
        let _ = started.send(Err(format!("{} event loop failed to start: {e}", B::NAME)));
    }
}

async fn worker_main<B: Backend>(spec: WorkerSpec) {
    let WorkerSpec {
        core: index,
        listeners,
        snapshot,
        mut phase,
        buffer_size,
        started,
        metric_routers,
        metric_servers,
        scrape,
        workers,
        names,
        ..
    } = spec;
    let metrics = Rc::new(CoreMetrics::new(index, &metric_routers, &metric_servers));
    let (core_names, replies) = match names {
        Some(channel) => (crate::table::names::CoreNames::new(&channel), Some(channel.replies)),
        None => (crate::table::names::CoreNames::none(), None),
    };
    let routes = RouteTable::with_names(snapshot, metrics.clone(), workers, core_names);
    let core = Core::<B>::new(routes, buffer_size);
    let mut scrapes = scrape.register();

    let mut wrapped = Vec::with_capacity(listeners.len());
    for (server, std_listener) in listeners {
        match B::listener(std_listener) {
            Ok(l) => wrapped.push((server, l)),
            Err(e) => {
                let _ = started.send(Err(format!("worker {index}: cannot register listener: {e}")));
                return;
            }
        }
    }
    let _ = started.send(Ok(()));
    drop(started);

    let housekeeping = [
        tokio::task::spawn_local(release_idle_resources(core.clone())),
        tokio::task::spawn_local(flush_access_logs(core.clone())),
        tokio::task::spawn_local(advance_metric_windows(core.metrics.clone())),
        tokio::task::spawn_local(crate::proxy::watch_parked(core.clone())),
    ];
    // Scrapes are answered here, between requests: a copy of this core's
    // metrics, made on this core, so the data path never shares them.
    let answering = tokio::task::spawn_local(async move {
        while let Some(reply) = scrapes.recv().await {
            let _ = reply.send(metrics.snapshot());
        }
    });
    // Answers for request-supplied host names come in here, per name, and
    // wake the requests waiting for them.
    let answers = replies.map(|mut replies| {
        let core = core.clone();
        tokio::task::spawn_local(async move {
            while let Some(reply) = replies.recv().await {
                core.routes.names().answer(reply);
            }
        })
    });
    let mut loops = Vec::new();
    for (server, listener) in wrapped {
        let task = accept_loop::<B>(core.clone(), server, listener, phase.clone());
        loops.push(tokio::task::spawn_local(task));
    }

    let deadline = loop {
        if let Phase::Draining { deadline } = *phase.borrow_and_update() {
            break deadline;
        }
        if phase.changed().await.is_err() {
            // Control thread gone: drain with a short deadline.
            break std::time::Instant::now() + Duration::from_secs(1);
        }
    };
    for task in loops {
        let _ = task.await;
    }
    core.shutdown.start_draining();
    core.upstreams.close_all_idle();
    let deadline = tokio::time::Instant::from_std(deadline);
    while core.shutdown.open_connections() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    if core.shutdown.open_connections() > 0 {
        tracing::warn!(
            core = index,
            open = core.shutdown.open_connections(),
            "drain deadline passed; closing remaining connections"
        );
    }
    for task in housekeeping {
        task.abort();
    }
    core.access_logs.flush();
    answering.abort();
    if let Some(answers) = answers {
        answers.abort();
    }
    core.upstreams.close_all_idle();
}

/// Accepts until draining starts, then serves every connection already in
/// this listener's queue (closing a SO_REUSEPORT socket resets whatever is
/// still queued on it) and closes the listener.
async fn accept_loop<B: Backend>(
    core: Rc<Core<B>>,
    server: usize,
    listener: B::Listener,
    mut phase: watch::Receiver<Phase>,
) {
    let mut backoff = Duration::ZERO;
    loop {
        tokio::select! {
            biased;
            changed = phase.changed() => {
                if changed.is_err() || *phase.borrow() != Phase::Running {
                    break;
                }
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    backoff = Duration::ZERO;
                    tokio::task::spawn_local(serve_connection::<B>(core.clone(), server, stream, peer));
                }
                Err(e) if is_resource_exhaustion(&e) => {
                    // Out of file descriptors or memory: back off instead of
                    // spinning on an accept that fails at once.
                    backoff = (backoff * 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
                    tracing::warn!(router = %core.routes.server(server).label, error = %e, backoff_ms = backoff.as_millis() as u64, "accept failed; backing off");
                    tokio::time::sleep(backoff).await;
                }
                Err(e) => {
                    tracing::debug!(router = %core.routes.server(server).label, error = %e, "accept failed");
                }
            }
        }
    }
    loop {
        match listener.try_accept() {
            Ok(Some((stream, peer))) => {
                tokio::task::spawn_local(serve_connection::<B>(core.clone(), server, stream, peer));
            }
            Ok(None) => break,
            Err(e) if is_resource_exhaustion(&e) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(_) => break,
        }
    }
}

fn is_resource_exhaustion(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM))
}

/// Once a second: closes idle pooled connections past their idle timeout
/// or with unread input (a server that hung up or wrote out of turn), frees
/// the free buffers the last second did not need, and when the core has
/// gone quiet (no buffer taken for a second), has the allocator return what
/// was freed to the OS: after a burst, the memory its connections used while
/// busy (docs/io-backends.md, idle connections).
async fn release_idle_resources<B: Backend>(core: Rc<Core<B>>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut was_quiet = false;
    let mut parked_before = core.parked.parked_so_far();
    loop {
        tick.tick().await;
        core.upstreams.close_idle(std::time::Instant::now());
        let trimmed = core.buffers.trim();
        // Connections that parked since left their active tasks' memory
        // free (~7 KiB each).
        let parked_since = core.parked.parked_so_far() - parked_before;
        parked_before += parked_since;
        // Once when the core goes quiet, and again if buffers came back or
        // connections parked since (after their last request).
        if trimmed.quiet && (!was_quiet || trimmed.freed > 0 || parked_since > 0) {
            B::trim_spare_buffers();
            super::sys::return_free_memory();
        }
        was_quiet = trimmed.quiet;
    }
}

/// Once a second: hands buffered access log lines to their writers, so a
/// quiet router's lines reach the file within a second.
async fn flush_access_logs<B: Backend>(core: Rc<Core<B>>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        core.access_logs.flush();
    }
}

/// Every half window: rotates this core's latency windows (latency stats
/// cover the last 30–60 s, as linkerd's one-minute windows do).
async fn advance_metric_windows(metrics: Rc<CoreMetrics>) {
    let mut tick = tokio::time::interval(crate::telemetry::metrics::WINDOW_HALF);
    tick.tick().await;
    loop {
        tick.tick().await;
        metrics.advance_window();
    }
}
