//! HTTP/1.1 servers (keep-alive) that answer every request with a name, so
//! a test sees which endpoint served it: the "pods" of the Kubernetes tests
//! (each named by its IP, many sharing one port on distinct loopback
//! addresses, as a Deployment's pods share their container port), and the
//! helpers that ask which one answers.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::client;

/// A server answering `200` with its name; stops when dropped.
pub struct NamedServer {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    last_served: Arc<Mutex<Option<Instant>>>,
}

impl NamedServer {
    /// On 127.0.0.1, a free port.
    pub fn start(name: &str) -> NamedServer {
        NamedServer::on(TcpListener::bind("127.0.0.1:0").unwrap(), name)
    }

    pub fn on(listener: TcpListener, name: &str) -> NamedServer {
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let last_served = Arc::new(Mutex::new(None));
        let (st, last, name) = (stop.clone(), last_served.clone(), name.to_string());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (st, last, name) = (st.clone(), last.clone(), name.clone());
                std::thread::spawn(move || serve(conn, &name, &st, &last));
            }
        });
        NamedServer { addr, stop, last_served }
    }

    pub fn ip(&self) -> String {
        self.addr.ip().to_string()
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// When it last answered a request.
    pub fn last_served(&self) -> Option<Instant> {
        *self.last_served.lock().unwrap()
    }
}

impl Drop for NamedServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

fn serve(mut conn: TcpStream, name: &str, stop: &AtomicBool, last: &Mutex<Option<Instant>>) {
    // A short read timeout, so a server that was dropped stops answering
    // on connections a proxy keeps open.
    let _ = conn.set_read_timeout(Some(Duration::from_millis(100)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            buf.drain(..end + 4);
            *last.lock().unwrap() = Some(Instant::now());
            let rsp = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{name}", name.len());
            if conn.write_all(rsp.as_bytes()).is_err() {
                return;
            }
        }
        if stop.load(Ordering::SeqCst) {
            return;
        }
        match conn.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
    }
}

/// A server on each of `ips`, all on one port, each named by its IP.
pub fn pods_on(ips: &[IpAddr]) -> Vec<NamedServer> {
    'port: for _ in 0..50 {
        let first = TcpListener::bind(SocketAddr::new(ips[0], 0)).unwrap();
        let port = first.local_addr().unwrap().port();
        let mut listeners = vec![first];
        for ip in &ips[1..] {
            match TcpListener::bind(SocketAddr::new(*ip, port)) {
                Ok(l) => listeners.push(l),
                Err(_) => continue 'port,
            }
        }
        return listeners
            .into_iter()
            .map(|l| {
                let name = l.local_addr().unwrap().ip().to_string();
                NamedServer::on(l, &name)
            })
            .collect();
    }
    panic!("no port free on all of {ips:?}");
}

/// A request's status and body (the name of the server that answered), or
/// the I/O error.
pub type Answer = Result<(u16, String), String>;

/// One `GET /` with `Host: host` through `addr`.
pub fn ask(addr: SocketAddr, host: &str) -> Answer {
    let rsp = client::get(addr, "/", host).map_err(|e| e.to_string())?;
    Ok((rsp.status, String::from_utf8_lossy(&rsp.body).into_owned()))
}

/// Who answered one request (a 200's body); a panic for anything else.
pub fn served_by(addr: SocketAddr, host: &str) -> String {
    match ask(addr, host) {
        Ok((200, body)) => body,
        other => panic!("{host}: {other:?}"),
    }
}

/// Asks until `want` holds for an answer, within `limit`; returns how long
/// it took.
pub fn wait_for(addr: SocketAddr, host: &str, limit: Duration, want: impl Fn(&Answer) -> bool) -> Duration {
    let start = Instant::now();
    let mut last = None;
    while start.elapsed() < limit {
        let r = ask(addr, host);
        if want(&r) {
            return start.elapsed();
        }
        last = Some(r);
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("{host}: not as wanted within {limit:?}; last answer {last:?}");
}

/// Asks until a 200 comes from the server named `name`; returns how long
/// it took.
pub fn wait_served_by(addr: SocketAddr, host: &str, name: &str, limit: Duration) -> Duration {
    wait_for(addr, host, limit, |r| matches!(r, Ok((200, b)) if b == name))
}
