//! The linkerd 1.x schema: which keys exist where, what corelink does with
//! each (the tables below are the source of `docs/config.md`), and the walk
//! that turns a positioned YAML tree into a [`Config`].
//!
//! Key lists and defaults come from linkerd 1.x (`linkerd/docs/*.md` and the
//! `*Config.scala` / `*Initializer.scala` classes of linkerd/linkerd); the
//! 2016 client TLS forms from the pre-1.0 `linkerd/docs/client_tls.md`.

use std::collections::HashMap;
use std::net::SocketAddr;

use super::decode::{ok, reject, warn, Ctx, KeySpec, Obj, Result};
use super::model::*;
use super::yaml::{Mark, Node};
use super::Problem;

// ---------------------------------------------------------------- tables

pub(crate) const TOP: &[KeySpec] = &[
    ok("admin"),
    ok("routers"),
    ok("namers"),
    warn(
        "telemetry",
        "linkerd telemeters are not started: corelink keeps its own per-core metrics, served by its admin server",
    ),
    warn("usage", "corelink sends no usage data anywhere"),
    ok("corelink"),
];

pub(crate) const ADMIN: &[KeySpec] = &[
    ok("ip"),
    ok("port"),
    ok("shutdownGraceMs"),
    warn("socketOptions", "the admin listener uses corelink's own socket options"),
    warn("httpIdentifierPort", "the identifier debug endpoint is not served"),
    warn("workerThreads", "the admin server runs on corelink's control thread"),
    reject(
        "tls",
        "the admin server speaks plaintext only; serving it in the clear when TLS was asked for would expose it. Bind admin to loopback and remove `tls`",
    ),
    reject(
        "security",
        "the admin server cannot filter endpoints; ignoring pathWhitelist/pathBlacklist/…Enabled would expose what they block",
    ),
];

pub(crate) const ROUTER: &[KeySpec] = &[
    ok("protocol"),
    ok("label"),
    ok("dtab"),
    ok("baseDtab"),
    ok("dstPrefix"),
    ok("identifier"),
    ok("servers"),
    ok("client"),
    ok("service"),
    ok("interpreter"),
    ok("maxHeadersKB"),
    ok("maxInitialLineKB"),
    ok("maxRequestKB"),
    ok("maxResponseKB"),
    ok("streamingEnabled"),
    ok("maxCallDepth"),
    ok("httpAccessLog"),
    ok("httpAccessLogAppend"),
    ok("dtabHeaders"),
    ok("legacyNamerPaths"),
    ok("contextHeaders"),
    warn("bindingTimeoutMs", "binding is a lookup in corelink's in-memory routing snapshot; only a host name a request supplied is waited for, bounded by corelink.dns.timeoutMs"),
    warn(
        "bindingCache",
        "corelink caches bindings per core and per snapshot generation; the cache is not sized by config",
    ),
    warn("originator", "it only changes linkerd's stats labels"),
    warn("experimental", "corelink's http router needs no experimental flag"),
    warn(
        "httpAccessLogRollPolicy",
        "corelink does not rotate the access log; rotate it externally (logrotate copytruncate)",
    ),
    warn(
        "httpAccessLogRotateCount",
        "corelink does not rotate the access log; rotate it externally (logrotate copytruncate)",
    ),
    warn("streamAfterContentLengthKB", "corelink streams every body; nothing is buffered up to a threshold"),
    warn("maxErrResponseKB", "corelink streams upstream error responses instead of buffering them"),
    warn("compressionLevel", "corelink never compresses: bodies pass through unchanged"),
    warn("tracePropagator", "tracing is not implemented; trace headers pass through unchanged"),
    reject(
        "announcers",
        "corelink does not announce to service discovery; this instance would silently stay unregistered",
    ),
];

pub(crate) const SERVER: &[KeySpec] = &[
    ok("port"),
    ok("ip"),
    ok("tls"),
    ok("clearContext"),
    ok("serverSession"),
    ok("maxConcurrentRequests"),
    ok("maxCallDepth"),
    ok("timeoutMs"),
    ok("socketOptions"),
    warn("label", "server labels only name linkerd stats"),
    warn("timestampHeader", "corelink does not add a timestamp header"),
    reject(
        "announce",
        "corelink does not announce to service discovery; this server would silently stay unregistered",
    ),
    reject(
        "addForwardedHeader",
        "corelink does not add a Forwarded header; services reading it for the client's address would silently get none",
    ),
];

pub(crate) const SERVER_SOCKET_OPTIONS: &[KeySpec] = &[
    ok("backlog"),
    warn("noDelay", "corelink always sets TCP_NODELAY"),
    warn("reuseAddr", "corelink always sets SO_REUSEADDR on listeners"),
    warn("reusePort", "corelink always sets SO_REUSEPORT: every worker core has its own listener"),
    ok("readTimeoutMs"),
    ok("writeTimeoutMs"),
    warn("keepAlive", "SO_KEEPALIVE is not set"),
];

pub(crate) const SERVER_TLS: &[KeySpec] = &[
    ok("certPath"),
    ok("keyPath"),
    ok("intermediateCertsPath"),
    ok("caCertPath"),
    ok("requireClientAuth"),
    ok("protocols"),
    reject(
        "ciphers",
        "corelink uses rustls's cipher suites and cannot restrict them; a pinned cipher list (compliance) would silently not hold",
    ),
    reject(
        "enabled",
        "linkerd documents it but never implemented it for servers (TlsServerConfig has no such field); remove `tls` to serve plaintext",
    ),
];

pub(crate) const SESSION: &[KeySpec] = &[ok("idleTimeMs"), ok("lifeTimeMs")];

pub(crate) const CLIENT_KIND: &[KeySpec] = &[ok("kind")];
pub(crate) const CLIENT_STATIC: &[KeySpec] = &[ok("configs")];
pub(crate) const CLIENT_PREFIX: &[KeySpec] = &[ok("prefix")];
pub(crate) const CLIENT_PARAMS: &[KeySpec] = &[
    ok("hostConnectionPool"),
    ok("requestAttemptTimeoutMs"),
    ok("clientSession"),
    ok("tls"),
    ok("loadBalancer"),
    ok("failureAccrual"),
    ok("failFast"),
    ok("requeueBudget"),
    warn(
        "socketOptions",
        "upstream sockets use corelink's options (TCP_NODELAY); bound requests with requestAttemptTimeoutMs and totalTimeoutMs instead",
    ),
    reject(
        "requestAuthorizers",
        "request authorization is not implemented: requests linkerd would deny would be let through",
    ),
    reject(
        "forwardClientCert",
        "corelink does not forward client certificates (x-forwarded-client-cert); services authorizing on it would see none",
    ),
];

pub(crate) const HOST_POOL: &[KeySpec] =
    &[ok("minSize"), ok("maxSize"), ok("idleTimeMs"), ok("maxWaiters"), ok("maxIdle")];

pub(crate) const CLIENT_TLS: &[KeySpec] = &[
    ok("enabled"),
    ok("commonName"),
    ok("trustCerts"),
    ok("trustCertsBundle"),
    ok("disableValidation"),
    ok("clientAuth"),
    ok("protocols"),
];

pub(crate) const CLIENT_AUTH: &[KeySpec] = &[ok("certPath"), ok("keyPath"), ok("intermediateCertsPath")];

pub(crate) const LEGACY_TLS_NO_VALIDATION: &[KeySpec] =
    &[ok("kind"), ok("commonName"), warn("caCertPath", "io.l5d.noValidation verifies nothing, so the CA is not used")];
pub(crate) const LEGACY_TLS_STATIC: &[KeySpec] = &[ok("kind"), ok("commonName"), ok("caCertPath")];
pub(crate) const LEGACY_TLS_BOUND_PATH: &[KeySpec] = &[ok("kind"), ok("caCertPath"), ok("names"), ok("strict")];
pub(crate) const BOUND_PATH_NAME: &[KeySpec] = &[ok("prefix"), ok("commonNamePattern")];

pub(crate) const LB_COMMON: &[KeySpec] = &[ok("kind"), ok("enableProbation")];
pub(crate) const LB_P2C: &[KeySpec] = &[ok("maxEffort")];
pub(crate) const LB_EWMA: &[KeySpec] = &[ok("maxEffort"), ok("decayTimeMs")];
pub(crate) const LB_APERTURE: &[KeySpec] =
    &[ok("maxEffort"), ok("smoothWindowMs"), ok("lowLoad"), ok("highLoad"), ok("minAperture")];

pub(crate) const FA_COMMON: &[KeySpec] = &[ok("kind"), ok("backoff")];
pub(crate) const FA_CONSECUTIVE: &[KeySpec] = &[ok("failures")];
pub(crate) const FA_SUCCESS_RATE: &[KeySpec] = &[ok("successRate"), ok("requests")];
pub(crate) const FA_SUCCESS_RATE_WINDOWED: &[KeySpec] = &[ok("successRate"), ok("window")];

pub(crate) const BACKOFF_CONSTANT: &[KeySpec] = &[ok("kind"), ok("ms")];
pub(crate) const BACKOFF_JITTERED: &[KeySpec] = &[ok("kind"), ok("minMs"), ok("maxMs")];

pub(crate) const BUDGET: &[KeySpec] = &[ok("minRetriesPerSec"), ok("percentCanRetry"), ok("ttlSecs")];

