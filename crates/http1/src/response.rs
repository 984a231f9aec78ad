//! Response head parsing. Upstreams are not trusted more than clients: any
//! framing ambiguity is an error, answered to the client as a 502, and the
//! upstream connection is dropped rather than reused out of sync.

use std::mem::MaybeUninit;

use super::framing::BodyFraming;
use super::limits::Limits;
use super::request::Method;
use super::tokens::{self, classify, list_items, ConnectionOptions, HeaderKind, HopFields, Version};
use super::ParseError;

#[derive(Debug)]
pub struct ResponseHead<'b, 'h> {
    pub version: Version,
    pub status: u16,
    pub reason: &'b str,
    pub headers: &'h [httparse::Header<'b>],
    pub head_len: usize,
    pub framing: BodyFraming,
    /// The upstream lets us reuse the connection after this response.
    pub keep_alive: bool,
    /// A 1xx other than 101: relay it and expect the final response after it.
    pub informational: bool,
    pub upgrade: Option<&'b [u8]>,
    pub connection_names_fields: bool,
    /// Which of `headers` the parser found hop-by-hop, for the encoder.
    pub(crate) hop_fields: HopFields,
}

/// Parses a response head to a request made with `method`. `upgrade_requested`
/// says whether the request asked to switch protocols, which is the only case
/// where a 101 is acceptable.
pub fn parse_response<'b, 'h>(
    buf: &'b [u8],
    slots: &'h mut [MaybeUninit<httparse::Header<'b>>],
    method: Method,
    upgrade_requested: bool,
    limits: &Limits,
) -> Result<Option<ResponseHead<'b, 'h>>, ParseError> {
    let mut rsp = httparse::Response::new(&mut []);
    let head_len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(&mut rsp, buf, slots) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if buf.len() > limits.max_head_bytes {
                return Err(ParseError::HeadTooLarge);
            }
            return Ok(None);
        }
        Err(httparse::Error::TooManyHeaders) => return Err(ParseError::TooManyHeaders),
        Err(httparse::Error::Version) => return Err(ParseError::Version),
        Err(_) => return Err(ParseError::BadStatus),
    };
    if head_len > limits.max_head_bytes {
        return Err(ParseError::HeadTooLarge);
    }
    if tokens::has_bare_line_ending(&buf[..head_len]) {
        return Err(ParseError::BareLineEnding);
    }
    let httparse::Response { version, code, reason, headers } = rsp;
    let (Some(minor), Some(status)) = (version, code) else {
        return Err(ParseError::BadStatus);
    };
    let headers: &'h [httparse::Header<'b>] = headers;
    if headers.len() > limits.max_headers {
        return Err(ParseError::TooManyHeaders);
    }
    if !(100..=999).contains(&status) {
        return Err(ParseError::BadStatus);
    }
    let version = Version::from_minor(minor);

    let mut content_length: Option<u64> = None;
    let mut transfer_encoding = false;
    let mut chunked_last = false;
    let mut chunked_count = 0;
    let mut connection = ConnectionOptions::default();
    let mut upgrade_value = None;
    let mut hop_fields = HopFields::default();

    for (i, h) in headers.iter().enumerate() {
        let kind = classify(h.name);
        hop_fields.note(i, kind);
        match kind {
            HeaderKind::ContentLength => {
                let n = tokens::parse_content_length(h.value).ok_or(ParseError::BadContentLength)?;
                if content_length.is_some() {
                    return Err(ParseError::DuplicateContentLength);
                }
                content_length = Some(n);
            }
            HeaderKind::TransferEncoding => {
                transfer_encoding = true;
                for coding in list_items(h.value) {
                    chunked_last = coding.eq_ignore_ascii_case(b"chunked");
                    if chunked_last {
                        chunked_count += 1;
                    }
                }
            }
            HeaderKind::Connection => connection.add(h.value),
            HeaderKind::Upgrade => upgrade_value = Some(h.value),
            _ => {}
        }
    }

    let informational = (100..200).contains(&status) && status != 101;
    let framing = if status == 101 {
        if !upgrade_requested || !connection.upgrade || upgrade_value.is_none() {
            return Err(ParseError::BadStatus);
        }
        BodyFraming::Tunnel
    } else if informational || status == 204 || status == 304 || method == Method::Head {
        BodyFraming::Empty
    } else if method == Method::Connect && (200..300).contains(&status) {
        BodyFraming::Tunnel
    } else if transfer_encoding {
        if content_length.is_some() {
            return Err(ParseError::TransferEncodingWithContentLength);
        }
        if version == Version::Http10 {
            return Err(ParseError::TransferEncodingHttp10);
        }
        if chunked_count > 1 {
            return Err(ParseError::TransferEncodingNotChunked);
        }
        // RFC 9112 §6.3 rule 4: a response whose final coding is not chunked
        // is delimited by the connection close.
        if chunked_last {
            BodyFraming::Chunked
        } else {
            BodyFraming::CloseDelimited
        }
    } else {
        match content_length {
            Some(0) => BodyFraming::Empty,
            Some(n) => BodyFraming::Length(n),
            None => BodyFraming::CloseDelimited,
        }
    };

    let keep_alive = match version {
        Version::Http11 => !connection.close,
        Version::Http10 => connection.keep_alive && !connection.close,
    } && framing != BodyFraming::CloseDelimited;

    Ok(Some(ResponseHead {
        version,
        status,
        reason: reason.unwrap_or(""),
        headers,
        head_len,
        framing,
        keep_alive,
        informational,
        upgrade: if status == 101 { upgrade_value } else { None },
        connection_names_fields: connection.names_fields,
        hop_fields,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::HEADER_SLOTS;

    fn parse(buf: &[u8], method: Method) -> Result<Option<(u16, BodyFraming, bool)>, ParseError> {
        let mut slots = [MaybeUninit::uninit(); HEADER_SLOTS];
        parse_response(buf, &mut slots, method, false, &Limits::default())
            .map(|o| o.map(|h| (h.status, h.framing, h.keep_alive)))
    }

    #[test]
    fn framing_by_status_and_method() {
        let get = Method::Get;
        assert_eq!(
            parse(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", get),
            Ok(Some((200, BodyFraming::Length(3), true)))
        );
        assert_eq!(
            parse(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", Method::Head),
            Ok(Some((200, BodyFraming::Empty, true)))
        );
        assert_eq!(parse(b"HTTP/1.1 204 No Content\r\n\r\n", get), Ok(Some((204, BodyFraming::Empty, true))));
        assert_eq!(
            parse(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n", get),
            Ok(Some((304, BodyFraming::Empty, true)))
        );
        assert_eq!(parse(b"HTTP/1.1 100 Continue\r\n\r\n", get), Ok(Some((100, BodyFraming::Empty, true))));
        assert_eq!(parse(b"HTTP/1.1 200 OK\r\n\r\n", get), Ok(Some((200, BodyFraming::CloseDelimited, false))));
        assert_eq!(
            parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", get),
            Ok(Some((200, BodyFraming::Chunked, true)))
        );
        assert_eq!(
            parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", get),
            Ok(Some((200, BodyFraming::CloseDelimited, false)))
        );
        assert_eq!(
            parse(b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", get),
            Ok(Some((200, BodyFraming::Length(1), false)))
        );
        assert_eq!(parse(b"HTTP/1.1 200 OK\r\n\r\n", Method::Connect), Ok(Some((200, BodyFraming::Tunnel, true))));
    }

    #[test]
    fn garbage_is_rejected() {
        let get = Method::Get;
        let bad: &[&[u8]] = &[
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"HTTX/1.1 200 OK\r\n\r\n",
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
            b"HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n",
            b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        ];
        for input in bad {
            assert!(parse(input, get).is_err(), "{}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn switching_protocols_when_asked() {
        let mut slots = [MaybeUninit::uninit(); HEADER_SLOTS];
        let buf = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
        let h = parse_response(buf, &mut slots, Method::Get, true, &Limits::default()).unwrap().unwrap();
        assert_eq!(h.framing, BodyFraming::Tunnel);
        assert_eq!(h.upgrade, Some(&b"websocket"[..]));
    }
}
