//! HTTP/1.1 behaviour and robustness: keep-alive, `Connection: close`,
//! HTTP/1.0, pipelining, size limits and bad input (which must never stop
//! the server), and the request log.

mod support;

use k8s_testapi::ApiServer;
use std::time::Duration;
use support::RawClient;

/// The server still answers a normal request.
fn still_serves(server: &ApiServer) {
    let mut client = RawClient::connect(server.addr());
    assert_eq!(client.get("/version").status, 200);
}

#[test]
fn keep_alive_pipelining_and_connection_close() {
    let server = ApiServer::start();
    let mut client = RawClient::connect(server.addr());
    for _ in 0..3 {
        let response = client.get("/api/v1/services");
        assert_eq!(response.status_line, "HTTP/1.1 200 OK");
        assert!(response.header("date").is_some());
        assert!(response.header("audit-id").is_some());
        assert_eq!(response.header("connection"), None, "keep-alive is the HTTP/1.1 default");
    }
    // Two requests in one write are answered in order.
    client.send(b"GET /version HTTP/1.1\r\nHost: x\r\n\r\nGET /api/v1/nope HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(client.read_response().status, 200);
    assert_eq!(client.read_response().status, 404);
    // `Connection: close` is honoured: the response says so, then the server closes.
    client.send(b"GET /version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let last = client.read_response();
    assert_eq!(last.header("connection"), Some("close"));
    client.closes_without_data(Duration::from_secs(5)).expect("closed after Connection: close");
}

#[test]
fn http_1_0_gets_one_response_and_a_close() {
    let server = ApiServer::start();
    let mut client = RawClient::connect(server.addr());
    client.send(b"GET /version HTTP/1.0\r\n\r\n");
    let response = client.read_response();
    assert_eq!(response.status, 200);
    client.closes_without_data(Duration::from_secs(5)).expect("HTTP/1.0 closes");
    // A watch over HTTP/1.0 is not chunked: events until the close.
    server.apply(k8s_testapi::objects::config_map("prod", "a", &[("k", "v")]));
    let mut watcher = RawClient::connect(server.addr());
    watcher.send(b"GET /api/v1/configmaps?watch=true&timeoutSeconds=1 HTTP/1.0\r\n\r\n");
    let (_, status, headers) = watcher.read_head();
    assert_eq!(status, 200);
    assert_eq!(support::header(&headers, "transfer-encoding"), None);
    let body = watcher.read_to_close(1 << 20);
    let events = support::json_lines(&body);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["type"], "ADDED");
}

#[test]
fn bad_requests_are_answered_and_closed() {
    let server = ApiServer::start();
    let cases: [(&[u8], &str); 6] = [
        (b"GARBAGE\r\n\r\n", "HTTP/1.1 400 Bad Request"),
        (b"GET /version HTTP/1.1\r\nNo colon here\r\n\r\n", "HTTP/1.1 400 Bad Request"),
        (b"GET /version HTTP/1.1\r\nContent-Length: x\r\n\r\n", "HTTP/1.1 400 Bad Request"),
        (b"GET /version HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "HTTP/1.1 400 Bad Request"),
        (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "HTTP/1.1 505 HTTP Version Not Supported"),
        (b"GET /version HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n", "HTTP/1.1 413 Request Entity Too Large"),
    ];
    for (request, status_line) in cases {
        let mut client = RawClient::connect(server.addr());
        client.send(request);
        let reply = client.read_to_close(64 * 1024);
        let text = String::from_utf8_lossy(&reply);
        assert!(text.starts_with(status_line), "{:?} got {text:?}", String::from_utf8_lossy(request));
        assert!(text.contains("Connection: close"));
    }
    still_serves(&server);
}

#[test]
fn oversized_heads_and_hostile_bytes_do_not_hurt_the_server() {
    let server = ApiServer::start();
    let mut big = RawClient::connect(server.addr());
    let mut head = b"GET /version HTTP/1.1\r\nX-Big: ".to_vec();
    head.extend(std::iter::repeat_n(b'a', 70 * 1024));
    big.send_ignoring_errors(&head);
    let reply = big.read_to_close(64 * 1024);
    assert!(reply.starts_with(b"HTTP/1.1 431 "), "{:?}", String::from_utf8_lossy(&reply[..reply.len().min(80)]));

    // Pseudo-random bytes (a fixed xorshift sequence) in many shapes.
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    for round in 0..40 {
        let mut bytes = Vec::new();
        let length = 1 + (round * 37) % 600;
        for _ in 0..length {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            bytes.push(state as u8);
        }
        if round % 2 == 0 {
            // Half of them look like a request line first.
            let mut prefixed = b"GET /api/v1/services?".to_vec();
            prefixed.extend_from_slice(&bytes);
            bytes = prefixed;
        }
        bytes.extend_from_slice(b"\r\n\r\n");
        let mut client = RawClient::connect(server.addr());
        client.send_ignoring_errors(&bytes);
        let _ = client.read_to_close(1 << 20);
    }
    // Odd but valid queries.
    let mut client = RawClient::connect(server.addr());
    for target in [
        "/api/v1/services?labelSelector=%ff%fe",
        "/api/v1/services?limit=-5",
        "/api/v1/services?limit=99999999999999999999",
        "/api/v1/services?continue=%00",
        "/api/v1/services?timeoutSeconds=-1&watch=false",
        "/api/v1/namespaces/%2e%2e/services",
        "/api/v1//services",
        "/api/v1/services?fieldSelector=metadata.name%3D%5C",
    ] {
        let response = client.get(target);
        assert!(response.status < 500, "{target}: {}", response.status);
    }
    still_serves(&server);
}

#[test]
fn a_silent_connection_does_not_block_others() {
    let server = ApiServer::start();
    let _silent = RawClient::connect(server.addr());
    let mut half = RawClient::connect(server.addr());
    half.send(b"GET /version HTTP/1.1\r\nHost:");
    still_serves(&server);
}

#[test]
fn the_request_log_records_method_path_query_and_authorization() {
    let server = ApiServer::start();
    let mut client = RawClient::connect(server.addr());
    client.send_get(
        "/api/v1/namespaces/prod/services?labelSelector=app%3Dweb&limit=500",
        "Authorization: Bearer abc\r\n",
    );
    assert_eq!(client.read_response().status, 200);
    client.send_get("/api/v1/configmaps?watch=1&timeoutSeconds=1", "");
    let _ = client.read_head();
    assert_eq!(client.read_chunk(), None);
    let log = server.requests();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].method, "GET");
    assert_eq!(log[0].path, "/api/v1/namespaces/prod/services");
    assert_eq!(log[0].query, "labelSelector=app%3Dweb&limit=500");
    assert_eq!(log[0].query_param("labelSelector").as_deref(), Some("app=web"));
    assert_eq!(log[0].authorization.as_deref(), Some("Bearer abc"));
    assert!(!log[0].is_watch());
    assert!(log[1].is_watch());
    assert_eq!(log[1].authorization, None);
}

#[test]
fn dropping_the_server_stops_it() {
    let server = ApiServer::start();
    let addr = server.addr();
    let mut watcher = RawClient::connect(addr);
    watcher.send_get("/api/v1/services?watch=true", "");
    assert_eq!(watcher.read_head().1, 200);
    let started = std::time::Instant::now();
    drop(server);
    assert!(started.elapsed() < Duration::from_secs(5), "drop joins its threads promptly");
    watcher.closes_without_data(Duration::from_secs(5)).expect("watch ended by the drop");
    assert!(std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err(), "no longer listening");
}
