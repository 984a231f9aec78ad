//! Typed configuration: what a linkerd 1.x file (plus `corelink:`) means once
//! parsed, validated and defaulted. Field names follow linkerd's keys
//! (`shutdownGraceMs` → `shutdown_grace_ms`). Client, service and TLS types
//! live in [`super::client`].

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

pub use super::client::*;

pub(crate) fn loopback() -> IpAddr {
    IpAddr::V4(Ipv4Addr::LOCALHOST)
}

#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Config {
    pub admin: AdminConfig,
    pub routers: Vec<RouterConfig>,
    /// Top-level `namers:` (`io.l5d.fs`, `io.l5d.k8s`; `/$/inet` needs no
    /// config).
    pub namers: Vec<NamerConfig>,
    pub corelink: CorelinkConfig,
}

#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdminConfig {
    pub ip: IpAddr,
    pub port: u16,
    /// linkerd's `admin.shutdownGraceMs`: how long in-flight requests get to
    /// finish once corelink stops accepting.
    pub shutdown_grace_ms: u64,
}

pub(crate) const DEFAULT_ADMIN_PORT: u16 = 9990;
pub(crate) const DEFAULT_SHUTDOWN_GRACE_MS: u64 = 10_000;

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig { ip: loopback(), port: DEFAULT_ADMIN_PORT, shutdown_grace_ms: DEFAULT_SHUTDOWN_GRACE_MS }
    }
}

impl AdminConfig {
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.port)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Http,
}

#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouterConfig {
    pub protocol: Protocol,
    pub label: Option<String>,
    /// The base dtab as written (`dtab:`, or the 2016 name `baseDtab:`).
    pub dtab: String,
    pub dst_prefix: String,
    /// Compatibility view of `identifiers` for code that knows only
    /// `io.l5d.header.token`: `Some` exactly when the router has one
    /// identifier and it is a header.token. Prefer [`RouterConfig::identifiers`].
    #[serde(skip)]
    pub identifier: Option<IdentifierConfig>,
    /// `identifier:` (one, or a list tried in order until one names the
    /// request). Never empty: defaults to `io.l5d.header.token` on `Host`.
    #[serde(rename = "identifier")]
    pub identifiers: Vec<IdentifierKind>,
    pub interpreter: InterpreterConfig,
    pub servers: Vec<ServerConfig>,
    #[serde(rename = "maxHeadersKB")]
    pub max_headers_kb: usize,
    #[serde(rename = "maxInitialLineKB")]
    pub max_initial_line_kb: usize,
    /// Only enforced when `streamingEnabled: false` (as in linkerd, where a
    /// streamed message is never buffered and so never limited).
    #[serde(rename = "maxRequestKB")]
    pub max_request_kb: u64,
    #[serde(rename = "maxResponseKB")]
    pub max_response_kb: u64,
    pub streaming_enabled: bool,
    /// linkerd's loop protection: more `Via` entries than this is a 400.
    /// linkerd sets it per server; here the router-level value is the
    /// default and [`ServerConfig::max_call_depth`] overrides it.
    pub max_call_depth: usize,
    /// `httpAccessLog`: the access log file, if any.
    pub http_access_log: Option<String>,
    /// `httpAccessLogAppend` (default true): append rather than truncate.
    pub http_access_log_append: bool,
    /// corelink extension `dtabHeaders` (default false): honour per-request
    /// dtab overrides in the `l5d-dtab` header. Off by default because any
    /// client could otherwise reroute its requests; linkerd honoured them and
    /// relied on `clearContext` at the edge (which hides `l5d-dtab` from
    /// routing here too).
    pub dtab_headers: bool,
    /// corelink extension `legacyNamerPaths` (default false): a path the
    /// dtab does not rewrite, like `/io.l5d.fs/foo`, is offered to the namers
    /// as `/#/io.l5d.fs/foo`, as linkerd before 0.6 did.
    pub legacy_namer_paths: bool,
    /// corelink extension `contextHeaders` (default true, linkerd's
    /// behaviour): read and forward `l5d-ctx-*` context headers. `false`
    /// strips them, like `clearContext` on every server.
    pub context_headers: bool,
    pub client: ClientConfig,
    pub service: ServiceConfig,
}

pub(crate) const DEFAULT_DST_PREFIX: &str = "/svc";
pub(crate) const DEFAULT_MAX_MESSAGE_KB: u64 = 5120;
pub(crate) const DEFAULT_MAX_CALL_DEPTH: usize = 1000;

