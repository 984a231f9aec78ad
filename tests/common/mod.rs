//! Test harness: start the real `corelink` binary, a real backend, and talk to
//! them over real sockets. Everything listens on 127.0.0.1 and every wait is
//! bounded.
#![allow(dead_code)]

pub mod backend;
pub mod certs;
pub mod chunked;
pub mod client;
pub mod dns;
pub mod named;
pub mod raw_backend;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The I/O backends to run each test on: epoll always, io_uring when the
/// kernel allows it (containers often forbid it; then say so and skip).
pub fn backends() -> Vec<&'static str> {
    match corelink::io::probe::uring_available() {
        Ok(()) => vec!["epoll", "uring"],
        Err(why) => {
            eprintln!("io_uring unavailable here ({why}); testing epoll only");
            vec!["epoll"]
        }
    }
}

/// A port nothing listens on right now (bound, read, released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub struct Corelink {
    pub child: Child,
    /// Listening address of each router, in config order.
    pub routers: Vec<SocketAddr>,
    pub admin: SocketAddr,
    pub dir: tempdir::Dir,
    stderr: mpsc::Receiver<String>,
}

pub mod tempdir {
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A temporary directory removed on drop.
    pub struct Dir(PathBuf);

    impl Dir {
        /// A new, empty directory of this process. Tests run on parallel
        /// threads: a clock reading alone once named two directories the
        /// same, so one corelink read the other test's config. A counter
        /// makes the name unique in the process, and `create_dir` refuses a
        /// directory that exists (one left by an earlier process with this
        /// pid).
        pub fn new(tag: &str) -> Dir {
            static NEXT: AtomicU64 = AtomicU64::new(0);
            let n = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
            let seq = NEXT.fetch_add(1, Ordering::Relaxed);
            let p = std::env::temp_dir().join(format!("corelink-test-{tag}-{}-{seq}-{n}", std::process::id()));
            std::fs::create_dir(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            Dir(p)
        }
        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_corelink"))
}

impl Corelink {
    /// Starts corelink with `config` (YAML) on backend `io`, waits until it
    /// printed every listening address.
    pub fn start(config: &str, io: &str) -> Corelink {
        Self::try_start(config, io).unwrap_or_else(|e| panic!("corelink failed to start: {e}"))
    }

    pub fn try_start(config: &str, io: &str) -> Result<Corelink, String> {
        Self::try_start_with_nofile(config, io, None, &[])
    }

    /// Starts corelink with extra environment variables.
    pub fn start_with_env(config: &str, io: &str, env: &[(&str, &str)]) -> Corelink {
        Self::try_start_with_nofile(config, io, None, env).unwrap_or_else(|e| panic!("corelink failed to start: {e}"))
    }

    /// Starts corelink under an open-file limit (soft and hard), as `ulimit -n`.
    pub fn start_with_nofile(config: &str, io: &str, nofile: u32) -> Corelink {
        Self::try_start_with_nofile(config, io, Some(nofile), &[])
            .unwrap_or_else(|e| panic!("corelink failed to start: {e}"))
    }

