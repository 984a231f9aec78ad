//! Connection driving: one task per connection, generic over the stream type (plain TCP
//! or rustls TLS), closed-loop or open-loop, with one reusable buffer and response reader
//! per connection, so the steady state of a keep-alive connection allocates nothing.

use std::cell::RefCell;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, Interest};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::response::{Progress, Response, ResponseReader};
use crate::schedule::{Pace, Pacer, Schedule};
use crate::stats::{ErrorKind, Stats};

/// Per-connection read buffer; also the largest response head accepted.
pub const BUF_SIZE: usize = 64 * 1024;
/// Pause after a failed connect in closed-loop mode, so a dead server is not hammered.
const CONNECT_BACKOFF: Duration = Duration::from_millis(10);

/// Opens connections of one kind.
pub trait Connector {
    type Stream: AsyncRead + AsyncWrite + Unpin;
    fn connect(&self) -> impl Future<Output = Result<Self::Stream, ErrorKind>>;

    /// Called after a complete keep-alive response whose last read left the socket
    /// drained. Lets the plain stream drop its cached read readiness, so the next
    /// response is awaited via epoll instead of first trying a read that would block
    /// (one syscall per request less; the same read pattern as wrk).
    fn socket_drained(_stream: &Self::Stream) {}
}

/// Plain TCP.
#[derive(Debug, Clone)]
pub struct PlainConnector {
    pub addr: SocketAddr,
}

impl Connector for PlainConnector {
    type Stream = TcpStream;
    async fn connect(&self) -> Result<TcpStream, ErrorKind> {
        let s = TcpStream::connect(self.addr).await.map_err(|_| ErrorKind::Connect)?;
        let _ = s.set_nodelay(true);
        Ok(s)
    }

    fn socket_drained(stream: &TcpStream) {
        // Returning WouldBlock clears the readiness tokio cached from the last read, unless
        // a new event arrived since (tokio checks its readiness tick), so nothing is lost.
        let _ = stream.try_io(Interest::READABLE, || Err::<(), _>(std::io::ErrorKind::WouldBlock.into()));
    }
}

/// TCP then a rustls handshake.
#[derive(Clone)]
pub struct TlsConnector {
    pub addr: SocketAddr,
    pub connector: tokio_rustls::TlsConnector,
    pub server_name: ServerName<'static>,
}

impl Connector for TlsConnector {
    type Stream = tokio_rustls::client::TlsStream<TcpStream>;
    async fn connect(&self) -> Result<Self::Stream, ErrorKind> {
        let tcp = PlainConnector { addr: self.addr }.connect().await?;
        self.connector.connect(self.server_name.clone(), tcp).await.map_err(|_| ErrorKind::Tls)
    }
}

/// What every connection of a run shares (read-only).
#[derive(Debug)]
pub struct Plan {
    /// The complete request bytes.
    pub request: Vec<u8>,
    pub head_request: bool,
    /// Open-loop total rate.
    pub rate: Option<f64>,
    pub connections: usize,
    pub new_conn: bool,
    pub timeout: Duration,
    /// Run start (connections start, warm-up begins; open-loop schedule origin).
    pub start: Instant,
    /// Requests starting (or scheduled) before this are not recorded.
    pub warmup_end: Instant,
    /// No request starts at or after this; requests in flight then are abandoned.
    pub end: Option<Instant>,
}

/// Per-connection parameters.
#[derive(Debug, Clone, Copy)]
pub struct ConnSpec {
    /// Global index among all connections (open-loop phase).
    pub index: usize,
    /// Measured requests this connection may send, if bounded by count.
    pub quota: Option<u64>,
}

/// Read buffer with a window of unconsumed bytes.
struct ConnBuf {
    data: Vec<u8>,
    start: usize,
    end: usize,
}

impl ConnBuf {
    fn new() -> Self {
        ConnBuf { data: vec![0; BUF_SIZE], start: 0, end: 0 }
    }
    fn pending(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }
    fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }
    /// Free space at the end, compacting if needed.
    fn spare(&mut self) -> &mut [u8] {
        if self.end == self.data.len() && self.start > 0 {
            self.data.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        &mut self.data[self.end..]
    }
    fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }
}

