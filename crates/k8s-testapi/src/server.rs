//! The server: the acceptor thread, one thread per connection (bounded),
//! and the handlers for list, get, watch and the discovery documents.

use crate::http::{self, Framing, NoRequest, RequestHead, RequestReader, Transport};
use crate::kinds::{self, Kind, Route};
use crate::query::{self, Query};
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::{self, ApiError};
use crate::store::{ListOptions, ListPage, ObjectFilter, Store, WatchEvent, WatchOptions, WatchRefusal, WatchSignal};
use crate::tls::{self, TlsSetupError};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::io::{self, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How often a waiting thread looks at the server's flags (stop, down).
const TICK: Duration = Duration::from_millis(50);
/// A stuck peer fails a write after this long.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// An idle keep-alive connection is closed after this long.
const IDLE_LIMIT: Duration = Duration::from_secs(90);
/// How long a closing connection waits for the peer's FIN.
const LINGER: Duration = Duration::from_millis(500);
/// At most this many connections (threads) at once; more are closed at once.
const MAX_CONNECTIONS: usize = 256;
/// The request log keeps this many of the latest requests.
const MAX_LOGGED_REQUESTS: usize = 100_000;
/// A watch without `timeoutSeconds` ends after this long (the apiserver
/// picks 30–60 min at random: `--min-request-timeout` 1800 s, times 1–2).
const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(1800);

/// One request as the server received it, for assertions in tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET`, …
    pub method: String,
    /// The path as sent (not percent-decoded), e.g. `/api/v1/namespaces/prod/services`.
    pub path: String,
    /// The raw query string as sent, without `?` ("" if none).
    pub query: String,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
}

impl Request {
    /// A decoded query parameter, e.g. `query_param("resourceVersion")`.
    pub fn query_param(&self, name: &str) -> Option<String> {
        Query::parse(&self.query).ok()?.get(name).map(str::to_string)
    }

    /// Whether this was a watch (`watch=true`/`1`, or a `/watch/` path).
    pub fn is_watch(&self) -> bool {
        let flagged = Query::parse(&self.query).ok().and_then(|query| query.flag("watch").ok().flatten());
        flagged == Some(true) || self.path.contains("/watch/")
    }
}

/// A fault [`ApiServer::fail_watches`] makes every new watch request meet,
/// until it is cleared. Open watches are left alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchFault {
    /// As if the watch's `resourceVersion` N were ahead of the server (an
    /// HA replica whose watch cache lags the one that answered the list, an
    /// etcd restored from a backup): what kube-apiserver answers then, 200,
    /// one ERROR event with the `504 Timeout` Status "Too large resource
    /// version: N, current: N-1" (cause `ResourceVersionTooLarge`,
    /// `retryAfterSeconds: 1`), and a clean end of the stream; at once,
    /// without the real server's wait of up to 3 s for the version. A watch
    /// from ""/"0" is served as usual.
    VersionAhead,
    /// The watch request itself answered `410 Gone` with the `Expired`
    /// Status ("too old resource version: N (current)"), as a list from a
    /// compacted version is. (kube-apiserver sends a compacted watch's 410
    /// as an ERROR event, which the server does without this fault; clients
    /// such as client-go's reflector handle both.)
    Gone,
    /// The request is read (and logged in `requests`) and never answered:
    /// a hung `kubectl proxy`, a half-open connection. The connection stays
    /// open until the client closes it or the server stops.
    Hang,
}

/// What the connection threads share with the handle.
struct Shared {
    store: Store,
    tls: Option<Arc<rustls::ServerConfig>>,
    /// The bearer token required, if any.
    token: Mutex<Option<String>>,
    stopping: AtomicBool,
    available: AtomicBool,
    requests: Mutex<VecDeque<Request>>,
    /// What every new watch request meets (`fail_watches`).
    watch_fault: Mutex<Option<WatchFault>>,
    /// List requests are read and never answered (`hang_lists`).
    hang_lists: AtomicBool,
    live_connections: AtomicUsize,
    connection_threads: Mutex<Vec<JoinHandle<()>>>,
    addr: SocketAddr,
}

