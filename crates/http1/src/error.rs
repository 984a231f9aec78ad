//! Parse errors. Each maps to exactly one status code and `l5d-err` text.

/// Why a message could not be accepted. For requests this decides the status
/// answered to the client; for responses every variant means "garbage from
/// upstream" (502) and the upstream connection is discarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("malformed request line or header")]
    Malformed,
    #[error("unsupported HTTP version")]
    Version,
    #[error("request line too long")]
    LineTooLong,
    #[error("header section too large")]
    HeadTooLarge,
    #[error("too many header fields")]
    TooManyHeaders,
    #[error("bare CR or LF in header section")]
    BareLineEnding,
    #[error("invalid Content-Length")]
    BadContentLength,
    #[error("duplicate Content-Length")]
    DuplicateContentLength,
    #[error("both Transfer-Encoding and Content-Length")]
    TransferEncodingWithContentLength,
    #[error("Transfer-Encoding not ending in chunked")]
    TransferEncodingNotChunked,
    #[error("unsupported transfer coding")]
    UnsupportedTransferCoding,
    #[error("Transfer-Encoding in an HTTP/1.0 message")]
    TransferEncodingHttp10,
    #[error("missing Host header")]
    MissingHost,
    #[error("duplicate Host header")]
    DuplicateHost,
    #[error("invalid Host header")]
    BadHost,
    #[error("request target does not match Host")]
    HostMismatch,
    #[error("invalid request target")]
    BadTarget,
    #[error("unsupported expectation")]
    UnsupportedExpectation,
    #[error("malformed chunked encoding")]
    BadChunk,
    #[error("chunk extension or trailer section too large")]
    ChunkTooLarge,
    #[error("invalid status line")]
    BadStatus,
    #[error("body larger than allowed")]
    BodyTooLarge,
    #[error("informational (1xx) responses larger than a response head may be")]
    InformationalTooLarge,
}

impl ParseError {
    /// The status answered to a client whose request failed with this error.
    pub fn request_status(self) -> u16 {
        match self {
            ParseError::LineTooLong => 414,
            ParseError::HeadTooLarge | ParseError::TooManyHeaders => 431,
            ParseError::UnsupportedTransferCoding => 501,
            ParseError::Version => 505,
            ParseError::UnsupportedExpectation => 417,
            ParseError::BodyTooLarge => 413,
            _ => 400,
        }
    }
}
