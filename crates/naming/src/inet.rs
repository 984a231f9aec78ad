//! The address-naming built-ins: finagle's `/$/inet/<host>/<port>` and
//! linkerd's `/$/io.buoyant.rinet/<port>/<host>`, and reading a host and port
//! back out of their bound ids, so that both resolve through one code path.
//!
//! `rinet` (linkerd/linkerd `namer/core/src/main/scala/io/buoyant/rinet.scala`,
//! test `RinetTest.scala`) is "like the inet namer but takes the hostname and
//! port arguments in the reverse order" (`linkerd/docs/namer.md`). It takes
//! the first two segments whatever they hold and always binds:
//! `Resolver.eval("inet!<host>:<port>")` is a `Name.Bound` even when the port
//! is not a number or the host does not resolve — the address then fails,
//! which fails the request inside that binding instead of letting a dtab
//! alternative take over. Its id is `/$/io.buoyant.rinet/<port>/<host>` (what
//! client TLS `configs` prefixes such as `/$/io.buoyant.rinet/443/{host}`
//! match), the residual the rest. With fewer than two segments it is `~`
//! (unlike inet, no host does not mean localhost).
//!
//! linkerd builds the id with `Path.read(s"/$port/$host")`, which throws for a
//! segment with bytes outside `[A-Za-z0-9_:.#$%-]`; here the id is the two
//! segments as they are, and such a host simply fails to resolve.

use super::path::Path;

/// The segment after `/$` for linkerd's reversed inet namer.
pub const RINET: &str = "io.buoyant.rinet";

/// The host and port a bound inet-style id names, as the id spells them
/// (not yet parsed or resolved).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InetAddress<'a> {
    /// `localhost`, `127.0.0.1`, … (any bytes).
    pub host: &'a [u8],
    /// Meant to be a port number; checked by whoever resolves it.
    pub port: &'a [u8],
}

/// `rinet`'s lookup of `args` (the path after `/$/io.buoyant.rinet`): the
/// bound id (`/$/io.buoyant.rinet/<port>/<host>`) and residual, or None
/// (`~`) with fewer than two segments.
pub fn rinet_bind(args: &Path) -> Option<(Path, Path)> {
    if args.len() < 2 {
        return None;
    }
    let id = Path::from_segments([&b"$"[..], RINET.as_bytes()]).ok()?.concat(&args.take(2));
    Some((id, args.drop(2)))
}

/// The host and port of a bound `/$/inet/<host>/<port>` or
/// `/$/io.buoyant.rinet/<port>/<host>` id; None for any other id.
pub fn inet_address(id: &Path) -> Option<InetAddress<'_>> {
    if id.len() != 4 || id.segment(0) != Some(b"$") {
        return None;
    }
    let (a, b) = (id.segment(2)?, id.segment(3)?);
    match id.segment(1)? {
        b"inet" => Some(InetAddress { host: a, port: b }),
        k if k == RINET.as_bytes() => Some(InetAddress { host: b, port: a }),
        _ => None,
    }
}

/// The host a dtab leaf names directly, for resolving ahead: segment 2 of
/// `/$/inet/<host>[/…]`, segment 3 of `/$/io.buoyant.rinet/<port>/<host>[/…]`.
/// None for other leaves, and for leaves whose host a request supplies
/// (`/$/io.buoyant.rinet/80`).
pub fn leaf_host(leaf: &Path) -> Option<&[u8]> {
    if leaf.segment(0) != Some(b"$") {
        return None;
    }
    match leaf.segment(1)? {
        b"inet" => leaf.segment(2),
        k if k == RINET.as_bytes() => leaf.segment(3),
        _ => None,
    }
}

/// Whether `host` can be asked of DNS as a host name: dot-separated labels
/// of 1 to 63 bytes each (a final dot allowed), at most 253 bytes in all,
/// each label letters, digits, `-` or `_` (RFC 1035's lengths; RFC 1123's
/// characters, plus the `_` that SRV-style and many internal names use).
/// A host a request supplies that fails this is refused before any
/// resolver is asked (it could only answer "invalid name"), so junk such
/// as `127.0.0.1:HTTP` costs no lookup and no share of the lookup rate.
pub fn is_dns_host_name(host: &[u8]) -> bool {
    let name = host.strip_suffix(b".").unwrap_or(host);
    !name.is_empty()
        && name.len() <= 253
        && name.split(|&b| b == b'.').all(|label| {
            (1..=63).contains(&label.len())
                && label.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Path {
        Path::parse(s).unwrap()
    }

    #[test]
    fn rinet_binds_any_two_segments() {
        let (id, residual) = rinet_bind(&p("/12345/localhost/residual")).unwrap();
        assert_eq!(
            (id.show().as_str(), residual.show().as_str()),
            ("/$/io.buoyant.rinet/12345/localhost", "/residual")
        );
        let (id, residual) = rinet_bind(&p("/http/h:1")).unwrap();
        assert_eq!((id.show().as_str(), residual.show().as_str()), ("/$/io.buoyant.rinet/http/h:1", "/"));
        assert_eq!(rinet_bind(&p("/80")), None);
        assert_eq!(rinet_bind(&p("/")), None);
    }

    #[test]
    fn addresses_of_bound_ids() {
        let want = InetAddress { host: b"127.0.0.1", port: b"8080" };
        assert_eq!(inet_address(&p("/$/inet/127.0.0.1/8080")), Some(want));
        assert_eq!(inet_address(&p("/$/io.buoyant.rinet/8080/127.0.0.1")), Some(want));
        assert_eq!(inet_address(&p("/$/inet/8080")), None);
        assert_eq!(inet_address(&p("/$/fixedinet/h/1")), None);
        assert_eq!(inet_address(&p("/$/io.buoyant.rinet/8080/h/x")), None);
        assert_eq!(inet_address(&p("/#/io.l5d.fs/a/b")), None);
    }

    #[test]
    fn hosts_of_leaves() {
        assert_eq!(leaf_host(&p("/$/inet/localhost/80/x")), Some(&b"localhost"[..]));
        assert_eq!(leaf_host(&p("/$/inet/localhost")), Some(&b"localhost"[..]));
        assert_eq!(leaf_host(&p("/$/io.buoyant.rinet/80/localhost")), Some(&b"localhost"[..]));
        assert_eq!(leaf_host(&p("/$/io.buoyant.rinet/80")), None);
        assert_eq!(leaf_host(&p("/$/io.buoyant.porthostPfx/ph/h:1")), None);
        assert_eq!(leaf_host(&p("/svc/localhost")), None);
    }

    #[test]
    fn dns_host_names() {
        for ok in ["localhost", "web.corelink.test", "web.corelink.test.", "_http._tcp.web", "a-b.c9", "1.2.3"] {
            assert!(is_dns_host_name(ok.as_bytes()), "{ok}");
        }
        let long_label = "a".repeat(64);
        let long_name = ["a".repeat(63), "b".repeat(63), "c".repeat(63), "d".repeat(62)].join(".");
        assert_eq!(long_name.len(), 254);
        for bad in [
            "",
            ".",
            "127.0.0.1:HTTP",
            "a..b",
            ".a",
            "a b",
            "caf\u{e9}",
            "a/b",
            long_label.as_str(),
            long_name.as_str(),
        ] {
            assert!(!is_dns_host_name(bad.as_bytes()), "{bad:?}");
        }
        assert!(is_dns_host_name(&long_name.as_bytes()[1..]), "253 bytes is the most");
    }
}
