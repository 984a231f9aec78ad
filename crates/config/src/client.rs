//! Client, service and TLS configuration types (`routers[].client`,
//! `routers[].service`, client TLS in both of linkerd's forms).

use super::model::SessionConfig;

/// `routers[].client`.
///
/// `kind: io.l5d.global` (the default): the parameters below apply to every
/// client. `kind: io.l5d.static`: `configs` holds per-prefix parameters;
/// every config whose prefix matches the client name applies, later ones
/// overriding earlier ones, on top of the (default) parameters below.
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientConfig {
    pub kind: ClientKind,
    pub host_connection_pool: HostConnectionPool,
    pub request_attempt_timeout_ms: Option<u64>,
    pub client_session: SessionConfig,
    /// Client TLS in either form; None: plaintext.
    pub tls: Option<ClientTlsConfig>,
    pub load_balancer: LoadBalancerConfig,
    /// None: linkerd's default (5 consecutive failures, jittered backoff
    /// 5 s to 300 s).
    pub failure_accrual: Option<FailureAccrualConfig>,
    pub fail_fast: bool,
    /// Connection-level retries; None: linkerd's default budget.
    pub requeue_budget: Option<RetryBudgetConfig>,
    /// `io.l5d.static` only: per-prefix parameters, in file order.
    pub configs: Vec<ClientPrefixConfig>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub enum ClientKind {
    #[default]
    #[serde(rename = "io.l5d.global")]
    Global,
    #[serde(rename = "io.l5d.static")]
    Static,
}

/// One entry of `client.configs` (`io.l5d.static`).
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientPrefixConfig {
    /// A path pattern over client names: `*` matches one segment, `{name}`
    /// captures one (usable in `tls.commonName`).
    pub prefix: String,
    #[serde(flatten)]
    pub params: ClientParams,
}

/// Client parameters as written in one `configs` entry: None where the
/// entry leaves a parameter alone.
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientParams {
    pub host_connection_pool: Option<HostConnectionPool>,
    pub request_attempt_timeout_ms: Option<u64>,
    pub client_session: Option<SessionConfig>,
    pub tls: Option<ClientTlsConfig>,
    pub load_balancer: Option<LoadBalancerConfig>,
    pub failure_accrual: Option<FailureAccrualConfig>,
    pub fail_fast: Option<bool>,
    pub requeue_budget: Option<RetryBudgetConfig>,
}

/// linkerd's `client.hostConnectionPool`, plus corelink's `maxIdle`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HostConnectionPool {
    /// `minSize` (linkerd default 0): connections kept open per endpoint.
    pub min_size: Option<usize>,
    /// `maxSize` (linkerd default unbounded): connections per endpoint.
    pub max_size: Option<usize>,
    /// `idleTimeMs`: how long an idle pooled connection is kept.
    pub idle_time_ms: Option<u64>,
    /// `maxWaiters` (linkerd default unbounded): requests queued for a
    /// connection once `maxSize` is reached.
    pub max_waiters: Option<usize>,
    /// corelink's `maxIdle`: idle connections kept per endpoint on each core.
    pub max_idle: Option<usize>,
}

/// `client.loadBalancer`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancerConfig {
    pub kind: LoadBalancerKind,
    /// `maxEffort` (default 5): picks retried when the chosen node is down.
    pub max_effort: u32,
    /// `enableProbation` (default false).
    pub enable_probation: bool,
    /// `ewma`: `decayTimeMs` (default 10 s).
    pub decay_time_ms: Option<u64>,
    /// `aperture`: `smoothWindowMs` (5 s), `lowLoad` (0.5), `highLoad`
    /// (2.0), `minAperture` (1).
    pub smooth_window_ms: Option<u64>,
    pub low_load: Option<f64>,
    pub high_load: Option<f64>,
    pub min_aperture: Option<u32>,
}

pub(crate) const DEFAULT_MAX_EFFORT: u32 = 5;