/// Locks a mutex whose data stays consistent even if a holder panicked.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    fn keep_serving(&self) -> bool {
        !self.stopping.load(Ordering::SeqCst) && self.available.load(Ordering::SeqCst)
    }
}

/// A test Kubernetes API server on a loopback port; see the crate docs.
/// Dropping it stops every thread it started.
pub struct ApiServer {
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl ApiServer {
    /// Plain HTTP without authentication, like `kubectl proxy`, on 127.0.0.1 and a free port.
    pub fn start() -> ApiServer {
        ApiServer::bind(loopback_any_port(), None, None)
            .unwrap_or_else(|error| panic!("k8s-testapi: cannot start: {error}"))
    }

    /// HTTPS (ALPN `http/1.1`) on 127.0.0.1 and a free port; every request
    /// needs `Authorization: Bearer <token>`, else 401. Panics on bad PEM.
    pub fn start_tls(cert_chain_pem: &str, key_pem: &str, token: &str) -> ApiServer {
        ApiServer::try_start_tls(cert_chain_pem, key_pem, token)
            .unwrap_or_else(|error| panic!("k8s-testapi: cannot start TLS: {error}"))
    }

    /// `start_tls` that returns bad PEM or a key mismatch as an error.
    pub fn try_start_tls(cert_chain_pem: &str, key_pem: &str, token: &str) -> Result<ApiServer, TlsSetupError> {
        let config = tls::server_config(cert_chain_pem, key_pem)?;
        Ok(ApiServer::bind(loopback_any_port(), Some(config), Some(token.to_string()))
            .unwrap_or_else(|error| panic!("k8s-testapi: cannot start: {error}")))
    }

    /// Plain HTTP on a given loopback address (for the load generator);
    /// any address outside 127.0.0.0/8 and ::1 is refused.
    pub fn start_on(addr: SocketAddr) -> io::Result<ApiServer> {
        ApiServer::bind(addr, None, None)
    }

    fn bind(addr: SocketAddr, tls: Option<Arc<rustls::ServerConfig>>, token: Option<String>) -> io::Result<ApiServer> {
        if !addr.ip().is_loopback() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{addr} is not a loopback address")));
        }
        let listener = TcpListener::bind(addr)?;
        let shared = Arc::new(Shared {
            store: Store::new(),
            tls,
            token: Mutex::new(token),
            stopping: AtomicBool::new(false),
            available: AtomicBool::new(true),
            requests: Mutex::new(VecDeque::new()),
            watch_fault: Mutex::new(None),
            hang_lists: AtomicBool::new(false),
            live_connections: AtomicUsize::new(0),
            connection_threads: Mutex::new(Vec::new()),
            addr: listener.local_addr()?,
        });
        let acceptor_shared = shared.clone();
        let acceptor = thread::Builder::new()
            .name("k8s-testapi-accept".into())
            .spawn(move || accept_loop(&acceptor_shared, &listener))?;
        Ok(ApiServer { shared, acceptor: Some(acceptor) })
    }

    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// Replaces the bearer token (rotation). Open watches keep running, as
    /// on the real server; every new request needs the new token. On a
    /// plain-HTTP server this turns authentication on.
    pub fn set_token(&self, token: &str) {
        *lock(&self.shared.token) = Some(token.to_string());
    }

    /// Creates or replaces an object by (kind, namespace, name); see the crate docs.
    /// Panics on an object of a kind this server does not serve, or without a name.
    pub fn apply(&self, object: Value) {
        let api_version = object.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        let kind_name = object.get("kind").and_then(Value::as_str).unwrap_or("");
        let kind = kinds::kind_of(api_version, kind_name)
            .unwrap_or_else(|| panic!("k8s-testapi: cannot apply {api_version}/{kind_name}: not a served kind"));
        self.shared.store.apply(kind, object);
    }

    /// Deletes an object if it exists. `kind` is `Service`, `EndpointSlice`,
    /// `ConfigMap` (or the plural, `services`, …). Panics on another kind.
    pub fn delete(&self, kind: &str, namespace: &str, name: &str) {
        let kind =
            kinds::kind_named(kind).unwrap_or_else(|| panic!("k8s-testapi: cannot delete a {kind}: not a served kind"));
        self.shared.store.delete(kind, namespace, name);
    }

