//! Open-loop rate scheduling (wrk2 style), as pure functions of a start offset.
//!
//! A total rate of `R` requests/s over `C` connections gives each connection the rate
//! `R / C`, i.e. one request every `C / R` seconds, and connection `i` is phase-shifted by
//! `i / R` so that the union of all connections' send times is evenly spaced `1 / R`
//! apart: the k-th send of connection `i` is at `(i + k * C) / R` seconds after start.
//!
//! Send times are fixed in advance and never move: when a connection falls behind (the
//! previous response came late), the next request goes out immediately but its latency
//! is still measured from its scheduled time. That is the coordinated-omission
//! correction: a stalled server shows up in the latency of every request it delayed.

use std::time::Duration;

/// The send schedule of one connection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    rate: f64,
    connections: u64,
    conn: u64,
}

impl Schedule {
    /// Schedule for connection `conn` of `connections`, sharing the total rate `rate` (> 0).
    pub fn new(rate: f64, connections: usize, conn: usize) -> Self {
        assert!(rate > 0.0 && rate.is_finite(), "rate must be positive");
        assert!(conn < connections, "connection index out of range");
        Schedule { rate, connections: connections as u64, conn: conn as u64 }
    }

    /// Interval between two sends of this connection.
    pub fn interval(&self) -> Duration {
        Duration::from_secs_f64(self.connections as f64 / self.rate)
    }

    /// Offset from the run's start of this connection's `k`-th send (k from 0).
    pub fn send_offset(&self, k: u64) -> Duration {
        let slot = self.conn + k * self.connections;
        Duration::from_nanos((slot as f64 * 1e9 / self.rate).round() as u64)
    }

    /// Number of this connection's sends whose offset lies in `[0, until)`.
    pub fn count_before(&self, until: Duration) -> u64 {
        // Smallest k with send_offset(k) >= until, computed then fixed up for rounding.
        let slots = until.as_secs_f64() * self.rate;
        let mut k = ((slots - self.conn as f64) / self.connections as f64).ceil().max(0.0) as u64;
        while k > 0 && self.send_offset(k - 1) >= until {
            k -= 1;
        }
        while self.send_offset(k) < until {
            k += 1;
        }
        k
    }

    /// Index of the first send at or after `from` (the first measured one after warm-up).
    pub fn first_at_or_after(&self, from: Duration) -> u64 {
        self.count_before(from)
    }
}

/// Walks one connection's schedule against a clock. `now` is always passed in, so tests
/// drive it with a fake clock.
#[derive(Debug, Clone)]
pub struct Pacer {
    schedule: Schedule,
    next: u64,
}

/// What the connection should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// Wait until `due` (an offset from start), then send; latency counts from `due`.
    WaitUntil(Duration),
    /// Late already: send now; latency still counts from `due`.
    SendNow(Duration),
}

impl Pacer {
    pub fn new(schedule: Schedule) -> Self {
        Pacer { schedule, next: 0 }
    }

    /// Start at send index `k` (e.g. to skip nothing, 0).
    pub fn starting_at(schedule: Schedule, k: u64) -> Self {
        Pacer { schedule, next: k }
    }

    /// Index of the send that [`Pacer::next`] will return.
    pub fn index(&self) -> u64 {
        self.next
    }

