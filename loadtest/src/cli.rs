//! Command line (clap derive) and the validated run configuration built from it.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser;

/// HTTP/1.1 load generator for corelink: closed-loop like wrk, or open-loop at a constant
/// rate with coordinated-omission correction like wrk2.
#[derive(Parser, Debug, Clone)]
#[command(name = "corelink-load", version, about, long_about = None)]
pub struct Args {
    /// Target URL: http://host[:port]/path or https://host[:port]/path
    pub url: String,

    /// Number of connections kept open (or concurrent request slots with --new-conn)
    #[arg(short = 'c', long = "connections", default_value_t = 10)]
    pub connections: usize,

    /// Number of threads, each a current-thread runtime; connections are split among them
    #[arg(short = 't', long = "threads", default_value_t = 1)]
    pub threads: usize,

    /// Measured duration, after warm-up (e.g. 10s, 500ms, 2m). Default 10s unless -n is given
    #[arg(short = 'd', long = "duration", value_parser = parse_duration)]
    pub duration: Option<Duration>,

    /// Stop after this many measured requests (split evenly among connections)
    #[arg(short = 'n', long = "requests")]
    pub requests: Option<u64>,

    /// Open-loop mode: constant total rate in requests/s, latency measured from each
    /// request's scheduled send time (coordinated-omission corrected)
    #[arg(short = 'R', long = "rate")]
    pub rate: Option<f64>,

    /// Warm-up period before measuring; its requests are excluded from all statistics
    #[arg(long = "warmup", value_parser = parse_duration, default_value = "0s")]
    pub warmup: Duration,

    /// Request method
    #[arg(short = 'm', long = "method", default_value = "GET")]
    pub method: String,

    /// Extra request header 'Name: value' (repeatable; a Host header replaces the default)
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,

    /// Request body size in bytes (sent with Content-Length)
    #[arg(long = "body-size", default_value_t = 0)]
    pub body_size: usize,

    /// Open a new connection for every request (measures connect + TLS handshakes)
    #[arg(long = "new-conn")]
    pub new_conn: bool,

    /// Per-request timeout (from the actual send)
    #[arg(long = "timeout", value_parser = parse_duration, default_value = "5s")]
    pub timeout: Duration,

    /// PEM file of CA certificates to verify the server with (https)
    #[arg(long = "cacert", value_name = "FILE")]
    pub cacert: Option<PathBuf>,

    /// Do not verify the server certificate (https)
    #[arg(long = "insecure", short = 'k')]
    pub insecure: bool,

    /// TLS server name to send and verify (default: the URL's host)
    #[arg(long = "sni", value_name = "NAME")]
    pub sni: Option<String>,

    /// Disable TLS session resumption (every handshake is a full one)
    #[arg(long = "no-tls-resume")]
    pub no_tls_resume: bool,

    /// Write the latency percentile distribution (HdrHistogram text format, ms) here
    #[arg(long = "hgrm", value_name = "FILE")]
    pub hgrm: Option<PathBuf>,

    /// Write a JSON summary here
    #[arg(long = "json", value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// Write an SVG latency-by-percentile plot here
    #[arg(long = "svg", value_name = "FILE")]
    pub svg: Option<PathBuf>,

    /// Also print the detailed percentile distribution on stdout
    #[arg(long = "latency", short = 'L')]
    pub print_distribution: bool,
}