pub(crate) const SERVICE_KIND: &[KeySpec] = &[ok("kind")];
pub(crate) const SERVICE_STATIC: &[KeySpec] = &[ok("configs")];
pub(crate) const SERVICE_PREFIX: &[KeySpec] = &[ok("prefix")];
pub(crate) const SERVICE_PARAMS: &[KeySpec] = &[ok("totalTimeoutMs"), ok("retries"), ok("responseClassifier")];
pub(crate) const RETRIES: &[KeySpec] = &[ok("budget"), ok("backoff")];
pub(crate) const CLASSIFIER: &[KeySpec] = &[ok("kind")];

pub(crate) const INTERPRETER: &[KeySpec] = &[ok("kind"), ok("transformers")];
pub(crate) const INTERPRETER_CONFIG_MAP: &[KeySpec] = &[
    ok("kind"),
    ok("experimental"),
    ok("name"),
    ok("filename"),
    ok("namespace"),
    ok("host"),
    ok("port"),
    ok("transformers"),
    ok("inCluster"),
    ok("tokenPath"),
    ok("caCertPath"),
];
pub(crate) const TRANSFORMER_PORT: &[KeySpec] = &[ok("kind"), ok("prefix"), ok("port")];
pub(crate) const TRANSFORMER_LOCALHOST: &[KeySpec] = &[ok("kind"), ok("prefix")];
pub(crate) const TRANSFORMER_DAEMONSET: &[KeySpec] = &[
    ok("kind"),
    ok("prefix"),
    ok("namespace"),
    ok("service"),
    ok("port"),
    ok("k8sHost"),
    ok("k8sPort"),
    ok("hostNetwork"),
    ok("inCluster"),
    ok("tokenPath"),
    ok("caCertPath"),
];
pub(crate) const TRANSFORMER_LOCALNODE: &[KeySpec] = &[ok("kind"), ok("prefix"), ok("hostNetwork")];

pub(crate) const NAMER_FS: &[KeySpec] = &[
    ok("kind"),
    ok("rootDir"),
    ok("prefix"),
    ok("transformers"),
    warn("experimental", "io.l5d.fs is not experimental"),
];

pub(crate) const NAMER_K8S: &[KeySpec] = &[
    ok("kind"),
    ok("prefix"),
    ok("host"),
    ok("port"),
    ok("labelSelector"),
    ok("transformers"),
    ok("inCluster"),
    ok("tokenPath"),
    ok("caCertPath"),
    warn("experimental", "io.l5d.k8s is not experimental"),
];

pub(crate) const NAMER_DNSSRV: &[KeySpec] = &[
    ok("kind"),
    ok("prefix"),
    ok("experimental"),
    ok("refreshIntervalSeconds"),
    ok("dnsHosts"),
    ok("transformers"),
    ok("srvWeights"),
    ok("keepLastGoodSecs"),
    ok("idleTtlSecs"),
];

pub(crate) const IDENTIFIER_HEADER_TOKEN: &[KeySpec] = &[ok("kind"), ok("header")];
pub(crate) const IDENTIFIER_METHOD_AND_HOST: &[KeySpec] = &[ok("kind"), ok("httpUriInDst")];
pub(crate) const IDENTIFIER_PATH: &[KeySpec] = &[ok("kind"), ok("segments"), ok("consume")];
pub(crate) const IDENTIFIER_HEADER: &[KeySpec] = &[ok("kind"), ok("header")];
pub(crate) const IDENTIFIER_STATIC: &[KeySpec] = &[ok("kind"), ok("path")];

pub(crate) const CORELINK: &[KeySpec] = &[
    ok("workers"),
    ok("io"),
    ok("bufferSize"),
    ok("backlog"),
    ok("headerReadTimeoutMs"),
    ok("maxHeaders"),
    ok("connectTimeoutMs"),
    ok("bodyProgressTimeoutMs"),
    ok("shutdownDelayMs"),
    ok("logLevel"),
    ok("dns"),
];

/// `corelink.dns` (docs/dns.md).
pub(crate) const CORELINK_DNS: &[KeySpec] = &[
    ok("servers"),
    ok("minTtlSecs"),
    ok("maxTtlSecs"),
    ok("negativeTtlSecs"),
    ok("timeoutMs"),
    ok("maxNames"),
    ok("lookupsPerSecond"),
];

/// Every table, named for `docs/config.md`'s completeness test.
#[cfg(test)]
pub(crate) const ALL_TABLES: &[(&str, &[KeySpec])] = &[
    ("top level", TOP),
    ("admin", ADMIN),
    ("router", ROUTER),
    ("server", SERVER),
    ("server socketOptions", SERVER_SOCKET_OPTIONS),
    ("server tls", SERVER_TLS),
    ("serverSession/clientSession", SESSION),
    ("client", CLIENT_KIND),
    ("client io.l5d.static", CLIENT_STATIC),
    ("client configs[]", CLIENT_PREFIX),
    ("client parameters", CLIENT_PARAMS),
    ("hostConnectionPool", HOST_POOL),
    ("client tls", CLIENT_TLS),
    ("clientAuth", CLIENT_AUTH),
    ("tls io.l5d.noValidation", LEGACY_TLS_NO_VALIDATION),
    ("tls io.l5d.static", LEGACY_TLS_STATIC),
    ("tls io.l5d.boundPath", LEGACY_TLS_BOUND_PATH),
    ("boundPath names[]", BOUND_PATH_NAME),
    ("loadBalancer", LB_COMMON),
    ("loadBalancer p2c", LB_P2C),
    ("loadBalancer ewma", LB_EWMA),
    ("loadBalancer aperture", LB_APERTURE),
    ("failureAccrual", FA_COMMON),
    ("failureAccrual io.l5d.consecutiveFailures", FA_CONSECUTIVE),
    ("failureAccrual io.l5d.successRate", FA_SUCCESS_RATE),
    ("failureAccrual io.l5d.successRateWindowed", FA_SUCCESS_RATE_WINDOWED),
    ("backoff constant", BACKOFF_CONSTANT),
    ("backoff jittered", BACKOFF_JITTERED),
    ("retry budget", BUDGET),
    ("service", SERVICE_KIND),
    ("service io.l5d.static", SERVICE_STATIC),
    ("service configs[]", SERVICE_PREFIX),
    ("service parameters", SERVICE_PARAMS),
    ("retries", RETRIES),
    ("responseClassifier", CLASSIFIER),
    ("interpreter", INTERPRETER),
    ("interpreter io.l5d.k8s.configMap", INTERPRETER_CONFIG_MAP),
    ("transformer io.l5d.port", TRANSFORMER_PORT),
    ("transformer io.l5d.localhost", TRANSFORMER_LOCALHOST),
    ("transformer io.l5d.k8s.daemonset", TRANSFORMER_DAEMONSET),
    ("transformer io.l5d.k8s.localnode", TRANSFORMER_LOCALNODE),
    ("namer io.l5d.fs", NAMER_FS),
    ("namer io.l5d.k8s", NAMER_K8S),
    ("namer io.l5d.dnssrv", NAMER_DNSSRV),
    ("identifier io.l5d.header.token", IDENTIFIER_HEADER_TOKEN),
    ("identifier io.l5d.methodAndHost", IDENTIFIER_METHOD_AND_HOST),
    ("identifier io.l5d.path", IDENTIFIER_PATH),
    ("identifier io.l5d.header", IDENTIFIER_HEADER),
    ("identifier io.l5d.static", IDENTIFIER_STATIC),
    ("corelink", CORELINK),
    ("corelink dns", CORELINK_DNS),
];

// ----------------------------------------------------------- kinds

/// A `kind:` value: supported, or rejected with a reason.
enum Kind<T> {
    Ok(T),
    Rejected(&'static str),
}

/// Resolves `kind` against `known`; an unknown kind is an error listing the
/// supported ones.
fn pick<T: Copy>(ctx: &Ctx, obj: &Obj, default: Option<&str>, known: &[(&str, Kind<T>)]) -> Result<T> {
    let (kind, mark) = match obj.kind(ctx)? {
        Some(k) => k,
        None => match default {
            Some(d) => (d.to_string(), obj.mark),
            None => return Err(ctx.err(obj.mark, &obj.path("kind"), Problem::Missing)),
        },
    };
    match known.iter().find(|(name, _)| *name == kind) {
        Some((_, Kind::Ok(t))) => Ok(*t),
        Some((_, Kind::Rejected(why))) => {
            Err(ctx.err(mark, &obj.path("kind"), Problem::Rejected(format!("`{kind}`: {why}"))))
        }
        None => Err(ctx.err(
            mark,
            &obj.path("kind"),
            Problem::UnknownKind {
                kind,
                expected: known
                    .iter()
                    .filter(|(_, k)| matches!(k, Kind::Ok(_)))
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", "),
            },
        )),
    }
}

// ----------------------------------------------------------- the walk

