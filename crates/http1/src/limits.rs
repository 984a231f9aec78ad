//! Size limits applied while parsing. Defaults follow linkerd 1.x's HTTP router
//! (`maxHeadersKB: 8`, `maxInitialLineKB: 4`), which in turn follow finagle/netty.

/// Hard upper bound on the header count the parser has room for. The configured
/// limit (`max_headers`) may be lower, never higher; the parser keeps this many
/// header slots on the stack (256 * 32 bytes), so no allocation per request.
pub const HEADER_SLOTS: usize = 256;

/// Default maximum number of header fields (nginx and HAProxy allow ~100).
pub const DEFAULT_MAX_HEADERS: usize = 100;

/// linkerd 1.x `maxHeadersKB` default.
pub const DEFAULT_MAX_HEADERS_KB: usize = 8;

/// linkerd 1.x `maxInitialLineKB` default.
pub const DEFAULT_MAX_INITIAL_LINE_KB: usize = 4;

/// Bound on chunk extensions per chunk line, and on the whole trailer section.
/// Neither has a linkerd key; these are the values netty (under finagle) uses
/// for its chunk-size line and trailers (8 KiB).
pub const MAX_CHUNK_LINE: usize = 4096;
pub const MAX_TRAILER_BYTES: usize = 8192;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Whole head (request/status line + header fields), bytes.
    pub max_head_bytes: usize,
    /// Request line or status line, bytes (414 for requests over it).
    pub max_initial_line: usize,
    /// Number of header fields (431 over it).
    pub max_headers: usize,
}

impl Limits {
    pub fn from_kb(max_headers_kb: usize, max_initial_line_kb: usize, max_headers: usize) -> Self {
        Limits {
            // The head limit covers the header fields *plus* the initial line,
            // as netty's HttpObjectDecoder applies them separately.
            max_head_bytes: (max_headers_kb + max_initial_line_kb) * 1024,
            max_initial_line: max_initial_line_kb * 1024,
            max_headers: max_headers.min(HEADER_SLOTS),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::from_kb(DEFAULT_MAX_HEADERS_KB, DEFAULT_MAX_INITIAL_LINE_KB, DEFAULT_MAX_HEADERS)
    }
}
