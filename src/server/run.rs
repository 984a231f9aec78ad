//! Start-up and shutdown orchestration (the control thread).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::admin::{self, AdminState};
use crate::io::{bind_reuseport_group, select_backend, BindError, IoKind};
use crate::namer::NamerInputs;
use crate::table::{RoutingSnapshot, SharedSnapshot};
use config::{BackendChoice, Config};

use super::control::Control;
use super::sys;
use super::worker::{run_worker, Phase, WorkerSpec};

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Where the config came from, watched for changes (hot reload).
    pub config_path: Option<std::path::PathBuf>,
    /// `CORELINK_IO` (or `--io`), overriding `corelink.io`.
    pub io_override: Option<BackendChoice>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Backend(#[from] crate::io::probe::UringUnavailable),
    #[error("router {router}: {source}")]
    Bind { router: String, source: BindError },
    #[error("admin server on {addr}: {source}")]
    Admin { addr: std::net::SocketAddr, source: std::io::Error },
    #[error("routing: {0}")]
    Routing(String),
    #[error("worker failed to start: {0}")]
    Worker(String),
    #[error("signal handling: {0}")]
    Signals(std::io::Error),
}

/// How long start-up waits for the Kubernetes watches' first lists.
const K8S_START_WAIT: Duration = Duration::from_secs(2);