pub(crate) fn config(ctx: &mut Ctx, root: &Node) -> Result<Config> {
    let top = Obj::new(ctx, root, "")?;
    top.check(ctx, &[TOP])?;
    let admin = match top.obj(ctx, "admin")? {
        Some(o) => admin(ctx, &o)?,
        None => AdminConfig::default(),
    };
    let namers = top
        .seq(ctx, "namers")?
        .into_iter()
        .map(|(path, v)| namer(ctx, &v.obj(ctx, &path)?))
        .collect::<Result<Vec<_>>>()?;
    let mut prefixes: HashMap<&str, ()> = HashMap::new();
    for (i, n) in namers.iter().enumerate() {
        if prefixes.insert(n.prefix(), ()).is_some() {
            let path = format!("namers[{i}]");
            let mark = top.seq(ctx, "namers")?.get(i).map_or(top.mark, |(_, v)| v.mark);
            return Err(ctx.invalid(mark, &path, format!("a second namer with prefix {}", n.prefix())));
        }
    }
    let corelink = match top.obj(ctx, "corelink")? {
        Some(o) => corelink(ctx, &o)?,
        None => CorelinkConfig::default(),
    };
    let routers_val = top.require(ctx, "routers")?;
    let router_items = routers_val.seq(ctx, "routers")?;
    if router_items.is_empty() {
        return Err(ctx.invalid(routers_val.mark, "routers", "at least one router is required"));
    }
    let mut routers = Vec::with_capacity(router_items.len());
    let mut labels: HashMap<String, ()> = HashMap::new();
    let mut addrs: HashMap<SocketAddr, String> = HashMap::new();
    if admin.port != 0 {
        addrs.insert(admin.addr(), "admin".into());
    }
    for (path, v) in router_items {
        let obj = v.obj(ctx, &path)?;
        let r = router(ctx, &obj)?;
        if labels.insert(r.label().to_string(), ()).is_some() {
            return Err(ctx.invalid(
                obj.key_mark("label"),
                &obj.path("label"),
                format!("duplicate router label {:?}", r.label()),
            ));
        }
        let servers = obj.seq(ctx, "servers")?;
        for (server, (spath, sv)) in r.servers.iter().zip(servers) {
            if server.port == 0 {
                continue;
            }
            if let Some(other) = addrs.insert(server.addr(), spath.clone()) {
                return Err(ctx.invalid(
                    sv.mark,
                    &spath,
                    format!("{} is used by another server ({other})", server.addr()),
                ));
            }
        }
        routers.push(r);
    }
    Ok(Config { admin, routers, namers, corelink })
}

fn admin(ctx: &mut Ctx, o: &Obj) -> Result<AdminConfig> {
    o.check(ctx, &[ADMIN])?;
    let d = AdminConfig::default();
    Ok(AdminConfig {
        ip: o.ip(ctx, "ip")?.unwrap_or(d.ip),
        port: o.port(ctx, "port")?.unwrap_or(d.port),
        shutdown_grace_ms: o.u64(ctx, "shutdownGraceMs")?.unwrap_or(d.shutdown_grace_ms),
    })
}

fn corelink(ctx: &mut Ctx, o: &Obj) -> Result<CorelinkConfig> {
    o.check(ctx, &[CORELINK])?;
    let d = CorelinkConfig::default();
    let io = match o.get("io") {
        None => d.io,
        Some(v) => {
            let text = v.str(ctx, &o.path("io"))?;
            text.parse().map_err(|e: String| ctx.invalid(v.mark, &o.path("io"), e))?
        }
    };
    let workers = o.usize(ctx, "workers")?;
    if workers == Some(0) {
        return Err(ctx.invalid(o.get("workers").map_or(o.mark, |v| v.mark), &o.path("workers"), "must be at least 1"));
    }
    let buffer_size = o.usize(ctx, "bufferSize")?.unwrap_or(d.buffer_size);
    if buffer_size < 1024 {
        return Err(ctx.invalid(
            o.get("bufferSize").map_or(o.mark, |v| v.mark),
            &o.path("bufferSize"),
            "must be at least 1024",
        ));
    }
    let log_level = o.str(ctx, "logLevel")?;
    if let Some(level) = &log_level {
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(level) {
            return Err(ctx.invalid(
                o.get("logLevel").map_or(o.mark, |v| v.mark),
                &o.path("logLevel"),
                format!("not a log level or filter ({e}); e.g. info, debug, or warn,corelink::tls=debug"),
            ));
        }
    }
    Ok(CorelinkConfig {
        workers,
        io,
        log_level,
        buffer_size,
        backlog: o.int(ctx, "backlog", 1, i64::from(i32::MAX))?.unwrap_or(d.backlog),
        header_read_timeout_ms: o.u64(ctx, "headerReadTimeoutMs")?.unwrap_or(d.header_read_timeout_ms),
        max_headers: o.int::<usize>(ctx, "maxHeaders", 1, http1::HEADER_SLOTS as i64)?.unwrap_or(d.max_headers),
        connect_timeout_ms: o.u64(ctx, "connectTimeoutMs")?.unwrap_or(d.connect_timeout_ms),
        // Positive: there is no "forever" (that is the hole it closes).
        body_progress_timeout_ms: o
            .int(ctx, "bodyProgressTimeoutMs", 1, i64::MAX)?
            .unwrap_or(d.body_progress_timeout_ms),
        shutdown_delay_ms: o.u64(ctx, "shutdownDelayMs")?.unwrap_or(d.shutdown_delay_ms),
        dns: match o.obj(ctx, "dns")? {
            Some(o) => dns(ctx, &o)?,
            None => DnsConfig::default(),
        },
    })
}

fn dns(ctx: &mut Ctx, o: &Obj) -> Result<DnsConfig> {
    o.check(ctx, &[CORELINK_DNS])?;
    let d = DnsConfig::default();
    let mut servers = Vec::new();
    for (path, v) in o.seq(ctx, "servers")? {
        let text = v.str(ctx, &path)?;
        // `IP` or `IP:PORT` (`[IPv6]:PORT`); port 53 when none is given.
        let addr = match text.parse::<std::net::IpAddr>() {
            Ok(ip) => SocketAddr::new(ip, 53),
            Err(_) => text.parse::<SocketAddr>().map_err(|_| {
                ctx.invalid(
                    v.mark,
                    &path,
                    format!("{text:?} is not an IP address or IP:PORT (host names cannot name a DNS server)"),
                )
            })?,
        };
        servers.push(addr);
    }
    let min_ttl_secs = o.int(ctx, "minTtlSecs", 0, 86_400)?.unwrap_or(d.min_ttl_secs);
    let max_ttl_secs = o.int(ctx, "maxTtlSecs", 1, 86_400)?.unwrap_or(d.max_ttl_secs);
    if max_ttl_secs < min_ttl_secs {
        return Err(ctx.invalid(
            o.get("maxTtlSecs").map_or(o.mark, |v| v.mark),
            &o.path("maxTtlSecs"),
            format!("must be at least minTtlSecs ({min_ttl_secs})"),
        ));
    }
    Ok(DnsConfig {
        servers,
        min_ttl_secs,
        max_ttl_secs,
        negative_ttl_secs: o.int(ctx, "negativeTtlSecs", 0, 86_400)?.unwrap_or(d.negative_ttl_secs),
        timeout_ms: o.int(ctx, "timeoutMs", 1, 600_000)?.unwrap_or(d.timeout_ms),
        max_names: o.int(ctx, "maxNames", 1, 1_000_000)?.unwrap_or(d.max_names),
        lookups_per_second: o.int(ctx, "lookupsPerSecond", 1, 1_000_000)?.unwrap_or(d.lookups_per_second),
    })
}

fn router(ctx: &mut Ctx, o: &Obj) -> Result<RouterConfig> {
    // The protocol decides which keys exist, so it comes first.
    let protocol = o.require(ctx, "protocol")?;
    let name = protocol.str(ctx, &o.path("protocol"))?;
    match name.as_str() {
        "http" => {}
        "h2" | "thrift" | "thriftmux" | "mux" => {
            return Err(ctx.err(
                protocol.mark,
                &o.path("protocol"),
                Problem::Rejected(format!("`{name}`: corelink implements protocol http (HTTP/1.1) only")),
            ))
        }
        _ => {
            return Err(ctx.err(
                protocol.mark,
                &o.path("protocol"),
                Problem::UnknownKind { kind: name, expected: "http".into() },
            ))
        }
    }
    o.check(ctx, &[ROUTER])?;

    let dtab = match (o.get("dtab"), o.get("baseDtab")) {
        (Some(_), Some(b)) => {
            return Err(ctx.invalid(
                b.mark,
                &o.path("baseDtab"),
                "give either dtab or baseDtab (its pre-1.0 name), not both",
            ))
        }
        (Some(v), None) => Some((v, "dtab")),
        (None, Some(v)) => Some((v, "baseDtab")),
        (None, None) => None,
    };
    let dtab = match dtab {
        None => String::new(),
        Some((v, key)) => {
            let text = v.str(ctx, &o.path(key))?;
            naming::Dtab::parse(&text).map_err(|e| ctx.invalid(v.mark, &o.path(key), format!("invalid dtab: {e}")))?;
            text
        }
    };
    let dst_prefix = o.path_str(ctx, "dstPrefix")?.unwrap_or_else(|| DEFAULT_DST_PREFIX.into());
    if let Some(v) = o.get("dstPrefix") {
        naming::Path::parse(&dst_prefix)
            .map_err(|e| ctx.invalid(v.mark, &o.path("dstPrefix"), format!("invalid path: {e}")))?;
    }

    let identifiers = match o.get("identifier") {
        None => vec![IdentifierKind::default()],
        Some(v) if v.is_seq() => {
            let items = v.seq(ctx, &o.path("identifier"))?;
            if items.is_empty() {
                return Err(ctx.invalid(
                    v.mark,
                    &o.path("identifier"),
                    "an empty list: give at least one identifier, or leave the key out",
                ));
            }
            items.into_iter().map(|(path, v)| identifier(ctx, &v.obj(ctx, &path)?)).collect::<Result<Vec<_>>>()?
        }
        Some(v) => vec![identifier(ctx, &v.obj(ctx, &o.path("identifier"))?)?],
    };
    let identifier = match identifiers.as_slice() {
        [IdentifierKind::HeaderToken { header }] => Some(IdentifierConfig::HeaderToken { header: header.clone() }),
        _ => None,
    };

    let servers_val = o.require(ctx, "servers")?;
    let server_items = servers_val.seq(ctx, &o.path("servers"))?;
    if server_items.is_empty() {
        return Err(ctx.invalid(servers_val.mark, &o.path("servers"), "at least one server is required"));
    }
    let servers =
        server_items.into_iter().map(|(path, v)| server(ctx, &v.obj(ctx, &path)?)).collect::<Result<Vec<_>>>()?;

    let max_headers_kb = positive_kb(ctx, o, "maxHeadersKB", default_max_headers_kb())?;
    let max_initial_line_kb = positive_kb(ctx, o, "maxInitialLineKB", default_max_initial_line_kb())?;

    let interpreter = match o.obj(ctx, "interpreter")? {
        Some(i) => interpreter(ctx, &i)?,
        None => InterpreterConfig::default(),
    };
    let client = match o.obj(ctx, "client")? {
        Some(c) => client(ctx, &c)?,
        None => ClientConfig::default(),
    };
    let service = match o.obj(ctx, "service")? {
        Some(s) => service(ctx, &s)?,
        None => ServiceConfig::default(),
    };

    Ok(RouterConfig {
        protocol: Protocol::Http,
        label: o.str(ctx, "label")?,
        dtab,
        dst_prefix,
        identifier,
        identifiers,
        interpreter,
        servers,
        max_headers_kb,
        max_initial_line_kb,
        max_request_kb: o.u64(ctx, "maxRequestKB")?.unwrap_or(DEFAULT_MAX_MESSAGE_KB),
        max_response_kb: o.u64(ctx, "maxResponseKB")?.unwrap_or(DEFAULT_MAX_MESSAGE_KB),
        streaming_enabled: o.bool(ctx, "streamingEnabled")?.unwrap_or(true),
        max_call_depth: o.usize(ctx, "maxCallDepth")?.unwrap_or(DEFAULT_MAX_CALL_DEPTH),
        http_access_log: o.str(ctx, "httpAccessLog")?,
        http_access_log_append: o.bool(ctx, "httpAccessLogAppend")?.unwrap_or(true),
        dtab_headers: o.bool(ctx, "dtabHeaders")?.unwrap_or(false),
        legacy_namer_paths: o.bool(ctx, "legacyNamerPaths")?.unwrap_or(false),
        context_headers: o.bool(ctx, "contextHeaders")?.unwrap_or(true),
        client,
        service,
    })
}