/// Parse "10s", "500ms", "2m", "1h", "250us", "1.5s"; a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let v: f64 = num.parse().map_err(|_| format!("invalid duration {s:?} (try 10s, 500ms, 2m)"))?;
    let secs = match unit.trim() {
        "" | "s" | "sec" => v,
        "ms" => v / 1e3,
        "us" | "µs" => v / 1e6,
        "m" | "min" => v * 60.0,
        "h" => v * 3600.0,
        u => return Err(format!("invalid duration unit {u:?} in {s:?}")),
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("invalid duration {s:?}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A parsed target URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub tls: bool,
    /// Host as written (without brackets for IPv6).
    pub host: String,
    pub port: u16,
    /// Path and query, starting with '/'.
    pub path: String,
    /// Value for the Host header (host, plus port if not the default).
    pub authority: String,
}

pub fn parse_url(url: &str) -> Result<Target> {
    let (tls, rest) = if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else {
        bail!("URL must start with http:// or https://: {url}");
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (hostport, tail) = rest.split_at(end);
    let tail = tail.split('#').next().unwrap_or("");
    let path = if tail.starts_with('?') {
        format!("/{tail}")
    } else if tail.is_empty() {
        "/".to_string()
    } else {
        tail.to_string()
    };
    if hostport.contains('@') {
        bail!("user info in URLs is not supported: {url}");
    }
    let default_port = if tls { 443 } else { 80 };
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let close = v6.find(']').context("unterminated '[' in URL host")?;
        let host = &v6[..close];
        let after = &v6[close + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().context("invalid port")?,
            None if after.is_empty() => default_port,
            None => bail!("invalid URL authority: {hostport}"),
        };
        (host.to_string(), port)
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse().context("invalid port")?),
            None => (hostport.to_string(), default_port),
        }
    };
    if host.is_empty() {
        bail!("URL has no host: {url}");
    }
    let bracketed = if host.contains(':') { format!("[{host}]") } else { host.clone() };
    let authority = if port == default_port { bracketed } else { format!("{bracketed}:{port}") };
    Ok(Target { tls, host, port, path, authority })
}

/// How the run ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Measured duration (after warm-up), if bounded by time.
    pub duration: Option<Duration>,
    /// Measured requests, if bounded by count.
    pub requests: Option<u64>,
}

/// TLS options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    pub cacert: Option<PathBuf>,
    pub insecure: bool,
    pub sni: String,
    pub resume: bool,
}

/// Validated configuration for one run.
#[derive(Debug, Clone)]
pub struct Config {
    pub target: Target,
    pub addr: SocketAddr,
    pub connections: usize,
    pub threads: usize,
    pub limits: Limits,
    pub rate: Option<f64>,
    pub warmup: Duration,
    pub timeout: Duration,
    pub new_conn: bool,
    pub tls: Option<TlsOptions>,
    /// The complete request, head and body, sent as is for every request.
    pub request: Vec<u8>,
    pub head_request: bool,
    pub method: String,
}

impl Config {
    pub fn from_args(a: &Args) -> Result<Config> {
        let target = parse_url(&a.url)?;
        if a.connections == 0 {
            bail!("-c must be at least 1");
        }
        if a.threads == 0 {
            bail!("-t must be at least 1");
        }
        let threads = a.threads.min(a.connections);
        if let Some(r) = a.rate {
            if !(r > 0.0 && r.is_finite()) {
                bail!("-R must be a positive rate");
            }
        }
        if a.requests == Some(0) {
            bail!("-n must be at least 1");
        }
        if a.duration == Some(Duration::ZERO) {
            bail!("-d must be positive");
        }
        if a.timeout.is_zero() {
            bail!("--timeout must be positive");
        }
        let duration = match (a.duration, a.requests) {
            (None, None) => Some(Duration::from_secs(10)),
            (d, _) => d,
        };
        let method = a.method.trim().to_string();
        if method.is_empty() || !method.bytes().all(|b| b.is_ascii_graphic()) {
            bail!("invalid method {:?}", a.method);
        }
        let addr = (target.host.as_str(), target.port)
            .to_socket_addrs()
            .with_context(|| format!("resolving {}", target.host))?
            .next()
            .with_context(|| format!("{} resolves to no address", target.host))?;
        let tls = if target.tls {
            if a.insecure && a.cacert.is_some() {
                bail!("--insecure and --cacert are mutually exclusive");
            }
            Some(TlsOptions {
                cacert: a.cacert.clone(),
                insecure: a.insecure,
                sni: a.sni.clone().unwrap_or_else(|| target.host.clone()),
                resume: !a.no_tls_resume,
            })
        } else {
            if a.cacert.is_some() || a.sni.is_some() || a.insecure {
                eprintln!("corelink-load: warning: TLS options are ignored for an http:// URL");
            }
            None
        };
        let request = build_request(&method, &target, &a.headers, a.body_size, a.new_conn)?;
        Ok(Config {
            head_request: method.eq_ignore_ascii_case("HEAD"),
            method,
            target,
            addr,
            connections: a.connections,
            threads,
            limits: Limits { duration, requests: a.requests },
            rate: a.rate,
            warmup: a.warmup,
            timeout: a.timeout,
            new_conn: a.new_conn,
            tls,
            request,
        })
    }
}