enum Outcome {
    Done(Response, Instant),
    Failed(ErrorKind),
}

/// Send the request and read one full response. Also says whether the last read
/// returned less than it could take with nothing left over (the socket is drained).
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    request: &[u8],
    buf: &mut ConnBuf,
    reader: &mut ResponseReader,
) -> Result<(Response, bool), ErrorKind> {
    let mut drained = false;
    stream.write_all(request).await.map_err(|_| ErrorKind::Write)?;
    stream.flush().await.map_err(|_| ErrorKind::Write)?;
    loop {
        let (n, progress) = reader.feed(buf.pending()).map_err(|_| ErrorKind::BadResponse)?;
        buf.consume(n);
        if let Progress::Complete(resp) = progress {
            return Ok((resp, drained && buf.pending().is_empty()));
        }
        let spare = buf.spare();
        let room = spare.len();
        if room == 0 {
            // Only a head can stay buffered, and the reader bounds it.
            return Err(ErrorKind::BadResponse);
        }
        let n = stream.read(spare).await.map_err(|_| ErrorKind::Read)?;
        drained = n < room;
        if n == 0 {
            return if reader.started() || !buf.pending().is_empty() {
                reader.eof().map(|r| (r, false)).map_err(|_| ErrorKind::BadResponse)
            } else {
                // Closed before answering (e.g. an idle keep-alive connection closed).
                Err(ErrorKind::Read)
            };
        }
        buf.end += n;
    }
}

