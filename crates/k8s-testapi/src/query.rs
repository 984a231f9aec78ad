//! The request target's query string: `application/x-www-form-urlencoded`
//! pairs as Go's `url.ParseQuery` reads them (`+` is a space, `%XX` a byte).

use std::fmt;

/// A query string that is not valid form encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QueryError(pub String);

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Decoded `(name, value)` pairs in request order.
#[derive(Debug, Clone, Default)]
pub(crate) struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    pub(crate) fn parse(raw: &str) -> Result<Query, QueryError> {
        let mut pairs = Vec::new();
        for part in raw.split('&').filter(|part| !part.is_empty()) {
            let (name, value) = part.split_once('=').unwrap_or((part, ""));
            pairs.push((decode_component(name)?, decode_component(value)?));
        }
        Ok(Query { pairs })
    }

    /// The first value of `name`, as Go's `Values.Get` returns it.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.pairs.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }

    /// A boolean parameter: `true`/`1` (and Go's other `ParseBool` spellings).
    pub(crate) fn flag(&self, name: &str) -> Result<Option<bool>, QueryError> {
        match self.get(name) {
            None => Ok(None),
            Some("1" | "t" | "T" | "true" | "TRUE" | "True") => Ok(Some(true)),
            Some("" | "0" | "f" | "F" | "false" | "FALSE" | "False") => Ok(Some(false)),
            Some(other) => Err(QueryError(format!("invalid value for {name}: {other:?}: not a boolean"))),
        }
    }

    /// A non-negative integer parameter (`limit`, `timeoutSeconds`).
    pub(crate) fn number(&self, name: &str) -> Result<Option<u64>, QueryError> {
        match self.get(name) {
            None | Some("") => Ok(None),
            Some(text) => text
                .parse::<i64>()
                .map(|value| Some(value.max(0) as u64))
                .map_err(|_| QueryError(format!("invalid value for {name}: {text:?}: not an integer"))),
        }
    }
}

/// Percent-decodes one component; `+` is a space as in form encoding.
pub(crate) fn decode_component(text: &str) -> Result<String, QueryError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'+' => {
                out.push(b' ');
                index += 1;
            }
            b'%' => {
                let high = bytes.get(index + 1).and_then(|b| hex_value(*b));
                let low = bytes.get(index + 2).and_then(|b| hex_value(*b));
                match (high, low) {
                    (Some(high), Some(low)) => out.push(high << 4 | low),
                    _ => return Err(QueryError(format!("invalid URL escape in {text:?}"))),
                }
                index += 3;
            }
            other => {
                out.push(other);
                index += 1;
            }
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Percent-decodes a path (where `+` is itself, unlike in a query).
pub(crate) fn decode_path(path: &str) -> Result<String, QueryError> {
    decode_component(&path.replace('+', "%2B"))
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_form_encoding_as_kube_writes_it() {
        // kube's `form_urlencoded::Serializer` output for a set-based selector.
        let query = Query::parse("watch=true&labelSelector=env+in+%28a%2Cb%29&limit=500&x").unwrap();
        assert_eq!(query.get("labelSelector"), Some("env in (a,b)"));
        assert_eq!(query.flag("watch").unwrap(), Some(true));
        assert_eq!(query.number("limit").unwrap(), Some(500));
        assert_eq!(query.get("x"), Some(""));
        assert_eq!(query.get("missing"), None);
    }

    #[test]
    fn rejects_bad_escapes_and_values() {
        assert!(Query::parse("a=%zz").is_err());
        assert!(Query::parse("a=%4").is_err());
        assert!(Query::parse("watch=yes").unwrap().flag("watch").is_err());
        assert!(Query::parse("limit=ten").unwrap().number("limit").is_err());
    }
}
