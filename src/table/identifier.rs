//! Identifiers name a request: they turn it into a destination path under the
//! router's `dstPrefix` (linkerd 1.x `identifier:`, one or a list tried in
//! order). The data path first asks for a *key* — the bytes of the request
//! the identifier reads, written into a reused per-core buffer — so a cached
//! destination costs one hash lookup and no allocation; the path itself is
//! only built on a cache miss, from the key.

use http1::{RequestHead, Version};
use naming::Path;

use config::IdentifierKind;

#[derive(Debug, Clone)]
pub enum Identifier {
    /// `io.l5d.header.token`: one header's value, verbatim, as one segment.
    HeaderToken { header: Box<str>, is_host: bool },
    /// `io.l5d.methodAndHost`: `/1.1/GET/host[/path…]` (`/1.0/GET[/path…]`).
    MethodAndHost { uri_in_dst: bool },
    /// `io.l5d.path`: the first `segments` segments of the request path.
    Path { segments: usize, consume: bool },
    /// `io.l5d.header`: a header whose value is a path (default `l5d-name`).
    Header { header: Box<str> },
    /// `io.l5d.static`: every request gets the same path.
    Static { path: Path },
}

/// Whether the server a request came in on honours its client's linkerd
/// context or clears it (`clearContext`, or a router's `contextHeaders:
/// false`). Cleared fields (`l5d-*`, `Dtab-Local`) are invisible to routing
/// too, not only left out of the forwarded head: linkerd's server stack
/// removes them before the router identifies the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientContext {
    Honoured,
    Cleared,
}

impl ClientContext {
    pub fn cleared(cleared: bool) -> ClientContext {
        if cleared {
            ClientContext::Cleared
        } else {
            ClientContext::Honoured
        }
    }
}

/// A router's identifiers, tried in order.
#[derive(Debug, Clone)]
pub struct Identifiers(Vec<Identifier>);

const SEP: u8 = 0;

impl Identifiers {
    pub fn from_config(kinds: &[IdentifierKind]) -> Result<Identifiers, String> {
        let list = kinds.iter().map(Identifier::from_config).collect::<Result<Vec<_>, _>>()?;
        Ok(Identifiers(list))
    }

    /// Writes the cache key of the first identifier that can name `head` into
    /// `key` (its index, then the bytes it reads). Errors say why none could.
    /// With `context` cleared, the request's `l5d-*` fields are not there.
    pub fn key(&self, head: &RequestHead<'_, '_>, context: ClientContext, key: &mut Vec<u8>) -> Result<(), String> {
        // The message is built only when naming fails: this runs on every
        // request, and was its one allocation (docs/engine.md, issue 16).
        let mut last = None;
        for (i, id) in self.0.iter().enumerate() {
            key.clear();
            key.push(i as u8);
            match id.key(head, context, key) {
                Ok(()) => return Ok(()),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| String::from("no identifier configured")))
    }

    /// Whether [`Identifiers::key`] would write exactly `key` for `head`,
    /// found without writing it: a keep-alive connection's next request
    /// usually has its last one's key (`LastRoute`), and comparing the
    /// request's bytes with it costs less than building the key again to
    /// compare (docs/engine.md, issue 16).
    pub fn matches(&self, head: &RequestHead<'_, '_>, context: ClientContext, key: &[u8]) -> bool {
        let Some((&index, rest)) = key.split_first() else { return false };
        let Some(id) = self.0.get(usize::from(index)) else { return false };
        // The identifiers before it must not name this request. (Their
        // failure builds its message: only a list whose first identifier
        // fails pays that, as building the key does.)
        if self.0[..usize::from(index)].iter().any(|earlier| earlier.key(head, context, &mut Discard).is_ok()) {
            return false;
        }
        let mut same = Compare { rest, same: true };
        id.key(head, context, &mut same).is_ok() && same.same && same.rest.is_empty()
    }

    /// The destination path for a key written by [`Identifiers::key`].
    pub fn name(&self, dst_prefix: &Path, key: &[u8]) -> Result<Path, String> {
        let (&index, rest) = key.split_first().ok_or("empty identification key")?;
        let id = self.0.get(usize::from(index)).ok_or("stale identification key")?;
        id.name(dst_prefix, rest)
    }

