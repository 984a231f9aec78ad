//! linkerd's built-in rewriting namers: `/$/<kind>/<args…>` names that turn
//! into another path (finagle `Name.Path`), which is then delegated again.
//!
//! | kind | args | rewritten to |
//! |---|---|---|
//! | `io.buoyant.porthostPfx` | `/<pfx>/<host>:<port>[/rest]` | `/<pfx>/<port>/<host>[/rest]` |
//! | `io.buoyant.hostportPfx` | `/<pfx>/<host>:<port>[/rest]` | `/<pfx>/<host>/<port>[/rest]` |
//! | `io.buoyant.http.domainToPathPfx` | `/<pfx>/<a.b.c>[/rest]` | `/<pfx>/c/b/a[/rest]` |
//! | `io.buoyant.http.subdomainOfPfx` | `/<domain>/<pfx>/<sub>.<domain>[:port][/rest]` | `/<pfx>/<sub>[/rest]` |
//!
//! Sources (linkerd/linkerd 1.7.5): `namer/core/src/main/scala/io/buoyant/`
//! `RewritingNamer.scala` (a rewrite that does not match is `~`, so a dtab
//! alternative takes over), `hostport.scala` (`HostColonPort`, `hostportPfx`,
//! `porthostPfx`), `http.scala` (`Match.host`, `Match.dropPort`,
//! `subdomainOfPfx`, `domainToPathPfx`); tests in
//! `namer/core/src/test/scala/io/buoyant/{HostPortTest,HttpTest}.scala`.
//!
//! The quirks kept, because a dtab's fall-through depends on them:
//!
//! * The prefix is exactly one segment (`path.take(2)` in linkerd).
//! * `host:port` is Java's `s.split(":")`, which drops trailing empty
//!   strings: `h:80:` and `h:80::` match as `h`, `80`; `h:80:x`, `h` and
//!   `::1` / `[::1]:80` (IPv6 literals) do not (`~`). The port must be a
//!   DNS label as linkerd's `DnsLabel` regex has it: `[a-z0-9][-a-z0-9]*`,
//!   at most 63 bytes, so `http` is a port and `HTTP` or `8080x_` are not.
//!   The host is anything without a `:`.
//! * A rewrite that would produce an empty segment (`:8080`, whose host is
//!   empty; `a..b` or `.a` for domainToPathPfx) is an error, not `~`:
//!   finagle's `Path` constructor rejects empty segments and the exception
//!   fails the binding ([`RewriteError::EmptySegment`]).
//! * `domainToPathPfx` and `subdomainOfPfx` only take hosts matching
//!   linkerd's `Match.host`, `[A-Za-z0-9.:_-]+` (so `a:80` is a "domain":
//!   `a.b:80` becomes `/pfx/b:80/a`); `a.b.` drops its trailing dot as
//!   Java's split does, and `.` alone leaves just `/pfx`.
//! * `subdomainOfPfx` drops a port (`:` at index > 0) from the host only,
//!   compares case-sensitively, and is `~` when the subdomain is empty
//!   (`.a.b` of `a.b`). The subdomain keeps its dots (`x.y` of `x.y.a.b`).
//!
//! One deliberate difference: segments are bytes here, where linkerd decodes
//! them as UTF-8 (replacing invalid sequences with U+FFFD) before
//! re-encoding; the bytes of the prefix and host are kept as they are.

use super::path::{Path, PathError};

/// The rewriting namers linkerd ships under `/$/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rewriter {
    /// `io.buoyant.porthostPfx`: `/pfx/host:port` → `/pfx/port/host`.
    PortHostPfx,
    /// `io.buoyant.hostportPfx`: `/pfx/host:port` → `/pfx/host/port`.
    HostPortPfx,
    /// `io.buoyant.http.domainToPathPfx`: `/pfx/a.b.c` → `/pfx/c/b/a`.
    DomainToPathPfx,
    /// `io.buoyant.http.subdomainOfPfx`: `/domain/pfx/sub.domain` → `/pfx/sub`.
    SubdomainOfPfx,
}

/// Why a rewriting namer failed (linkerd: an exception, so the binding
/// fails instead of falling through to a dtab alternative).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RewriteError {
    /// The rewritten path would have an empty segment, which finagle's
    /// `Path` rejects (`requirement failed`).
    #[error("{kind} cannot rewrite {args}: the result would have an empty segment")]
    EmptySegment {
        /// The namer.
        kind: &'static str,
        /// The path after `/$/<kind>`.
        args: Path,
    },
}