    /// The stored object, as a get would return it.
    pub fn get(&self, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        let kind = kinds::kind_named(kind)?;
        self.shared.store.get(kind, namespace, name).map(|object| (*object).clone())
    }

    /// The current resourceVersion (the last write's; 1 before any).
    pub fn resource_version(&self) -> u64 {
        self.shared.store.revision()
    }

    /// Cuts every open watch stream abruptly: the connection closes
    /// mid-stream, with no terminating chunk.
    pub fn drop_watches(&self) {
        self.shared.store.cut_all_watches();
    }

    /// Compacts all history: a list (Exact, or with a continue token) or a
    /// watch from any resourceVersion older than the current one gets 410.
    pub fn expire_history(&self) {
        self.shared.store.expire_history();
    }

    /// Keeps only the latest `changes` changes for watches to resume from
    /// (default 10,000); older ones are compacted as `expire_history` does.
    pub fn set_history_limit(&self, changes: usize) {
        self.shared.store.set_history_limit(changes);
    }

    /// Sends a BOOKMARK at the current resourceVersion on every open watch
    /// that asked for `allowWatchBookmarks`.
    pub fn bookmark(&self) {
        self.shared.store.bookmark_all();
    }

    /// `false`: the API server is down: new connections are closed as soon
    /// as they are accepted, open watches are cut and idle keep-alive
    /// connections closed. `true`: it serves again (same objects, same history).
    pub fn set_available(&self, up: bool) {
        self.shared.available.store(up, Ordering::SeqCst);
        if !up {
            self.shared.store.cut_all_watches();
        }
    }

    /// Makes every new watch request meet `fault` (see [`WatchFault`]), or,
    /// with `None`, serves watches as usual again. Open watches go on.
    pub fn fail_watches(&self, fault: Option<WatchFault>) {
        *lock(&self.shared.watch_fault) = fault;
    }

    /// `true`: every new list request is read and never answered (see
    /// [`WatchFault::Hang`]); `false`: lists are answered again (those
    /// already hung stay so). Gets and watches are not affected.
    pub fn hang_lists(&self, hang: bool) {
        self.shared.hang_lists.store(hang, Ordering::SeqCst);
    }

    /// Every request received so far (the latest 100,000), oldest first.
    pub fn requests(&self) -> Vec<Request> {
        lock(&self.shared.requests).iter().cloned().collect()
    }

    /// How many watch streams are open now.
    pub fn open_watches(&self) -> usize {
        self.shared.store.open_watches()
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.shared.store.cut_all_watches();
        // Wake the acceptor out of `accept`.
        let _ = TcpStream::connect_timeout(&self.shared.addr, Duration::from_secs(1));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        let threads = std::mem::take(&mut *lock(&self.shared.connection_threads));
        for thread in threads {
            let _ = thread.join();
        }
    }
}

fn loopback_any_port() -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))
}

fn accept_loop(shared: &Arc<Shared>, listener: &TcpListener) {
    for stream in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else {
            // EMFILE and the like: back off a little rather than spin.
            thread::sleep(TICK);
            continue;
        };
        if !shared.available.load(Ordering::SeqCst) || shared.live_connections.load(Ordering::SeqCst) >= MAX_CONNECTIONS
        {
            drop(stream);
            continue;
        }
        shared.live_connections.fetch_add(1, Ordering::SeqCst);
        let connection_shared = shared.clone();
        let spawned = thread::Builder::new().name("k8s-testapi-conn".into()).spawn(move || {
            serve_connection(&connection_shared, stream);
            connection_shared.live_connections.fetch_sub(1, Ordering::SeqCst);
        });
        let mut threads = lock(&shared.connection_threads);
        threads.retain(|thread| !thread.is_finished());
        match spawned {
            Ok(thread) => threads.push(thread),
            Err(_) => {
                shared.live_connections.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }
}

/// What to do with the connection after a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    KeepAlive,
    Close,
    /// Already cut (a dropped watch): do not touch it again.
    Gone,
}

