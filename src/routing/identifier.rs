//! Identifiers name a request: they turn it into a destination path under the
//! router's `dstPrefix` (linkerd 1.x `identifier:`). The data path calls
//! [`Identifier::key`] first, which borrows from the request and needs no
//! allocation, so a cached destination costs one hash lookup.

use crate::config::IdentifierConfig;
use crate::http1::RequestHead;

use super::path::Path;

#[derive(Debug, Clone)]
pub enum Identifier {
    /// `io.l5d.header.token`: one header's value, verbatim, as one segment.
    HeaderToken { header: Box<str>, is_host: bool },
}

impl Identifier {
    pub fn from_config(config: &IdentifierConfig) -> Identifier {
        match config {
            IdentifierConfig::HeaderToken { header } => {
                Identifier::HeaderToken { header: header.as_str().into(), is_host: header.eq_ignore_ascii_case("host") }
            }
        }
    }

    /// The part of the request this identifier reads, or why it cannot name it.
    pub fn key<'b>(&self, head: &RequestHead<'b, '_>) -> Result<&'b [u8], String> {
        match self {
            Identifier::HeaderToken { header, is_host } => {
                let value = if *is_host {
                    head.host.map(str::as_bytes)
                } else {
                    head.headers.iter().find(|h| h.name.eq_ignore_ascii_case(header)).map(|h| h.value)
                };
                match value {
                    Some(v) if !v.is_empty() => Ok(v),
                    _ => Err(format!("no {header} header")),
                }
            }
        }
    }

    /// The destination path for a key: `dstPrefix ++ /<value>`.
    pub fn name(&self, dst_prefix: &Path, key: &[u8]) -> Result<Path, String> {
        match self {
            Identifier::HeaderToken { header, .. } => {
                let segment = Path::from_segments([key]).map_err(|e| format!("invalid {header} header: {e}"))?;
                Ok(dst_prefix.concat(&segment))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http1::{parse_request, Limits, HEADER_SLOTS};
    use std::mem::MaybeUninit;

    #[test]
    fn host_names_one_segment() {
        let id = Identifier::from_config(&IdentifierConfig::default());
        let buf = b"GET / HTTP/1.1\r\nHost: serviceB\r\n\r\n";
        let mut slots = [MaybeUninit::uninit(); HEADER_SLOTS];
        let head = parse_request(buf, &mut slots, &Limits::default()).unwrap().unwrap();
        let key = id.key(&head).unwrap();
        let name = id.name(&Path::parse("/svc").unwrap(), key).unwrap();
        assert_eq!(name.show(), "/svc/serviceB");
        // A host with a port stays one segment, as in linkerd.
        let name = id.name(&Path::parse("/svc").unwrap(), b"b:8080").unwrap();
        assert_eq!(name.len(), 2);
    }

    #[test]
    fn missing_header_is_an_error() {
        let id = Identifier::from_config(&IdentifierConfig::HeaderToken { header: "x-dst".into() });
        let buf = b"GET / HTTP/1.1\r\nHost: b\r\n\r\n";
        let mut slots = [MaybeUninit::uninit(); HEADER_SLOTS];
        let head = parse_request(buf, &mut slots, &Limits::default()).unwrap().unwrap();
        assert_eq!(id.key(&head).unwrap_err(), "no x-dst header");
    }
}
