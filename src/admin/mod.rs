//! The admin server (linkerd's `admin: {ip, port}`, default 127.0.0.1:9990).
//! It runs on its own thread with its own small event loop, off the data path:
//! the dashboard at `/`, `/admin/ping`, `/admin/ready`, `/config.json`,
//! `/delegator.json`, metrics (`/admin/metrics.json`, Prometheus at
//! `/admin/metrics/prometheus` and `/metrics`), linkerd's
//! `/<router>/interpreter_state/io.l5d.k8s.configmap.json` and
//! `POST /admin/shutdown`.

mod control_stats;

pub use control_stats::ControlStats;

use std::io;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http1::{Limits, Method, HEADER_SLOTS};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::telemetry::prometheus::{ProcessKind, ProcessMetric};

/// State the admin endpoints report. Written by the control thread.
#[derive(Default)]
pub struct AdminState {
    /// Every router listens on every worker and the routing snapshot is built.
    pub ready: AtomicBool,
    /// The published routing, for `/delegator.json`.
    pub snapshot: std::sync::OnceLock<crate::table::SharedSnapshot>,
    /// How to ask the cores for their metrics.
    pub scrape: crate::telemetry::metrics::Scrape,
    /// `POST /admin/shutdown`: the start-up thread waits on this as on
    /// SIGTERM.
    pub shutdown: tokio::sync::Notify,
    /// Reloads and namer updates, counted by the control thread.
    pub control: Arc<ControlStats>,
    /// The I/O backend running (set once at start-up) and the workers.
    pub io: std::sync::OnceLock<crate::io::IoKind>,
    pub workers: std::sync::atomic::AtomicUsize,
    /// The last collection of the cores' metrics, shared by the scrapes
    /// that waited for it (see [`scraped_metrics`]).
    last_scrape: tokio::sync::Mutex<Option<Arc<Scraped>>>,
    /// Collections of the cores' metrics made (`corelink/admin/scrapes`).
    scrapes: std::sync::atomic::AtomicU64,
}

impl AdminState {
    pub fn new(control: Arc<ControlStats>) -> AdminState {
        AdminState { control, ..Default::default() }
    }
}

/// Admin connections open at once; more are answered 503 and closed, so
/// idle connections cannot take every descriptor the proxy needs.
const MAX_CONNECTIONS: usize = 256;
/// Time for a request head to arrive; the whole exchange gets `EXCHANGE_LIMIT`.
const HEAD_LIMIT: Duration = Duration::from_secs(5);
const EXCHANGE_LIMIT: Duration = Duration::from_secs(10);

/// One collection of every core's metrics, and its renderings, made once
/// and shared by every request answered from it.
struct Scraped {
    started: tokio::time::Instant,
    merged: crate::telemetry::metrics::Merged,
    prometheus: std::sync::OnceLock<Arc<str>>,
    json: std::sync::OnceLock<Arc<str>>,
}

/// An admin response: whole, or a head and a body shared with the other
/// requests answered from the same scrape (a large metrics page is then
/// held once, however many slow clients are sent it).
enum Reply {
    Whole(Vec<u8>),
    Shared { head: Vec<u8>, body: Arc<str> },
}

impl From<Vec<u8>> for Reply {
    fn from(whole: Vec<u8>) -> Reply {
        Reply::Whole(whole)
    }
}

/// Binds the admin address now (so a bad address fails start-up) and serves
/// it on a new thread. Returns the bound address (port 0 resolved).
pub fn spawn(addr: SocketAddr, state: Arc<AdminState>) -> io::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let local = listener.local_addr()?;
    std::thread::Builder::new().name("corelink-admin".into()).spawn(move || {
        let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt,
            Err(e) => {
                tracing::error!(error = %e, "admin server failed to start");
                return;
            }
        };
        rt.block_on(serve(listener, state));
    })?;
    Ok(local)
}