    /// How many leading path segments to strip from the request target before
    /// forwarding (`io.l5d.path` with `consume: true`), for the identifier
    /// that produced `key`.
    pub fn consumed_segments(&self, key: &[u8]) -> usize {
        match key.first().and_then(|&i| self.0.get(usize::from(i))) {
            Some(Identifier::Path { segments, consume: true }) => *segments,
            _ => 0,
        }
    }
}

/// Where an identifier writes the bytes of its key: a buffer, or a
/// comparison with a key written before.
trait KeySink {
    fn put(&mut self, bytes: &[u8]);
}

impl KeySink for Vec<u8> {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// Compares the bytes put with `rest`, consuming it.
struct Compare<'a> {
    rest: &'a [u8],
    same: bool,
}

impl KeySink for Compare<'_> {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        match self.rest.split_at_checked(bytes.len()) {
            Some((head, tail)) if self.same && head == bytes => self.rest = tail,
            _ => self.same = false,
        }
    }
}

/// Keeps nothing: whether an identifier names a request at all.
struct Discard;

impl KeySink for Discard {
    #[inline]
    fn put(&mut self, _: &[u8]) {}
}

impl Identifier {
    pub fn from_config(kind: &IdentifierKind) -> Result<Identifier, String> {
        Ok(match kind {
            IdentifierKind::HeaderToken { header } => {
                Identifier::HeaderToken { header: header.as_str().into(), is_host: header.eq_ignore_ascii_case("host") }
            }
            IdentifierKind::MethodAndHost { http_uri_in_dst } => {
                Identifier::MethodAndHost { uri_in_dst: *http_uri_in_dst }
            }
            IdentifierKind::Path { segments, consume } => Identifier::Path { segments: *segments, consume: *consume },
            IdentifierKind::Header { header } => Identifier::Header { header: header.as_str().into() },
            IdentifierKind::Static { path } => {
                Identifier::Static { path: Path::parse(path).map_err(|e| format!("io.l5d.static path {path:?}: {e}"))? }
            }
        })
    }

    fn header<'b>(head: &RequestHead<'b, '_>, context: ClientContext, name: &str) -> Option<&'b [u8]> {
        if name.eq_ignore_ascii_case("host") {
            return head.host.map(str::as_bytes);
        }
        if context == ClientContext::Cleared && http1::is_linkerd_context_field(name) {
            return None;
        }
        head.headers.iter().find(|h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value)
    }

    fn key(&self, head: &RequestHead<'_, '_>, context: ClientContext, key: &mut impl KeySink) -> Result<(), String> {
        match self {
            Identifier::HeaderToken { header, is_host } => {
                let value = if *is_host { head.host.map(str::as_bytes) } else { Self::header(head, context, header) };
                match value {
                    Some(v) if !v.is_empty() => key.put(v),
                    _ => return Err(format!("no {header} header")),
                }
            }
            Identifier::MethodAndHost { uri_in_dst } => {
                key.put(if head.version == Version::Http10 { b"1.0" } else { b"1.1" });
                key.put(&[SEP]);
                key.put(head.method_str.as_bytes());
                key.put(&[SEP]);
                if head.version == Version::Http11 {
                    match head.host {
                        Some(h) if !h.is_empty() => key.put(h.as_bytes()),
                        _ => return Err("no Host header".into()),
                    }
                }
                key.put(&[SEP]);
                if *uri_in_dst {
                    key.put(path_of(head.target).as_bytes());
                }
            }
            Identifier::Path { segments, .. } => {
                let path = path_of(head.target);
                let taken: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).take(*segments).collect();
                if taken.len() < *segments {
                    return Err(format!("the request path has fewer than {segments} segments"));
                }
                for s in taken {
                    key.put(s.as_bytes());
                    key.put(&[SEP]);
                }
            }
            Identifier::Header { header } => match Self::header(head, context, header) {
                Some(v) if !v.is_empty() => key.put(v),
                _ => return Err(format!("no {header} header")),
            },
            Identifier::Static { .. } => {}
        }
        Ok(())
    }

    fn name(&self, dst_prefix: &Path, key: &[u8]) -> Result<Path, String> {
        let segment = |bytes: &[u8]| Path::from_segments([bytes]).map_err(|e| e.to_string());
        match self {
            Identifier::HeaderToken { header, .. } => {
                Ok(dst_prefix.concat(&segment(key).map_err(|e| format!("invalid {header} header: {e}"))?))
            }
            Identifier::MethodAndHost { .. } => {
                let mut parts = key.splitn(4, |&b| b == SEP);
                let (version, method, host, uri) = (parts.next(), parts.next(), parts.next(), parts.next());
                let head = [version.unwrap_or(b"1.1"), method.unwrap_or(b"GET")];
                let host = host.filter(|h| !h.is_empty());
                let uri = uri.unwrap_or_default().split(|&b| b == b'/').filter(|s| !s.is_empty());
                // One path from all the segments: appending them one at a
                // time copied the name once per URI segment, quadratic in a
                // client's URI (2,000 segments fit in a 4 KiB line).
                let segments = dst_prefix.segments().chain(head).chain(host).chain(uri);
                Path::from_segments(segments).map_err(|e| e.to_string())
            }
            Identifier::Path { .. } => {
                let segments = key.split(|&b| b == SEP).filter(|s| !s.is_empty());
                Path::from_segments(dst_prefix.segments().chain(segments)).map_err(|e| e.to_string())
            }
            Identifier::Header { header } => {
                let text = std::str::from_utf8(key).map_err(|_| format!("{header} is not a path"))?;
                Path::parse(text).map_err(|e| format!("{header} is not a path: {e}"))
            }
            Identifier::Static { path } => Ok(path.clone()),
        }
    }
}