fn serve_connection(shared: &Arc<Shared>, stream: TcpStream) {
    let setup = stream
        .set_nodelay(true)
        .and_then(|()| stream.set_read_timeout(Some(TICK)))
        .and_then(|()| stream.set_write_timeout(Some(WRITE_TIMEOUT)));
    if setup.is_err() {
        return;
    }
    let mut conn = match &shared.tls {
        Some(config) => match rustls::ServerConnection::new(config.clone()) {
            Ok(tls) => Transport::Tls(Box::new(rustls::StreamOwned::new(tls, stream))),
            Err(_) => return,
        },
        None => Transport::Plain(stream),
    };
    let mut reader = RequestReader::new();
    let keep_waiting = || shared.keep_serving();
    let next = loop {
        let head = match reader.read_request(&mut conn, &keep_waiting, IDLE_LIMIT) {
            Ok(head) => head,
            Err(NoRequest::Gone) => break Next::Close,
            Err(NoRequest::Bad(bad)) => {
                let _ = http::write_protocol_error(&mut conn, &bad);
                break Next::Close;
            }
        };
        record_request(shared, &head);
        if !shared.keep_serving() {
            break Next::Gone;
        }
        let close = head.wants_close();
        match handle_request(shared, &mut conn, &head) {
            Next::KeepAlive if !close => continue,
            Next::KeepAlive => break Next::Close,
            other => break other,
        }
    };
    match next {
        Next::Gone => conn.cut(),
        _ => close_gracefully(conn),
    }
}

/// TLS close_notify, then FIN, then a short wait for the peer's FIN while
/// discarding what it still sends (Go's `closeWriteAndWait`): closing a
/// socket with unread input sends a RST, which can make the peer lose the
/// response it has not read yet.
fn close_gracefully(mut conn: Transport) {
    if let Transport::Tls(stream) = &mut conn {
        stream.conn.send_close_notify();
        let _ = stream.flush();
    }
    let mut tcp = conn.tcp();
    if tcp.shutdown(std::net::Shutdown::Write).is_err() {
        return;
    }
    let deadline = Instant::now() + LINGER;
    let mut scratch = [0u8; 8192];
    let mut discarded = 0usize;
    while Instant::now() < deadline && discarded < http::MAX_HEAD_BYTES * 16 {
        match std::io::Read::read(&mut tcp, &mut scratch) {
            Ok(0) => return,
            Ok(read) => discarded += read,
            Err(error) if http::is_timeout(&error) => {}
            Err(_) => return,
        }
    }
}

fn record_request(shared: &Shared, head: &RequestHead) {
    let (path, query) = head.path_and_query();
    let request = Request {
        method: head.method.clone(),
        path: path.to_string(),
        query: query.to_string(),
        authorization: head.header("authorization").map(str::to_string),
    };
    let mut requests = lock(&shared.requests);
    if requests.len() >= MAX_LOGGED_REQUESTS {
        requests.pop_front();
    }
    requests.push_back(request);
}

/// Whether the request carries the bearer token (when one is required).
/// The scheme is case-insensitive, as the apiserver's bearer authenticator reads it.
fn authorized(shared: &Shared, head: &RequestHead) -> bool {
    let token = lock(&shared.token);
    let Some(token) = token.as_deref() else {
        return true;
    };
    let presented = head.header("authorization").and_then(|value| {
        let (scheme, credentials) = value.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| credentials.trim())
    });
    presented == Some(token)
}

