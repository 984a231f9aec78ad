//! Helpers shared by the corelink fuzz targets.
//!
//! The differential targets (`chunked`, `rechunk`, `request_framing`) feed
//! the same bytes to the code under test whole and split into pieces; the
//! fuzzer chooses the cut points with a small header in front of the payload:
//!
//! ```text
//! byte 0        n = byte % 16: number of cut points
//! 2*n bytes     n little-endian u16 offsets, reduced modulo (payload len + 1)
//! rest          the payload
//! ```
//!
//! An input too short for its header is treated as "no cuts, empty payload".
//! Seeds that want no cuts just start with a `\x00` byte.

/// Maximum number of cut points the header can ask for.
pub const MAX_CUTS: usize = 15;

/// Splits a fuzz input into sorted, deduplicated cut offsets and the payload.
pub fn split_input(data: &[u8]) -> (Vec<usize>, &[u8]) {
    let Some((&n, rest)) = data.split_first() else {
        return (Vec::new(), &[]);
    };
    let n = usize::from(n) % (MAX_CUTS + 1);
    if rest.len() < 2 * n {
        return (Vec::new(), &[]);
    }
    let (header, payload) = rest.split_at(2 * n);
    let mut cuts: Vec<usize> =
        header.chunks_exact(2).map(|c| usize::from(u16::from_le_bytes([c[0], c[1]])) % (payload.len() + 1)).collect();
    cuts.sort_unstable();
    cuts.dedup();
    (cuts, payload)
}

/// The payload cut at `cuts` (sorted offsets): consecutive pieces that
/// concatenate to `payload`. Empty pieces are kept (cut at 0, or at the end),
/// since callers must cope with empty reads too.
pub fn pieces<'a>(payload: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut out = Vec::with_capacity(cuts.len() + 1);
    let mut start = 0;
    for &c in cuts {
        let c = c.min(payload.len()).max(start);
        out.push(&payload[start..c]);
        start = c;
    }
    out.push(&payload[start..]);
    out
}

/// Every 1-byte piece of `payload` (the slowest possible peer).
pub fn byte_pieces(payload: &[u8]) -> Vec<&[u8]> {
    payload.chunks(1).collect()
}

/// Renders bytes for assertion messages: printable ASCII as is, the rest
/// `\xNN`, truncated.
pub fn show_bytes(b: &[u8]) -> String {
    let mut s = String::new();
    for &c in b.iter().take(400) {
        match c {
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n"),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(char::from(c)),
            _ => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    if b.len() > 400 {
        s.push_str(&format!("... ({} bytes)", b.len()));
    }
    s
}
