//! linkerd's `httpAccessLog`: one line per request in Common Log Format, as
//! linkerd writes it:
//!
//! ```text
//! 127.0.0.1 - - [23/Nov/2026:22:46:15 +0000] "GET /hello HTTP/1.1" 200 19 "-" "curl/8.5.0"
//! ```
//!
//! The line is formatted on the core that served the request into a per-core
//! buffer (no lock, no syscall on the data path). A per-core task hands full
//! buffers, and every buffer once a second, to the log's writer thread, which
//! appends them to the file. A log that cannot keep up loses lines and counts
//! them (`dropped`) rather than slowing requests down.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock};

/// Buffers in flight to the writer before lines are dropped.
const QUEUE: usize = 256;
/// A core hands its buffer over at this size without waiting for the tick.
pub const FLUSH_AT: usize = 32 * 1024;

pub struct AccessLog {
    pub path: String,
    sender: SyncSender<Vec<u8>>,
    pub dropped: AtomicU64,
}

impl std::fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessLog").field("path", &self.path).finish()
    }
}

impl AccessLog {
    /// The log writing to `path`, one per path per process (snapshots rebuilt
    /// for namer updates share it). Opening the file is the only error.
    pub fn shared(path: &str, append: bool) -> Result<Arc<AccessLog>, String> {
        type Registry = Vec<Arc<AccessLog>>;
        static ALL: OnceLock<Mutex<Registry>> = OnceLock::new();
        let mut all = ALL.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner());
        if let Some(log) = all.iter().find(|l| l.path == path) {
            return Ok(log.clone());
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(append)
            .write(true)
            .truncate(!append)
            .open(path)
            .map_err(|e| format!("{path}: {e}"))?;
        let (sender, receiver) = sync_channel::<Vec<u8>>(QUEUE);
        let name = path.to_string();
        std::thread::Builder::new()
            .name("corelink-access-log".into())
            .spawn(move || {
                for chunk in receiver {
                    if let Err(e) = file.write_all(&chunk) {
                        tracing::error!(path = %name, error = %e, "cannot write the access log");
                    }
                }
            })
            .map_err(|e| format!("{path}: {e}"))?;
        let log = Arc::new(AccessLog { path: path.to_string(), sender, dropped: AtomicU64::new(0) });
        all.push(log.clone());
        Ok(log)
    }

    /// Hands a buffer of lines to the writer; if the writer is behind, the
    /// lines are dropped and counted.
    pub fn submit(&self, chunk: Vec<u8>) {
        if chunk.is_empty() {
            return;
        }
        let lines = memchr::memchr_iter(b'\n', &chunk).count() as u64;
        match self.sender.try_send(chunk) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(lines, Ordering::Relaxed);
            }
        }
    }
}

/// One core's finished lines, buffered per log until the buffer is full or
/// the once-a-second flush hands them to the log's writer.
#[derive(Default)]
pub struct CoreLines {
    per_log: std::cell::RefCell<Vec<(Arc<AccessLog>, Vec<u8>)>>,
}

impl CoreLines {
    /// Appends a finished request's line for `log`; a full buffer goes to
    /// the writer at once.
    pub fn record(&self, log: &Arc<AccessLog>, pending: &[u8], status: u16, size: u64) {
        let mut all = self.per_log.borrow_mut();
        let i = match all.iter().position(|(l, _)| Arc::ptr_eq(l, log)) {
            Some(i) => i,
            None => {
                all.push((log.clone(), Vec::with_capacity(4096)));
                all.len() - 1
            }
        };
        let buf = &mut all[i].1;
        finish_line(buf, pending, status, Some(size));
        if buf.len() >= FLUSH_AT {
            log.submit(std::mem::take(buf));
        }
    }

    /// Hands every buffered line to its writer.
    pub fn flush(&self) {
        for (log, buf) in self.per_log.borrow_mut().iter_mut() {
            if !buf.is_empty() {
                log.submit(std::mem::take(buf));
            }
        }
    }
}

/// The request part of a line, captured when the head is parsed (the head's
/// bytes are gone by the time the response ends).
#[derive(Debug, Default)]
pub struct PendingLine {
    pub line: Vec<u8>,
}