async fn serve(listener: std::net::TcpListener, state: Arc<AdminState>) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "admin listener failed");
            return;
        }
    };
    let open = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let Ok(permit) = open.clone().try_acquire_owned() else {
                    // Best effort, never waiting: the connection closes now.
                    let _ = stream.try_write(&plain(503, "too many admin connections"));
                    continue;
                };
                let state = state.clone();
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(EXCHANGE_LIMIT, handle(stream, &state)).await;
                    drop(permit);
                });
            }
            Err(e) => {
                tracing::debug!(error = %e, "admin accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn handle(mut stream: tokio::net::TcpStream, state: &AdminState) -> io::Result<()> {
    let local = stream.local_addr()?;
    let mut buf = Vec::with_capacity(4096);
    let limits = Limits::default();
    let head_deadline = tokio::time::Instant::now() + HEAD_LIMIT;
    let reply = loop {
        match tokio::time::timeout_at(head_deadline, stream.read_buf(&mut buf)).await {
            Ok(Ok(0)) | Err(_) => return Ok(()),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e),
        }
        let mut slots = [MaybeUninit::uninit(); HEADER_SLOTS];
        match http1::parse_request(&buf, &mut slots, &limits) {
            Ok(Some(head)) if changes_state(head.method) && browser_cross_site(head.headers, local) => {
                tracing::warn!(target = head.target, "refused a state-changing admin request from another site");
                break plain(403, "forbidden: a state-changing admin request from a page of another site").into();
            }
            Ok(Some(head)) if local.ip().is_loopback() && !names_an_address(head.host) => {
                tracing::warn!(
                    host = head.host.unwrap_or(""),
                    "refused an admin request naming a host name on loopback"
                );
                break plain(
                    403,
                    "forbidden: on a loopback address the admin answers requests for an IP address or localhost only (a page under another name could be a DNS-rebinding attack)",
                )
                .into();
            }
            Ok(Some(head)) => break answer(head.method, head.target, state).await,
            Ok(None) => continue,
            Err(e) => break plain(e.request_status(), &e.to_string()).into(),
        }
    };
    match reply {
        Reply::Whole(bytes) => stream.write_all(&bytes).await?,
        Reply::Shared { head, body } => {
            stream.write_all(&head).await?;
            stream.write_all(body.as_bytes()).await?;
        }
    }
    stream.shutdown().await
}

/// Requests that do something rather than read something (`POST
/// /admin/shutdown` today; any method but GET, HEAD and OPTIONS).
fn changes_state(method: Method) -> bool {
    !matches!(method, Method::Get | Method::Head | Method::Options)
}

