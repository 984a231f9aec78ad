//! A small strict chunked decoder (RFC 9112 §7.1), written here so that tests
//! check corelink's chunked output with a decoder independent of corelink's
//! own: chunk size = 1*HEXDIG (at most 15 digits), optional `;extension`s
//! (checked for control bytes, otherwise ignored), CRLF after every line and
//! after every chunk's data, trailer field lines after the last chunk, then an
//! empty line. A bare CR or LF anywhere in the framing is an error.

/// Decodes what `buf` holds of a chunked body, appending the data of every
/// complete chunk to `body`. Returns how many bytes it consumed (whole chunks
/// only, so the caller drains them and calls again once more has arrived) and
/// whether the body ended (last chunk, trailers and final CRLF all consumed).
pub fn decode(buf: &[u8], body: &mut Vec<u8>) -> Result<(usize, bool), String> {
    let mut at = 0;
    loop {
        let Some((size_line, data)) = line(buf, at)? else { return Ok((at, false)) };
        let size = chunk_size(size_line)?;
        if size == 0 {
            let mut next = data;
            loop {
                let Some((field, after)) = line(buf, next)? else { return Ok((at, false)) };
                next = after;
                if field.is_empty() {
                    return Ok((next, true));
                }
                trailer(field)?;
            }
        }
        if buf.len() - data < size + 2 {
            return Ok((at, false));
        }
        if &buf[data + size..data + size + 2] != b"\r\n" {
            return Err(format!("chunk of {size} bytes not followed by CRLF"));
        }
        body.extend_from_slice(&buf[data..data + size]);
        at = data + size + 2;
    }
}

/// The next CRLF-terminated line from `at` and where the one after it starts;
/// `None` while its CRLF has not arrived.
fn line(buf: &[u8], at: usize) -> Result<Option<(&[u8], usize)>, String> {
    for i in at..buf.len() {
        match buf[i] {
            b'\r' => {
                return match buf.get(i + 1) {
                    None => Ok(None),
                    Some(b'\n') => Ok(Some((&buf[at..i], i + 2))),
                    Some(_) => Err("bare CR".into()),
                }
            }
            b'\n' => return Err("bare LF".into()),
            _ => {}
        }
    }
    Ok(None)
}

fn chunk_size(line: &[u8]) -> Result<usize, String> {
    let bad = || format!("chunk size line {:?}", String::from_utf8_lossy(line));
    let (mut digits, ext) = match line.iter().position(|&b| b == b';') {
        Some(i) => (&line[..i], Some(&line[i + 1..])),
        None => (line, None),
    };
    if let Some(ext) = ext {
        // BWS before `;` only; the extension itself is ignored.
        while let [rest @ .., b' ' | b'\t'] = digits {
            digits = rest;
        }
        if ext.is_empty() || ext.iter().any(|&b| b < 0x20 && b != b'\t' || b == 0x7f) {
            return Err(bad());
        }
    }
    if digits.is_empty() || digits.len() > 15 || !digits.iter().all(u8::is_ascii_hexdigit) {
        return Err(bad());
    }
    usize::from_str_radix(std::str::from_utf8(digits).unwrap(), 16).map_err(|_| bad())
}

/// A trailer field line: a non-empty name of visible characters, a colon, a
/// value without control bytes (HTAB allowed).
fn trailer(field: &[u8]) -> Result<(), String> {
    let bad = || format!("trailer line {:?}", String::from_utf8_lossy(field));
    let colon = field.iter().position(|&b| b == b':').ok_or_else(bad)?;
    let (name, value) = (&field[..colon], &field[colon + 1..]);
    if name.is_empty() || !name.iter().all(u8::is_ascii_graphic) {
        return Err(bad());
    }
    if value.iter().any(|&b| b < 0x20 && b != b'\t' || b == 0x7f) {
        return Err(bad());
    }
    Ok(())
}