fn handle_request(shared: &Shared, conn: &mut Transport, head: &RequestHead) -> Next {
    let close = head.wants_close();
    if !authorized(shared, head) {
        return respond_error(conn, &status::unauthorized(), close);
    }
    if head.method != "GET" {
        return respond_error(conn, &status::method_not_allowed(&head.method), close);
    }
    let (raw_path, raw_query) = head.path_and_query();
    let (path, query) = match (query::decode_path(raw_path), Query::parse(raw_query)) {
        (Ok(path), Ok(query)) => (path, query),
        (Err(error), _) | (_, Err(error)) => return respond_error(conn, &status::bad_request(&error.0), close),
    };
    let watch_flag = match query.flag("watch") {
        Ok(flag) => flag == Some(true),
        Err(error) => return respond_error(conn, &status::bad_request(&error.0), close),
    };
    let framing = if head.minor_version == 0 { Framing::UntilClose } else { Framing::Chunked };
    match kinds::route(&path) {
        Route::Collection { kind, namespace, watch_prefix } => {
            let filter = match object_filter(kind, namespace, &query, None) {
                Ok(filter) => filter,
                Err(error) => return respond_error(conn, &error, close),
            };
            if watch_prefix || watch_flag {
                match injected_watch_fault(shared, conn, framing, &query, close) {
                    Some(next) => next,
                    None => serve_watch(shared, conn, framing, &filter, &query, close),
                }
            } else if shared.hang_lists.load(Ordering::SeqCst) {
                hang(shared, conn)
            } else {
                serve_list(shared, conn, &filter, &query, close)
            }
        }
        Route::Object { kind, namespace, name, watch_prefix } => {
            if watch_prefix || watch_flag {
                match object_filter(kind, Some(namespace), &query, Some(&name)) {
                    Ok(filter) => match injected_watch_fault(shared, conn, framing, &query, close) {
                        Some(next) => next,
                        None => serve_watch(shared, conn, framing, &filter, &query, close),
                    },
                    Err(error) => respond_error(conn, &error, close),
                }
            } else {
                match shared.store.get(kind, &namespace, &name) {
                    Some(object) => respond_json(conn, 200, &serde_json::to_vec(&*object).unwrap_or_default(), close),
                    None => respond_error(conn, &status::object_not_found(kind, &name), close),
                }
            }
        }
        Route::Version => respond_value(conn, &version_document(), close),
        Route::CoreVersions => respond_value(conn, &core_versions_document(shared.addr), close),
        Route::Groups => respond_value(conn, &groups_document(), close),
        Route::Resources { group_version } => respond_value(conn, &resources_document(group_version), close),
        Route::NotFound => respond_error(conn, &status::path_not_found(), close),
    }
}

fn object_filter(
    kind: &'static Kind,
    namespace: Option<String>,
    query: &Query,
    name: Option<&str>,
) -> Result<ObjectFilter, ApiError> {
    let labels = LabelSelector::parse(query.get("labelSelector").unwrap_or(""))
        .map_err(|error| status::bad_request(&error.0))?;
    let mut fields = FieldSelector::parse(query.get("fieldSelector").unwrap_or(""))
        .map_err(|error| status::bad_request(&error.0))?;
    if let Some(name) = name {
        fields = fields.and_name(name);
    }
    Ok(ObjectFilter { kind, namespace, labels, fields })
}

fn serve_list(shared: &Shared, conn: &mut Transport, filter: &ObjectFilter, query: &Query, close: bool) -> Next {
    let limit = match query.number("limit") {
        Ok(limit) => limit,
        Err(error) => return respond_error(conn, &status::bad_request(&error.0), close),
    };
    let options = ListOptions {
        limit,
        continue_token: query.get("continue").map(str::to_string),
        resource_version: query.get("resourceVersion").map(str::to_string),
        version_match: query.get("resourceVersionMatch").filter(|value| !value.is_empty()).map(str::to_string),
    };
    match shared.store.list(filter, &options) {
        Ok(page) => respond_json(conn, 200, &list_body(filter.kind, &page), close),
        Err(error) => respond_error(conn, &error, close),
    }
}

