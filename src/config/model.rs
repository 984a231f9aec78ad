//! Typed configuration. Field names are linkerd's (camelCase in YAML).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use serde::Deserialize;

use crate::io::BackendChoice;

fn loopback() -> IpAddr {
    IpAddr::V4(Ipv4Addr::LOCALHOST)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Config {
    #[serde(default)]
    pub admin: AdminConfig,
    pub routers: Vec<RouterConfig>,
    #[serde(default)]
    pub corelink: CorelinkConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AdminConfig {
    #[serde(default = "loopback")]
    pub ip: IpAddr,
    #[serde(default = "default_admin_port")]
    pub port: u16,
    /// linkerd's `admin.shutdownGraceMs`: how long in-flight requests get to
    /// finish once corelink stops accepting.
    #[serde(default = "default_shutdown_grace_ms")]
    pub shutdown_grace_ms: u64,
}

fn default_admin_port() -> u16 {
    9990
}
fn default_shutdown_grace_ms() -> u64 {
    10_000
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig { ip: loopback(), port: default_admin_port(), shutdown_grace_ms: default_shutdown_grace_ms() }
    }
}

impl AdminConfig {
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.port)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Http,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RouterConfig {
    pub protocol: Protocol,
    pub label: Option<String>,
    #[serde(default)]
    pub dtab: String,
    #[serde(default = "default_dst_prefix")]
    pub dst_prefix: String,
    pub identifier: Option<IdentifierConfig>,
    pub servers: Vec<ServerConfig>,
    #[serde(default = "default_max_headers_kb", rename = "maxHeadersKB")]
    pub max_headers_kb: usize,
    #[serde(default = "default_max_initial_line_kb", rename = "maxInitialLineKB")]
    pub max_initial_line_kb: usize,
    /// Only enforced when `streamingEnabled: false` (as in linkerd, where a
    /// streamed message is never buffered and so never limited).
    #[serde(default = "default_max_message_kb", rename = "maxRequestKB")]
    pub max_request_kb: u64,
    #[serde(default = "default_max_message_kb", rename = "maxResponseKB")]
    pub max_response_kb: u64,
    #[serde(default = "default_true")]
    pub streaming_enabled: bool,
    /// linkerd's loop protection: more `Via` entries than this is a 400.
    #[serde(default = "default_max_call_depth")]
    pub max_call_depth: usize,
    #[serde(default)]
    pub client: ClientConfig,
    #[serde(default)]
    pub service: ServiceConfig,
}

fn default_dst_prefix() -> String {
    "/svc".into()
}
fn default_max_headers_kb() -> usize {
    crate::http1::Limits::default().max_head_bytes / 1024 - default_max_initial_line_kb()
}
fn default_max_initial_line_kb() -> usize {
    crate::http1::Limits::default().max_initial_line / 1024
}
fn default_max_message_kb() -> u64 {
    5120
}
fn default_true() -> bool {
    true
}
fn default_max_call_depth() -> usize {
    1000
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", tag = "kind")]
pub enum IdentifierConfig {
    /// The default: one header's value, verbatim, as one path segment.
    #[serde(rename = "io.l5d.header.token")]
    HeaderToken {
        #[serde(default = "default_token_header")]
        header: String,
    },
}

fn default_token_header() -> String {
    "Host".into()
}

impl Default for IdentifierConfig {
    fn default() -> Self {
        IdentifierConfig::HeaderToken { header: default_token_header() }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServerConfig {
    #[serde(default = "loopback")]
    pub ip: IpAddr,
    #[serde(default = "default_server_port")]
    pub port: u16,
    #[serde(default)]
    pub server_session: SessionConfig,
}

fn default_server_port() -> u16 {
    4140
}

impl ServerConfig {
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.port)
    }
}

/// linkerd's `serverSession` / `clientSession`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SessionConfig {
    /// Close a connection idle for this long. Server side default 60 s (linkerd
    /// leaves it unbounded; a sidecar holding idle connections forever costs
    /// memory for nothing, and nginx uses 75 s).
    pub idle_time_ms: Option<u64>,
    /// Close a connection after this long in total, between requests.
    pub life_time_ms: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClientConfig {
    #[serde(default)]
    pub host_connection_pool: HostConnectionPool,
    pub request_attempt_timeout_ms: Option<u64>,
    #[serde(default)]
    pub client_session: SessionConfig,
}

/// linkerd's `client.hostConnectionPool`. `maxSize`/`minSize`/`maxWaiters`
/// arrive with the balancing work; `maxIdle` bounds idle connections kept per
/// endpoint on each core.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HostConnectionPool {
    pub idle_time_ms: Option<u64>,
    pub max_idle: Option<usize>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServiceConfig {
    /// Whole request, from the head read to the last response byte: 503.
    pub total_timeout_ms: Option<u64>,
}

/// corelink's own tuning: only what linkerd has no key for.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CorelinkConfig {
    /// Worker threads (one event loop each, pinned). Default: one per core.
    pub workers: Option<usize>,
    #[serde(default)]
    pub io: BackendChoice,
    /// Read buffer per connection direction, bytes.
    #[serde(default = "default_buffer_size")]
    pub buffer_size: usize,
    #[serde(default = "default_backlog")]
    pub backlog: i32,
    /// Time a client gets to send a complete request head (slowloris guard).
    #[serde(default = "default_header_read_timeout_ms")]
    pub header_read_timeout_ms: u64,
    /// Upstream TCP connect timeout (finagle's default connect timeout is 1 s).
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// After SIGTERM, keep serving (and accepting) this long before draining:
    /// in Kubernetes the application gets SIGTERM at the same moment and may
    /// still call out through its sidecar while it shuts down.
    #[serde(default = "default_shutdown_delay_ms")]
    pub shutdown_delay_ms: u64,
}

fn default_buffer_size() -> usize {
    16 * 1024
}
fn default_backlog() -> i32 {
    1024
}
fn default_header_read_timeout_ms() -> u64 {
    10_000
}
fn default_connect_timeout_ms() -> u64 {
    1_000
}
fn default_shutdown_delay_ms() -> u64 {
    5_000
}

impl Default for CorelinkConfig {
    fn default() -> Self {
        CorelinkConfig {
            workers: None,
            io: BackendChoice::default(),
            buffer_size: default_buffer_size(),
            backlog: default_backlog(),
            header_read_timeout_ms: default_header_read_timeout_ms(),
            connect_timeout_ms: default_connect_timeout_ms(),
            shutdown_delay_ms: default_shutdown_delay_ms(),
        }
    }
}

/// Idle keep-alive default for servers (see [`SessionConfig::idle_time_ms`]).
pub const DEFAULT_SERVER_IDLE_MS: u64 = 60_000;
/// Idle time of pooled upstream connections (nginx `keepalive_timeout` is 60 s
/// upstream; shorter than typical servers' own idle timeouts, so we close
/// first and rarely meet a connection the server already closed).
pub const DEFAULT_POOL_IDLE_MS: u64 = 10_000;
/// Idle upstream connections kept per endpoint per core.
pub const DEFAULT_POOL_MAX_IDLE: usize = 64;

impl Config {
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.routers.is_empty() {
            return Err("routers: at least one router is required".into());
        }
        let mut labels = std::collections::HashSet::new();
        let mut addrs = std::collections::HashSet::new();
        for (i, router) in self.routers.iter().enumerate() {
            let label = router.label();
            if !labels.insert(label.to_string()) {
                return Err(format!("routers[{i}].label: duplicate router label {label:?}"));
            }
            if router.servers.is_empty() {
                return Err(format!("routers[{i}].servers: at least one server is required"));
            }
            if !router.dst_prefix.starts_with('/') {
                return Err(format!("routers[{i}].dstPrefix: must be a path starting with '/'"));
            }
            for (j, server) in router.servers.iter().enumerate() {
                if server.port != 0 && !addrs.insert(server.addr()) {
                    return Err(format!("routers[{i}].servers[{j}]: {} is used by another server", server.addr()));
                }
            }
            if router.max_headers_kb == 0 || router.max_initial_line_kb == 0 {
                return Err(format!("routers[{i}]: maxHeadersKB and maxInitialLineKB must be positive"));
            }
        }
        if self.corelink.workers == Some(0) {
            return Err("corelink.workers: must be at least 1".into());
        }
        if self.corelink.buffer_size < 1024 {
            return Err("corelink.bufferSize: must be at least 1024".into());
        }
        Ok(())
    }
}

impl RouterConfig {
    /// linkerd's default label is the protocol name.
    pub fn label(&self) -> &str {
        self.label.as_deref().unwrap_or("http")
    }

    pub fn limits(&self) -> crate::http1::Limits {
        crate::http1::Limits::from_kb(
            self.max_headers_kb,
            self.max_initial_line_kb,
            crate::http1::Limits::default().max_headers,
        )
    }

    pub fn identifier(&self) -> IdentifierConfig {
        self.identifier.clone().unwrap_or_default()
    }
}

impl IdentifierConfig {
    /// One line for `corelink check`.
    pub fn describe(&self) -> String {
        match self {
            IdentifierConfig::HeaderToken { header } => {
                format!("io.l5d.header.token (header {header})")
            }
        }
    }
}