pub(crate) fn default_max_headers_kb() -> usize {
    http1::Limits::default().max_head_bytes / 1024 - default_max_initial_line_kb()
}

pub(crate) fn default_max_initial_line_kb() -> usize {
    http1::Limits::default().max_initial_line / 1024
}

/// The single identifier code written before identifier lists existed
/// understands. See [`IdentifierKind`] for all of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentifierConfig {
    /// The default: one header's value, verbatim, as one path segment.
    HeaderToken { header: String },
}

pub(crate) const DEFAULT_TOKEN_HEADER: &str = "Host";
pub(crate) const DEFAULT_NAME_HEADER: &str = "l5d-name";

impl Default for IdentifierConfig {
    fn default() -> Self {
        IdentifierConfig::HeaderToken { header: DEFAULT_TOKEN_HEADER.into() }
    }
}

/// linkerd's HTTP/1.1 identifiers (`routers[].identifier`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all_fields = "camelCase")]
pub enum IdentifierKind {
    /// `io.l5d.header.token`: `/dstPrefix/<header value>` (one segment).
    #[serde(rename = "io.l5d.header.token")]
    HeaderToken { header: String },
    /// `io.l5d.methodAndHost`: `/dstPrefix/1.1/<METHOD>/<host>[/uri...]`
    /// (HTTP/1.0: `/dstPrefix/1.0/<METHOD>[/uri...]`).
    #[serde(rename = "io.l5d.methodAndHost")]
    MethodAndHost { http_uri_in_dst: bool },
    /// `io.l5d.path`: the first `segments` segments of the URL path;
    /// `consume` strips them from the request sent upstream.
    #[serde(rename = "io.l5d.path")]
    Path { segments: usize, consume: bool },
    /// `io.l5d.header`: the header's value read as a path.
    #[serde(rename = "io.l5d.header")]
    Header { header: String },
    /// `io.l5d.static`: every request gets `path`.
    #[serde(rename = "io.l5d.static")]
    Static { path: String },
}

impl Default for IdentifierKind {
    fn default() -> Self {
        IdentifierKind::HeaderToken { header: DEFAULT_TOKEN_HEADER.into() }
    }
}

impl From<&IdentifierConfig> for IdentifierKind {
    fn from(c: &IdentifierConfig) -> Self {
        match c {
            IdentifierConfig::HeaderToken { header } => IdentifierKind::HeaderToken { header: header.clone() },
        }
    }
}

impl IdentifierKind {
    /// linkerd's `kind` name.
    pub fn kind(&self) -> &'static str {
        match self {
            IdentifierKind::HeaderToken { .. } => "io.l5d.header.token",
            IdentifierKind::MethodAndHost { .. } => "io.l5d.methodAndHost",
            IdentifierKind::Path { .. } => "io.l5d.path",
            IdentifierKind::Header { .. } => "io.l5d.header",
            IdentifierKind::Static { .. } => "io.l5d.static",
        }
    }

    /// One line for `corelink check`.
    pub fn describe(&self) -> String {
        let kind = self.kind();
        match self {
            IdentifierKind::HeaderToken { header } | IdentifierKind::Header { header } => {
                format!("{kind} (header {header})")
            }
            IdentifierKind::MethodAndHost { http_uri_in_dst } => {
                format!("{kind} (httpUriInDst {http_uri_in_dst})")
            }
            IdentifierKind::Path { segments, consume } => {
                format!("{kind} (segments {segments}, consume {consume})")
            }
            IdentifierKind::Static { path } => format!("{kind} (path {path})"),
        }
    }
}

/// `routers[].interpreter`: linkerd's `default` interpreter (the router's
/// dtab over the configured namers) or `io.l5d.k8s.configMap` (the same, with
/// a dtab read from a Kubernetes ConfigMap in front of the router's), with
/// its transformers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InterpreterConfig {
    /// Applied in order to every bound address set.
    pub transformers: Vec<TransformerConfig>,
    /// `kind: io.l5d.k8s.configMap`; `None` for `default`.
    pub config_map: Option<ConfigMapInterpreterConfig>,
}

impl InterpreterConfig {
    pub fn kind(&self) -> &'static str {
        match self.config_map {
            None => "default",
            Some(_) => "io.l5d.k8s.configMap",
        }
    }
}

