//! A real DNS server for the DNS tests: Knot DNS (`knotd`, Debian package
//! `knot`), authoritative for one zone made at test time, listening on port
//! 53 of a loopback address of the test's own (127.0.0.x), so tests run in
//! parallel. `io.l5d.dnssrv`'s `dnsHosts` has no port, hence port 53 (and
//! root). A test skips, with a notice, where knotd is missing or port 53
//! cannot be bound.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::tempdir::Dir;

/// The zone every test server is authoritative for.
pub const ZONE: &str = "corelink.test";

pub struct DnsServer {
    child: Child,
    dir: Dir,
    pub ip: IpAddr,
    serial: u32,
    /// The zone's default TTL (and negative TTL), seconds.
    ttl: u32,
}

fn knot(tool: &str) -> Option<PathBuf> {
    ["/usr/sbin", "/usr/bin", "/sbin", "/usr/local/sbin"]
        .iter()
        .map(|d| PathBuf::from(d).join(tool))
        .find(|p| p.exists())
}

impl DnsServer {
    /// Starts knotd on `ip`:53 serving `records` (zone file lines relative
    /// to `corelink.test.`, e.g. `web A 127.0.0.1`) with TTL `ttl`. None,
    /// with a notice, where that cannot run here.
    pub fn start(ip: &str, ttl: u32, records: &str) -> Option<DnsServer> {
        let Some(knotd) = knot("knotd") else {
            eprintln!("notice: DNS test skipped: knotd is missing (apt-get install -y knot)");
            return None;
        };
        let ip: IpAddr = ip.parse().unwrap();
        match UdpSocket::bind(SocketAddr::new(ip, 53)) {
            Ok(s) => drop(s),
            Err(e) => {
                eprintln!("notice: DNS test skipped: cannot bind {ip}:53 ({e}; needs root)");
                return None;
            }
        }
        let dir = Dir::new("knot");
        let d = dir.path().display();
        let conf = format!(
            "server:\n    listen: {ip}@53\n    rundir: \"{d}\"\n    udp-workers: 1\n    tcp-workers: 1\n    background-workers: 1\n\
             database:\n    storage: \"{d}\"\ncontrol:\n    listen: \"{d}/knot.sock\"\n\
             log:\n  - target: stderr\n    any: warning\n\
             template:\n  - id: default\n    storage: \"{d}\"\n    zonefile-sync: -1\n    zonefile-load: whole\n    journal-content: none\n    semantic-checks: off\n\
             zone:\n  - domain: {ZONE}.\n    file: \"{d}/zone\"\n"
        );
        std::fs::write(dir.path().join("knot.conf"), conf).unwrap();
        let mut server = DnsServer {
            child: Command::new(knotd)
                .arg("-c")
                .arg(dir.path().join("knot.conf"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
            dir,
            ip,
            serial: 1,
            ttl,
        };
        server.write_zone(records);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !server.answers() {
            assert!(Instant::now() < deadline, "knotd on {ip} never answered");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(server)
    }

    fn write_zone(&mut self, records: &str) {
        let (ttl, serial, ip) = (self.ttl, self.serial, self.ip);
        let zone = format!(
            "$ORIGIN {ZONE}.\n$TTL {ttl}\n@ SOA ns admin {serial} 60 60 600 {ttl}\n@ NS ns\nns A {ip}\n{records}\n"
        );
        std::fs::write(self.dir.path().join("zone"), zone).unwrap();
    }

    /// Replaces the zone's records and has knotd reload it (it answers all
    /// along: a reload, not a restart).
    pub fn set_records(&mut self, records: &str) {
        self.serial += 1;
        self.write_zone(records);
        let status = Command::new(knot("knotc").expect("knotc next to knotd"))
            .arg("-c")
            .arg(self.dir.path().join("knot.conf"))
            .args(["-b", "zone-reload", &format!("{ZONE}.")])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "knotc zone-reload failed");
        // Until the new serial is served.
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.soa_serial() != Some(self.serial) {
            assert!(Instant::now() < deadline, "knotd never served serial {}", self.serial);
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops answering (SIGSTOP: queries go unanswered and time out, as
    /// from a server that hangs), or answers again (SIGCONT). Returns once
    /// every thread of knotd has stopped (or runs again): `kill` only queues
    /// the signal, and on a busy machine a worker thread still running
    /// would answer the next query.
    pub fn pause(&self, paused: bool) {
        let sig = if paused { libc::SIGSTOP } else { libc::SIGCONT };
        // SAFETY: signalling our own child process.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.all_threads_stopped() != Some(paused) {
            assert!(Instant::now() < deadline, "knotd's threads did not {}", if paused { "stop" } else { "resume" });
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Whether every thread of knotd is stopped (state `T` in
    /// /proc/PID/task/TID/stat), `false` if any runs; `None` if that cannot
    /// be read.
    fn all_threads_stopped(&self) -> Option<bool> {
        let tasks = std::fs::read_dir(format!("/proc/{}/task", self.child.id())).ok()?;
        let mut all = true;
        for task in tasks {
            let stat = std::fs::read_to_string(task.ok()?.path().join("stat")).ok()?;
            // The state follows the command name's closing parenthesis.
            let state = stat.rsplit_once(')')?.1.trim_start().chars().next()?;
            all &= state == 'T';
        }
        Some(all)
    }

    /// `corelink.dns` naming this server.
    pub fn corelink_dns(&self, extra: &str) -> String {
        format!("corelink:\n  dns:\n    servers: [\"{}\"]\n{extra}", self.ip)
    }

    fn answers(&self) -> bool {
        self.soa_serial().is_some()
    }

    /// The zone's SOA serial as served now.
    fn soa_serial(&self) -> Option<u32> {
        let rsp = query(self.ip, &format!("{ZONE}."), 6)?;
        let ancount = u16::from_be_bytes([*rsp.get(6)?, *rsp.get(7)?]);
        if rsp[3] & 0x0f != 0 || ancount == 0 {
            return None;
        }
        // Header, the question (name, type, class), then the first answer:
        // name, type, class, TTL, length, and the SOA's two names, then
        // its serial.
        let mut at = skip_name(&rsp, 12)? + 4;
        at = skip_name(&rsp, at)? + 10;
        at = skip_name(&rsp, at)?;
        at = skip_name(&rsp, at)?;
        Some(u32::from_be_bytes(rsp.get(at..at + 4)?.try_into().ok()?))
    }
}

/// Where the (possibly compressed) name at `at` ends.
fn skip_name(msg: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = *msg.get(at)? as usize;
        if len & 0xc0 == 0xc0 {
            return Some(at + 2);
        }
        if len == 0 {
            return Some(at + 1);
        }
        at += len + 1;
    }
}

/// One UDP query (`qtype`) to `ip`:53; the raw response.
fn query(ip: IpAddr, name: &str, qtype: u16) -> Option<Vec<u8>> {
    let socket = UdpSocket::bind(SocketAddr::new(ip, 0)).ok()?;
    socket.set_read_timeout(Some(Duration::from_millis(200))).ok()?;
    let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.trim_end_matches('.').split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes());
    socket.send_to(&q, SocketAddr::new(ip, 53)).ok()?;
    let mut buf = [0u8; 1500];
    let (n, _) = socket.recv_from(&mut buf).ok()?;
    Some(buf[..n].to_vec())
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.pause(false);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