impl Default for LoadBalancerConfig {
    fn default() -> Self {
        LoadBalancerConfig {
            kind: LoadBalancerKind::P2c,
            max_effort: DEFAULT_MAX_EFFORT,
            enable_probation: false,
            decay_time_ms: None,
            smooth_window_ms: None,
            low_load: None,
            high_load: None,
            min_aperture: None,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum LoadBalancerKind {
    /// Power of two choices, least loaded (linkerd's default).
    #[default]
    P2c,
    /// Power of two choices, peak EWMA latency.
    Ewma,
    Aperture,
    Heap,
    RoundRobin,
}

/// `client.failureAccrual`: when an endpoint is marked dead.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FailureAccrualConfig {
    #[serde(flatten)]
    pub policy: FailureAccrualPolicy,
    /// `backoff`: how long a dead endpoint waits before it is probed again
    /// (linkerd default: jittered 5 s to 300 s).
    pub backoff: Option<BackoffConfig>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "kind", rename_all_fields = "camelCase")]
pub enum FailureAccrualPolicy {
    /// `io.l5d.consecutiveFailures {failures}`.
    #[serde(rename = "io.l5d.consecutiveFailures")]
    ConsecutiveFailures { failures: u32 },
    /// `io.l5d.successRate {successRate, requests}`.
    #[serde(rename = "io.l5d.successRate")]
    SuccessRate { success_rate: f64, requests: u32 },
    /// `io.l5d.successRateWindowed {successRate, window}` (seconds).
    #[serde(rename = "io.l5d.successRateWindowed")]
    SuccessRateWindowed {
        success_rate: f64,
        #[serde(rename = "window")]
        window_secs: u32,
    },
    /// `none`: never mark endpoints dead.
    #[serde(rename = "none")]
    None,
}

/// `backoff: {kind: constant, ms}` / `{kind: jittered, minMs, maxMs}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "lowercase", rename_all_fields = "camelCase")]
pub enum BackoffConfig {
    Constant {
        ms: u64,
    },
    /// Decorrelated jitter between the bounds.
    Jittered {
        min_ms: u64,
        max_ms: u64,
    },
}

/// A retry budget (`service.retries.budget`, `client.requeueBudget`),
/// defaults filled in as in linkerd.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RetryBudgetConfig {
    /// `minRetriesPerSec` (default 10).
    pub min_retries_per_sec: u32,
    /// `percentCanRetry` (default 0.2; 0 to 1000).
    pub percent_can_retry: f64,
    /// `ttlSecs` (default 10; 1 to 60).
    pub ttl_secs: u32,
}

impl Default for RetryBudgetConfig {
    fn default() -> Self {
        RetryBudgetConfig { min_retries_per_sec: 10, percent_can_retry: 0.2, ttl_secs: 10 }
    }
}

/// `routers[].service`: policy per logical name (`/svc/...`).
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceConfig {
    pub kind: ServiceKind,
    /// Whole request, from the head read to the last response byte: 503.
    pub total_timeout_ms: Option<u64>,
    pub retries: Option<RetriesConfig>,
    /// None: `io.l5d.http.nonRetryable5XX`.
    pub response_classifier: Option<ResponseClassifier>,
    /// `io.l5d.static` only: per-prefix parameters, in file order.
    pub configs: Vec<ServicePrefixConfig>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub enum ServiceKind {
    #[default]
    #[serde(rename = "io.l5d.global")]
    Global,
    #[serde(rename = "io.l5d.static")]
    Static,
}

#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePrefixConfig {
    pub prefix: String,
    pub total_timeout_ms: Option<u64>,
    pub retries: Option<RetriesConfig>,
    pub response_classifier: Option<ResponseClassifier>,
}

/// `service.retries`.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RetriesConfig {
    pub budget: RetryBudgetConfig,
    /// None: linkerd's default (no backoff between retries).
    pub backoff: Option<BackoffConfig>,
}

/// `service.responseClassifier.kind`: which responses are failures, and
/// which of those may be retried.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind")]
pub enum ResponseClassifier {
    /// 5XX are failures, none retryable (the default).
    #[default]
    #[serde(rename = "io.l5d.http.nonRetryable5XX")]
    NonRetryable5XX,
    /// ... GET, HEAD, OPTIONS, TRACE may be retried.
    #[serde(rename = "io.l5d.http.retryableRead5XX")]
    RetryableRead5XX,
    /// ... PUT and DELETE too.
    #[serde(rename = "io.l5d.http.retryableIdempotent5XX")]
    RetryableIdempotent5XX,
    /// ... every method.
    #[serde(rename = "io.l5d.http.retryableAll5XX")]
    RetryableAll5XX,
    /// Every response is a success.
    #[serde(rename = "io.l5d.http.allSuccessful")]
    AllSuccessful,
}

/// A TLS protocol version named in `protocols`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum TlsVersion {
    #[serde(rename = "TLSv1.2")]
    Tls12,
    #[serde(rename = "TLSv1.3")]
    Tls13,
}

/// Client TLS as written: the linkerd 1.x form (`tls: {commonName, ...}`)
/// or one of the 2016 `kind:` forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientTlsConfig {
    /// linkerd ≥ 1.0: `{enabled, commonName, trustCerts, trustCertsBundle,
    /// disableValidation, clientAuth, protocols}`.
    Params(TlsClientParams),
    /// 2016 `kind: io.l5d.noValidation`: encrypt, verify nothing.
    NoValidation {
        /// Sent as SNI when given.
        common_name: Option<String>,
    },
    /// 2016 `kind: io.l5d.static`: one name for every peer.
    Static {
        common_name: String,
        /// None: the system's roots.
        ca_cert_path: Option<String>,
    },
    /// 2016 `kind: io.l5d.boundPath`: the name comes from the bound path.
    BoundPath {
        ca_cert_path: Option<String>,
        /// Tried in order; the first matching prefix names the peer.
        names: Vec<BoundPathName>,
        /// `strict` (default true): a bound path no prefix matches is an
        /// error (the request fails) rather than a plaintext connection.
        strict: bool,
    },
}