/// Whether a browser marked the request as sent by a page of another site:
/// `Sec-Fetch-Site` other than `same-origin` or `none` (a page on another port
/// of localhost is `same-site`, and no less hostile), or an `Origin` that is
/// not the admin's own address. A text/plain cross-site POST needs no CORS
/// preflight, so without this any page a browser on the host visits could
/// shut corelink down. Probes and scrapers (kubelet, curl, Prometheus) send
/// neither header and are not affected; `Host` is not checked, since kubelet
/// sends the pod IP and DNS rebinding controls it anyway.
fn browser_cross_site(headers: &[httparse::Header<'_>], local: SocketAddr) -> bool {
    headers.iter().any(|h| {
        if h.name.eq_ignore_ascii_case("sec-fetch-site") {
            !(h.value.eq_ignore_ascii_case(b"same-origin") || h.value.eq_ignore_ascii_case(b"none"))
        } else if h.name.eq_ignore_ascii_case("origin") {
            !is_own_origin(h.value, local)
        } else {
            false
        }
    })
}

/// Whether a `Host` value is an IP address or `localhost` (with or without a
/// port). A DNS-rebinding page points its own host name at 127.0.0.1 and
/// reads every GET endpoint as same-origin, its name in `Host` (and plain
/// http pages send no `Sec-Fetch-*` or `Origin` on a same-origin GET, so
/// nothing else tells it from a script). On loopback every legitimate
/// client is on this host and names an address or `localhost`; an admin
/// bound to another address (a pod IP) is not checked, since kubelet,
/// Prometheus and operators may name it as they like.
fn names_an_address(host: Option<&str>) -> bool {
    let Some(host) = host else { return false };
    let name = match host.strip_prefix('[') {
        Some(bracketed) => match bracketed.split_once(']') {
            Some((v6, rest)) if rest.is_empty() || rest.starts_with(':') => {
                return v6.parse::<std::net::Ipv6Addr>().is_ok()
            }
            _ => return false,
        },
        None => host.rsplit_once(':').map_or(host, |(name, _port)| name),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::Ipv4Addr>().is_ok()
}

/// `http://<the address this connection came in on>`, or `http://localhost:<port>`
/// on a loopback address; anything else (including `null`) is another origin.
fn is_own_origin(origin: &[u8], local: SocketAddr) -> bool {
    let Some(authority) = origin.strip_prefix(b"http://") else { return false };
    let Ok(authority) = std::str::from_utf8(authority) else { return false };
    let authority = authority.to_ascii_lowercase();
    if authority == local.to_string() {
        return true;
    }
    local.ip().is_loopback() && authority == format!("localhost:{}", local.port())
}

async fn answer(method: Method, target: &str, state: &AdminState) -> Reply {
    let path = target.split('?').next().unwrap_or(target);
    if path == "/admin/shutdown" {
        if method != Method::Post {
            return plain(405, "method not allowed: POST /admin/shutdown").into();
        }
        state.shutdown.notify_one();
        return plain(200, "shutting down").into();
    }
    let config_map_state = path.strip_suffix(CONFIG_MAP_STATE).and_then(|p| p.strip_prefix('/'));
    let known = config_map_state.is_some()
        || matches!(
            path,
            "/" | "/admin/ping"
                | "/admin/ready"
                | "/delegator.json"
                | "/config.json"
                | "/admin/metrics.json"
                | "/admin/metrics/prometheus"
                | "/metrics"
        );
    if known && !matches!(method, Method::Get | Method::Head) {
        return plain(405, "method not allowed").into();
    }
    if let Some(label) = config_map_state {
        return config_map_state_json(&url_decode(label), state).into();
    }
    if matches!(path, "/admin/metrics.json" | "/admin/metrics/prometheus" | "/metrics") {
        let Some(scraped) = scraped_metrics(state).await else { return plain(503, "routing not ready").into() };
        let (content_type, body) = if path == "/admin/metrics.json" {
            let body = scraped.json.get_or_init(|| {
                let entries: Vec<(String, String)> = process_metrics(state)
                    .iter()
                    .map(|m| (format!("corelink/{}", m.json_name()), m.value.to_string()))
                    .collect();
                scraped.merged.to_linkerd_json(&entries).into()
            });
            ("application/json", body.clone())
        } else {
            let body = scraped
                .prometheus
                .get_or_init(|| crate::telemetry::prometheus::render(&scraped.merged, &process_metrics(state)).into());
            ("text/plain; version=0.0.4", body.clone())
        };
        return Reply::Shared { head: ok_head(content_type, body.len()), body };
    }
    let whole = match path {
        "/" => ok("text/html; charset=utf-8", DASHBOARD),
        "/admin/ping" => plain(200, "pong"),
        // Ready once every router listens on every core and every
        // Kubernetes watch has completed its first list.
        "/admin/ready" if state.ready.load(Ordering::Acquire) && state.control.k8s_synced() => plain(200, "ready"),
        "/admin/ready" => plain(503, "not ready"),
        "/delegator.json" => delegator(target, state),
        "/config.json" => match state.snapshot.get() {
            Some(shared) => json(&shared.load().config.effective_json()),
            None => plain(503, "routing not ready"),
        },
        _ => plain(404, "not found"),
    };
    whole.into()
}

/// Every core's metrics merged (see `crate::telemetry::metrics`); None until
/// the routing is built. One collection runs at a time, and requests that
/// waited for it while it ran are answered from the next one, which starts
/// after they arrived (so each sees everything that happened before it), and
/// then share it: a flood of scrapes costs the cores one snapshot each per
/// collection, not one per request.
async fn scraped_metrics(state: &AdminState) -> Option<Arc<Scraped>> {
    state.snapshot.get()?;
    Some(shared_scrape(&state.last_scrape, &state.scrape, &state.scrapes).await)
}

async fn shared_scrape(
    last: &tokio::sync::Mutex<Option<Arc<Scraped>>>,
    scrape: &crate::telemetry::metrics::Scrape,
    scrapes: &std::sync::atomic::AtomicU64,
) -> Arc<Scraped> {
    let arrived = tokio::time::Instant::now();
    let mut last = last.lock().await;
    if let Some(scraped) = last.as_ref().filter(|s| s.started >= arrived) {
        return scraped.clone();
    }
    let started = tokio::time::Instant::now();
    scrapes.fetch_add(1, Ordering::Relaxed);
    let cores = scrape.collect(Duration::from_secs(2)).await;
    let scraped = Arc::new(Scraped {
        started,
        merged: crate::telemetry::metrics::merge(&cores),
        prometheus: std::sync::OnceLock::new(),
        json: std::sync::OnceLock::new(),
    });
    *last = Some(scraped.clone());
    scraped
}

/// The DNS counters (docs/dns.md).
fn dns_metrics(dns: &crate::namer::dns::DnsStats) -> Vec<ProcessMetric> {
    let count = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    vec![
        ProcessMetric::new(
            "dns/config/lookups",
            ProcessKind::Counter,
            "lookups of host names the config mentions (first resolutions and refreshes by TTL)",
            count(&dns.config_lookups),
        ),
        ProcessMetric::new(
            "dns/config/failures",
            ProcessKind::Counter,
            "lookups of config host names that failed or found no such host (the last answer was kept)",
            count(&dns.config_failures),
        ),
        ProcessMetric::new(
            "dns/config/changes",
            ProcessKind::Counter,
            "refreshes that changed a config host name's addresses",
            count(&dns.config_changes),
        ),
        ProcessMetric::new(
            "namer/io.l5d.dnssrv/lookup_successes",
            ProcessKind::Counter,
            "io.l5d.dnssrv lookups that bound addresses",
            count(&dns.srv.successes),
        ),
        ProcessMetric::new(
            "namer/io.l5d.dnssrv/lookup_negative",
            ProcessKind::Counter,
            "io.l5d.dnssrv lookups that bound ~ (NXDOMAIN, no SRV records, no target resolved)",
            count(&dns.srv.negative),
        ),
        ProcessMetric::new(
            "namer/io.l5d.dnssrv/lookup_failures",
            ProcessKind::Counter,
            "io.l5d.dnssrv lookups the server did not answer (timeouts, SERVFAIL, refused)",
            count(&dns.srv.failures),
        ),
        ProcessMetric::new(
            "namer/io.l5d.dnssrv/kept_last_good",
            ProcessKind::Counter,
            "failed io.l5d.dnssrv lookups after which the last good set kept serving (keepLastGoodSecs)",
            count(&dns.srv.kept_last_good),
        ),
        ProcessMetric::new(
            "namer/io.l5d.dnssrv/evicted",
            ProcessKind::Counter,
            "io.l5d.dnssrv records dropped past corelink.dns.maxNames",
            count(&dns.srv.evicted),
        ),
        ProcessMetric::new(
            "namer/io.l5d.dnssrv/expired",
            ProcessKind::Counter,
            "io.l5d.dnssrv records dropped because no request bound them for idleTtlSecs",
            count(&dns.srv.expired),
        ),
        ProcessMetric::new(
            "namer/io.l5d.dnssrv/targets_dropped",
            ProcessKind::Counter,
            "io.l5d.dnssrv SRV targets past the 100 per answer that were not resolved",
            count(&dns.srv.targets_dropped),
        ),
        ProcessMetric::new(
            "dns/request/lookups",
            ProcessKind::Counter,
            "lookups of host names only requests supplied",
            count(&dns.request_lookups),
        ),
        ProcessMetric::new(
            "dns/request/failures",
            ProcessKind::Counter,
            "lookups of request-supplied host names that failed (timeouts, unreachable servers)",
            count(&dns.request_failures),
        ),
        ProcessMetric::new(
            "dns/request/cached",
            ProcessKind::Counter,
            "asks for request-supplied host names answered from the control thread's answers",
            count(&dns.request_cached),
        ),
        ProcessMetric::new(
            "dns/request/rate_limited",
            ProcessKind::Counter,
            "asks refused by corelink.dns.lookupsPerSecond (negative for 1 s)",
            count(&dns.request_rate_limited),
        ),
        ProcessMetric::new(
            "dns/request/evicted",
            ProcessKind::Counter,
            "answers dropped by corelink.dns.maxNames (on the control thread and the cores)",
            count(&dns.request_evicted),
        ),
        ProcessMetric::new(
            "dns/request/dropped",
            ProcessKind::Counter,
            "requests that could not ask for a host name (too many pending on their core, or the queue full)",
            count(&dns.request_dropped),
        ),
        ProcessMetric::new(
            "dns/request/invalid",
            ProcessKind::Counter,
            "requests whose host is no valid DNS host name (502 without a lookup)",
            count(&dns.request_invalid),
        ),
        ProcessMetric::new(
            "dns/request/waits",
            ProcessKind::Counter,
            "requests that waited for a host name's answer",
            count(&dns.request_waits),
        ),
        ProcessMetric::new(
            "dns/request/wait_timeouts",
            ProcessKind::Counter,
            "requests whose wait for a host name ran out (corelink.dns.timeoutMs or the server's timeoutMs)",
            count(&dns.request_wait_timeouts),
        ),
    ]
}

/// corelink's own process-wide numbers (docs/metrics.md).
fn process_metrics(state: &AdminState) -> Vec<ProcessMetric> {
    let count = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let metric = ProcessMetric::new;
    let generation = state.snapshot.get().map_or(0, |s| s.load().generation);
    let uring = state.io.get() == Some(&crate::io::IoKind::Uring);
    let mut out = vec![
        metric("routing/generation", ProcessKind::Gauge, "the routing snapshot's generation", generation),
        metric(
            "routing/namer_updates",
            ProcessKind::Counter,
            "routing snapshots published because a namer file, DNS or a watched Kubernetes object changed",
            count(&state.control.namer_updates),
        ),
        metric("config/reloads", ProcessKind::Counter, "configuration reloads applied", count(&state.control.reloads)),
        metric(
            "config/reloads_refused",
            ProcessKind::Counter,
            "configuration reloads refused (invalid, or needing a restart)",
            count(&state.control.reloads_refused),
        ),
        metric("io/uring", ProcessKind::Gauge, "1 when the io_uring backend runs, 0 for epoll", u64::from(uring)),
        metric("workers", ProcessKind::Gauge, "worker threads (cores)", state.workers.load(Ordering::Relaxed) as u64),
        metric(
            "admin/scrapes",
            ProcessKind::Counter,
            "collections of the cores' metrics (scrapes that arrive while one runs share the next)",
            count(&state.scrapes),
        ),
    ];
    out.extend(dns_metrics(&state.control.dns));
    for w in state.control.k8s_watches() {
        let labelled = |name, kind, help, value| {
            let mut m = ProcessMetric::new(name, kind, help, value);
            m.labels = vec![("api", w.api.clone()), ("resource", w.resource.to_string())];
            m
        };
        out.extend([
            labelled(
                "namer/io.l5d.k8s/last_event_age_ms",
                ProcessKind::Gauge,
                "ms since the Kubernetes watch last heard from the API server (a list, an event or a bookmark)",
                w.last_event_age().as_millis() as u64,
            ),
            labelled(
                "namer/io.l5d.k8s/reconnects",
                ProcessKind::Counter,
                "Kubernetes watch streams opened again (after a drop, an error, a timeout or 410 Gone)",
                count(&w.reconnects),
            ),
            labelled(
                "namer/io.l5d.k8s/relists",
                ProcessKind::Counter,
                "Kubernetes lists after the first (after 410 Gone)",
                count(&w.relists),
            ),
            labelled(
                "namer/io.l5d.k8s/events",
                ProcessKind::Counter,
                "Kubernetes watch events applied (ADDED, MODIFIED, DELETED)",
                count(&w.events),
            ),
            labelled(
                "namer/io.l5d.k8s/errors",
                ProcessKind::Counter,
                "failed Kubernetes list and watch requests",
                count(&w.errors),
            ),
            labelled(
                "namer/io.l5d.k8s/synced",
                ProcessKind::Gauge,
                "1 once the Kubernetes watch's first list completed",
                u64::from(w.synced.load(Ordering::Relaxed)),
            ),
        ]);
    }
    for c in state.control.k8s_config_maps() {
        let labelled = |name, kind, help, value| {
            let mut m = ProcessMetric::new(name, kind, help, value);
            m.labels = vec![("api", c.watch.api.clone()), ("configmap", c.config_map.clone()), ("key", c.key.clone())];
            m
        };
        out.extend([
            labelled(
                "interpreter/io.l5d.k8s.configMap/refused",
                ProcessKind::Counter,
                "ConfigMap dtabs refused because they do not parse (the previous dtab kept serving)",
                count(&c.refused),
            ),
            labelled(
                "interpreter/io.l5d.k8s.configMap/updates",
                ProcessKind::Counter,
                "ConfigMap dtabs applied (an empty one for a missing ConfigMap or key included)",
                count(&c.updates),
            ),
            labelled(
                "interpreter/io.l5d.k8s.configMap/dentries",
                ProcessKind::Gauge,
                "entries in the ConfigMap dtab in effect",
                c.dentries.load(Ordering::Relaxed),
            ),
        ]);
    }
    out
}

/// linkerd's interpreter state page, under `/<router label>`.
const CONFIG_MAP_STATE: &str = "/interpreter_state/io.l5d.k8s.configmap.json";

/// `/<label>/interpreter_state/io.l5d.k8s.configmap.json`, as linkerd's
/// configMap interpreter serves it (`state.value`: the ConfigMap's dtab in
/// effect), with what corelink adds: why it is what it is, the last refused
/// text's error, the router's own dtab and the dtab in effect (the
/// ConfigMap's, then the router's).
fn config_map_state_json(label: &str, state: &AdminState) -> Vec<u8> {
    use crate::namer::k8s::configmap::Source;
    let Some(snapshot) = state.snapshot.get().map(|s| s.load_full()) else {
        return plain(503, "routing not ready");
    };
    let Some(index) = snapshot.router_index(label) else {
        return plain(404, &format!("no router labelled {label:?}"));
    };
    let routes = &snapshot.routers[index];
    let (Some(current), Some(config)) =
        (&routes.config_map_dtab, snapshot.config.routers.get(index).and_then(|r| r.interpreter.config_map.as_ref()))
    else {
        return plain(404, &format!("router {label:?} has no io.l5d.k8s.configMap interpreter"));
    };
    let source = match current.source {
        Source::Pending => "pending",
        Source::NoConfigMap => "noConfigMap",
        Source::NoKey => "noKey",
        Source::Key => "key",
    };
    let router_dtab = snapshot.config.routers.get(index).map(|r| r.dtab.as_str()).unwrap_or_default();
    let router_dtab = naming::Dtab::parse(router_dtab).map(|d| d.show()).unwrap_or_default();
    let body = serde_json::json!({
        "state": {"value": current.dtab.show(), "source": source, "refused": current.refused},
        "configMap": {"namespace": config.namespace, "name": config.name, "key": config.filename, "api": config.api.describe()},
        "routerDtab": router_dtab,
        "dtab": routes.dtab.show(),
    });
    json(&body.to_string())
}

/// linkerd's `/delegator.json?path=/svc/x[&dtab=…][&router=label]`: the
/// delegation of `path` through the router's dtab (plus an optional dtab),
/// as JSON.
fn delegator(target: &str, state: &AdminState) -> Vec<u8> {
    use naming::{Dtab, Path};
    let query = target.split_once('?').map_or("", |(_, q)| q);
    let param = |name: &str| {
        query.split('&').filter_map(|kv| kv.split_once('=')).find(|(k, _)| *k == name).map(|(_, v)| url_decode(v))
    };
    let Some(snapshot) = state.snapshot.get().map(|s| s.load_full()) else {
        return plain(503, "routing not ready");
    };
    let Some(path) = param("path") else { return plain(400, "missing path parameter") };
    let path = match Path::parse(&path) {
        Ok(p) => p,
        Err(e) => return plain(400, &format!("invalid path: {e}")),
    };
    let local = match param("dtab").filter(|d| !d.is_empty()).map(|d| Dtab::parse(&d)).transpose() {
        Ok(d) => d,
        Err(e) => return plain(400, &format!("invalid dtab: {e}")),
    };
    let router = match param("router") {
        Some(label) => match snapshot.router_index(&label) {
            Some(i) => i,
            None => return plain(404, &format!("no router labelled {label:?}")),
        },
        None => 0,
    };
    let body = snapshot.delegate(router, &path, local.as_ref()).to_json();
    json(&body)
}

/// `application/x-www-form-urlencoded` decoding (`+` is a space).
fn url_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"), 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The dashboard: one self-contained page that polls `/admin/metrics.json`.
const DASHBOARD: &str = include_str!("dashboard.html");

/// A 200 with a JSON body.
fn json(body: &str) -> Vec<u8> {
    ok("application/json", body)
}

fn ok(content_type: &str, body: &str) -> Vec<u8> {
    let mut out = ok_head(content_type, body.len());
    out.extend_from_slice(body.as_bytes());
    out
}

fn ok_head(content_type: &str, length: usize) -> Vec<u8> {
    format!("HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n")
        .into_bytes()
}

fn plain(status: u16, body: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(128 + body.len());
    out.extend_from_slice(
        format!(
            "HTTP/1.1 {status} {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}\n",
            http1::reason_phrase(status),
            body.len() + 1
        )
        .as_bytes(),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::metrics::{CoreSnapshot, Scrape};

    /// A core that counts the scrape requests it gets and answers each once
    /// `gate` lets it (a permit each): the test decides when, no timing.
    fn gated_core(scrape: &Scrape, gate: Arc<tokio::sync::Semaphore>, asked: Arc<std::sync::atomic::AtomicU64>) {
        let mut requests = scrape.register();
        tokio::spawn(async move {
            while let Some(reply) = requests.recv().await {
                asked.fetch_add(1, Ordering::Relaxed);
                gate.acquire().await.unwrap().forget();
                let _ = reply.send(CoreSnapshot { core: 0, requests: 0, scopes: Vec::new() });
            }
        });
    }

    #[test]
    fn only_addresses_and_localhost_count_as_addresses() {
        for host in ["127.0.0.1", "127.0.0.1:9990", "10.1.2.3:80", "localhost", "LocalHost:9990", "[::1]", "[::1]:9990"]
        {
            assert!(names_an_address(Some(host)), "{host}");
        }
        for host in [
            "evil.example",
            "evil.example:9990",
            "127.0.0.1.evil.example",
            "localhost.evil",
            "[::1]x",
            "[evil]:1",
            "",
            "1.2.3",
        ] {
            assert!(!names_an_address(Some(host)), "{host}");
        }
        assert!(!names_an_address(None));
    }

    #[test]
    fn scrapes_that_arrive_while_one_runs_share_the_next_collection() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let last: Arc<tokio::sync::Mutex<Option<Arc<Scraped>>>> = Arc::default();
            let scrape = Arc::new(Scrape::default());
            let scrapes = Arc::new(std::sync::atomic::AtomicU64::new(0));
            let (gate, asked) =
                (Arc::new(tokio::sync::Semaphore::new(0)), Arc::new(std::sync::atomic::AtomicU64::new(0)));
            gated_core(&scrape, gate.clone(), asked.clone());
            let started = Arc::new(std::sync::atomic::AtomicU64::new(0));
            let one = || {
                let (last, scrape, scrapes, started) = (last.clone(), scrape.clone(), scrapes.clone(), started.clone());
                tokio::spawn(async move {
                    started.fetch_add(1, Ordering::Relaxed);
                    shared_scrape(&last, &scrape, &scrapes).await
                })
            };
            // Runs the other tasks until `done` holds.
            async fn until(done: impl Fn() -> bool) {
                for _ in 0..10_000 {
                    if done() {
                        return;
                    }
                    tokio::task::yield_now().await;
                }
                panic!("never happened");
            }
            // The first starts a collection, which the core holds.
            let first = one();
            until(|| asked.load(Ordering::Relaxed) == 1).await;
            // Twenty more arrive while it runs (each is past its arrival
            // and waiting for the lock once it has started).
            let waiting: Vec<_> = (0..20).map(|_| one()).collect();
            until(|| started.load(Ordering::Relaxed) == 21).await;
            gate.add_permits(100);
            let first = first.await.unwrap();
            let mut answers = Vec::new();
            for w in waiting {
                answers.push(w.await.unwrap());
            }
            assert_eq!(asked.load(Ordering::Relaxed), 2, "the first collection, and one for those that waited");
            assert_eq!(scrapes.load(Ordering::Relaxed), 2);
            assert!(answers.iter().all(|a| Arc::ptr_eq(a, &answers[0])), "the waiters share one");
            assert!(!Arc::ptr_eq(&first, &answers[0]), "none of them is answered from a collection older than it");
            // A scrape after that collects again: never an older answer.
            let later = one().await.unwrap();
            assert!(!Arc::ptr_eq(&later, &answers[0]));
            assert_eq!(asked.load(Ordering::Relaxed), 3);
        });
    }
}