impl serde::Serialize for InterpreterConfig {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(serde::Serialize)]
        struct Shown<'a> {
            kind: &'static str,
            #[serde(skip_serializing_if = "Option::is_none")]
            experimental: Option<bool>,
            #[serde(flatten, skip_serializing_if = "Option::is_none")]
            config_map: Option<&'a ConfigMapInterpreterConfig>,
            transformers: &'a [TransformerConfig],
        }
        Shown {
            kind: self.kind(),
            experimental: self.config_map.as_ref().map(|_| true),
            config_map: self.config_map.as_ref(),
            transformers: &self.transformers,
        }
        .serialize(s)
    }
}

/// linkerd's default ConfigMap namespace.
pub(crate) const DEFAULT_CONFIG_MAP_NAMESPACE: &str = "default";

/// `interpreter: {kind: io.l5d.k8s.configMap}` (linkerd's
/// `ConfigMapInterpreterConfig`, plus corelink's in-cluster extension): the
/// dtab in key `filename` of ConfigMap `namespace/name`, watched. Routers
/// with equal values share one watch.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapInterpreterConfig {
    /// Which API server, and how to reach it (as the k8s namer's).
    #[serde(flatten)]
    pub api: K8sApiConfig,
    /// Default `default`.
    pub namespace: String,
    /// The ConfigMap's name.
    pub name: String,
    /// The key of the ConfigMap's `data` holding the dtab.
    pub filename: String,
}

impl ConfigMapInterpreterConfig {
    /// `namespace/name key filename on API`, for logs and `corelink check`.
    pub fn describe(&self) -> String {
        format!("ConfigMap {}/{} key {:?} from {}", self.namespace, self.name, self.filename, self.api.describe())
    }
}

/// Transformers rewrite the addresses a name is bound to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind")]
pub enum TransformerConfig {
    /// `io.l5d.port`: replace every address's port (linker-to-linker: send
    /// to the peer's incoming router instead of the service).
    #[serde(rename = "io.l5d.port")]
    Port { port: u16, prefix: Option<String> },
    /// `io.l5d.localhost`: keep only addresses of this host.
    #[serde(rename = "io.l5d.localhost")]
    Localhost { prefix: Option<String> },
    /// `io.l5d.k8s.daemonset`: replace every address by the pod of a
    /// DaemonSet on the same node (same /24, or same `nodeName`).
    #[serde(rename = "io.l5d.k8s.daemonset")]
    DaemonSet(DaemonSetTransformerConfig),
    /// `io.l5d.k8s.localnode`: keep only addresses on this node (the /24 of
    /// env `POD_IP`, or env `NODE_NAME` with `hostNetwork`).
    #[serde(rename = "io.l5d.k8s.localnode", rename_all = "camelCase")]
    LocalNode { host_network: bool, prefix: Option<String> },
}

/// `io.l5d.k8s.daemonset` (linkerd's `DaemonSetTransformerConfig`): the
/// DaemonSet is found as the `io.l5d.k8s` namer finds
/// `/<namespace>/<port>/<service>`, on the API server `api` (linkerd's
/// `k8sHost`/`k8sPort`, or corelink's `inCluster`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonSetTransformerConfig {
    pub namespace: String,
    pub service: String,
    /// A port name, or a Service port number (as in a namer path).
    pub port: String,
    pub api: K8sApiConfig,
    /// Match by the endpoints' `nodeName` instead of the /24.
    pub host_network: bool,
    pub prefix: Option<String>,
}

impl serde::Serialize for DaemonSetTransformerConfig {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("namespace", &self.namespace)?;
        map.serialize_entry("service", &self.service)?;
        map.serialize_entry("port", &self.port)?;
        match &self.api {
            K8sApiConfig::Proxy { host, port } => {
                map.serialize_entry("k8sHost", host)?;
                map.serialize_entry("k8sPort", port)?;
            }
            K8sApiConfig::InCluster { token_path, ca_cert_path } => {
                map.serialize_entry("inCluster", &true)?;
                map.serialize_entry("tokenPath", token_path)?;
                map.serialize_entry("caCertPath", ca_cert_path)?;
            }
        }
        map.serialize_entry("hostNetwork", &self.host_network)?;
        map.serialize_entry("prefix", &self.prefix)?;
        map.end()
    }
}