    fn try_start_with_nofile(
        config: &str,
        io: &str,
        nofile: Option<u32>,
        env: &[(&str, &str)],
    ) -> Result<Corelink, String> {
        let dir = tempdir::Dir::new("cfg");
        let path = dir.path().join("corelink.yaml");
        std::fs::write(&path, config).unwrap();
        let mut command = match nofile {
            None => Command::new(binary()),
            Some(n) => {
                let mut c = Command::new("sh");
                c.arg("-c").arg(format!("ulimit -n {n} && exec \"$0\" \"$@\"")).arg(binary());
                c
            }
        };
        let mut child = command
            .args(["run", "--config"])
            .arg(&path)
            .env("CORELINK_IO", io)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn corelink");
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (err_tx, err_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if err_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut routers = Vec::new();
        let admin;
        loop {
            match rx.recv_timeout(Duration::from_secs(20)) {
                Ok(line) => {
                    if let Some(addr) = line.strip_prefix("corelink: admin listening on ") {
                        admin = addr.parse().unwrap();
                        break;
                    }
                    if let Some(rest) = line.strip_prefix("corelink: router ") {
                        let addr = rest.rsplit(' ').next().unwrap();
                        routers.push(addr.parse().unwrap());
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let status = child.wait().ok();
                    // The process is gone: read its stderr to the end (the
                    // reader thread may not have passed the last lines on
                    // yet), bounded in case a grandchild holds the pipe.
                    let mut errors = Vec::new();
                    let deadline = std::time::Instant::now() + Duration::from_secs(5);
                    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
                        match err_rx.recv_timeout(left) {
                            Ok(line) => errors.push(line),
                            Err(_) => break,
                        }
                    }
                    return Err(format!("no listening line (exit {status:?}); stderr:\n{}", errors.join("\n")));
                }
            }
        }
        let c = Corelink { child, routers, admin, dir, stderr: err_rx };
        c.wait_ready();
        Ok(c)
    }

    /// `/admin/metrics.json` as (key, number) pairs, in the endpoint's order.
    pub fn metrics(&self) -> Vec<(String, f64)> {
        let rsp = client::get(self.admin, "/admin/metrics.json", &self.admin.to_string()).unwrap();
        assert_eq!(rsp.status, 200, "/admin/metrics.json");
        let body = String::from_utf8(rsp.body).unwrap();
        body.trim_matches(['{', '}'])
            .split(", ")
            .filter_map(|kv| kv.split_once(": "))
            .map(|(k, v)| (k.trim_matches('"').to_string(), v.parse().unwrap()))
            .collect()
    }

    /// The one metric whose key ends with `suffix` (a whole key works too).
    pub fn metric_ending(&self, suffix: &str) -> f64 {
        let all = self.metrics();
        let found: Vec<_> = all.iter().filter(|(k, _)| k.ends_with(suffix)).collect();
        match found.as_slice() {
            [(_, v)] => *v,
            [] => panic!("no metric ending {suffix} in {all:?}"),
            many => panic!("several metrics end with {suffix}: {many:?}"),
        }
    }

    fn wait_ready(&self) {
        for _ in 0..200 {
            if let Ok(rsp) = client::get(self.admin, "/admin/ready", &self.admin.to_string()) {
                if rsp.status == 200 {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("corelink never became ready");
    }

    pub fn addr(&self) -> SocketAddr {
        self.routers[0]
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: sending a signal to our own child process.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// Waits up to `limit` for exit; returns the exit code.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr.try_iter().collect()
    }

    /// Waits up to `limit` for a log line containing `needle` (lines are
    /// handed over once, see `stderr_lines`); on timeout, the lines seen.
    pub fn wait_for_log(&self, needle: &str, limit: Duration) -> Result<(), Vec<String>> {
        let started = std::time::Instant::now();
        let mut log = Vec::new();
        while !log.iter().any(|l: &String| l.contains(needle)) {
            if started.elapsed() >= limit {
                return Err(log);
            }
            std::thread::sleep(Duration::from_millis(100));
            log.extend(self.stderr_lines());
        }
        Ok(())
    }

    /// CPU time (user + system) the corelink process has used so far.
    pub fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        let after_comm = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = after_comm.split(' ').collect();
        // utime and stime are fields 14 and 15 of /proc/PID/stat (1-based),
        // i.e. 11 and 12 after the command name.
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
        Duration::from_millis(ticks * 1000 / hz)
    }

    /// Peak resident set size of the corelink process, in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap()
    }
}

impl Drop for Corelink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A router config with one server on an ephemeral port, routing every Host
/// to `backend`, plus `extra` router keys and a `corelink:` section.
pub fn simple_config(backend: SocketAddr, router_extra: &str, corelink_extra: &str) -> String {
    format!(
        "admin:\n  port: 0\nrouters:\n- protocol: http\n  label: test\n  dtab: |\n    /svc/* => /$/inet/{}/{};\n  servers:\n  - port: 0\n{router_extra}corelink:\n{workers}  shutdownDelayMs: 0\n{corelink_extra}",
        backend.ip(),
        backend.port(),
        workers = if corelink_extra.contains("workers:") { "" } else { "  workers: 2\n" },
    )
}

/// The metric `key` of a [`Corelink::metrics`] list.
pub fn metric(all: &[(String, f64)], key: &str) -> f64 {
    all.iter().find(|(k, _)| k == key).unwrap_or_else(|| panic!("no {key} in {all:?}")).1
}