/// After a response that ends the connection, wait for the server's FIN so that the
/// server, not the generator, holds the TIME_WAIT state.
async fn drain_to_eof<S: AsyncRead + Unpin>(stream: &mut S, buf: &mut ConnBuf) {
    buf.clear();
    loop {
        match stream.read(&mut buf.data[..]).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// Drive one connection until the run ends or its quota is spent.
pub async fn run_connection<C: Connector>(
    connector: &C,
    plan: &Plan,
    spec: ConnSpec,
    stats: &RefCell<Stats>,
    progress: &AtomicU64,
) {
    let mut buf = ConnBuf::new();
    let mut reader = ResponseReader::new(BUF_SIZE);
    let mut stream: Option<C::Stream> = None;
    let mut pacer = plan.rate.map(|r| Pacer::new(Schedule::new(r, plan.connections, spec.index)));
    let mut measured_sent: u64 = 0;
    let far = plan.start + Duration::from_secs(86_400 * 365);
    // One timer per connection, re-armed lazily (only when it fires early or would fire
    // too late), instead of registering a timer per request.
    let mut timer = Box::pin(tokio::time::sleep_until(far));

    loop {
        // When does this request start, for latency purposes?
        let (sched, waited) = match pacer.as_mut() {
            Some(p) => match p.next(Instant::now() - plan.start) {
                Pace::WaitUntil(d) => (Some(plan.start + d), true),
                Pace::SendNow(d) => (Some(plan.start + d), false),
            },
            None => (None, false),
        };
        if let (Some(end), Some(s)) = (plan.end, sched) {
            if s >= end {
                break;
            }
        }
        if waited {
            tokio::time::sleep_until(sched.expect("open-loop")).await;
        }
        let begin = Instant::now();
        if let Some(end) = plan.end {
            if begin >= end {
                break;
            }
        }
        let measured = sched.unwrap_or(begin) >= plan.warmup_end;
        if measured {
            if let Some(q) = spec.quota {
                if measured_sent >= q {
                    break;
                }
            }
            measured_sent += 1;
        }
        // Latency origin: the scheduled time when the connection is behind schedule (the
        // coordinated-omission correction); when it was idle and waited for its slot, the
        // wake-up (any lateness past the slot is the generator's own timer slop).
        let latency_origin = match sched {
            Some(s) if !waited => Some(s),
            _ => None,
        };

        let mut deadline = begin + plan.timeout;
        if let Some(end) = plan.end {
            deadline = deadline.min(end);
        }
        if timer.deadline() > deadline {
            timer.as_mut().reset(deadline);
        }

        let new_conn = plan.new_conn;
        let request = &plan.request[..];
        reader.reset(plan.head_request);
        let was_connected = stream.is_some();
        let outcome = {
            let fut = pin!(async {
                let s = match stream.as_mut() {
                    Some(s) => s,
                    None => stream.insert(connector.connect().await?),
                };
                // Keep-alive closed-loop: service time excludes the connect (as wrk);
                // with --new-conn it includes connect and handshake.
                let t_send = if new_conn { begin } else { Instant::now() };
                let (resp, drained) = exchange(s, request, &mut buf, &mut reader).await?;
                if drained && resp.keep_alive && !new_conn {
                    C::socket_drained(s);
                }
                Ok::<_, ErrorKind>((resp, t_send))
            });
            let mut fut = fut;
            loop {
                tokio::select! {
                    biased;
                    r = fut.as_mut() => break match r {
                        Ok((resp, t_send)) => Some(Outcome::Done(resp, t_send)),
                        Err(kind) => Some(Outcome::Failed(kind)),
                    },
                    () = timer.as_mut() => {
                        let now = Instant::now();
                        if now < deadline {
                            timer.as_mut().reset(deadline);
                            continue;
                        }
                        if plan.end.is_some_and(|end| now >= end) {
                            break None; // run over: abandon, record nothing
                        }
                        break Some(Outcome::Failed(ErrorKind::Timeout));
                    }
                }
            }
        };
        let done = Instant::now();
        if measured && !was_connected && stream.is_some() {
            stats.borrow_mut().connects += 1;
        }
        let Some(outcome) = outcome else {
            break;
        };
        progress.fetch_add(1, Ordering::Relaxed);
        match outcome {
            Outcome::Done(resp, t_send) => {
                if measured {
                    let origin = latency_origin.unwrap_or(t_send);
                    let latency = (done - origin).as_micros() as u64;
                    let service = (done - t_send).as_micros() as u64;
                    stats.borrow_mut().record_response(resp.status, latency, service, resp.wire_len);
                }
                if !resp.keep_alive || new_conn {
                    if let Some(mut s) = stream.take() {
                        let drained = async {
                            drain_to_eof(&mut s, &mut buf).await;
                        };
                        let _ = tokio::time::timeout_at(deadline, drained).await;
                    }
                    buf.clear();
                }
            }
            Outcome::Failed(kind) => {
                if measured {
                    stats.borrow_mut().record_error(kind);
                }
                stream = None;
                buf.clear();
                if matches!(kind, ErrorKind::Connect | ErrorKind::Tls) && pacer.is_none() {
                    let mut until = Instant::now() + CONNECT_BACKOFF;
                    if let Some(end) = plan.end {
                        until = until.min(end);
                    }
                    tokio::time::sleep_until(until).await;
                }
            }
        }
    }
}

/// Everything a thread needs to run its connections.
pub enum AnyConnector {
    Plain(PlainConnector),
    Tls(TlsConnector),
}

/// Run `specs` on the current thread in a current-thread runtime; returns its stats.
pub fn run_thread(
    connector: Arc<AnyConnector>,
    plan: Arc<Plan>,
    specs: Vec<ConnSpec>,
    progress: Arc<AtomicU64>,
) -> std::io::Result<Stats> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let local = tokio::task::LocalSet::new();
    let stats = Rc::new(RefCell::new(Stats::new()));
    local.block_on(&rt, async {
        let mut handles = Vec::with_capacity(specs.len());
        for spec in specs {
            let connector = connector.clone();
            let plan = plan.clone();
            let stats = stats.clone();
            let progress = progress.clone();
            handles.push(tokio::task::spawn_local(async move {
                match &*connector {
                    AnyConnector::Plain(c) => run_connection(c, &plan, spec, &stats, &progress).await,
                    AnyConnector::Tls(c) => run_connection(c, &plan, spec, &stats, &progress).await,
                }
            }));
        }
        for h in handles {
            h.await.expect("connection task panicked");
        }
    });
    drop(local);
    Ok(Rc::try_unwrap(stats).map(RefCell::into_inner).unwrap_or_else(|rc| rc.borrow().clone()))
}