/// linkerd 1.x client TLS parameters.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TlsClientParams {
    /// `enabled: false` turns TLS off (e.g. for one prefix of a static
    /// client).
    pub enabled: bool,
    /// The name the peer's certificate must carry; may use `{var}`s
    /// captured by the `configs` prefix. Required unless validation is off.
    pub common_name: Option<String>,
    /// `trustCerts` (a list) and `trustCertsBundle` (one file), CA files to
    /// verify the peer with; empty: the system's roots.
    pub trust_certs: Vec<String>,
    /// `disableValidation: true`: encrypt, verify nothing (loud warning).
    pub disable_validation: bool,
    pub client_auth: Option<ClientAuth>,
    pub protocols: Vec<TlsVersion>,
}

/// `clientAuth`: the certificate this client presents (mTLS).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientAuth {
    pub cert_path: String,
    pub key_path: String,
    pub intermediate_certs_path: Option<String>,
}

/// One `names` entry of the 2016 boundPath form.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BoundPathName {
    /// Path pattern over the bound name: `*` one segment, `{var}` captures.
    pub prefix: String,
    /// The common name, with `{var}`s from the prefix substituted.
    pub common_name_pattern: String,
}

impl ClientTlsConfig {
    /// One line on how this config names and checks its peers (for
    /// `corelink check` and the start-up log).
    pub fn describe(&self) -> String {
        let trust =
            |paths: &[String]| if paths.is_empty() { "the system's roots".to_string() } else { paths.join(", ") };
        match self {
            ClientTlsConfig::Params(p) if !p.enabled => "off (plaintext)".into(),
            ClientTlsConfig::Params(p) if p.disable_validation => {
                "encrypted, peers NOT verified (disableValidation)".into()
            }
            ClientTlsConfig::Params(p) => format!(
                "peer must be {} (trusting {}){}",
                p.common_name.as_deref().unwrap_or("?"),
                trust(&p.trust_certs),
                if p.client_auth.is_some() { ", presenting a client certificate" } else { "" }
            ),
            ClientTlsConfig::NoValidation { .. } => "encrypted, peers NOT verified (io.l5d.noValidation)".into(),
            ClientTlsConfig::Static { common_name, ca_cert_path } => {
                format!(
                    "peer must be {common_name} (trusting {})",
                    trust(&ca_cert_path.iter().cloned().collect::<Vec<_>>())
                )
            }
            ClientTlsConfig::BoundPath { names, strict, ca_cert_path } => {
                let rules: Vec<String> =
                    names.iter().map(|n| format!("{} => {}", n.prefix, n.common_name_pattern)).collect();
                format!(
                    "name from the bound path: {} (trusting {}; unmatched: {})",
                    rules.join(", "),
                    trust(&ca_cert_path.iter().cloned().collect::<Vec<_>>()),
                    if *strict { "request fails" } else { "PLAINTEXT" }
                )
            }
        }
    }
}

/// linkerd's shapes: the 1.x parameters as they are, the 2016 forms with
/// their `kind`.
impl serde::Serialize for ClientTlsConfig {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(serde::Serialize)]
        #[serde(tag = "kind", rename_all_fields = "camelCase")]
        enum Legacy<'a> {
            #[serde(rename = "io.l5d.noValidation")]
            NoValidation { common_name: &'a Option<String> },
            #[serde(rename = "io.l5d.static")]
            Static { common_name: &'a str, ca_cert_path: &'a Option<String> },
            #[serde(rename = "io.l5d.boundPath")]
            BoundPath { ca_cert_path: &'a Option<String>, names: &'a [BoundPathName], strict: bool },
        }
        match self {
            ClientTlsConfig::Params(p) => p.serialize(serializer),
            ClientTlsConfig::NoValidation { common_name } => Legacy::NoValidation { common_name }.serialize(serializer),
            ClientTlsConfig::Static { common_name, ca_cert_path } => {
                Legacy::Static { common_name, ca_cert_path }.serialize(serializer)
            }
            ClientTlsConfig::BoundPath { ca_cert_path, names, strict } => {
                Legacy::BoundPath { ca_cert_path, names, strict: *strict }.serialize(serializer)
            }
        }
    }
}

impl ClientTlsConfig {
    /// False when this config verifies nothing about the peer.
    pub fn validates(&self) -> bool {
        match self {
            ClientTlsConfig::Params(p) => !p.enabled || !p.disable_validation,
            ClientTlsConfig::NoValidation { .. } => false,
            ClientTlsConfig::Static { .. } | ClientTlsConfig::BoundPath { .. } => true,
        }
    }
}