impl Rewriter {
    /// Every rewriting namer.
    pub const ALL: [Rewriter; 4] =
        [Rewriter::PortHostPfx, Rewriter::HostPortPfx, Rewriter::DomainToPathPfx, Rewriter::SubdomainOfPfx];

    /// The namer for the segment after `/$`, if it is one of these.
    pub fn from_kind(kind: &[u8]) -> Option<Rewriter> {
        Rewriter::ALL.into_iter().find(|r| r.kind().as_bytes() == kind)
    }

    /// The segment after `/$` (linkerd's class name).
    pub fn kind(self) -> &'static str {
        match self {
            Rewriter::PortHostPfx => "io.buoyant.porthostPfx",
            Rewriter::HostPortPfx => "io.buoyant.hostportPfx",
            Rewriter::DomainToPathPfx => "io.buoyant.http.domainToPathPfx",
            Rewriter::SubdomainOfPfx => "io.buoyant.http.subdomainOfPfx",
        }
    }

    /// Rewrites `args` (the path after `/$/<kind>`): `Ok(None)` when it does
    /// not match (`~`), else the new path with the unconsumed segments
    /// appended.
    pub fn rewrite(self, args: &Path) -> Result<Option<Path>, RewriteError> {
        let (head, used): (Option<Vec<&[u8]>>, usize) = match self {
            Rewriter::PortHostPfx | Rewriter::HostPortPfx => {
                let head = match (args.segment(0), args.segment(1)) {
                    (Some(pfx), Some(hp)) => host_colon_port(hp).map(|(host, port)| match self {
                        Rewriter::PortHostPfx => vec![pfx, port, host],
                        _ => vec![pfx, host, port],
                    }),
                    _ => None,
                };
                (head, 2)
            }
            Rewriter::DomainToPathPfx => {
                let head = match (args.segment(0), args.segment(1)) {
                    (Some(pfx), Some(host)) if is_match_host(host) => {
                        let mut v = vec![pfx];
                        v.extend(java_split(host, b'.').into_iter().rev());
                        Some(v)
                    }
                    _ => None,
                };
                (head, 2)
            }
            Rewriter::SubdomainOfPfx => {
                let head = match (args.segment(0), args.segment(1), args.segment(2)) {
                    (Some(domain), Some(pfx), Some(host)) if is_match_host(domain) && is_match_host(host) => {
                        subdomain(domain, host).filter(|sub| !sub.is_empty()).map(|sub| vec![pfx, sub])
                    }
                    _ => None,
                };
                (head, 3)
            }
        };
        let Some(head) = head else { return Ok(None) };
        let rest = args.drop(used);
        match Path::from_segments(head.into_iter().chain(rest.segments())) {
            Ok(p) => Ok(Some(p)),
            Err(PathError::EmptySegment { .. }) => {
                Err(RewriteError::EmptySegment { kind: self.kind(), args: args.clone() })
            }
        }
    }
}

/// Java's `s.split(sep)` for a one-character separator: every piece, then
/// trailing empty pieces dropped (an input of only separators gives none).
fn java_split(s: &[u8], sep: u8) -> Vec<&[u8]> {
    let mut pieces: Vec<&[u8]> = s.split(|&b| b == sep).collect();
    while pieces.last().is_some_and(|p| p.is_empty()) {
        pieces.pop();
    }
    pieces
}

/// linkerd's `HostColonPort`: `s.split(":")` must give exactly a host and a
/// DNS-label port of at most 63 bytes.
fn host_colon_port(s: &[u8]) -> Option<(&[u8], &[u8])> {
    match java_split(s, b':').as_slice() {
        [host, port] if is_dns_label(port) && port.len() <= 63 => Some((host, port)),
        _ => None,
    }
}

/// linkerd's `DnsLabel` regex `[a-z0-9][-a-z0-9]*[a-z0-9]?`, matched whole:
/// any non-empty run of `[-a-z0-9]` not starting with `-`.
fn is_dns_label(s: &[u8]) -> bool {
    s.first().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && s.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

/// linkerd's `Match.host`, `^[A-Za-z0-9.:_-]+$`: "very coarse host matching
/// so that we can support dns names, ipv4, and ipv6".
fn is_match_host(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b':' | b'_' | b'-'))
}

