//! List `continue` tokens in the real server's format: unpadded URL-safe
//! base64 of `{"v":"meta.k8s.io/v1","rv":<revision>,"start":"<ns>/<name>\u0000"}`
//! (apiserver `storage.EncodeContinue`). Clients treat them as opaque; using
//! the same shape keeps logs and tests that print them realistic.

use serde_json::{json, Value};

const TOKEN_VERSION: &str = "meta.k8s.io/v1";

/// Where a paginated list resumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ContinueToken {
    /// The revision the first page was read at; `-1` means "at the latest"
    /// (handed out in a 410 when that revision was compacted).
    pub revision: i64,
    /// The (namespace, name) of the last object already returned.
    pub after: (String, String),
}

impl ContinueToken {
    pub(crate) fn encode(&self) -> String {
        let start = format!("{}/{}\u{0}", self.after.0, self.after.1);
        let body = json!({"v": TOKEN_VERSION, "rv": self.revision, "start": start});
        base64_url_encode(body.to_string().as_bytes())
    }

    /// `None` for anything that is not a token this server made.
    pub(crate) fn decode(token: &str) -> Option<ContinueToken> {
        let bytes = base64_url_decode(token)?;
        let body: Value = serde_json::from_slice(&bytes).ok()?;
        if body.get("v")?.as_str()? != TOKEN_VERSION {
            return None;
        }
        let revision = body.get("rv")?.as_i64()?;
        if revision == 0 || revision < -1 {
            return None;
        }
        let start = body.get("start")?.as_str()?.strip_suffix('\u{0}')?;
        let (namespace, name) = start.split_once('/')?;
        Some(ContinueToken { revision, after: (namespace.to_string(), name.to_string()) })
    }
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn base64_url_encode(input: &[u8]) -> String {
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let bits = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        let symbols = chunk.len() + 1;
        for position in 0..symbols {
            let index = (bits >> (18 - 6 * position)) & 0x3f;
            out.push(ALPHABET[index as usize] as char);
        }
    }
    out
}

fn base64_url_decode(input: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len() * 3 / 4);
    let mut bits: u32 = 0;
    let mut bit_count = 0;
    for byte in input.bytes() {
        let value = ALPHABET.iter().position(|symbol| *symbol == byte)? as u32;
        bits = (bits << 6) | value;
        bit_count += 6;
        if bit_count >= 8 {
            bit_count -= 8;
            out.push((bits >> bit_count) as u8);
            bits &= (1 << bit_count) - 1;
        }
    }
    // A lone trailing symbol (6 bits) cannot be a valid unpadded encoding.
    if bit_count >= 6 {
        return None;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips() {
        for input in [&b""[..], b"f", b"fo", b"foo", b"foob", b"fooba", b"foobar", &[0xff, 0xfe, 0x00]] {
            assert_eq!(base64_url_decode(&base64_url_encode(input)).as_deref(), Some(input));
        }
        assert_eq!(base64_url_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64_url_encode(b"fo"), "Zm8");
        assert_eq!(base64_url_decode("Z"), None);
        assert_eq!(base64_url_decode("Zm9v!"), None);
    }

    #[test]
    fn tokens_round_trip_and_reject_garbage() {
        let token = ContinueToken { revision: 42, after: ("default".into(), "web-abc".into()) };
        assert_eq!(ContinueToken::decode(&token.encode()), Some(token));
        let latest = ContinueToken { revision: -1, after: ("a".into(), "b".into()) };
        assert_eq!(ContinueToken::decode(&latest.encode()), Some(latest));
        assert_eq!(ContinueToken::decode("not-a-token"), None);
        assert_eq!(ContinueToken::decode(""), None);
        let wrong_version = base64_url_encode(br#"{"v":"x","rv":1,"start":"a/b\u0000"}"#);
        assert_eq!(ContinueToken::decode(&wrong_version), None);
    }
}