    /// The next send, given the current offset from start. Advances the schedule.
    pub fn next(&mut self, now: Duration) -> Pace {
        let due = self.schedule.send_offset(self.next);
        self.next += 1;
        if due > now {
            Pace::WaitUntil(due)
        } else {
            Pace::SendNow(due)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_sends(rate: f64, conns: usize, dur: Duration) -> Vec<Vec<Duration>> {
        (0..conns)
            .map(|i| {
                let s = Schedule::new(rate, conns, i);
                (0..s.count_before(dur)).map(|k| s.send_offset(k)).collect()
            })
            .collect()
    }

    #[test]
    fn rate_times_duration_sends_evenly_spaced() {
        for &(rate, conns, secs) in
            &[(1000.0, 1, 2.0), (5000.0, 64, 3.0), (100.0, 7, 1.5), (3.0, 2, 4.0), (1234.5, 10, 2.0)]
        {
            let dur = Duration::from_secs_f64(secs);
            let per_conn = all_sends(rate, conns, dur);
            let total: usize = per_conn.iter().map(Vec::len).sum();
            let expected = (rate * secs).round() as usize;
            assert_eq!(total, expected, "R={rate} C={conns} D={secs}");
            // Each connection: evenly spaced by C/R (within 1 ns of rounding).
            let interval = conns as f64 / rate * 1e9;
            for sends in &per_conn {
                for w in sends.windows(2) {
                    let gap = (w[1] - w[0]).as_nanos() as f64;
                    assert!((gap - interval).abs() <= 1.0, "gap {gap} vs {interval}");
                }
                assert!(sends.iter().all(|&t| t < dur));
            }
            // Connection counts differ by at most one.
            let min = per_conn.iter().map(Vec::len).min().unwrap();
            let max = per_conn.iter().map(Vec::len).max().unwrap();
            assert!(max - min <= 1);
            // The union is evenly spaced by 1/R.
            let mut union: Vec<Duration> = per_conn.into_iter().flatten().collect();
            union.sort();
            assert_eq!(union[0], Duration::ZERO);
            let step = 1e9 / rate;
            for w in union.windows(2) {
                let gap = (w[1] - w[0]).as_nanos() as f64;
                assert!((gap - step).abs() <= 1.0, "union gap {gap} vs {step}");
            }
        }
    }

    #[test]
    fn count_before_is_exact_at_boundaries() {
        let s = Schedule::new(10.0, 2, 1); // sends at 0.1, 0.3, 0.5, ...
        assert_eq!(s.count_before(Duration::ZERO), 0);
        assert_eq!(s.count_before(Duration::from_millis(100)), 0);
        assert_eq!(s.count_before(Duration::from_millis(101)), 1);
        assert_eq!(s.count_before(Duration::from_millis(300)), 1);
        assert_eq!(s.count_before(Duration::from_millis(301)), 2);
        assert_eq!(s.first_at_or_after(Duration::from_millis(300)), 1);
        assert_eq!(s.send_offset(1), Duration::from_millis(300));
        assert_eq!(s.interval(), Duration::from_millis(200));
    }

    #[test]
    fn pacer_keeps_schedule_when_behind() {
        // 1 connection at 100/s: sends every 10 ms. A fake clock that is late by 55 ms at
        // the third send must not shift later sends: they are due on the original grid
        // and reported as SendNow until the connection catches up.
        let mut p = Pacer::new(Schedule::new(100.0, 1, 0));
        let ms = Duration::from_millis;
        assert_eq!(p.next(ms(0)), Pace::SendNow(ms(0)));
        assert_eq!(p.next(ms(1)), Pace::WaitUntil(ms(10)));
        assert_eq!(p.next(ms(11)), Pace::WaitUntil(ms(20)));
        // Server stalled: the response to the 20 ms send arrives at 75 ms.
        assert_eq!(p.next(ms(75)), Pace::SendNow(ms(30)));
        assert_eq!(p.next(ms(76)), Pace::SendNow(ms(40)));
        assert_eq!(p.next(ms(77)), Pace::SendNow(ms(50)));
        assert_eq!(p.next(ms(78)), Pace::SendNow(ms(60)));
        assert_eq!(p.next(ms(79)), Pace::SendNow(ms(70)));
        assert_eq!(p.next(ms(80)), Pace::SendNow(ms(80)));
        assert_eq!(p.next(ms(81)), Pace::WaitUntil(ms(90)));
        assert_eq!(p.index(), 10);
        // Latency from schedule for the delayed sends = completion - due: the stall is
        // visible in every one of them.
    }

    #[test]
    fn pacer_starting_after_warmup() {
        let s = Schedule::new(1000.0, 4, 2);
        let k = s.first_at_or_after(Duration::from_secs(1));
        assert!(s.send_offset(k) >= Duration::from_secs(1));
        assert!(s.send_offset(k - 1) < Duration::from_secs(1));
        let mut p = Pacer::starting_at(s, k);
        assert_eq!(p.next(Duration::ZERO), Pace::WaitUntil(s.send_offset(k)));
    }
}