/// linkerd's `Match.subdomain`: the host with any port dropped (a `:` at
/// index 0 is kept), minus the suffix `.domain`; None if it lacks it.
fn subdomain<'a>(domain: &[u8], host: &'a [u8]) -> Option<&'a [u8]> {
    let host = match host.iter().position(|&b| b == b':') {
        Some(i) if i > 0 => &host[..i],
        _ => host,
    };
    let sub = host.strip_suffix(domain)?.strip_suffix(b".")?;
    Some(sub)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Path {
        Path::parse(s).unwrap()
    }
    fn rw(r: Rewriter, args: &str) -> Result<Option<String>, RewriteError> {
        r.rewrite(&p(args)).map(|o| o.map(|p| p.show()))
    }
    fn ok(s: &str) -> Result<Option<String>, RewriteError> {
        Ok(Some(s.to_string()))
    }

    #[test]
    fn kinds_round_trip() {
        for r in Rewriter::ALL {
            assert_eq!(Rewriter::from_kind(r.kind().as_bytes()), Some(r));
        }
        assert_eq!(Rewriter::from_kind(b"io.buoyant.http.anyMethod"), None);
        assert_eq!(Rewriter::from_kind(b"io.buoyant.rinet"), None);
    }

    /// linkerd's HostPortTest, plus the edges of `split(":")`.
    #[test]
    fn hostport_and_porthost() {
        use Rewriter::{HostPortPfx as H, PortHostPfx as P};
        assert_eq!(rw(H, "/ia/127.1:8080/etc"), ok("/ia/127.1/8080/etc"));
        assert_eq!(rw(H, "/ia/google.com:8180/etc"), ok("/ia/google.com/8180/etc"));
        assert_eq!(rw(H, "/ia/google.com:8180:abcdef/etc"), Ok(None));
        assert_eq!(rw(P, "/ia/127.1:8080/etc"), ok("/ia/8080/127.1/etc"));
        assert_eq!(rw(H, "/ia/google.com:http/etc"), ok("/ia/google.com/http/etc"));
        assert_eq!(rw(H, "/ia/127.1:http/etc"), ok("/ia/127.1/http/etc"));
        assert_eq!(rw(H, "/ia/google.com:http:abcdef/etc"), Ok(None));
        assert_eq!(rw(P, "/ia/127.1:http/etc"), ok("/ia/http/127.1/etc"));
        // No residual.
        assert_eq!(rw(P, "/ph/localhost:80"), ok("/ph/80/localhost"));
        // No port: negative, so a dtab alternative takes over.
        assert_eq!(rw(P, "/ph/localhost"), Ok(None));
        assert_eq!(rw(P, "/ph/localhost:"), Ok(None));
        // Too short: negative.
        assert_eq!(rw(P, "/ph"), Ok(None));
        assert_eq!(rw(P, "/"), Ok(None));
        // Java's split drops trailing empty strings.
        assert_eq!(rw(P, "/ph/h:80:"), ok("/ph/80/h"));
        assert_eq!(rw(P, "/ph/h:80::"), ok("/ph/80/h"));
        assert_eq!(rw(P, "/ph/h::80"), Ok(None));
        // Ports are DNS labels: lowercase, digits, '-' not first, ≤ 63.
        assert_eq!(rw(P, "/ph/h:HTTP"), Ok(None));
        assert_eq!(rw(P, "/ph/h:-80"), Ok(None));
        assert_eq!(rw(P, "/ph/h:80-"), ok("/ph/80-/h"));
        assert_eq!(rw(P, "/ph/h:8_0"), Ok(None));
        let long = "a".repeat(63);
        assert_eq!(rw(P, &format!("/ph/h:{long}")), ok(&format!("/ph/{long}/h")));
        assert_eq!(rw(P, &format!("/ph/h:{long}a")), Ok(None));
        // IPv6 literals do not split into host and port.
        assert_eq!(rw(P, "/ph/::1"), Ok(None));
        assert_eq!(rw(P, "/ph/\\x5b::1\\x5d:8080"), Ok(None));
        assert_eq!(rw(P, "/ph/2001:db8::1"), Ok(None));
        // An empty host: finagle's Path rejects the empty segment.
        assert_eq!(
            rw(P, "/ph/:8080/x"),
            Err(RewriteError::EmptySegment { kind: "io.buoyant.porthostPfx", args: p("/ph/:8080/x") })
        );
        assert!(rw(H, "/ph/:8080").is_err());
        // The host is anything without ':' (bytes kept).
        assert_eq!(rw(P, "/ph/a\\x2fb\\xff:1"), ok("/ph/1/a\\x2fb\\xff"));
        // The prefix is one segment: a second one is taken as host:port.
        assert_eq!(rw(P, "/a/b/h:1"), Ok(None));
    }

    /// linkerd's HttpTest (domainToPathPfx, subdomainOfPfx), plus edges.
    #[test]
    fn domain_to_path_pfx() {
        use Rewriter::DomainToPathPfx as D;
        assert_eq!(rw(D, "/pfx/foo.buoyant.io"), ok("/pfx/io/buoyant/foo"));
        assert_eq!(rw(D, "/pfx/foo.buoyant.io/resource/name"), ok("/pfx/io/buoyant/foo/resource/name"));
        assert_eq!(rw(D, "/pfx/single"), ok("/pfx/single"));
        assert_eq!(rw(D, "/pfx/a.b:8080"), ok("/pfx/b:8080/a"));
        assert_eq!(rw(D, "/pfx/a_b.C-d"), ok("/pfx/C-d/a_b"));
        assert_eq!(rw(D, "/pfx/a.b."), ok("/pfx/b/a"));
        assert_eq!(rw(D, "/pfx/./x"), ok("/pfx/x"));
        // Not a Match.host: negative.
        assert_eq!(rw(D, "/pfx/a%b"), Ok(None));
        assert_eq!(rw(D, "/pfx/a\\x2fb"), Ok(None));
        assert_eq!(rw(D, "/pfx"), Ok(None));
        // Empty labels inside or in front: an error (finagle's Path).
        assert!(matches!(rw(D, "/pfx/a..b"), Err(RewriteError::EmptySegment { .. })));
        assert!(matches!(rw(D, "/pfx/.a"), Err(RewriteError::EmptySegment { .. })));
    }

    #[test]
    fn subdomain_of_pfx() {
        use Rewriter::SubdomainOfPfx as S;
        assert_eq!(rw(S, "/a.b/foo/bar.a.b/bah"), ok("/foo/bar/bah"));
        assert_eq!(rw(S, "/a.b/foo/bar_suffix.a.b/bah"), ok("/foo/bar_suffix/bah"));
        assert_eq!(rw(S, "/a.b/foo/bar-suffix.a.b/bah"), ok("/foo/bar-suffix/bah"));
        assert_eq!(rw(S, "/a.b/foo/bar.a.b:9090/bah"), ok("/foo/bar/bah"));
        assert_eq!(rw(S, "/buoyant.io/pfx/foo.buoyant.io/resource/name"), ok("/pfx/foo/resource/name"));
        assert_eq!(rw(S, "/a.b/foo/x.y.a.b"), ok("/foo/x.y"));
        // Not under the domain, the domain itself, an empty subdomain, a
        // different case, a port before the suffix: negative.
        assert_eq!(rw(S, "/a.b/foo/bar.c.d"), Ok(None));
        assert_eq!(rw(S, "/a.b/foo/a.b"), Ok(None));
        assert_eq!(rw(S, "/a.b/foo/.a.b"), Ok(None));
        assert_eq!(rw(S, "/a.b/foo/bar.A.B"), Ok(None));
        assert_eq!(rw(S, "/a.b/foo/xa.b"), Ok(None));
        assert_eq!(rw(S, "/a.b/foo/bar:1.a.b"), Ok(None));
        // A ':' at index 0 is not a port.
        assert_eq!(rw(S, "/a.b/foo/:x.a.b"), ok("/foo/:x"));
        // Not Match.host (domain or host), or too short.
        assert_eq!(rw(S, "/a.b/foo/b%r.a.b"), Ok(None));
        assert_eq!(rw(S, "/a%b/foo/bar.a%b"), Ok(None));
        assert_eq!(rw(S, "/a.b/foo"), Ok(None));
        // The prefix segment may be anything.
        assert_eq!(rw(S, "/a.b/\\x00/bar.a.b"), ok("/\\x00/bar"));
    }

    #[test]
    fn split_is_javas() {
        assert_eq!(java_split(b"a:b", b':'), vec![&b"a"[..], b"b"]);
        assert_eq!(java_split(b":a", b':'), vec![&b""[..], b"a"]);
        assert_eq!(java_split(b"a::", b':'), vec![&b"a"[..]]);
        assert!(java_split(b":::", b':').is_empty());
        assert_eq!(java_split(b"abc", b':'), vec![&b"abc"[..]]);
    }
}