/// `{"kind":"…List","apiVersion":…,"metadata":{…},"items":[…]}`; items carry
/// no kind/apiVersion, as the apiserver encodes items of typed lists.
fn list_body(kind: &Kind, page: &ListPage) -> Vec<u8> {
    let mut metadata = json!({"resourceVersion": page.revision.to_string()});
    if let Some(token) = &page.continue_token {
        metadata["continue"] = json!(token);
    }
    if let Some(remaining) = page.remaining_item_count {
        metadata["remainingItemCount"] = json!(remaining);
    }
    let mut body = Vec::with_capacity(256 + page.items.len() * 1024);
    body.extend_from_slice(
        format!(r#"{{"kind":"{}","apiVersion":"{}","metadata":"#, kind.list_kind, kind.api_version).as_bytes(),
    );
    write_json(&mut body, &metadata);
    body.extend_from_slice(br#","items":["#);
    for (index, item) in page.items.iter().enumerate() {
        if index > 0 {
            body.push(b',');
        }
        write_without_type_meta(&mut body, item);
    }
    body.extend_from_slice(b"]}");
    body
}

fn write_json(out: &mut Vec<u8>, value: &Value) {
    // Writing a `Value` into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, value);
}

fn write_without_type_meta(out: &mut Vec<u8>, item: &Value) {
    let Some(map) = item.as_object() else {
        write_json(out, item);
        return;
    };
    out.push(b'{');
    let mut first = true;
    for (key, value) in map.iter().filter(|(key, _)| *key != "kind" && *key != "apiVersion") {
        if !first {
            out.push(b',');
        }
        first = false;
        write_json(out, &Value::String(key.clone()));
        out.push(b':');
        write_json(out, value);
    }
    out.push(b'}');
}

/// `{"type":"ADDED","object":{…}}` and a newline.
fn event_line(event: &WatchEvent) -> Vec<u8> {
    let mut line = format!(r#"{{"type":"{}","object":"#, event.type_name()).into_bytes();
    write_json(&mut line, event.object());
    line.extend_from_slice(b"}\n");
    line
}

/// Removes the watch's registration however the stream ends.
struct WatchRegistrationGuard<'a> {
    store: &'a Store,
    id: u64,
}

impl Drop for WatchRegistrationGuard<'_> {
    fn drop(&mut self) {
        self.store.end_watch(self.id);
    }
}

fn serve_watch(
    shared: &Shared,
    conn: &mut Transport,
    framing: Framing,
    filter: &ObjectFilter,
    query: &Query,
    close: bool,
) -> Next {
    let flags = (query.flag("allowWatchBookmarks"), query.flag("sendInitialEvents"), query.number("timeoutSeconds"));
    let (allow_bookmarks, send_initial_events, timeout_seconds) = match flags {
        (Ok(bookmarks), Ok(initial), Ok(timeout)) => (bookmarks == Some(true), initial, timeout),
        (Err(error), _, _) | (_, Err(error), _) | (_, _, Err(error)) => {
            return respond_error(conn, &status::bad_request(&error.0), close)
        }
    };
    let options = WatchOptions {
        resource_version: query.get("resourceVersion").map(str::to_string),
        version_match: query.get("resourceVersionMatch").filter(|value| !value.is_empty()).map(str::to_string),
        send_initial_events,
        allow_bookmarks,
    };
    let timeout = match timeout_seconds {
        Some(seconds) if seconds > 0 => Duration::from_secs(seconds),
        _ => DEFAULT_WATCH_TIMEOUT,
    };
    let deadline = Instant::now() + timeout;
    let after_stream = if close || framing == Framing::UntilClose { Next::Close } else { Next::KeepAlive };

    let start = match shared.store.start_watch(filter, &options, conn.tcp().try_clone().ok()) {
        Ok(start) => start,
        Err(WatchRefusal::Rejected(error)) => return respond_error(conn, &error, close),
        Err(WatchRefusal::Expired(error)) => return send_error_event(conn, framing, error, after_stream),
    };
    let _registration = WatchRegistrationGuard { store: &shared.store, id: start.id };
    if http::write_stream_head(conn, framing).is_err() {
        return Next::Close;
    }
    for event in &start.initial {
        if http::write_stream_piece(conn, framing, &event_line(event)).is_err() {
            return Next::Close;
        }
    }
    loop {
        let now = Instant::now();
        if now >= deadline {
            return match http::write_stream_end(conn, framing) {
                Ok(()) => after_stream,
                Err(_) => Next::Close,
            };
        }
        let event = match start.signals.recv_timeout(TICK.min(deadline - now)) {
            Ok(WatchSignal::Change(change)) => WatchEvent::for_change(filter, &change),
            Ok(WatchSignal::Bookmark(revision)) => allow_bookmarks
                .then(|| WatchEvent::Bookmark(crate::store::bookmark_object(filter.kind, revision, false))),
            Ok(WatchSignal::Cut) | Err(RecvTimeoutError::Disconnected) => {
                conn.cut();
                return Next::Gone;
            }
            Err(RecvTimeoutError::Timeout) => {
                if shared.stopping.load(Ordering::SeqCst) || conn.peer_closed() {
                    conn.cut();
                    return Next::Gone;
                }
                None
            }
        };
        if let Some(event) = event {
            if http::write_stream_piece(conn, framing, &event_line(&event)).is_err() {
                return Next::Close;
            }
        }
    }
}

/// As the apiserver answers a watch that fails once its request is
/// accepted: 200, one ERROR event with the `Status`, a clean end.
fn send_error_event(conn: &mut Transport, framing: Framing, error: ApiError, after_stream: Next) -> Next {
    let sent = http::write_stream_head(conn, framing)
        .and_then(|()| http::write_stream_piece(conn, framing, &event_line(&WatchEvent::Error(error.status))))
        .and_then(|()| http::write_stream_end(conn, framing));
    if sent.is_ok() {
        after_stream
    } else {
        Next::Close
    }
}

/// The answer `fail_watches` makes a watch request get instead of its
/// stream, if a fault is set (and applies to it).
fn injected_watch_fault(
    shared: &Shared,
    conn: &mut Transport,
    framing: Framing,
    query: &Query,
    close: bool,
) -> Option<Next> {
    let fault = (*lock(&shared.watch_fault))?;
    let requested = query.get("resourceVersion").and_then(|rv| rv.parse::<u64>().ok()).filter(|&rv| rv > 0);
    let after_stream = if close || framing == Framing::UntilClose { Next::Close } else { Next::KeepAlive };
    match fault {
        WatchFault::VersionAhead => {
            let requested = requested?;
            let error = status::too_large_resource_version(requested, requested - 1);
            Some(send_error_event(conn, framing, error, after_stream))
        }
        WatchFault::Gone => {
            let requested = requested.unwrap_or(0);
            Some(respond_error(conn, &status::watch_too_old(requested, shared.store.revision()), close))
        }
        WatchFault::Hang => Some(hang(shared, conn)),
    }
}

/// Never answers: holds the connection until the peer closes it or the
/// server stops.
fn hang(shared: &Shared, conn: &mut Transport) -> Next {
    while !shared.stopping.load(Ordering::SeqCst) && !conn.peer_closed() {
        thread::sleep(TICK);
    }
    Next::Gone
}

fn respond_json(conn: &mut Transport, code: u16, body: &[u8], close: bool) -> Next {
    match http::write_response(conn, code, body, close) {
        Ok(()) if !close => Next::KeepAlive,
        _ => Next::Close,
    }
}

fn respond_value(conn: &mut Transport, value: &Value, close: bool) -> Next {
    respond_json(conn, 200, &serde_json::to_vec(value).unwrap_or_default(), close)
}

fn respond_error(conn: &mut Transport, error: &ApiError, close: bool) -> Next {
    match send_error(conn, error, close) {
        Ok(()) if !close => Next::KeepAlive,
        _ => Next::Close,
    }
}

fn send_error(conn: &mut Transport, error: &ApiError, close: bool) -> io::Result<()> {
    debug_assert_eq!(status::reason_phrase(error.code), error.reason_phrase());
    http::write_response(conn, error.code, &serde_json::to_vec(&error.status).unwrap_or_default(), close)
}

/// `GET /version`: the fields of `version.Info` (all of which k8s-openapi requires).
fn version_document() -> Value {
    json!({
        "major": "1",
        "minor": "34",
        "emulationMajor": "1",
        "emulationMinor": "34",
        "minCompatibilityMajor": "1",
        "minCompatibilityMinor": "33",
        "gitVersion": "v1.34.0",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-08-27T00:00:00Z",
        "goVersion": "go1.24.6",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

fn core_versions_document(addr: SocketAddr) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": addr.to_string()}],
    })
}

fn groups_document() -> Value {
    let version = json!({"groupVersion": "discovery.k8s.io/v1", "version": "v1"});
    json!({
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [{"name": "discovery.k8s.io", "versions": [version.clone()], "preferredVersion": version}],
    })
}

fn resources_document(group_version: &str) -> Value {
    let resources: Vec<Value> = kinds::ALL_KINDS
        .iter()
        .filter(|kind| kind.api_version == group_version)
        .map(|kind| {
            json!({
                "name": kind.plural,
                "singularName": kind.singular,
                "namespaced": true,
                "kind": kind.kind,
                "verbs": ["get", "list", "watch"],
                "shortNames": kind.short_names,
            })
        })
        .collect();
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources})
}