fn positive_kb(ctx: &Ctx, o: &Obj, key: &str, default: usize) -> Result<usize> {
    match o.usize(ctx, key)? {
        None => Ok(default),
        Some(0) => Err(ctx.invalid(o.get(key).map_or(o.mark, |v| v.mark), &o.path(key), "must be positive")),
        Some(n) => Ok(n),
    }
}

fn identifier(ctx: &mut Ctx, o: &Obj) -> Result<IdentifierKind> {
    #[derive(Clone, Copy)]
    enum K {
        HeaderToken,
        MethodAndHost,
        Path,
        Header,
        Static,
    }
    const NOT_HERE: &str = "it needs Kubernetes/Istio APIs, which corelink does not talk to";
    let kind = pick(
        ctx,
        o,
        None,
        &[
            ("io.l5d.header.token", Kind::Ok(K::HeaderToken)),
            ("io.l5d.methodAndHost", Kind::Ok(K::MethodAndHost)),
            ("io.l5d.path", Kind::Ok(K::Path)),
            ("io.l5d.header", Kind::Ok(K::Header)),
            ("io.l5d.static", Kind::Ok(K::Static)),
            ("io.l5d.ingress", Kind::Rejected(NOT_HERE)),
            ("io.l5d.k8s.istio", Kind::Rejected(NOT_HERE)),
        ],
    )?;
    Ok(match kind {
        K::HeaderToken => {
            o.check(ctx, &[IDENTIFIER_HEADER_TOKEN])?;
            IdentifierKind::HeaderToken { header: header_name(ctx, o, DEFAULT_TOKEN_HEADER)? }
        }
        K::Header => {
            o.check(ctx, &[IDENTIFIER_HEADER])?;
            IdentifierKind::Header { header: header_name(ctx, o, DEFAULT_NAME_HEADER)? }
        }
        K::MethodAndHost => {
            o.check(ctx, &[IDENTIFIER_METHOD_AND_HOST])?;
            IdentifierKind::MethodAndHost { http_uri_in_dst: o.bool(ctx, "httpUriInDst")?.unwrap_or(false) }
        }
        K::Path => {
            o.check(ctx, &[IDENTIFIER_PATH])?;
            let segments = o.int(ctx, "segments", 1, 1000)?.unwrap_or(1);
            IdentifierKind::Path { segments, consume: o.bool(ctx, "consume")?.unwrap_or(false) }
        }
        K::Static => {
            o.check(ctx, &[IDENTIFIER_STATIC])?;
            let v = o.require(ctx, "path")?;
            let path = v.path_str(ctx, &o.path("path"))?;
            naming::Path::parse(&path)
                .map_err(|e| ctx.invalid(v.mark, &o.path("path"), format!("invalid path: {e}")))?;
            IdentifierKind::Static { path }
        }
    })
}

fn header_name(ctx: &Ctx, o: &Obj, default: &str) -> Result<String> {
    match o.get("header") {
        None => Ok(default.to_string()),
        Some(v) => {
            let name = v.str(ctx, &o.path("header"))?;
            let token =
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            if token {
                Ok(name)
            } else {
                Err(ctx.invalid(v.mark, &o.path("header"), format!("{name:?} is not an HTTP header name")))
            }
        }
    }
}

fn server(ctx: &mut Ctx, o: &Obj) -> Result<ServerConfig> {
    o.check(ctx, &[SERVER])?;
    let d = ServerConfig::default();
    let socket_options = match o.obj(ctx, "socketOptions")? {
        None => SocketOptions::default(),
        Some(so) => {
            so.check(ctx, &[SERVER_SOCKET_OPTIONS])?;
            SocketOptions {
                backlog: so.int(ctx, "backlog", 1, i64::from(i32::MAX))?,
                read_timeout_ms: so.int(ctx, "readTimeoutMs", 1, i64::MAX)?,
                write_timeout_ms: so.int(ctx, "writeTimeoutMs", 1, i64::MAX)?,
            }
        }
    };
    let tls = match o.obj(ctx, "tls")? {
        None => None,
        Some(t) => Some(server_tls(ctx, &t)?),
    };
    Ok(ServerConfig {
        ip: o.ip(ctx, "ip")?.unwrap_or(d.ip),
        port: o.port(ctx, "port")?.unwrap_or(d.port),
        server_session: session(ctx, o, "serverSession")?.unwrap_or_default(),
        tls,
        clear_context: o.bool(ctx, "clearContext")?.unwrap_or(false),
        max_concurrent_requests: match o.usize(ctx, "maxConcurrentRequests")? {
            Some(0) => {
                return Err(ctx.invalid(
                    o.get("maxConcurrentRequests").map_or(o.mark, |v| v.mark),
                    &o.path("maxConcurrentRequests"),
                    "must be positive (leave it out for no limit)",
                ))
            }
            n => n,
        },
        max_call_depth: o.usize(ctx, "maxCallDepth")?,
        timeout_ms: o.int(ctx, "timeoutMs", 1, i64::MAX)?,
        socket_options,
    })
}

fn session(ctx: &mut Ctx, o: &Obj, key: &str) -> Result<Option<SessionConfig>> {
    let Some(s) = o.obj(ctx, key)? else {
        return Ok(None);
    };
    s.check(ctx, &[SESSION])?;
    Ok(Some(SessionConfig { idle_time_ms: s.u64(ctx, "idleTimeMs")?, life_time_ms: s.u64(ctx, "lifeTimeMs")? }))
}

fn server_tls(ctx: &mut Ctx, o: &Obj) -> Result<ServerTlsConfig> {
    o.check(ctx, &[SERVER_TLS])?;
    let cert_path = o.require(ctx, "certPath")?.str(ctx, &o.path("certPath"))?;
    let key_path = o.require(ctx, "keyPath")?.str(ctx, &o.path("keyPath"))?;
    let ca_cert_path = o.str(ctx, "caCertPath")?;
    let require_client_auth = o.bool(ctx, "requireClientAuth")?.unwrap_or(false);
    if require_client_auth && ca_cert_path.is_none() {
        return Err(ctx.invalid(
            o.key_mark("requireClientAuth"),
            &o.path("requireClientAuth"),
            "requireClientAuth: true needs caCertPath, the CA client certificates must chain to",
        ));
    }
    if ca_cert_path.is_some() && !require_client_auth {
        ctx.warn(
            o.key_mark("caCertPath"),
            &o.path("caCertPath"),
            "client certificates are not requested (as in linkerd): set requireClientAuth: true for mTLS",
        );
    }
    Ok(ServerTlsConfig {
        cert_path,
        key_path,
        intermediate_certs_path: o.str(ctx, "intermediateCertsPath")?,
        ca_cert_path,
        require_client_auth,
        protocols: protocols(ctx, o)?,
    })
}

fn protocols(ctx: &Ctx, o: &Obj) -> Result<Vec<TlsVersion>> {
    let mut out = Vec::new();
    for (path, v) in o.seq(ctx, "protocols")? {
        let name = v.str(ctx, &path)?;
        let version = match name.as_str() {
            "TLSv1.2" => TlsVersion::Tls12,
            "TLSv1.3" => TlsVersion::Tls13,
            "TLSv1" | "TLSv1.1" | "SSLv3" | "SSLv2Hello" => {
                return Err(ctx.err(
                    v.mark,
                    &path,
                    Problem::Rejected(format!("`{name}`: corelink (rustls) speaks TLSv1.2 and TLSv1.3 only")),
                ))
            }
            _ => {
                return Err(ctx.err(
                    v.mark,
                    &path,
                    Problem::UnknownKind { kind: name, expected: "TLSv1.2, TLSv1.3".into() },
                ))
            }
        };
        out.push(version);
    }
    Ok(out)
}