impl TransformerConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            TransformerConfig::Port { .. } => "io.l5d.port",
            TransformerConfig::Localhost { .. } => "io.l5d.localhost",
            TransformerConfig::DaemonSet(_) => "io.l5d.k8s.daemonset",
            TransformerConfig::LocalNode { .. } => "io.l5d.k8s.localnode",
        }
    }

    /// The transformer prefix linkerd puts in front of transformed client
    /// names (`/%/io.l5d.port/4141/#/io.l5d.fs/...`): `/%` + `prefix`, or
    /// `/%` + linkerd's default prefix for the kind: `/io.l5d.port/<port>`,
    /// `/io.l5d.localhost`, `/io.l5d.k8s.daemonset/<namespace>/<port>/<service>`,
    /// `/io.l5d.k8s.localnode`. (`io.l5d.k8s.localnode` then appends the
    /// node's IP or name, known only at start-up: see the routing snapshot.)
    pub fn client_prefix(&self) -> String {
        let prefix = match self {
            TransformerConfig::Port { prefix, .. }
            | TransformerConfig::Localhost { prefix }
            | TransformerConfig::LocalNode { prefix, .. } => prefix,
            TransformerConfig::DaemonSet(d) => &d.prefix,
        };
        match (prefix, self) {
            (Some(p), _) => format!("/%{p}"),
            (None, TransformerConfig::Port { port, .. }) => format!("/%/io.l5d.port/{port}"),
            (None, TransformerConfig::DaemonSet(d)) => {
                format!("/%/io.l5d.k8s.daemonset/{}/{}/{}", d.namespace, d.port, d.service)
            }
            (None, _) => format!("/%/{}", self.kind()),
        }
    }

    /// The API server a transformer reads (the daemonset's).
    pub fn k8s_api(&self) -> Option<&K8sApiConfig> {
        match self {
            TransformerConfig::DaemonSet(d) => Some(&d.api),
            _ => None,
        }
    }
}

/// `namers[]`: the file-system namer and the Kubernetes namer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all_fields = "camelCase")]
pub enum NamerConfig {
    /// `io.l5d.fs`: one file per service name under `root_dir`, each line
    /// `host port [* weight]`; resolves `/#<prefix>/<file name>`.
    #[serde(rename = "io.l5d.fs")]
    Fs {
        root_dir: String,
        /// With a leading `/`; default `/io.l5d.fs`.
        prefix: String,
        transformers: Vec<TransformerConfig>,
    },
    /// `io.l5d.k8s`: Kubernetes EndpointSlices and Services; resolves
    /// `/#<prefix>/<namespace>/<port>/<service>[/<label value>]`.
    #[serde(rename = "io.l5d.k8s")]
    K8s(K8sNamerConfig),
    /// `io.l5d.dnssrv`: DNS SRV records; resolves `/#<prefix>/<record>`.
    #[serde(rename = "io.l5d.dnssrv")]
    DnsSrv(DnsSrvNamerConfig),
}

pub(crate) const DEFAULT_DNSSRV_PREFIX: &str = "/io.l5d.dnssrv";

/// `namers[]` of kind `io.l5d.dnssrv` (linkerd's `DnsSrvNamerConfig`, plus
/// two corelink extensions, off by default).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DnsSrvNamerConfig {
    /// With a leading `/`; default `/io.l5d.dnssrv`.
    pub prefix: String,
    /// `refreshIntervalSeconds`: each record is asked again this often
    /// (linkerd: 5).
    pub refresh_interval_secs: u64,
    /// `dnsHosts`: the DNS servers to ask (port 53), each an IP address
    /// or a host name (resolved as `corelink.dns` says, and again when its
    /// TTL runs out); empty: as `corelink.dns` says (the system's by
    /// default).
    pub dns_hosts: Vec<String>,
    /// `srvWeights` (corelink): each target's SRV weight becomes its
    /// addresses' balancer weight, as `io.l5d.fs` weights do.
    pub srv_weights: bool,
    /// `keepLastGoodSecs` (corelink): when the server does not answer, the
    /// last good set keeps serving for up to this long (0: off, the record
    /// binds negative at once, as in linkerd's documented behaviour).
    pub keep_last_good_secs: u64,
    /// `idleTtlSecs` (corelink): a record no request has bound for this
    /// long stops being refreshed and is dropped (looked up again when next
    /// bound); linkerd's binding cache closes a name idle 600 s, which
    /// stops its polling the same way.
    pub idle_ttl_secs: u64,
    pub transformers: Vec<TransformerConfig>,
}