impl Config {
    /// The target as a URL (scheme, authority, path).
    pub fn target_url(&self) -> String {
        let scheme = if self.target.tls { "https" } else { "http" };
        let host =
            if self.target.host.contains(':') { format!("[{}]", self.target.host) } else { self.target.host.clone() };
        format!("{scheme}://{host}:{}{}", self.target.port, self.target.path)
    }
}

/// Serialize the request once: request line, Host (unless overridden), user headers,
/// Content-Length for a body, `Connection: close` with --new-conn, then the body.
pub fn build_request(
    method: &str,
    target: &Target,
    headers: &[String],
    body_size: usize,
    new_conn: bool,
) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(256 + body_size);
    out.extend_from_slice(format!("{method} {} HTTP/1.1\r\n", target.path).as_bytes());
    let mut has_host = false;
    let mut has_length = false;
    let mut has_connection = false;
    let mut extra = Vec::new();
    for h in headers {
        let (name, value) = h.split_once(':').with_context(|| format!("header {h:?} is not 'Name: value'"))?;
        let name = name.trim();
        let value = value.trim();
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b)) {
            bail!("invalid header name in {h:?}");
        }
        if value.bytes().any(|b| b == b'\r' || b == b'\n') {
            bail!("invalid header value in {h:?}");
        }
        has_host |= name.eq_ignore_ascii_case("host");
        has_length |= name.eq_ignore_ascii_case("content-length");
        has_connection |= name.eq_ignore_ascii_case("connection");
        extra.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    if !has_host {
        out.extend_from_slice(format!("Host: {}\r\n", target.authority).as_bytes());
    }
    out.extend_from_slice(&extra);
    if !has_length && (body_size > 0 || matches!(method, "POST" | "PUT" | "PATCH")) {
        out.extend_from_slice(format!("Content-Length: {body_size}\r\n").as_bytes());
    }
    if new_conn && !has_connection {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.resize(out.len() + body_size, b'x');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("10").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("250us").unwrap(), Duration::from_micros(250));
        assert!(parse_duration("abc").is_err());
        assert!(parse_duration("5 parsecs").is_err());
    }

    #[test]
    fn urls() {
        let t = parse_url("http://127.0.0.1:8080/path?q=1").unwrap();
        assert_eq!(
            t,
            Target {
                tls: false,
                host: "127.0.0.1".into(),
                port: 8080,
                path: "/path?q=1".into(),
                authority: "127.0.0.1:8080".into()
            }
        );
        let t = parse_url("https://example.test").unwrap();
        assert_eq!((t.tls, t.port, t.path.as_str()), (true, 443, "/"));
        assert_eq!(t.authority, "example.test");
        let t = parse_url("http://[::1]:9000?x").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.path.as_str()), ("::1", 9000, "/?x"));
        assert_eq!(t.authority, "[::1]:9000");
        assert!(parse_url("ftp://x/").is_err());
        assert!(parse_url("http://:80/").is_err());
        assert!(parse_url("http://h:notaport/").is_err());
    }

    #[test]
    fn request_bytes() {
        let t = parse_url("http://127.0.0.1:8080/p").unwrap();
        let r = build_request("GET", &t, &[], 0, false).unwrap();
        assert_eq!(r, b"GET /p HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n");
        let r = build_request("POST", &t, &["Host: svc".into(), "X-A:  b ".into()], 3, true).unwrap();
        assert_eq!(r, b"POST /p HTTP/1.1\r\nHost: svc\r\nX-A: b\r\nContent-Length: 3\r\nConnection: close\r\n\r\nxxx");
        assert!(build_request("GET", &t, &["nocolon".into()], 0, false).is_err());
        assert!(build_request("GET", &t, &["Bad Name: v".into()], 0, false).is_err());
    }
}
