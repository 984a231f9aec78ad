//! Per-thread statistics: latency histograms (microseconds), counters, error counts by
//! kind and responses by status. Merged once at the end of the run.

use hdrhistogram::Histogram;

/// Highest trackable latency: one hour, in microseconds.
pub const MAX_LATENCY_US: u64 = 3_600_000_000;
/// Significant digits of the histograms (as wrk2).
pub const SIGFIG: u8 = 3;

/// Kinds of failed requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// TCP connect failed.
    Connect,
    /// TLS handshake failed.
    Tls,
    /// Reading the response failed (I/O error, or the peer closed before answering).
    Read,
    /// Writing the request failed.
    Write,
    /// No complete response within --timeout.
    Timeout,
    /// The response broke HTTP/1.1 framing.
    BadResponse,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 6] = [
        ErrorKind::Connect,
        ErrorKind::Tls,
        ErrorKind::Read,
        ErrorKind::Write,
        ErrorKind::Timeout,
        ErrorKind::BadResponse,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Tls => "tls",
            ErrorKind::Read => "read",
            ErrorKind::Write => "write",
            ErrorKind::Timeout => "timeout",
            ErrorKind::BadResponse => "bad_response",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, SIGFIG).expect("valid histogram bounds")
}

/// Statistics of one thread (or, after merging, of the run).
#[derive(Debug, Clone)]
pub struct Stats {
    /// Latency in µs. Closed-loop: from the send; open-loop: from the scheduled send time
    /// (coordinated-omission corrected).
    pub latency: Histogram<u64>,
    /// Service time in µs: from the actual send to the end of the response (uncorrected).
    pub service: Histogram<u64>,
    /// Completed responses (any status).
    pub responses: u64,
    /// Response bytes read (heads, bodies, framing).
    pub bytes_read: u64,
    /// Connections opened (successfully).
    pub connects: u64,
    errors: [u64; 6],
    /// Completed responses by status code (index = status, 0..=999).
    status: Box<[u64; 1000]>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats::new()
    }
}

impl Stats {
    pub fn new() -> Stats {
        Stats {
            latency: new_histogram(),
            service: new_histogram(),
            responses: 0,
            bytes_read: 0,
            connects: 0,
            errors: [0; 6],
            status: Box::new([0; 1000]),
        }
    }

    /// Record a complete response.
    #[inline]
    pub fn record_response(&mut self, status: u16, latency_us: u64, service_us: u64, bytes: u64) {
        self.latency.saturating_record(latency_us.max(1));
        self.service.saturating_record(service_us.max(1));
        self.responses += 1;
        self.bytes_read += bytes;
        self.status[usize::from(status).min(999)] += 1;
    }

    #[inline]
    pub fn record_error(&mut self, kind: ErrorKind) {
        self.errors[kind.index()] += 1;
    }

    pub fn errors(&self, kind: ErrorKind) -> u64 {
        self.errors[kind.index()]
    }

    /// All transport/protocol errors (non-2xx responses are not included).
    pub fn total_errors(&self) -> u64 {
        self.errors.iter().sum()
    }

    /// `(status, count)` for every status seen, ascending.
    pub fn statuses(&self) -> Vec<(u16, u64)> {
        self.status.iter().enumerate().filter(|(_, &n)| n > 0).map(|(s, &n)| (s as u16, n)).collect()
    }

    /// Responses whose status is not 2xx.
    pub fn non_2xx(&self) -> u64 {
        self.statuses().iter().filter(|(s, _)| !(200..300).contains(s)).map(|(_, n)| n).sum()
    }

    pub fn merge(&mut self, other: &Stats) {
        self.latency.add(&other.latency).expect("histograms share bounds");
        self.service.add(&other.service).expect("histograms share bounds");
        self.responses += other.responses;
        self.bytes_read += other.bytes_read;
        self.connects += other.connects;
        for (a, b) in self.errors.iter_mut().zip(other.errors.iter()) {
            *a += b;
        }
        for (a, b) in self.status.iter_mut().zip(other.status.iter()) {
            *a += b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_adds_everything() {
        let mut a = Stats::new();
        let mut b = Stats::new();
        a.record_response(200, 100, 90, 50);
        a.record_response(404, 200, 200, 50);
        a.record_error(ErrorKind::Timeout);
        b.record_response(200, 1_000, 10, 10);
        b.record_response(503, 0, 0, 10);
        b.record_error(ErrorKind::Connect);
        b.record_error(ErrorKind::Timeout);
        b.connects = 3;
        a.merge(&b);
        assert_eq!(a.responses, 4);
        assert_eq!(a.bytes_read, 120);
        assert_eq!(a.connects, 3);
        assert_eq!(a.latency.len(), 4);
        assert_eq!(a.service.len(), 4);
        assert_eq!(a.errors(ErrorKind::Timeout), 2);
        assert_eq!(a.errors(ErrorKind::Connect), 1);
        assert_eq!(a.total_errors(), 3);
        assert_eq!(a.statuses(), vec![(200, 2), (404, 1), (503, 1)]);
        assert_eq!(a.non_2xx(), 2);
        assert!(a.latency.max() >= 1_000 && a.latency.max() < 1_002);
        // Zero latency is recorded as 1 µs (the histogram's lowest trackable value).
        assert_eq!(a.latency.min(), 1);
    }
}