pub(crate) const DEFAULT_FS_PREFIX: &str = "/io.l5d.fs";
pub(crate) const DEFAULT_K8S_PREFIX: &str = "/io.l5d.k8s";
/// linkerd's defaults: a `kubectl proxy` beside linkerd.
pub(crate) const DEFAULT_K8S_HOST: &str = "localhost";
pub(crate) const DEFAULT_K8S_PORT: u16 = 8001;
/// Where Kubernetes mounts a pod's service-account token and CA.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// `namers[]` of kind `io.l5d.k8s` (linkerd's `K8sConfig`, plus corelink's
/// in-cluster extension).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct K8sNamerConfig {
    /// With a leading `/`; default `/io.l5d.k8s`.
    pub prefix: String,
    /// Which API server, and how to reach it.
    #[serde(flatten)]
    pub api: K8sApiConfig,
    /// `labelSelector`: a label key; its value is the path segment after the
    /// service (`/<ns>/<port>/<service>/<value>`), and only a Service
    /// carrying that label with that value binds.
    pub label_selector: Option<String>,
    pub transformers: Vec<TransformerConfig>,
}

/// How corelink reaches a Kubernetes API server. Namers with equal values
/// share one set of watches; a configMap interpreter's watch of its one
/// ConfigMap uses the same kind of client.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum K8sApiConfig {
    /// linkerd's `host`/`port`: plain HTTP, no credentials (a `kubectl
    /// proxy` sidecar, linkerd's documented set-up).
    Proxy { host: String, port: u16 },
    /// corelink extension `inCluster: true`: HTTPS to
    /// `KUBERNETES_SERVICE_HOST:KUBERNETES_SERVICE_PORT` (read when the
    /// namer starts), verified against `ca_cert_path`, with the bearer token
    /// in `token_path` (re-read when it changes: bound service-account
    /// tokens rotate).
    InCluster { token_path: String, ca_cert_path: String },
}

impl serde::Serialize for K8sApiConfig {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(None)?;
        match self {
            K8sApiConfig::Proxy { host, port } => {
                map.serialize_entry("host", host)?;
                map.serialize_entry("port", port)?;
            }
            K8sApiConfig::InCluster { token_path, ca_cert_path } => {
                map.serialize_entry("inCluster", &true)?;
                map.serialize_entry("tokenPath", token_path)?;
                map.serialize_entry("caCertPath", ca_cert_path)?;
            }
        }
        map.end()
    }
}

impl K8sApiConfig {
    /// For logs and `corelink check`.
    pub fn describe(&self) -> String {
        match self {
            K8sApiConfig::Proxy { host, port } => format!("http://{host}:{port}"),
            K8sApiConfig::InCluster { .. } => "in-cluster (KUBERNETES_SERVICE_HOST/PORT, service-account token)".into(),
        }
    }
}

impl NamerConfig {
    pub fn prefix(&self) -> &str {
        match self {
            NamerConfig::Fs { prefix, .. } => prefix,
            NamerConfig::K8s(k) => &k.prefix,
            NamerConfig::DnsSrv(d) => &d.prefix,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            NamerConfig::Fs { .. } => "io.l5d.fs",
            NamerConfig::K8s(_) => "io.l5d.k8s",
            NamerConfig::DnsSrv(_) => "io.l5d.dnssrv",
        }
    }