/// Runs corelink until a shutdown signal has been handled. Returns once every
/// worker has drained.
pub fn run(config: Config, options: RunOptions) -> Result<(), RunError> {
    match sys::raise_nofile_limit() {
        Ok(limit) => tracing::debug!(limit, "open-file limit"),
        Err(e) => tracing::warn!(error = %e, "could not raise the open-file limit"),
    }
    let signals = Signals::register()?;
    let choice = options.io_override.unwrap_or(config.corelink.io);
    let io = select_backend(choice)?;
    let cpus = sys::allowed_cpus();
    let workers = config.corelink.workers.unwrap_or(cpus.len().max(1));
    let pins = sys::pin_plan(workers, &cpus);

    // The Kubernetes watches start here, on the runtime the control thread
    // will drive; start-up waits briefly for their first lists so the first
    // requests find the endpoints (past it, k8s names answer "not listed
    // yet" until they are, and /admin/ready says not ready).
    let mut k8s = crate::namer::k8s::Watchers::new().map_err(|e| RunError::Worker(e.to_string()))?;
    if k8s.reconcile(&[&config]) && !k8s.wait_synced(K8S_START_WAIT) {
        tracing::warn!(
            wait_ms = K8S_START_WAIT.as_millis() as u64,
            "io.l5d.k8s: the Kubernetes API server has not answered yet; starting anyway"
        );
    }
    // Namer directories and DNS are read once here (the control thread keeps
    // these inputs and refreshes them); access logs and TLS are loaded too.
    // Host names are resolved before the first snapshot, then refreshed by
    // TTL on the same runtime as the watches.
    let dns_stats = Arc::new(crate::namer::dns::DnsStats::default());
    let mut dns =
        crate::namer::dns::ConfigNames::new(k8s.runtime(), k8s.notifier(), &config.corelink.dns, dns_stats.clone());
    let mut inputs = NamerInputs::load(&config, None, &k8s.views(), &mut dns);
    inputs.set_config_maps(k8s.config_map_dtabs(), &mut dns);
    // io.l5d.dnssrv records are looked up when requests first bind them.
    let mut srv = crate::namer::dnssrv::SrvNamers::new(k8s.runtime(), k8s.notifier(), dns_stats.srv.clone());
    srv.reconcile(&config);
    k8s.take_changed();
    let snapshot = RoutingSnapshot::compile_with(&config, &super::control::load_inputs(&config, &inputs), 1)
        .map_err(RunError::Routing)?;
    let shared = SharedSnapshot::new(snapshot);
    // Bind everything before starting anything, so a port conflict is a clean
    // start-up error.
    let mut per_worker: Vec<Vec<(usize, std::net::TcpListener)>> = (0..workers).map(|_| Vec::new()).collect();
    let mut server_index = 0;
    // Each server's metrics scope: (router index, resolved `ip/port`,
    // terminates TLS).
    let mut metric_servers = Vec::new();
    for (router_index, router) in config.routers.iter().enumerate() {
        for server in &router.servers {
            let settings_index = server_index;
            server_index += 1;
            let group = bind_reuseport_group(
                server.addr(),
                workers,
                server.socket_options.backlog.unwrap_or(config.corelink.backlog),
            )
            .map_err(|source| RunError::Bind { router: router.label().to_string(), source })?;
            let bound = group[0].local_addr().map_err(|e| RunError::Bind {
                router: router.label().to_string(),
                source: BindError::Io { addr: server.addr(), source: e },
            })?;
            // A stable, parseable line: tests and scripts find ports here.
            println!("corelink: router {} listening on {bound}", router.label());
            metric_servers.push((router_index, format!("{}/{}", bound.ip(), bound.port()), server.tls.is_some()));
            for (w, listener) in group.into_iter().enumerate() {
                per_worker[w].push((settings_index, listener));
            }
        }
    }

    let router_labels: Vec<String> = config.routers.iter().map(|r| r.label().to_string()).collect();
    let admin_state = Arc::new(AdminState::new(Arc::new(admin::ControlStats::with_dns(dns_stats))));
    admin_state.control.set_k8s_watches(k8s.stats());
    let _ = admin_state.snapshot.set(shared.clone());
    let _ = admin_state.io.set(io);
    admin_state.workers.store(workers, Ordering::Relaxed);
    let admin_addr = admin::spawn(config.admin.addr(), admin_state.clone())
        .map_err(|source| RunError::Admin { addr: config.admin.addr(), source })?;
    println!("corelink: admin listening on {admin_addr}");

    // Host names only requests supply: each core asks the control thread's
    // runtime, which answers on the core's own channel.
    let (control_names, core_names) =
        crate::namer::dns::request::channels(workers, &config.corelink.dns, &admin_state.control.dns);
    srv.set_replies(control_names.repliers());
    let handoff = crate::namer::dns::request::SrvHandoff { asks: srv.asks.clone(), wake: k8s.notifier() };
    dns.serve_requests(control_names, handoff);
    let mut core_names = core_names.into_iter();
    let (phase_tx, phase_rx) = watch::channel(Phase::Running);
    let (started_tx, started_rx) = mpsc::channel();
    let mut threads = Vec::with_capacity(workers);
    for (core, listeners) in per_worker.into_iter().enumerate() {
        let spec = WorkerSpec {
            core,
            cpu: pins[core],
            listeners,
            snapshot: shared.clone(),
            phase: phase_rx.clone(),
            buffer_size: config.corelink.buffer_size,
            started: started_tx.clone(),
            metric_routers: router_labels.clone(),
            metric_servers: metric_servers.clone(),
            scrape: admin_state.scrape.clone(),
            workers,
            names: core_names.next(),
        };
        let thread = std::thread::Builder::new().name(format!("corelink-w{core}")).spawn(move || match io {
            IoKind::Uring => run_worker::<crate::io::uring::Uring>(spec),
            IoKind::Epoll => run_worker::<crate::io::epoll::Epoll>(spec),
        });
        threads.push(thread.map_err(|e| RunError::Worker(e.to_string()))?);
    }
    drop(started_tx);
    for _ in 0..workers {
        match started_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(RunError::Worker(e)),
            Err(_) => return Err(RunError::Worker("a worker exited during start-up".into())),
        }
    }
    admin_state.ready.store(true, Ordering::Release);
    tracing::info!(
        io = %io,
        workers,
        routers = config.routers.len(),
        admin = %admin_addr,
        "corelink started"
    );
    for (i, router) in config.routers.iter().enumerate() {
        let servers: Vec<String> = metric_servers
            .iter()
            .filter(|(r, _, _)| *r == i)
            .map(|(_, addr, tls)| format!("{addr}{}", if *tls { " (TLS)" } else { "" }))
            .collect();
        let client_tls = match &router.client.tls {
            Some(tls) => tls.describe(),
            None if router.client.configs.iter().any(|c| c.params.tls.is_some()) => "per prefix".to_string(),
            None => "plaintext".to_string(),
        };
        tracing::info!(router = router.label(), servers = %servers.join(", "), client_tls = %client_tls, dtab = %router.dtab.split_whitespace().collect::<Vec<_>>().join(" "), "router ready");
    }

    let control = Control::new(
        options.config_path.clone(),
        config.clone(),
        inputs,
        super::control::Discovery { k8s, dns, srv },
        shared,
        1,
        admin_state.control.clone(),
    );
    let hup = control.hup.clone();
    let stop_control = control.stop.clone();
    std::thread::Builder::new()
        .name("corelink-control".into())
        .spawn(move || control.run())
        .map_err(|e| RunError::Worker(e.to_string()))?;
    let result = wait_for_shutdown(&config, signals, hup, phase_tx, threads, admin_state.clone());
    stop_control.store(true, Ordering::Relaxed);
    result
}