fn client(ctx: &mut Ctx, o: &Obj) -> Result<ClientConfig> {
    #[derive(Clone, Copy)]
    enum K {
        Global,
        Static,
    }
    let kind = pick(
        ctx,
        o,
        Some("io.l5d.global"),
        &[("io.l5d.global", Kind::Ok(K::Global)), ("io.l5d.static", Kind::Ok(K::Static))],
    )?;
    match kind {
        K::Global => {
            o.check(ctx, &[CLIENT_KIND, CLIENT_PARAMS])?;
            let p = client_params(ctx, o, None)?;
            Ok(ClientConfig {
                kind: ClientKind::Global,
                host_connection_pool: p.host_connection_pool.unwrap_or_default(),
                request_attempt_timeout_ms: p.request_attempt_timeout_ms,
                client_session: p.client_session.unwrap_or_default(),
                tls: p.tls,
                load_balancer: p.load_balancer.unwrap_or_default(),
                failure_accrual: p.failure_accrual,
                fail_fast: p.fail_fast.unwrap_or(false),
                requeue_budget: p.requeue_budget,
                configs: Vec::new(),
            })
        }
        K::Static => {
            o.check(ctx, &[CLIENT_KIND, CLIENT_STATIC])?;
            let configs = o.require(ctx, "configs")?;
            let configs = configs
                .seq(ctx, &o.path("configs"))?
                .into_iter()
                .map(|(path, v)| {
                    let c = v.obj(ctx, &path)?;
                    c.check(ctx, &[CLIENT_PREFIX, CLIENT_PARAMS])?;
                    let pv = c.require(ctx, "prefix")?;
                    let prefix = pv.path_str(ctx, &c.path("prefix"))?;
                    let params = client_params(ctx, &c, Some((&prefix, pv.mark)))?;
                    Ok(ClientPrefixConfig { prefix, params })
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(ClientConfig { kind: ClientKind::Static, configs, ..ClientConfig::default() })
        }
    }
}

/// Client parameters; `prefix` is the `configs` entry's prefix (its
/// captures may be used in `tls.commonName`).
fn client_params(ctx: &mut Ctx, o: &Obj, prefix: Option<(&str, Mark)>) -> Result<ClientParams> {
    let host_connection_pool = match o.obj(ctx, "hostConnectionPool")? {
        None => None,
        Some(p) => {
            p.check(ctx, &[HOST_POOL])?;
            let pool = HostConnectionPool {
                min_size: p.usize(ctx, "minSize")?,
                max_size: p.usize(ctx, "maxSize")?,
                idle_time_ms: p.u64(ctx, "idleTimeMs")?,
                max_waiters: p.usize(ctx, "maxWaiters")?,
                max_idle: p.usize(ctx, "maxIdle")?,
            };
            if let (Some(min), Some(max)) = (pool.min_size, pool.max_size) {
                if min > max {
                    return Err(ctx.invalid(
                        p.key_mark("minSize"),
                        &p.path("minSize"),
                        format!("minSize {min} is larger than maxSize {max}"),
                    ));
                }
            }
            if pool.max_size == Some(0) {
                return Err(ctx.invalid(p.key_mark("maxSize"), &p.path("maxSize"), "must be positive"));
            }
            Some(pool)
        }
    };
    let tls = match o.obj(ctx, "tls")? {
        None => None,
        Some(t) => Some(client_tls(ctx, &t, prefix)?),
    };
    let load_balancer = match o.obj(ctx, "loadBalancer")? {
        None => None,
        Some(lb) => Some(load_balancer(ctx, &lb)?),
    };
    let failure_accrual = match o.obj(ctx, "failureAccrual")? {
        None => None,
        Some(fa) => Some(failure_accrual(ctx, &fa)?),
    };
    let requeue_budget = match o.obj(ctx, "requeueBudget")? {
        None => None,
        Some(b) => Some(budget(ctx, &b)?),
    };
    Ok(ClientParams {
        host_connection_pool,
        request_attempt_timeout_ms: o.u64(ctx, "requestAttemptTimeoutMs")?,
        client_session: session(ctx, o, "clientSession")?,
        tls,
        load_balancer,
        failure_accrual,
        fail_fast: o.bool(ctx, "failFast")?,
        requeue_budget,
    })
}

const NO_VALIDATION_WARNING: &str =
    "TLS without validation: traffic is encrypted but peers are NOT authenticated (anyone can impersonate them)";

fn client_tls(ctx: &mut Ctx, o: &Obj, prefix: Option<(&str, Mark)>) -> Result<ClientTlsConfig> {
    if o.has("kind") {
        return legacy_client_tls(ctx, o);
    }
    o.check(ctx, &[CLIENT_TLS])?;
    let enabled = o.bool(ctx, "enabled")?.unwrap_or(true);
    let disable_validation = o.bool(ctx, "disableValidation")?.unwrap_or(false);
    let common_name = o.str(ctx, "commonName")?;
    if let (Some(cn), Some(v)) = (&common_name, o.get("commonName")) {
        check_vars(ctx, cn, v.mark, &o.path("commonName"), prefix)?;
    }
    let bundle = o.str(ctx, "trustCertsBundle")?;
    let mut trust_certs = Vec::new();
    for (path, v) in o.seq(ctx, "trustCerts")? {
        trust_certs.push(v.str(ctx, &path)?);
    }
    if let Some(bundle) = bundle {
        if o.has("trustCerts") {
            return Err(ctx.invalid(
                o.key_mark("trustCertsBundle"),
                &o.path("trustCertsBundle"),
                "both trustCerts and trustCertsBundle are set (linkerd refuses this too): use only trustCertsBundle",
            ));
        }
        trust_certs.push(bundle);
    }
    let client_auth = match o.obj(ctx, "clientAuth")? {
        None => None,
        Some(a) => {
            a.check(ctx, &[CLIENT_AUTH])?;
            Some(ClientAuth {
                cert_path: a.require(ctx, "certPath")?.str(ctx, &a.path("certPath"))?,
                key_path: a.require(ctx, "keyPath")?.str(ctx, &a.path("keyPath"))?,
                intermediate_certs_path: a.str(ctx, "intermediateCertsPath")?,
            })
        }
    };
    if enabled && disable_validation && client_auth.is_some() {
        return Err(ctx.invalid(
            o.key_mark("clientAuth"),
            &o.path("clientAuth"),
            "disableValidation: true is incompatible with clientAuth (as in linkerd)",
        ));
    }
    if enabled && !disable_validation && common_name.is_none() {
        return Err(ctx.invalid(
            o.mark,
            &o.path("commonName"),
            "commonName is required unless disableValidation: true",
        ));
    }
    if enabled && disable_validation {
        ctx.warn(o.key_mark("disableValidation"), &o.path("disableValidation"), NO_VALIDATION_WARNING);
    }
    Ok(ClientTlsConfig::Params(TlsClientParams {
        enabled,
        common_name,
        trust_certs,
        disable_validation,
        client_auth,
        protocols: protocols(ctx, o)?,
    }))
}

/// The 2016 forms: `tls: {kind: io.l5d.boundPath | io.l5d.static |
/// io.l5d.noValidation, ...}` (also spelt `io.l5d.clientTls.*`).
fn legacy_client_tls(ctx: &mut Ctx, o: &Obj) -> Result<ClientTlsConfig> {
    #[derive(Clone, Copy)]
    enum K {
        NoValidation,
        Static,
        BoundPath,
    }
    let kind = pick(
        ctx,
        o,
        None,
        &[
            ("io.l5d.boundPath", Kind::Ok(K::BoundPath)),
            ("io.l5d.static", Kind::Ok(K::Static)),
            ("io.l5d.noValidation", Kind::Ok(K::NoValidation)),
            ("io.l5d.clientTls.boundPath", Kind::Ok(K::BoundPath)),
            ("io.l5d.clientTls.static", Kind::Ok(K::Static)),
            ("io.l5d.clientTls.noValidation", Kind::Ok(K::NoValidation)),
        ],
    )?;
    match kind {
        K::NoValidation => {
            o.check(ctx, &[LEGACY_TLS_NO_VALIDATION])?;
            ctx.warn(o.key_mark("kind"), &o.path("kind"), NO_VALIDATION_WARNING);
            Ok(ClientTlsConfig::NoValidation { common_name: o.str(ctx, "commonName")? })
        }
        K::Static => {
            o.check(ctx, &[LEGACY_TLS_STATIC])?;
            let cn = o.require(ctx, "commonName")?;
            let common_name = cn.str(ctx, &o.path("commonName"))?;
            check_vars(ctx, &common_name, cn.mark, &o.path("commonName"), None)?;
            Ok(ClientTlsConfig::Static { common_name, ca_cert_path: o.str(ctx, "caCertPath")? })
        }
        K::BoundPath => {
            o.check(ctx, &[LEGACY_TLS_BOUND_PATH])?;
            let names_val = o.require(ctx, "names")?;
            let items = names_val.seq(ctx, &o.path("names"))?;
            if items.is_empty() {
                return Err(ctx.invalid(
                    names_val.mark,
                    &o.path("names"),
                    "at least one {prefix, commonNamePattern} is required",
                ));
            }
            let mut names = Vec::with_capacity(items.len());
            for (path, v) in items {
                let n = v.obj(ctx, &path)?;
                n.check(ctx, &[BOUND_PATH_NAME])?;
                let pv = n.require(ctx, "prefix")?;
                let prefix = pv.path_str(ctx, &n.path("prefix"))?;
                let cv = n.require(ctx, "commonNamePattern")?;
                let pattern = cv.str(ctx, &n.path("commonNamePattern"))?;
                check_vars(ctx, &pattern, cv.mark, &n.path("commonNamePattern"), Some((&prefix, pv.mark)))?;
                names.push(BoundPathName { prefix, common_name_pattern: pattern });
            }
            Ok(ClientTlsConfig::BoundPath {
                ca_cert_path: o.str(ctx, "caCertPath")?,
                names,
                strict: o.bool(ctx, "strict")?.unwrap_or(true),
            })
        }
    }
}

/// `{var}`s in a common name must be captured by the prefix.
fn check_vars(ctx: &Ctx, pattern: &str, mark: Mark, path: &str, prefix: Option<(&str, Mark)>) -> Result<()> {
    let captured = prefix.map(|(p, _)| vars(p)).unwrap_or_default();
    for var in vars(pattern) {
        if !captured.contains(&var) {
            let why = match prefix {
                Some((p, _)) => format!("{{{var}}} is not captured by the prefix {p}"),
                None => format!(
                    "{{{var}}} needs a prefix to capture it: use client kind io.l5d.static with configs[].prefix"
                ),
            };
            return Err(ctx.invalid(mark, path, why));
        }
    }
    Ok(())
}

/// The `{name}` captures of a pattern.
fn vars(pattern: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = pattern;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        match after.find('}') {
            Some(end) => {
                out.push(&after[..end]);
                rest = &after[end + 1..];
            }
            None => break,
        }
    }
    out
}

fn load_balancer(ctx: &mut Ctx, o: &Obj) -> Result<LoadBalancerConfig> {
    let kind = pick(
        ctx,
        o,
        Some("p2c"),
        &[
            ("p2c", Kind::Ok(LoadBalancerKind::P2c)),
            ("ewma", Kind::Ok(LoadBalancerKind::Ewma)),
            ("aperture", Kind::Ok(LoadBalancerKind::Aperture)),
            ("heap", Kind::Ok(LoadBalancerKind::Heap)),
            ("roundRobin", Kind::Ok(LoadBalancerKind::RoundRobin)),
        ],
    )?;
    let extra: &[KeySpec] = match kind {
        LoadBalancerKind::P2c | LoadBalancerKind::RoundRobin => LB_P2C,
        LoadBalancerKind::Ewma => LB_EWMA,
        LoadBalancerKind::Aperture => LB_APERTURE,
        LoadBalancerKind::Heap => &[],
    };
    o.check(ctx, &[LB_COMMON, extra])?;
    let lb = LoadBalancerConfig {
        kind,
        max_effort: o.u32(ctx, "maxEffort")?.unwrap_or(DEFAULT_MAX_EFFORT),
        enable_probation: o.bool(ctx, "enableProbation")?.unwrap_or(false),
        decay_time_ms: o.u64(ctx, "decayTimeMs")?,
        smooth_window_ms: o.u64(ctx, "smoothWindowMs")?,
        low_load: o.f64(ctx, "lowLoad")?,
        high_load: o.f64(ctx, "highLoad")?,
        min_aperture: o.u32(ctx, "minAperture")?,
    };
    if let (Some(low), Some(high)) = (lb.low_load, lb.high_load) {
        if low > high {
            return Err(ctx.invalid(
                o.key_mark("lowLoad"),
                &o.path("lowLoad"),
                format!("lowLoad {low} is above highLoad {high}"),
            ));
        }
    }
    Ok(lb)
}

fn failure_accrual(ctx: &mut Ctx, o: &Obj) -> Result<FailureAccrualConfig> {
    #[derive(Clone, Copy)]
    enum K {
        Consecutive,
        SuccessRate,
        Windowed,
        None,
    }
    let kind = pick(
        ctx,
        o,
        None,
        &[
            ("io.l5d.consecutiveFailures", Kind::Ok(K::Consecutive)),
            ("io.l5d.successRate", Kind::Ok(K::SuccessRate)),
            ("io.l5d.successRateWindowed", Kind::Ok(K::Windowed)),
            ("none", Kind::Ok(K::None)),
        ],
    )?;
    let extra: &[KeySpec] = match kind {
        K::Consecutive => FA_CONSECUTIVE,
        K::SuccessRate => FA_SUCCESS_RATE,
        K::Windowed => FA_SUCCESS_RATE_WINDOWED,
        K::None => &[],
    };
    o.check(ctx, &[FA_COMMON, extra])?;
    let rate = |ctx: &Ctx| -> Result<f64> {
        let v = o.require(ctx, "successRate")?;
        let r = v.f64(ctx, &o.path("successRate"))?;
        if (0.0..=1.0).contains(&r) {
            Ok(r)
        } else {
            Err(ctx.invalid(v.mark, &o.path("successRate"), "must be between 0 and 1"))
        }
    };
    let required_u32 =
        |ctx: &Ctx, key: &str| -> Result<u32> { o.require(ctx, key)?.int(ctx, &o.path(key), 1, i64::from(u32::MAX)) };
    let policy = match kind {
        K::Consecutive => FailureAccrualPolicy::ConsecutiveFailures { failures: required_u32(ctx, "failures")? },
        K::SuccessRate => {
            FailureAccrualPolicy::SuccessRate { success_rate: rate(ctx)?, requests: required_u32(ctx, "requests")? }
        }
        K::Windowed => FailureAccrualPolicy::SuccessRateWindowed {
            success_rate: rate(ctx)?,
            window_secs: required_u32(ctx, "window")?,
        },
        K::None => FailureAccrualPolicy::None,
    };
    let backoff = match o.obj(ctx, "backoff")? {
        None => None,
        Some(b) => Some(backoff(ctx, &b)?),
    };
    Ok(FailureAccrualConfig { policy, backoff })
}

fn backoff(ctx: &mut Ctx, o: &Obj) -> Result<BackoffConfig> {
    #[derive(Clone, Copy)]
    enum K {
        Constant,
        Jittered,
    }
    let kind = pick(ctx, o, None, &[("constant", Kind::Ok(K::Constant)), ("jittered", Kind::Ok(K::Jittered))])?;
    match kind {
        K::Constant => {
            o.check(ctx, &[BACKOFF_CONSTANT])?;
            Ok(BackoffConfig::Constant { ms: o.u64(ctx, "ms")?.unwrap_or(0) })
        }
        K::Jittered => {
            o.check(ctx, &[BACKOFF_JITTERED])?;
            let min_ms = o.require(ctx, "minMs")?.int(ctx, &o.path("minMs"), 0, i64::MAX)?;
            let max_ms = o.require(ctx, "maxMs")?.int(ctx, &o.path("maxMs"), 0, i64::MAX)?;
            if min_ms > max_ms {
                return Err(ctx.invalid(
                    o.key_mark("minMs"),
                    &o.path("minMs"),
                    format!("minMs {min_ms} is above maxMs {max_ms}"),
                ));
            }
            Ok(BackoffConfig::Jittered { min_ms, max_ms })
        }
    }
}

fn budget(ctx: &mut Ctx, o: &Obj) -> Result<RetryBudgetConfig> {
    o.check(ctx, &[BUDGET])?;
    let d = RetryBudgetConfig::default();
    let percent = o.f64(ctx, "percentCanRetry")?.unwrap_or(d.percent_can_retry);
    if !(0.0..=1000.0).contains(&percent) {
        return Err(ctx.invalid(
            o.get("percentCanRetry").map_or(o.mark, |v| v.mark),
            &o.path("percentCanRetry"),
            "must be between 0 and 1000",
        ));
    }
    Ok(RetryBudgetConfig {
        min_retries_per_sec: o.u32(ctx, "minRetriesPerSec")?.unwrap_or(d.min_retries_per_sec),
        percent_can_retry: percent,
        ttl_secs: o.int(ctx, "ttlSecs", 1, 60)?.unwrap_or(d.ttl_secs),
    })
}

fn service(ctx: &mut Ctx, o: &Obj) -> Result<ServiceConfig> {
    #[derive(Clone, Copy)]
    enum K {
        Global,
        Static,
    }
    let kind = pick(
        ctx,
        o,
        Some("io.l5d.global"),
        &[("io.l5d.global", Kind::Ok(K::Global)), ("io.l5d.static", Kind::Ok(K::Static))],
    )?;
    match kind {
        K::Global => {
            o.check(ctx, &[SERVICE_KIND, SERVICE_PARAMS])?;
            let (total_timeout_ms, retries, response_classifier) = service_params(ctx, o)?;
            Ok(ServiceConfig {
                kind: ServiceKind::Global,
                total_timeout_ms,
                retries,
                response_classifier,
                configs: Vec::new(),
            })
        }
        K::Static => {
            o.check(ctx, &[SERVICE_KIND, SERVICE_STATIC])?;
            let configs = o.require(ctx, "configs")?;
            let configs = configs
                .seq(ctx, &o.path("configs"))?
                .into_iter()
                .map(|(path, v)| {
                    let c = v.obj(ctx, &path)?;
                    c.check(ctx, &[SERVICE_PREFIX, SERVICE_PARAMS])?;
                    let prefix = c.require(ctx, "prefix")?.path_str(ctx, &c.path("prefix"))?;
                    let (total_timeout_ms, retries, response_classifier) = service_params(ctx, &c)?;
                    Ok(ServicePrefixConfig { prefix, total_timeout_ms, retries, response_classifier })
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(ServiceConfig { kind: ServiceKind::Static, configs, ..ServiceConfig::default() })
        }
    }
}

type ServiceParams = (Option<u64>, Option<RetriesConfig>, Option<ResponseClassifier>);

fn service_params(ctx: &mut Ctx, o: &Obj) -> Result<ServiceParams> {
    let retries = match o.obj(ctx, "retries")? {
        None => None,
        Some(r) => {
            r.check(ctx, &[RETRIES])?;
            let budget = match r.obj(ctx, "budget")? {
                None => RetryBudgetConfig::default(),
                Some(b) => budget(ctx, &b)?,
            };
            let backoff = match r.obj(ctx, "backoff")? {
                None => None,
                Some(b) => Some(backoff(ctx, &b)?),
            };
            Some(RetriesConfig { budget, backoff })
        }
    };
    let classifier = match o.obj(ctx, "responseClassifier")? {
        None => None,
        Some(c) => {
            const H2: &str = "it classifies HTTP/2 or gRPC responses; corelink routers speak HTTP/1.1";
            let kind = pick(
                ctx,
                &c,
                None,
                &[
                    ("io.l5d.http.nonRetryable5XX", Kind::Ok(ResponseClassifier::NonRetryable5XX)),
                    ("io.l5d.http.retryableRead5XX", Kind::Ok(ResponseClassifier::RetryableRead5XX)),
                    ("io.l5d.http.retryableIdempotent5XX", Kind::Ok(ResponseClassifier::RetryableIdempotent5XX)),
                    ("io.l5d.http.retryableAll5XX", Kind::Ok(ResponseClassifier::RetryableAll5XX)),
                    ("io.l5d.http.allSuccessful", Kind::Ok(ResponseClassifier::AllSuccessful)),
                    ("io.l5d.h2.nonRetryable5XX", Kind::Rejected(H2)),
                    ("io.l5d.h2.retryableRead5XX", Kind::Rejected(H2)),
                    ("io.l5d.h2.retryableIdempotent5XX", Kind::Rejected(H2)),
                    ("io.l5d.h2.retryableAll5XX", Kind::Rejected(H2)),
                    ("io.l5d.h2.allSuccessful", Kind::Rejected(H2)),
                    ("io.l5d.h2.grpc.default", Kind::Rejected(H2)),
                    ("io.l5d.h2.grpc.compliant", Kind::Rejected(H2)),
                    ("io.l5d.h2.grpc.alwaysRetryable", Kind::Rejected(H2)),
                    ("io.l5d.h2.grpc.neverRetryable", Kind::Rejected(H2)),
                    ("io.l5d.h2.grpc.retryableStatusCodes", Kind::Rejected(H2)),
                ],
            )?;
            c.check(ctx, &[CLASSIFIER])?;
            Some(kind)
        }
    };
    Ok((o.u64(ctx, "totalTimeoutMs")?, retries, classifier))
}

fn interpreter(ctx: &mut Ctx, o: &Obj) -> Result<InterpreterConfig> {
    const ELSEWHERE: &str = "names would be resolved by an external service; corelink resolves with the router's dtab and its own namers only (use kind: default)";
    #[derive(Clone, Copy)]
    enum K {
        Default,
        ConfigMap,
    }
    let kind = pick(
        ctx,
        o,
        Some("default"),
        &[
            ("default", Kind::Ok(K::Default)),
            ("io.l5d.k8s.configMap", Kind::Ok(K::ConfigMap)),
            ("io.l5d.namerd", Kind::Rejected(ELSEWHERE)),
            ("io.l5d.namerd.http", Kind::Rejected(ELSEWHERE)),
            ("io.l5d.mesh", Kind::Rejected(ELSEWHERE)),
            ("io.l5d.consul.interpreter", Kind::Rejected(ELSEWHERE)),
            (
                "io.l5d.fs",
                Kind::Rejected("the dtab would come from a watched file; put it in the router's `dtab` instead"),
            ),
        ],
    )?;
    let config_map = match kind {
        K::Default => {
            o.check(ctx, &[INTERPRETER])?;
            None
        }
        K::ConfigMap => {
            o.check(ctx, &[INTERPRETER_CONFIG_MAP])?;
            Some(config_map_interpreter(ctx, o)?)
        }
    };
    Ok(InterpreterConfig { transformers: transformers(ctx, o)?, config_map })
}

/// linkerd's `experimental: true`, which its experimental plugins (`what`)
/// require; without it, an error at the key (or at `kind` when absent).
fn require_experimental(ctx: &mut Ctx, o: &Obj, what: &str) -> Result<()> {
    if o.bool(ctx, "experimental")? == Some(true) {
        return Ok(());
    }
    let mark = if o.has("experimental") { o.key_mark("experimental") } else { o.key_mark("kind") };
    Err(ctx.invalid(
        mark,
        &o.path("experimental"),
        format!("the {what} is experimental (in linkerd too) and must be explicitly enabled by setting `experimental: true`"),
    ))
}

/// `io.l5d.k8s.configMap`: linkerd's `experimental` (required, as linkerd
/// requires it), `name`, `filename`, `namespace`, `host`, `port`, plus the
/// k8s namer's in-cluster keys.
fn config_map_interpreter(ctx: &mut Ctx, o: &Obj) -> Result<ConfigMapInterpreterConfig> {
    require_experimental(ctx, o, "io.l5d.k8s.configMap interpreter")?;
    // Names go into the request path and a field selector: check them here
    // rather than watch a ConfigMap that cannot exist.
    let checked = |ctx: &Ctx, key: &str, what: &str, valid: fn(&str) -> bool| -> Result<Option<String>> {
        match o.get(key) {
            None => Ok(None),
            Some(v) => {
                let text = v.str(ctx, &o.path(key))?;
                if !valid(&text) {
                    return Err(ctx.invalid(v.mark, &o.path(key), format!("{text:?} is not {what}")));
                }
                Ok(Some(text))
            }
        }
    };
    let required = |ctx: &Ctx, key: &str, value: Option<String>| -> Result<String> {
        match value {
            Some(v) => Ok(v),
            None => Err(ctx.err(o.mark, &o.path(key), Problem::Missing)),
        }
    };
    let name = checked(
        ctx,
        "name",
        "a ConfigMap name (a DNS subdomain: lowercase letters, digits, `-`, `.`)",
        is_dns_subdomain,
    )?;
    let name = required(ctx, "name", name)?;
    let filename = checked(ctx, "filename", "a ConfigMap key (letters, digits, `-`, `_`, `.`)", is_config_map_key)?;
    let filename = required(ctx, "filename", filename)?;
    let namespace =
        checked(ctx, "namespace", "a namespace name (a DNS label: lowercase letters, digits, `-`)", is_dns_label)?
            .unwrap_or_else(|| DEFAULT_CONFIG_MAP_NAMESPACE.to_string());
    Ok(ConfigMapInterpreterConfig { api: k8s_api(ctx, o, "host", "port")?, namespace, name, filename })
}

/// RFC 1123 label, as Kubernetes checks namespace names.
fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// RFC 1123 subdomain, as Kubernetes checks most object names.
fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// A ConfigMap `data` key, as Kubernetes checks them.
fn is_config_map_key(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && s != "."
        && s != ".."
}

fn transformers(ctx: &mut Ctx, o: &Obj) -> Result<Vec<TransformerConfig>> {
    const UNSUPPORTED: &str =
        "this transformer is not implemented; skipping it would send traffic to different addresses";
    #[derive(Clone, Copy)]
    enum K {
        Port,
        Localhost,
        DaemonSet,
        LocalNode,
    }
    let mut out = Vec::new();
    for (path, v) in o.seq(ctx, "transformers")? {
        let t = v.obj(ctx, &path)?;
        let kind = pick(
            ctx,
            &t,
            None,
            &[
                ("io.l5d.port", Kind::Ok(K::Port)),
                ("io.l5d.localhost", Kind::Ok(K::Localhost)),
                ("io.l5d.specificHost", Kind::Rejected(UNSUPPORTED)),
                ("io.l5d.k8s.daemonset", Kind::Ok(K::DaemonSet)),
                ("io.l5d.k8s.localnode", Kind::Ok(K::LocalNode)),
                ("io.l5d.replace", Kind::Rejected(UNSUPPORTED)),
                ("io.l5d.const", Kind::Rejected(UNSUPPORTED)),
            ],
        )?;
        out.push(match kind {
            K::Port => {
                t.check(ctx, &[TRANSFORMER_PORT])?;
                let pv = t.require(ctx, "port")?;
                TransformerConfig::Port {
                    port: pv.int(ctx, &t.path("port"), 1, i64::from(u16::MAX))?,
                    prefix: t.path_str(ctx, "prefix")?,
                }
            }
            K::Localhost => {
                t.check(ctx, &[TRANSFORMER_LOCALHOST])?;
                TransformerConfig::Localhost { prefix: t.path_str(ctx, "prefix")? }
            }
            K::DaemonSet => {
                t.check(ctx, &[TRANSFORMER_DAEMONSET])?;
                TransformerConfig::DaemonSet(daemonset_transformer(ctx, &t)?)
            }
            K::LocalNode => {
                t.check(ctx, &[TRANSFORMER_LOCALNODE])?;
                TransformerConfig::LocalNode {
                    host_network: t.bool(ctx, "hostNetwork")?.unwrap_or(false),
                    prefix: t.path_str(ctx, "prefix")?,
                }
            }
        });
    }
    Ok(out)
}

/// `io.l5d.k8s.daemonset`: linkerd's `namespace`, `service`, `port`
/// (required), `k8sHost` (`localhost`), `k8sPort` (8001), `hostNetwork`
/// (false), plus corelink's `inCluster` (with `tokenPath`, `caCertPath`) as
/// on the `io.l5d.k8s` namer.
fn daemonset_transformer(ctx: &Ctx, t: &Obj) -> Result<DaemonSetTransformerConfig> {
    // Each is a path segment: of the DaemonSet's namer path and of linkerd's
    // default prefix `/io.l5d.k8s.daemonset/<namespace>/<port>/<service>`.
    let segment = |key: &str| -> Result<String> {
        let v = t.require(ctx, key)?;
        let text = v.str(ctx, &t.path(key))?;
        match naming::Path::parse(&format!("/{text}")) {
            Ok(p) if p.len() == 1 => Ok(text),
            _ => Err(ctx.invalid(v.mark, &t.path(key), format!("{text:?} is not a single path segment"))),
        }
    };
    let namespace = segment("namespace")?;
    let service = segment("service")?;
    let port = segment("port")?;
    let api = k8s_api(ctx, t, "k8sHost", "k8sPort")?;
    Ok(DaemonSetTransformerConfig {
        namespace,
        service,
        port,
        api,
        host_network: t.bool(ctx, "hostNetwork")?.unwrap_or(false),
        prefix: t.path_str(ctx, "prefix")?,
    })
}

fn namer(ctx: &mut Ctx, o: &Obj) -> Result<NamerConfig> {
    const UNSUPPORTED: &str = "corelink implements only the io.l5d.fs, io.l5d.k8s and io.l5d.dnssrv namers (and the built-in /$/inet); names under this namer's prefix would not resolve";
    #[derive(Clone, Copy)]
    enum Which {
        Fs,
        K8s,
        DnsSrv,
    }
    let kind = pick(
        ctx,
        o,
        None,
        &[
            ("io.l5d.fs", Kind::Ok(Which::Fs)),
            ("io.l5d.k8s", Kind::Ok(Which::K8s)),
            ("io.l5d.serversets", Kind::Rejected(UNSUPPORTED)),
            ("io.l5d.consul", Kind::Rejected(UNSUPPORTED)),
            ("io.l5d.k8s.external", Kind::Rejected(UNSUPPORTED)),
            ("io.l5d.k8s.ns", Kind::Rejected(UNSUPPORTED)),
            ("io.l5d.marathon", Kind::Rejected(UNSUPPORTED)),
            ("io.l5d.zkLeader", Kind::Rejected(UNSUPPORTED)),
            ("io.l5d.curator", Kind::Rejected(UNSUPPORTED)),
            ("io.l5d.rancher", Kind::Rejected(UNSUPPORTED)),
            ("io.l5d.rewrite", Kind::Rejected(UNSUPPORTED)),
            ("io.l5d.dnssrv", Kind::Ok(Which::DnsSrv)),
            ("io.l5d.k8s.istio", Kind::Rejected(UNSUPPORTED)),
        ],
    )?;
    match kind {
        Which::Fs => {
            o.check(ctx, &[NAMER_FS])?;
            let root_dir = o.require(ctx, "rootDir")?.str(ctx, &o.path("rootDir"))?;
            let prefix = namer_prefix(ctx, o, DEFAULT_FS_PREFIX)?;
            Ok(NamerConfig::Fs { root_dir, prefix, transformers: transformers(ctx, o)? })
        }
        Which::K8s => {
            o.check(ctx, &[NAMER_K8S])?;
            Ok(NamerConfig::K8s(k8s_namer(ctx, o)?))
        }
        Which::DnsSrv => {
            o.check(ctx, &[NAMER_DNSSRV])?;
            Ok(NamerConfig::DnsSrv(dnssrv_namer(ctx, o)?))
        }
    }
}

/// `io.l5d.dnssrv`: linkerd's `experimental` (required, as linkerd requires
/// it), `refreshIntervalSeconds`, `dnsHosts`, plus corelink's `srvWeights`,
/// `keepLastGoodSecs` and `idleTtlSecs`.
fn dnssrv_namer(ctx: &mut Ctx, o: &Obj) -> Result<DnsSrvNamerConfig> {
    require_experimental(ctx, o, "io.l5d.dnssrv namer")?;
    let mut dns_hosts = Vec::new();
    for (path, v) in o.seq(ctx, "dnsHosts")? {
        let text = v.str(ctx, &path)?;
        // dnsjava (linkerd's resolver) takes an address or a host name.
        if text.parse::<std::net::IpAddr>().is_err() && !naming::inet::is_dns_host_name(text.as_bytes()) {
            return Err(ctx.invalid(v.mark, &path, format!("{text:?} is neither an IP address nor a DNS host name")));
        }
        dns_hosts.push(text.to_string());
    }
    Ok(DnsSrvNamerConfig {
        prefix: namer_prefix(ctx, o, DEFAULT_DNSSRV_PREFIX)?,
        refresh_interval_secs: o.int(ctx, "refreshIntervalSeconds", 1, 86_400)?.unwrap_or(5),
        dns_hosts,
        srv_weights: o.bool(ctx, "srvWeights")?.unwrap_or(false),
        keep_last_good_secs: o.int(ctx, "keepLastGoodSecs", 0, 86_400)?.unwrap_or(0),
        // linkerd's `bindingCache.idleTtlSecs` default: a bound name unused
        // this long is closed there, which ends its SRV polling.
        idle_ttl_secs: o.int(ctx, "idleTtlSecs", 1, 86_400)?.unwrap_or(600),
        transformers: transformers(ctx, o)?,
    })
}

/// A namer's `prefix`, with the leading `/` added when missing (linkerd's
/// docs write the defaults without it).
fn namer_prefix(ctx: &Ctx, o: &Obj, default: &str) -> Result<String> {
    match o.get("prefix") {
        None => Ok(default.to_string()),
        Some(v) => {
            let text = v.str(ctx, &o.path("prefix"))?;
            let text = if text.starts_with('/') { text } else { format!("/{text}") };
            naming::Path::parse(&text)
                .map_err(|e| ctx.invalid(v.mark, &o.path("prefix"), format!("invalid path: {e}")))?;
            Ok(text)
        }
    }
}

/// `io.l5d.k8s`: linkerd's `host`, `port`, `labelSelector`, plus corelink's
/// `inCluster` (with `tokenPath`, `caCertPath`).
fn k8s_namer(ctx: &mut Ctx, o: &Obj) -> Result<K8sNamerConfig> {
    let prefix = namer_prefix(ctx, o, DEFAULT_K8S_PREFIX)?;
    let api = k8s_api(ctx, o, "host", "port")?;
    let label_selector = match o.get("labelSelector") {
        None => None,
        Some(v) => {
            let text = v.str(ctx, &o.path("labelSelector"))?;
            if text.is_empty() || text.contains(|c: char| c.is_whitespace() || "=,!()".contains(c)) {
                return Err(ctx.invalid(
                    v.mark,
                    &o.path("labelSelector"),
                    format!("{text:?} is not a label key (linkerd's labelSelector names the key; the value comes from the path)"),
                ));
            }
            Some(text)
        }
    };
    Ok(K8sNamerConfig { prefix, api, label_selector, transformers: transformers(ctx, o)? })
}

/// The API server of a k8s namer, the configMap interpreter (linkerd's
/// `host` and `port`: a `kubectl proxy`) or the daemonset transformer
/// (`k8sHost`, `k8sPort`), or corelink's `inCluster` (with `tokenPath`,
/// `caCertPath`).
fn k8s_api(ctx: &Ctx, o: &Obj, host_key: &str, port_key: &str) -> Result<K8sApiConfig> {
    let in_cluster = o.bool(ctx, "inCluster")?.unwrap_or(false);
    let api = if in_cluster {
        for key in [host_key, port_key] {
            if o.has(key) {
                return Err(ctx.invalid(
                    o.key_mark(key),
                    &o.path(key),
                    "with inCluster: true the API server is KUBERNETES_SERVICE_HOST:KUBERNETES_SERVICE_PORT; remove this key (or inCluster to use a kubectl proxy)",
                ));
            }
        }
        let file = |key: &str, name: &str| -> Result<String> {
            match o.get(key) {
                None => Ok(format!("{SERVICE_ACCOUNT_DIR}/{name}")),
                Some(v) => {
                    let text = v.str(ctx, &o.path(key))?;
                    if text.is_empty() {
                        return Err(ctx.invalid(v.mark, &o.path(key), "an empty file name"));
                    }
                    Ok(text)
                }
            }
        };
        K8sApiConfig::InCluster { token_path: file("tokenPath", "token")?, ca_cert_path: file("caCertPath", "ca.crt")? }
    } else {
        for key in ["tokenPath", "caCertPath"] {
            if o.has(key) {
                return Err(ctx.invalid(
                    o.key_mark(key),
                    &o.path(key),
                    format!("only used with inCluster: true ({host_key} and {port_key} name a kubectl proxy, reached without credentials)"),
                ));
            }
        }
        let host = match o.get(host_key) {
            None => DEFAULT_K8S_HOST.to_string(),
            Some(v) => {
                let text = v.str(ctx, &o.path(host_key))?;
                if text.is_empty() || text.contains(['/', ' ']) {
                    return Err(ctx.invalid(
                        v.mark,
                        &o.path(host_key),
                        format!("{text:?} is not a host name or address"),
                    ));
                }
                text
            }
        };
        let port = match o.get(port_key) {
            None => DEFAULT_K8S_PORT,
            Some(v) => v.int(ctx, &o.path(port_key), 1, i64::from(u16::MAX))?,
        };
        K8sApiConfig::Proxy { host, port }
    };
    Ok(api)
}