    pub fn transformers(&self) -> &[TransformerConfig] {
        match self {
            NamerConfig::Fs { transformers, .. } => transformers,
            NamerConfig::K8s(k) => &k.transformers,
            NamerConfig::DnsSrv(d) => &d.transformers,
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerConfig {
    pub ip: IpAddr,
    pub port: u16,
    pub server_session: SessionConfig,
    /// `tls`: serve TLS (certificate chain + key, optional client auth).
    pub tls: Option<ServerTlsConfig>,
    /// `clearContext` (default false): strip linkerd context headers
    /// (every `l5d-*`, and `dtab-local`) from inbound requests, before they
    /// are routed; for servers exposed to untrusted clients.
    pub clear_context: bool,
    /// `maxConcurrentRequests`: beyond this many in flight, new requests
    /// get finagle's nack (503, `finagle-http-nack: true`). Divided among
    /// the workers, rounded up. None: unlimited.
    pub max_concurrent_requests: Option<usize>,
    /// `maxCallDepth` on the server (linkerd's place for it); None: the
    /// router's [`RouterConfig::max_call_depth`].
    pub max_call_depth: Option<usize>,
    /// `timeoutMs`: finagle's server timeout, from dispatch to the response
    /// head (503 past it).
    pub timeout_ms: Option<u64>,
    /// `socketOptions`: the keys corelink reads.
    #[serde(skip_serializing_if = "SocketOptions::is_empty")]
    pub socket_options: SocketOptions,
}

/// A server's `socketOptions` (linkerd's `SocketOptionsConfig`), the keys
/// corelink acts on.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SocketOptions {
    /// `backlog`; None: `corelink.backlog`.
    pub backlog: Option<i32>,
    /// `readTimeoutMs`: each read of a request body from the client. None:
    /// only `corelink.bodyProgressTimeoutMs`.
    pub read_timeout_ms: Option<u64>,
    /// `writeTimeoutMs`: each write of a response to the client. None: only
    /// `corelink.bodyProgressTimeoutMs`.
    pub write_timeout_ms: Option<u64>,
}

impl SocketOptions {
    fn is_empty(&self) -> bool {
        *self == SocketOptions::default()
    }
}

pub(crate) const DEFAULT_SERVER_PORT: u16 = 4140;

impl ServerConfig {
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.port)
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            ip: loopback(),
            port: DEFAULT_SERVER_PORT,
            server_session: SessionConfig::default(),
            tls: None,
            clear_context: false,
            max_concurrent_requests: None,
            max_call_depth: None,
            timeout_ms: None,
            socket_options: SocketOptions::default(),
        }
    }
}

/// `servers[].tls`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerTlsConfig {
    pub cert_path: String,
    pub key_path: String,
    /// `intermediateCertsPath`: chain sent after the certificate.
    pub intermediate_certs_path: Option<String>,
    /// `caCertPath`: CA that client certificates must chain to.
    pub ca_cert_path: Option<String>,
    /// `requireClientAuth` (default false): mTLS. Needs `caCertPath`.
    pub require_client_auth: bool,
    /// `protocols`; empty: rustls's defaults (TLS 1.2 and 1.3).
    pub protocols: Vec<TlsVersion>,
}

/// linkerd's `serverSession` / `clientSession`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionConfig {
    /// Close a connection idle for this long. Server side default 60 s (linkerd
    /// leaves it unbounded; a sidecar holding idle connections forever costs
    /// memory for nothing, and nginx uses 75 s).
    pub idle_time_ms: Option<u64>,
    /// Close a connection after this long in total, between requests.
    pub life_time_ms: Option<u64>,
}

/// corelink's own tuning: only what linkerd has no key for.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CorelinkConfig {
    /// Worker threads (one event loop each, pinned). Default: one per core.
    pub workers: Option<usize>,
    pub io: BackendChoice,
    /// Read buffer per connection direction, bytes.
    pub buffer_size: usize,
    pub backlog: i32,
    /// Time a client gets to send a complete request head (slowloris guard).
    pub header_read_timeout_ms: u64,
    /// Header fields per message (431 over it on requests, 502 on responses);
    /// linkerd has no key for it. At most `http1::HEADER_SLOTS` (256).
    pub max_headers: usize,
    /// Upstream TCP connect timeout (finagle's default connect timeout is 1 s).
    pub connect_timeout_ms: u64,
    /// `bodyProgressTimeoutMs`: the longest a body may make no progress, in
    /// either direction (one read or write of it waiting this long ends the
    /// exchange). linkerd leaves bodies unbounded, so a client dripping a
    /// body, or never reading a response, would hold its connection, an
    /// upstream connection and a `maxSize` slot forever. The 60 s default is
    /// nginx's `client_body_timeout` / `send_timeout` / `proxy_read_timeout`.
    pub body_progress_timeout_ms: u64,
    /// `logLevel`: the log filter (`info`, `debug`, or per target, as
    /// `RUST_LOG` takes it); `RUST_LOG`, when set, wins. None: `info`.
    pub log_level: Option<String>,
    /// After SIGTERM, keep serving (and accepting) this long before draining:
    /// in Kubernetes the application gets SIGTERM at the same moment and may
    /// still call out through its sidecar while it shuts down.
    pub shutdown_delay_ms: u64,
    /// `dns`: how host names are resolved (docs/dns.md).
    pub dns: DnsConfig,
}

