//! Sans-IO HTTP/1.1: head parsing (httparse), message framing (RFC 9112 §6),
//! the incremental chunked decoder and its canonical re-encoder, and head
//! encoding for forwarding.
//!
//! Nothing here touches a socket or a clock: callers feed bytes and get back
//! parsed heads, framing decisions and encoded bytes. That keeps it fuzzable and
//! shared by both I/O backends.

mod chunked;
mod encode;
mod error;
mod framing;
mod limits;
mod rechunk;
mod request;
mod response;
mod tokens;

pub use chunked::{ChunkedDecoder, ChunkedEvent, ChunkedProgress};
pub use encode::{
    connection_names, encode_cleared_error_response, encode_error_response, encode_nack_response, encode_request_head,
    encode_request_head_with, encode_response_head, is_linkerd_context_field, reason_phrase, ResponseHeadOptions,
};
pub use error::ParseError;
pub use framing::{BodyFraming, BodyProgress, BodyReader};
pub use limits::{Limits, HEADER_SLOTS};
pub use rechunk::{forbidden_in_trailers, Rechunker};
pub use request::{parse_request, Method, RequestHead};
pub use response::{parse_response, ResponseHead};
pub use tokens::Version;

/// The `Via` pseudonym corelink adds (RFC 9110 §7.6.3), as linkerd adds `1.1 linkerd`.
pub const VIA_PSEUDONYM: &str = "corelink";