/// The target forwarded after `io.l5d.path` with `consume: true` took the
/// first `n` path segments: `/users/42?x` without one segment is `/42?x`.
/// Segments are taken from the path of the URI, so an absolute-form target
/// (`http://h/users/42?x`) is forwarded in origin-form (`/42?x`), as linkerd
/// rewrites the URI from the request's path. The result is empty, a path, or
/// only a query (`?x`): the encoder writes a `/` in front of a target that
/// does not start with one.
pub fn consume_segments(target: &str, n: usize) -> &str {
    let mut rest = origin_part(target);
    for _ in 0..n {
        let trimmed = rest.trim_start_matches('/');
        let end = trimmed.find(['/', '?', '#']).unwrap_or(trimmed.len());
        rest = &trimmed[end..];
    }
    if rest.is_empty() {
        "/"
    } else {
        rest
    }
}

/// The path part of a request target (no query or fragment; the path of an
/// absolute-form target).
fn path_of(target: &str) -> &str {
    let target = origin_part(target);
    &target[..target.find(['?', '#']).unwrap_or(target.len())]
}

/// What follows the authority of an absolute-form target (its path and
/// query: `http://h/a?b` gives `/a?b`, `http://h` gives ``); any other form
/// is returned whole. A target is absolute-form only when it does not start
/// with `/`: a `://` inside an origin-form query (`/a?x=://y/b`) is data.
fn origin_part(target: &str) -> &str {
    if target.starts_with('/') {
        return target;
    }
    match target.find("://") {
        Some(i) => {
            let rest = &target[i + 3..];
            &rest[rest.find(['/', '?', '#']).unwrap_or(rest.len())..]
        }
        None => target,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http1::{parse_request, Limits, HEADER_SLOTS};
    use std::mem::MaybeUninit;

    fn name_of(kinds: &[IdentifierKind], request: &[u8]) -> Result<String, String> {
        let ids = Identifiers::from_config(kinds).unwrap();
        let mut slots = [MaybeUninit::uninit(); HEADER_SLOTS];
        let head = parse_request(request, &mut slots, &Limits::default()).unwrap().unwrap();
        let mut key = Vec::new();
        ids.key(&head, ClientContext::Honoured, &mut key)?;
        ids.name(&Path::parse("/svc").unwrap(), &key).map(|p| p.show())
    }

    #[test]
    fn a_cleared_context_hides_l5d_fields_from_the_identifiers() {
        let ids = Identifiers::from_config(&[
            IdentifierKind::Header { header: "L5D-Name".into() },
            IdentifierKind::HeaderToken { header: "l5d-tenant".into() },
            IdentifierKind::HeaderToken { header: "x-tenant".into() },
        ])
        .unwrap();
        let get = b"GET / HTTP/1.1\r\nHost: b\r\nl5d-name: /s/custom\r\nl5d-tenant: t\r\nx-tenant: x\r\n\r\n";
        let mut slots = [MaybeUninit::uninit(); HEADER_SLOTS];
        let head = parse_request(get, &mut slots, &Limits::default()).unwrap().unwrap();
        let (mut honoured, mut cleared) = (Vec::new(), Vec::new());
        ids.key(&head, ClientContext::Honoured, &mut honoured).unwrap();
        ids.key(&head, ClientContext::Cleared, &mut cleared).unwrap();
        assert_eq!(honoured[0], 0, "l5d-name names the request");
        assert_eq!(cleared, b"\x02x", "only x-tenant is left to name it");
        assert!(ids.matches(&head, ClientContext::Honoured, &honoured));
        assert!(!ids.matches(&head, ClientContext::Cleared, &honoured), "a remembered l5d-name key is not reused");
        assert!(ids.matches(&head, ClientContext::Cleared, &cleared));
        assert!(!ids.matches(&head, ClientContext::Honoured, &cleared));
    }

    #[test]
    fn each_identifier_kind() {
        let get = b"GET /users/42?x=1 HTTP/1.1\r\nHost: serviceB\r\nl5d-name: /s/custom\r\n\r\n";
        assert_eq!(name_of(&[IdentifierKind::default()], get).unwrap(), "/svc/serviceB");
        assert_eq!(
            name_of(&[IdentifierKind::MethodAndHost { http_uri_in_dst: false }], get).unwrap(),
            "/svc/1.1/GET/serviceB"
        );
        assert_eq!(
            name_of(&[IdentifierKind::MethodAndHost { http_uri_in_dst: true }], get).unwrap(),
            "/svc/1.1/GET/serviceB/users/42"
        );
        assert_eq!(name_of(&[IdentifierKind::Path { segments: 1, consume: false }], get).unwrap(), "/svc/users");
        assert_eq!(name_of(&[IdentifierKind::Header { header: "l5d-name".into() }], get).unwrap(), "/s/custom");
        assert_eq!(name_of(&[IdentifierKind::Static { path: "/x/y".into() }], get).unwrap(), "/x/y");
        let v10 = b"GET /a HTTP/1.0\r\n\r\n";
        // Only a target that does not start with `/` is absolute-form: a
        // `://` in an origin-form query names nothing.
        let tricky = b"GET /admin/secret?x=://y/api HTTP/1.1\r\nHost: b\r\n\r\n";
        assert_eq!(name_of(&[IdentifierKind::Path { segments: 1, consume: false }], tricky).unwrap(), "/svc/admin");
        assert_eq!(
            name_of(&[IdentifierKind::MethodAndHost { http_uri_in_dst: true }], tricky).unwrap(),
            "/svc/1.1/GET/b/admin/secret"
        );
        let absolute = b"GET http://b/users/42?x=1 HTTP/1.1\r\nHost: b\r\n\r\n";
        assert_eq!(name_of(&[IdentifierKind::Path { segments: 1, consume: false }], absolute).unwrap(), "/svc/users");
        assert_eq!(name_of(&[IdentifierKind::MethodAndHost { http_uri_in_dst: false }], v10).unwrap(), "/svc/1.0/GET");
    }

    #[test]
    fn consumed_segments_are_stripped() {
        assert_eq!(consume_segments("/users/42?x=1", 1), "/42?x=1");
        assert_eq!(consume_segments("/users", 1), "/");
        assert_eq!(consume_segments("/users?x", 1), "?x");
        assert_eq!(consume_segments("//a/b/c", 2), "/c");
        // Absolute-form: from the path of the URI, forwarded in origin-form.
        assert_eq!(consume_segments("http://h/users/42?x=1", 1), "/42?x=1");
        assert_eq!(consume_segments("http://h/users", 1), "/");
        assert_eq!(consume_segments("http://h/users?x", 1), "?x");
    }

    #[test]
    fn origin_part_of_each_target_form() {
        assert_eq!(origin_part("/a/b?c=://d/e"), "/a/b?c=://d/e");
        assert_eq!(origin_part("http://h:1/a/b?c"), "/a/b?c");
        assert_eq!(origin_part("HTTP://h?c"), "?c");
        assert_eq!(origin_part("http://h"), "");
        assert_eq!(origin_part("h:443"), "h:443");
        assert_eq!(origin_part("*"), "*");
    }

    #[test]
    fn a_list_is_tried_in_order() {
        let kinds = [IdentifierKind::Header { header: "x-dst".into() }, IdentifierKind::default()];
        assert_eq!(name_of(&kinds, b"GET / HTTP/1.1\r\nHost: b\r\n\r\n").unwrap(), "/svc/b");
        assert_eq!(name_of(&kinds, b"GET / HTTP/1.1\r\nHost: b\r\nx-dst: /o/v\r\n\r\n").unwrap(), "/o/v");
        let err =
            name_of(&[IdentifierKind::Path { segments: 2, consume: true }], b"GET /a HTTP/1.1\r\nHost: b\r\n\r\n");
        assert!(err.unwrap_err().contains("fewer than 2"));
        // When every identifier fails, the last one's reason is reported.
        let kinds = [IdentifierKind::Path { segments: 2, consume: false }, IdentifierKind::default()];
        assert_eq!(name_of(&kinds, b"GET /a HTTP/1.0\r\n\r\n").unwrap_err(), "no Host header");
        assert_eq!(name_of(&[], b"GET /a HTTP/1.1\r\nHost: b\r\n\r\n").unwrap_err(), "no identifier configured");
    }

    /// `matches` agrees with building the key and comparing, for every
    /// identifier kind and a list, on requests that share parts (host,
    /// method, path prefix, a header) and differ in others.
    #[test]
    fn matching_a_key_is_building_it_and_comparing() {
        let requests: [&[u8]; 9] = [
            b"GET /users/42?x=1 HTTP/1.1\r\nHost: serviceB\r\nl5d-name: /s/custom\r\n\r\n",
            b"GET /users/43 HTTP/1.1\r\nHost: serviceB\r\n\r\n",
            b"POST /users/42 HTTP/1.1\r\nHost: serviceB\r\nContent-Length: 0\r\n\r\n",
            b"GET /users/42 HTTP/1.1\r\nHost: serviceBB\r\nl5d-name: /s/custom\r\n\r\n",
            b"GET /users/42 HTTP/1.1\r\nHost: service\r\nl5d-name: /s/custo\r\n\r\n",
            b"GET /users HTTP/1.1\r\nHost: serviceB\r\n\r\n",
            b"GET /users/42 HTTP/1.0\r\n\r\n",
            b"GET /a/users HTTP/1.1\r\nHost: a\r\nl5d-name: /s/custom\r\n\r\n",
            b"GET http://x/users/42 HTTP/1.1\r\nHost: x\r\n\r\n",
        ];
        let lists: Vec<Vec<IdentifierKind>> = vec![
            vec![IdentifierKind::default()],
            vec![IdentifierKind::MethodAndHost { http_uri_in_dst: false }],
            vec![IdentifierKind::MethodAndHost { http_uri_in_dst: true }],
            vec![IdentifierKind::Path { segments: 1, consume: false }],
            vec![IdentifierKind::Path { segments: 2, consume: true }],
            vec![IdentifierKind::Header { header: "l5d-name".into() }],
            vec![IdentifierKind::Static { path: "/x/y".into() }],
            vec![IdentifierKind::Header { header: "l5d-name".into() }, IdentifierKind::default()],
            vec![IdentifierKind::Path { segments: 2, consume: false }, IdentifierKind::default()],
        ];
        for kinds in &lists {
            let ids = Identifiers::from_config(kinds).unwrap();
            let key_of = |request: &[u8]| {
                let mut slots = [MaybeUninit::uninit(); HEADER_SLOTS];
                let head = parse_request(request, &mut slots, &Limits::default()).unwrap().unwrap();
                let mut key = Vec::new();
                ids.key(&head, ClientContext::Honoured, &mut key).ok().map(|()| key)
            };
            for a in requests {
                let Some(key) = key_of(a) else { continue };
                for b in requests {
                    let mut slots = [MaybeUninit::uninit(); HEADER_SLOTS];
                    let head = parse_request(b, &mut slots, &Limits::default()).unwrap().unwrap();
                    let same = key_of(b).as_deref() == Some(&key[..]);
                    assert_eq!(
                        ids.matches(&head, ClientContext::Honoured, &key),
                        same,
                        "{kinds:?}: {:?} against the key of {:?}",
                        b,
                        a
                    );
                }
            }
            let mut slots = [MaybeUninit::uninit(); HEADER_SLOTS];
            let head = parse_request(requests[0], &mut slots, &Limits::default()).unwrap().unwrap();
            assert!(!ids.matches(&head, ClientContext::Honoured, &[]));
            assert!(!ids.matches(&head, ClientContext::Honoured, &[9]));
        }
    }
}