/// `corelink.dns`: the resolver of `/$/inet` host names (and of
/// `io.l5d.dnssrv` targets). linkerd has no such keys: it resolves with the
/// JVM's resolver, which reads the system's configuration as corelink does
/// by default.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DnsConfig {
    /// `servers`: DNS servers to ask instead of `/etc/resolv.conf`'s (then
    /// `/etc/hosts` is not read either). Empty: the system's configuration.
    pub servers: Vec<SocketAddr>,
    /// `minTtlSecs`: an answer is used (and a name asked again) for at least
    /// this long, whatever its TTL says.
    pub min_ttl_secs: u64,
    /// `maxTtlSecs`: and at most this long.
    pub max_ttl_secs: u64,
    /// `negativeTtlSecs`: how long "no such host" (and a failed lookup) is
    /// kept before the name is asked again.
    pub negative_ttl_secs: u64,
    /// `timeoutMs`: how long one resolution may take (a request waiting for
    /// one waits at most this long, and never past its own timeout).
    pub timeout_ms: u64,
    /// `maxNames`: host names only requests supplied kept resolved at once
    /// (their answers, on the control thread and on each core).
    pub max_names: usize,
    /// `lookupsPerSecond`: lookups of request-supplied names started per
    /// second, at most (a burst of as many is allowed).
    pub lookups_per_second: u32,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            servers: Vec::new(),
            min_ttl_secs: 1,
            max_ttl_secs: 300,
            negative_ttl_secs: 5,
            timeout_ms: 2_000,
            max_names: 4_096,
            lookups_per_second: 100,
        }
    }
}

impl Default for CorelinkConfig {
    fn default() -> Self {
        CorelinkConfig {
            workers: None,
            io: BackendChoice::default(),
            buffer_size: 16 * 1024,
            backlog: 1024,
            header_read_timeout_ms: 10_000,
            max_headers: http1::Limits::default().max_headers,
            connect_timeout_ms: 1_000,
            body_progress_timeout_ms: DEFAULT_BODY_PROGRESS_TIMEOUT_MS,
            shutdown_delay_ms: 5_000,
            log_level: None,
            dns: DnsConfig::default(),
        }
    }
}

/// See [`CorelinkConfig::body_progress_timeout_ms`].
pub const DEFAULT_BODY_PROGRESS_TIMEOUT_MS: u64 = 60_000;
/// Idle keep-alive default for servers (see [`SessionConfig::idle_time_ms`]).
pub const DEFAULT_SERVER_IDLE_MS: u64 = 60_000;
/// Idle time of pooled upstream connections (nginx `keepalive_timeout` is 60 s
/// upstream; shorter than typical servers' own idle timeouts, so we close
/// first and rarely meet a connection the server already closed).
pub const DEFAULT_POOL_IDLE_MS: u64 = 10_000;
/// Idle upstream connections kept per endpoint per core.
pub const DEFAULT_POOL_MAX_IDLE: usize = 64;

impl RouterConfig {
    /// linkerd's default label is the protocol name.
    pub fn label(&self) -> &str {
        self.label.as_deref().unwrap_or("http")
    }

    pub fn limits(&self) -> http1::Limits {
        http1::Limits::from_kb(self.max_headers_kb, self.max_initial_line_kb, http1::Limits::default().max_headers)
    }

    /// Compatibility: the router's identifier as the single-kind
    /// [`IdentifierConfig`]. Exact when [`RouterConfig::identifier`] is
    /// `Some`; for any other identifier list this is the default
    /// (`io.l5d.header.token` on `Host`), so callers must move to
    /// [`RouterConfig::identifiers`].
    pub fn identifier(&self) -> IdentifierConfig {
        self.identifier.clone().unwrap_or_default()
    }

    /// The identifiers, tried in order (never empty).
    pub fn identifiers(&self) -> &[IdentifierKind] {
        &self.identifiers
    }

    /// `maxCallDepth` for one of this router's servers.
    pub fn max_call_depth_for(&self, server: &ServerConfig) -> usize {
        server.max_call_depth.unwrap_or(self.max_call_depth)
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

/// What the operator asked for (config `corelink.io`, env `CORELINK_IO`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendChoice {
    #[default]
    Auto,
    Uring,
    Epoll,
}

impl std::str::FromStr for BackendChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(BackendChoice::Auto),
            "uring" | "io_uring" => Ok(BackendChoice::Uring),
            "epoll" => Ok(BackendChoice::Epoll),
            other => Err(format!("unknown io backend {other:?} (expected auto, uring or epoll)")),
        }
    }
}