/// The signals corelink handles, registered before anything else starts so a
/// SIGHUP during start-up is not fatal (its default action is to terminate).
struct Signals {
    rt: tokio::runtime::Runtime,
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn register() -> Result<Signals, RunError> {
        use tokio::signal::unix::{signal, SignalKind};
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(RunError::Signals)?;
        let _guard = rt.enter();
        let term = signal(SignalKind::terminate()).map_err(RunError::Signals)?;
        let int = signal(SignalKind::interrupt()).map_err(RunError::Signals)?;
        let hup = signal(SignalKind::hangup()).map_err(RunError::Signals)?;
        drop(_guard);
        Ok(Signals { rt, term, int, hup })
    }
}

/// SIGTERM/SIGINT: keep serving for `corelink.shutdownDelayMs` (the
/// application beside us may still call out while it shuts down), then stop
/// accepting and give in-flight requests `admin.shutdownGraceMs` to finish.
/// A second signal exits at once. SIGHUP asks the control thread to reload.
fn wait_for_shutdown(
    config: &Config,
    signals: Signals,
    hup_flag: Arc<AtomicBool>,
    phase: watch::Sender<Phase>,
    threads: Vec<std::thread::JoinHandle<()>>,
    admin: Arc<AdminState>,
) -> Result<(), RunError> {
    let Signals { rt, mut term, mut int, mut hup } = signals;
    let delay = Duration::from_millis(config.corelink.shutdown_delay_ms);
    let grace = Duration::from_millis(config.admin.shutdown_grace_ms);
    rt.block_on(async move {
        let name = loop {
            tokio::select! {
                _ = term.recv() => break "SIGTERM",
                _ = int.recv() => break "SIGINT",
                _ = admin.shutdown.notified() => break "POST /admin/shutdown",
                _ = hup.recv() => {
                    tracing::info!("SIGHUP: reloading the config");
                    hup_flag.store(true, Ordering::Relaxed);
                }
            }
        };
        tracing::info!(
            signal = name,
            serve_ms = delay.as_millis() as u64,
            grace_ms = grace.as_millis() as u64,
            "shutting down: serving on, then draining (signal again to exit now)"
        );
        let second = async {
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
        };
        let drain = async {
            tokio::time::sleep(delay).await;
            let _ = phase.send(Phase::Draining { deadline: Instant::now() + grace });
            tracing::info!("stopped accepting; draining in-flight requests");
            let (done_tx, done_rx) = tokio::sync::oneshot::channel();
            std::thread::spawn(move || {
                for t in threads {
                    let _ = t.join();
                }
                let _ = done_tx.send(());
            });
            let _ = done_rx.await;
        };
        tokio::select! {
            () = drain => {
                tracing::info!("drained; exiting");
                Ok(())
            }
            () = second => {
                tracing::warn!("second signal: exiting now");
                std::process::exit(1);
            }
        }
    })
}