/// Starts a line: `HOST - - [TIME] "METHOD TARGET VERSION"` (the status,
/// size, referer and user agent follow in [`finish_line`]).
pub fn start_line(out: &mut Vec<u8>, peer: std::net::IpAddr, head: &http1::RequestHead<'_, '_>) {
    let _ = write!(out, "{peer} - - [{}] \"{} ", clf_time(time::OffsetDateTime::now_utc()), head.method_str);
    push_sanitized(out, head.target.as_bytes());
    let version = match head.version {
        http1::Version::Http10 => "HTTP/1.0",
        http1::Version::Http11 => "HTTP/1.1",
    };
    let _ = write!(out, " {version}\" ");
    // Referer and User-Agent go at the end; keep them now, quoted.
    let header = |name: &str| head.headers.iter().find(|h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value);
    let mut tail = Vec::new();
    for name in ["referer", "user-agent"] {
        tail.extend_from_slice(b" \"");
        match header(name) {
            Some(v) if !v.is_empty() => push_sanitized(&mut tail, v),
            _ => tail.push(b'-'),
        }
        tail.push(b'"');
    }
    // Stored after a NUL the finisher splits on (targets and headers cannot
    // hold one: they are sanitized).
    out.push(0);
    out.extend_from_slice(&tail);
}

/// Starts the line of a request whose head could not be parsed.
pub fn start_unparsed(out: &mut Vec<u8>, peer: std::net::IpAddr) {
    let _ = write!(out, "{peer} - - [{}] \"-\" ", clf_time(time::OffsetDateTime::now_utc()));
    out.push(0);
    out.extend_from_slice(b" \"-\" \"-\"");
}

/// Completes a line begun by [`start_line`] with the status and the size of
/// the response body, and appends it to `buf`.
pub fn finish_line(buf: &mut Vec<u8>, pending: &[u8], status: u16, size: Option<u64>) {
    let (head, tail) = match memchr::memchr(0, pending) {
        Some(i) => (&pending[..i], &pending[i + 1..]),
        None => (pending, &[][..]),
    };
    buf.extend_from_slice(head);
    let _ = match size {
        Some(n) if n > 0 => write!(buf, "{status} {n}"),
        _ => write!(buf, "{status} -"),
    };
    buf.extend_from_slice(tail);
    buf.push(b'\n');
}

/// Printable ASCII only; `"` and `\` escaped, anything else as `\xNN`, so a
/// line can neither be split nor forged by what a client sends.
fn push_sanitized(out: &mut Vec<u8>, bytes: &[u8]) {
    for &b in bytes {
        match b {
            b'"' | b'\\' => {
                out.push(b'\\');
                out.push(b);
            }
            0x20..=0x7e => out.push(b),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
}

/// `23/Nov/2026:22:46:15 +0000`.
fn clf_time(t: time::OffsetDateTime) -> String {
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    format!(
        "{:02}/{}/{}:{:02}:{:02}:{:02} +0000",
        t.day(),
        MONTHS[usize::from(u8::from(t.month())) - 1],
        t.year(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::MaybeUninit;

    #[test]
    fn lines_are_common_log_format_and_cannot_be_forged() {
        let mut slots = [MaybeUninit::uninit(); 16];
        let raw = b"GET /hello?x=%22 HTTP/1.1\r\nHost: b\r\nUser-Agent: curl/8 \"evil\"\r\n\r\n";
        let head = http1::parse_request(raw, &mut slots, &Default::default()).unwrap().unwrap();
        let mut pending = Vec::new();
        start_line(&mut pending, "127.0.0.1".parse().unwrap(), &head);
        let mut out = Vec::new();
        finish_line(&mut out, &pending, 200, Some(19));
        let line = String::from_utf8(out).unwrap();
        assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
        assert!(line.ends_with("] \"GET /hello?x=%22 HTTP/1.1\" 200 19 \"-\" \"curl/8 \\\"evil\\\"\"\n"), "{line}");
        assert_eq!(line.matches('\n').count(), 1);
    }

    #[test]
    fn time_is_clf() {
        let t = time::Date::from_calendar_date(2026, time::Month::November, 3)
            .unwrap()
            .with_hms(4, 5, 6)
            .unwrap()
            .assume_utc();
        assert_eq!(clf_time(t), "03/Nov/2026:04:05:06 +0000");
    }
}
