//! A tiny in-process HTTP/1.1 server for the tests (plain or TLS), on 127.0.0.1.
//!
//! Paths: `/` 200 "hello" (Content-Length), `/chunked` 200 chunked, `/missing` 404,
//! `/garbage` a non-HTTP answer, `/hang` never answers, `/close` a close-delimited body.
//! With `stall_at = Some(k)`, the k-th request (1-based, over all connections) is
//! answered 500 ms late.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

pub const STALL: Duration = Duration::from_millis(500);

pub struct TestServer {
    pub addr: SocketAddr,
    /// Requests fully read.
    pub received: Arc<AtomicU64>,
    /// Responses fully written.
    pub answered: Arc<AtomicU64>,
    /// CA certificate (PEM) for TLS servers.
    pub ca_pem: Option<String>,
}

#[derive(Clone, Default)]
pub struct Options {
    pub stall_at: Option<u64>,
    pub tls: bool,
}

pub fn start(opts: Options) -> TestServer {
    let received = Arc::new(AtomicU64::new(0));
    let answered = Arc::new(AtomicU64::new(0));
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    std_listener.set_nonblocking(true).unwrap();
    let addr = std_listener.local_addr().unwrap();
    let (acceptor, ca_pem) = if opts.tls {
        let (a, pem) = tls_acceptor();
        (Some(a), Some(pem))
    } else {
        (None, None)
    };
    let (r, a) = (received.clone(), answered.clone());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let listener = TcpListener::from_std(std_listener).unwrap();
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    continue;
                };
                let _ = sock.set_nodelay(true);
                let (r, a, stall_at, acceptor) = (r.clone(), a.clone(), opts.stall_at, acceptor.clone());
                tokio::spawn(async move {
                    match acceptor {
                        None => serve(sock, r, a, stall_at).await,
                        Some(acc) => {
                            if let Ok(tls) = acc.accept(sock).await {
                                serve(tls, r, a, stall_at).await
                            }
                        }
                    }
                });
            }
        });
    });
    TestServer { addr, received, answered, ca_pem }
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut sock: S,
    received: Arc<AtomicU64>,
    answered: Arc<AtomicU64>,
    stall_at: Option<u64>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut have = 0;
    loop {
        // Read one request head (+ Content-Length body).
        let (path, head_len, body_len, close) = loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut req = httparse::Request::new(&mut headers);
            match req.parse(&buf[..have]) {
                Ok(httparse::Status::Complete(n)) => {
                    let mut len = 0usize;
                    let mut close = false;
                    for h in req.headers.iter() {
                        if h.name.eq_ignore_ascii_case("content-length") {
                            len = std::str::from_utf8(h.value).unwrap().trim().parse().unwrap();
                        }
                        if h.name.eq_ignore_ascii_case("connection") && h.value.eq_ignore_ascii_case(b"close") {
                            close = true;
                        }
                    }
                    break (req.path.unwrap().to_string(), n, len, close);
                }
                Ok(httparse::Status::Partial) => {}
                Err(_) => return,
            }
            if have == buf.len() {
                return;
            }
            match sock.read(&mut buf[have..]).await {
                Ok(0) | Err(_) => return,
                Ok(n) => have += n,
            }
        };
        // Skip the body.
        let mut need = head_len + body_len;
        while have < need {
            let take = (need - have).min(buf.len() - have);
            if take == 0 {
                // Body larger than the buffer: drop what we have.
                need -= have;
                have = 0;
                continue;
            }
            match sock.read(&mut buf[have..have + take]).await {
                Ok(0) | Err(_) => return,
                Ok(n) => have += n,
            }
        }
        buf.copy_within(need..have, 0);
        have -= need;

        let n = received.fetch_add(1, Ordering::SeqCst) + 1;
        if stall_at == Some(n) {
            tokio::time::sleep(STALL).await;
        }
        let conn_hdr = if close { "Connection: close\r\n" } else { "" };
        let resp: Vec<u8> = match path.as_str() {
            "/chunked" => format!(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n{conn_hdr}\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
            )
            .into_bytes(),
            "/missing" => format!("HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n{conn_hdr}\r\nnope").into_bytes(),
            "/garbage" => b"this is not http\r\n\r\n".to_vec(),
            "/hang" => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                return;
            }
            "/close" => b"HTTP/1.1 200 OK\r\n\r\nclose-delimited".to_vec(),
            _ => format!("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n{conn_hdr}\r\nhello").into_bytes(),
        };
        if sock.write_all(&resp).await.is_err() || sock.flush().await.is_err() {
            return;
        }
        answered.fetch_add(1, Ordering::SeqCst);
        if close || path == "/close" || path == "/garbage" {
            let _ = sock.shutdown().await;
            return;
        }
    }
}

fn tls_acceptor() -> (tokio_rustls::TlsAcceptor, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "corelink-load test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf_params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    let leaf = leaf_params.signed_by(&leaf_key, &ca, &ca_key).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap();
    let config =
        rustls::ServerConfig::builder().with_no_client_auth().with_single_cert(vec![leaf.der().clone()], key).unwrap();
    (tokio_rustls::TlsAcceptor::from(Arc::new(config)), ca.pem())
}
