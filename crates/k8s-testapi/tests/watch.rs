//! Watch streams, checked byte for byte with the raw client, and with curl.

mod support;

use k8s_testapi::objects::{self, ServicePort, TargetPort};
use k8s_testapi::{ApiServer, WatchFault};
use serde_json::{json, Value};
use std::time::Duration;
use support::{curl, eventually, form_encode, json_lines, RawClient};

fn service(name: &str) -> Value {
    objects::service("prod", name, &[ServicePort { name: None, port: 80, target_port: TargetPort::Number(8080) }])
}

fn name_of(event: &Value) -> &str {
    event["object"]["metadata"]["name"].as_str().unwrap_or("")
}

fn rv_of(event: &Value) -> u64 {
    event["object"]["metadata"]["resourceVersion"].as_str().and_then(|rv| rv.parse().ok()).expect("resourceVersion")
}

/// Starts a watch and checks the response head.
fn open_watch(client: &mut RawClient, target: &str) {
    client.send_get(target, "");
    let (status_line, status, headers) = client.read_head();
    assert_eq!(status_line, "HTTP/1.1 200 OK");
    assert_eq!(status, 200);
    assert_eq!(support::header(&headers, "content-type"), Some("application/json"));
    assert_eq!(support::header(&headers, "transfer-encoding"), Some("chunked"));
    assert_eq!(support::header(&headers, "content-length"), None);
}

#[test]
fn watch_stream_framing_events_and_clean_timeout() {
    let server = ApiServer::start();
    server.apply(service("a"));
    server.apply(service("b"));
    let mut client = RawClient::connect(server.addr());
    open_watch(&mut client, "/api/v1/namespaces/prod/services?watch=true&timeoutSeconds=2");

    // resourceVersion unset: the current state as synthetic ADDED events.
    let first = client.read_event();
    let second = client.read_event();
    assert_eq!((first["type"].as_str(), name_of(&first)), (Some("ADDED"), "a"));
    assert_eq!((second["type"].as_str(), name_of(&second)), (Some("ADDED"), "b"));
    assert_eq!(first["object"]["kind"], "Service", "watch objects carry kind and apiVersion");
    assert_eq!(first["object"]["apiVersion"], "v1");
    assert!(eventually(Duration::from_secs(5), || server.open_watches() == 1));

    let mut changed = service("a");
    changed["spec"]["ports"][0]["port"] = json!(81);
    server.apply(changed);
    let modified = client.read_event();
    assert_eq!(modified["type"], "MODIFIED");
    assert_eq!(modified["object"]["spec"]["ports"][0]["port"], 81);
    assert_eq!(rv_of(&modified), server.resource_version());
    assert_eq!(modified["object"]["metadata"]["uid"], first["object"]["metadata"]["uid"]);

    server.delete("Service", "prod", "b");
    let deleted = client.read_event();
    assert_eq!(deleted["type"], "DELETED");
    assert_eq!(name_of(&deleted), "b");
    assert_eq!(rv_of(&deleted), server.resource_version(), "DELETED carries the deletion's resourceVersion");

    // timeoutSeconds: the terminating chunk, exactly, then the connection is reusable.
    assert_eq!(client.read_chunk(), None);
    let after = client.get("/api/v1/namespaces/prod/services");
    assert_eq!(after.status, 200);
    let list = after.json();
    let names: Vec<&str> =
        list["items"].as_array().expect("items").iter().filter_map(|i| i["metadata"]["name"].as_str()).collect();
    assert_eq!(names, ["a"]);
    assert!(eventually(Duration::from_secs(5), || server.open_watches() == 0));
}

#[test]
fn watch_from_a_resource_version_sends_only_later_changes() {
    let server = ApiServer::start();
    server.apply(service("a"));
    let from = server.resource_version();
    server.apply(service("b"));
    server.apply(objects::config_map("prod", "not-a-service", &[("k", "v")]));
    server.delete("Service", "prod", "a");
    let mut client = RawClient::connect(server.addr());
    open_watch(&mut client, &format!("/api/v1/services?watch=1&resourceVersion={from}&timeoutSeconds=1"));
    let added = client.read_event();
    assert_eq!((added["type"].as_str(), name_of(&added)), (Some("ADDED"), "b"));
    assert!(rv_of(&added) > from);
    let deleted = client.read_event();
    assert_eq!((deleted["type"].as_str(), name_of(&deleted)), (Some("DELETED"), "a"));
    assert_eq!(client.read_chunk(), None, "nothing else: the ConfigMap is another kind");
}

#[test]
fn watch_from_a_compacted_version_gets_one_410_error_event() {
    let server = ApiServer::start();
    server.apply(service("a"));
    let old = server.resource_version();
    server.apply(service("b"));
    server.expire_history();
    let current = server.resource_version();
    let mut client = RawClient::connect(server.addr());
    open_watch(
        &mut client,
        &format!("/api/v1/namespaces/prod/services?watch=true&resourceVersion={old}&allowWatchBookmarks=true"),
    );
    let error = client.read_event();
    assert_eq!(
        error,
        json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": format!("too old resource version: {old} ({current})"), "reason": "Expired", "code": 410}})
    );
    assert_eq!(client.read_chunk(), None, "the stream ends cleanly after the error");
    assert_eq!(server.open_watches(), 0);
    // The current version is still watchable.
    let mut fresh = RawClient::connect(server.addr());
    open_watch(
        &mut fresh,
        &format!("/api/v1/namespaces/prod/services?watch=true&resourceVersion={current}&timeoutSeconds=1"),
    );
    assert_eq!(fresh.read_chunk(), None);

    let url = format!("http://{}/api/v1/namespaces/prod/services?watch=true&resourceVersion={old}", server.addr());
    let Some(output) = curl(&["-N", "--fail", &url]) else { return };
    let lines = json_lines(&output.stdout);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["type"], "ERROR");
    assert_eq!(lines[0]["object"]["code"], 410);
}

#[test]
fn history_limit_compacts_the_oldest_changes() {
    let server = ApiServer::start();
    server.set_history_limit(2);
    server.apply(service("a"));
    let first = server.resource_version();
    server.apply(service("b"));
    server.apply(service("c"));
    let mut client = RawClient::connect(server.addr());
    open_watch(&mut client, &format!("/api/v1/services?watch=true&resourceVersion={}", first - 1));
    assert_eq!(client.read_event()["object"]["code"], 410);
    let mut client = RawClient::connect(server.addr());
    open_watch(&mut client, &format!("/api/v1/services?watch=true&resourceVersion={first}&timeoutSeconds=1"));
    assert_eq!(name_of(&client.read_event()), "b");
    assert_eq!(name_of(&client.read_event()), "c");
}

#[test]
fn bookmarks_go_only_to_watches_that_asked() {
    let server = ApiServer::start();
    server.apply(service("a"));
    let from = server.resource_version();
    let mut asked = RawClient::connect(server.addr());
    open_watch(
        &mut asked,
        &format!("/api/v1/namespaces/prod/services?watch=true&resourceVersion={from}&allowWatchBookmarks=true"),
    );
    let mut silent = RawClient::connect(server.addr());
    open_watch(&mut silent, &format!("/api/v1/namespaces/prod/services?watch=true&resourceVersion={from}"));
    assert!(eventually(Duration::from_secs(5), || server.open_watches() == 2));
    server.bookmark();
    let bookmark = asked.read_event();
    assert_eq!(
        bookmark,
        json!({"type": "BOOKMARK", "object": {"kind": "Service", "apiVersion": "v1", "metadata": {"resourceVersion": from.to_string()}}})
    );
    server.apply(service("b"));
    assert_eq!(silent.read_event()["type"], "ADDED", "no bookmark before the next change");
    assert_eq!(asked.read_event()["type"], "ADDED");
}

#[test]
fn streaming_list_ends_with_the_initial_events_end_bookmark() {
    let server = ApiServer::start();
    server.apply(service("a"));
    server.apply(service("b"));
    let mut client = RawClient::connect(server.addr());
    // kube-runtime's `streaming_lists()` initial watch.
    open_watch(
        &mut client,
        "/api/v1/namespaces/prod/services?watch=true&timeoutSeconds=290&allowWatchBookmarks=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&resourceVersion=0",
    );
    assert_eq!(name_of(&client.read_event()), "a");
    assert_eq!(name_of(&client.read_event()), "b");
    let end = client.read_event();
    assert_eq!(end["type"], "BOOKMARK");
    assert_eq!(end["object"]["metadata"]["annotations"], json!({"k8s.io/initial-events-end": "true"}));
    assert_eq!(end["object"]["metadata"]["resourceVersion"], server.resource_version().to_string());
    server.apply(service("c"));
    assert_eq!(client.read_event()["type"], "ADDED");

    // Without allowWatchBookmarks: the state, and no bookmark.
    let mut quiet = RawClient::connect(server.addr());
    open_watch(
        &mut quiet,
        "/api/v1/services?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&timeoutSeconds=1",
    );
    let names: Vec<String> = (0..3).map(|_| name_of(&quiet.read_event()).to_string()).collect();
    assert_eq!(names, ["a", "b", "c"]);
    assert_eq!(quiet.read_chunk(), None);

    let mut refused = RawClient::connect(server.addr());
    let response = refused.get("/api/v1/services?watch=true&resourceVersionMatch=NotOlderThan&resourceVersion=0");
    assert_eq!(response.status, 422, "resourceVersionMatch needs sendInitialEvents on a watch");
    assert_eq!(response.json()["reason"], "Invalid");
    let response = refused.get("/api/v1/services?watch=true&sendInitialEvents=true");
    assert_eq!(response.status, 422, "sendInitialEvents needs resourceVersionMatch=NotOlderThan");
}

#[test]
fn a_legacy_watch_with_bookmarks_gets_the_initial_events_end_bookmark() {
    // 1.34 defaults a watch from "" or "0" to sendInitialEvents=true.
    let server = ApiServer::start();
    server.apply(service("a"));
    for from in ["", "&resourceVersion=0"] {
        let mut client = RawClient::connect(server.addr());
        open_watch(
            &mut client,
            &format!("/api/v1/services?watch=true&allowWatchBookmarks=true&timeoutSeconds=1{from}"),
        );
        assert_eq!(client.read_event()["type"], "ADDED");
        let end = client.read_event();
        assert_eq!(end["type"], "BOOKMARK");
        assert_eq!(end["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"], "true");
        assert_eq!(client.read_chunk(), None);
    }
}

#[test]
fn objects_moving_across_a_selector_are_added_and_deleted() {
    let server = ApiServer::start();
    let labelled = |tier: &str| {
        let mut object = service("a");
        object["metadata"]["labels"]["tier"] = json!(tier);
        object
    };
    server.apply(labelled("front"));
    let mut client = RawClient::connect(server.addr());
    let selector = form_encode("tier in (front)");
    open_watch(&mut client, &format!("/api/v1/namespaces/prod/services?watch=true&labelSelector={selector}"));
    assert_eq!(client.read_event()["type"], "ADDED");

    server.apply(labelled("back"));
    let left = client.read_event();
    assert_eq!(left["type"], "DELETED");
    assert_eq!(left["object"]["metadata"]["labels"]["tier"], "front", "DELETED carries the content that matched");
    assert_eq!(rv_of(&left), server.resource_version(), "at the change's resourceVersion");

    server.apply(labelled("side"));
    server.apply(labelled("front"));
    let entered = client.read_event();
    assert_eq!(entered["type"], "ADDED");
    assert_eq!(rv_of(&entered), server.resource_version());
    server.delete("services", "prod", "a");
    assert_eq!(client.read_event()["type"], "DELETED");
}

#[test]
fn watch_of_one_name_and_the_legacy_watch_prefix() {
    let server = ApiServer::start();
    server.apply(service("a"));
    server.apply(service("b"));
    let mut by_path = RawClient::connect(server.addr());
    open_watch(&mut by_path, "/api/v1/namespaces/prod/services/b?watch=true&timeoutSeconds=1");
    assert_eq!(name_of(&by_path.read_event()), "b");
    assert_eq!(by_path.read_chunk(), None);
    let mut by_prefix = RawClient::connect(server.addr());
    open_watch(
        &mut by_prefix,
        "/api/v1/watch/namespaces/prod/services?timeoutSeconds=1&fieldSelector=metadata.name%3Da",
    );
    assert_eq!(name_of(&by_prefix.read_event()), "a");
    assert_eq!(by_prefix.read_chunk(), None);
}

#[test]
fn drop_watches_cuts_streams_mid_stream() {
    let server = ApiServer::start();
    server.apply(service("a"));
    let mut client = RawClient::connect(server.addr());
    open_watch(&mut client, "/api/v1/services?watch=true&allowWatchBookmarks=true");
    assert_eq!(client.read_event()["type"], "ADDED");
    assert_eq!(client.read_event()["type"], "BOOKMARK", "the initial-events-end bookmark");
    assert!(eventually(Duration::from_secs(5), || server.open_watches() == 1));
    server.drop_watches();
    assert_eq!(server.open_watches(), 0);
    client.closes_without_data(Duration::from_secs(5)).expect("closed with no terminating chunk");
    // The server goes on serving.
    assert_eq!(RawClient::connect(server.addr()).get("/api/v1/services").status, 200);
}

#[test]
fn drop_watches_cuts_a_stream_whose_client_is_not_reading() {
    let server = ApiServer::start();
    let mut client = RawClient::connect(server.addr());
    open_watch(&mut client, "/api/v1/configmaps?watch=true");
    assert!(eventually(Duration::from_secs(5), || server.open_watches() == 1));
    // About 20 MB of events: far more than the socket buffers hold, so the
    // server's writer blocks on this client, which reads nothing yet.
    let big = "x".repeat(64 * 1024);
    for index in 0..300 {
        server.apply(objects::config_map("prod", &format!("big-{index}"), &[("blob", &big)]));
    }
    server.drop_watches();
    let received = client.read_to_close(32 << 20);
    assert!(received.len() < 10 << 20, "cut at once, not after the queued events: got {} bytes", received.len());
    assert!(!received.ends_with(b"0\r\n\r\n"), "no terminating chunk");
}

#[test]
fn set_available_false_is_an_api_server_that_is_down() {
    let server = ApiServer::start();
    server.apply(service("a"));
    let mut watcher = RawClient::connect(server.addr());
    open_watch(&mut watcher, "/api/v1/services?watch=true");
    assert_eq!(watcher.read_event()["type"], "ADDED");
    let mut idle = RawClient::connect(server.addr());
    assert_eq!(idle.get("/version").status, 200);

    server.set_available(false);
    watcher.closes_without_data(Duration::from_secs(5)).expect("open watch cut");
    idle.closes_without_data(Duration::from_secs(5)).expect("idle keep-alive connection closed");
    for _ in 0..3 {
        let mut refused = RawClient::connect(server.addr());
        refused.send_ignoring_errors(b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n");
        refused.closes_without_data(Duration::from_secs(5)).expect("new connections closed at once");
    }
    let revision = server.resource_version();
    server.set_available(true);
    let mut client = RawClient::connect(server.addr());
    let list = client.get("/api/v1/services").json();
    assert_eq!(list["metadata"]["resourceVersion"], revision.to_string(), "same data after coming back");
    open_watch(&mut client, &format!("/api/v1/services?watch=true&resourceVersion={revision}"));
    server.apply(service("b"));
    assert_eq!(client.read_event()["type"], "ADDED");
}

#[test]
fn a_client_that_goes_away_frees_its_watch() {
    let server = ApiServer::start();
    let mut client = RawClient::connect(server.addr());
    open_watch(&mut client, "/api/v1/configmaps?watch=true");
    assert!(eventually(Duration::from_secs(5), || server.open_watches() == 1));
    drop(client);
    assert!(eventually(Duration::from_secs(5), || server.open_watches() == 0), "watch still registered");
}

#[test]
fn curl_watches_a_stream_of_events() {
    let server = ApiServer::start();
    server.apply(objects::config_map("prod", "dtabs", &[("default", "/svc => /$/inet/127.1/8080;")]));
    let url = format!("http://{}/api/v1/namespaces/prod/configmaps?watch=true&timeoutSeconds=2", server.addr());
    let output = std::thread::scope(|scope| {
        let watcher = scope.spawn(|| curl(&["-N", "--fail", &url]));
        assert!(eventually(Duration::from_secs(5), || server.open_watches() == 1));
        server.apply(objects::config_map("prod", "dtabs", &[("default", "/svc => /$/inet/127.1/9090;")]));
        server.delete("ConfigMap", "prod", "dtabs");
        watcher.join().expect("curl thread")
    });
    let Some(output) = output else { return };
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let types: Vec<String> =
        json_lines(&output.stdout).iter().map(|event| event["type"].as_str().unwrap_or("").to_string()).collect();
    assert_eq!(types, ["ADDED", "MODIFIED", "DELETED"]);
}

#[test]
fn kube_runtime_watcher_resume_requests() {
    // kube-runtime's watcher after its list: watch=true, timeoutSeconds=290,
    // the selector, allowWatchBookmarks=true, resourceVersion=<list's>.
    let server = ApiServer::start();
    server.apply(service("a"));
    let mut client = RawClient::connect(server.addr());
    let listed = client.get("/api/v1/namespaces/prod/services?labelSelector=app%3Da&limit=500").json();
    let version = listed["metadata"]["resourceVersion"].as_str().expect("rv").to_string();
    open_watch(
        &mut client,
        &format!("/api/v1/namespaces/prod/services?watch=true&timeoutSeconds=290&labelSelector=app%3Da&allowWatchBookmarks=true&resourceVersion={version}"),
    );
    let mut changed = service("a");
    changed["spec"]["ports"][0]["port"] = json!(82);
    server.apply(changed);
    let event = client.read_event();
    assert_eq!(event["type"], "MODIFIED");
    server.bookmark();
    assert_eq!(client.read_event()["type"], "BOOKMARK");
    let watch = server.requests().into_iter().rev().find(|request| request.is_watch()).expect("logged watch");
    assert_eq!(watch.query_param("timeoutSeconds").as_deref(), Some("290"));
    assert_eq!(watch.query_param("resourceVersion"), Some(version));
}

#[test]
fn injected_watch_faults_answer_as_the_apiserver_would() {
    let server = ApiServer::start();
    server.apply(service("a"));
    let rv = server.resource_version();
    let target = format!("/api/v1/namespaces/prod/services?watch=true&resourceVersion={rv}&allowWatchBookmarks=true");

    // A version ahead of the server: 200, one ERROR event, a clean end.
    server.fail_watches(Some(WatchFault::VersionAhead));
    let mut client = RawClient::connect(server.addr());
    open_watch(&mut client, &target);
    assert_eq!(
        client.read_event(),
        json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": format!("Too large resource version: {rv}, current: {}", rv - 1), "reason": "Timeout",
               "code": 504, "details": {"causes": [{"reason": "ResourceVersionTooLarge",
               "message": "Too large resource version"}], "retryAfterSeconds": 1}}})
    );
    assert_eq!(client.read_chunk(), None, "the stream ends cleanly after the error");
    // The connection stays usable; lists are not affected.
    assert_eq!(client.get("/api/v1/namespaces/prod/services").status, 200);

    // 410 Gone for the request itself.
    server.fail_watches(Some(WatchFault::Gone));
    let response = client.get(&target);
    assert_eq!(response.status, 410);
    assert_eq!(response.json()["reason"], "Expired");
    assert_eq!(response.json()["message"], format!("too old resource version: {rv} ({rv})"));

    // Hung: read and logged, never answered.
    server.fail_watches(Some(WatchFault::Hang));
    assert_unanswered(&server, &target);

    // Cleared: watches are served again.
    server.fail_watches(None);
    let mut client = RawClient::connect(server.addr());
    open_watch(&mut client, &format!("{target}&timeoutSeconds=1"));
    assert_eq!(client.read_chunk(), None);
}

#[test]
fn hung_lists_are_read_and_never_answered() {
    let server = ApiServer::start();
    server.hang_lists(true);
    assert_unanswered(&server, "/api/v1/services");
    // Watches are not affected.
    let mut client = RawClient::connect(server.addr());
    open_watch(&mut client, "/api/v1/services?watch=true&timeoutSeconds=1");
    server.hang_lists(false);
    assert_eq!(client.read_chunk(), None);
    assert_eq!(RawClient::connect(server.addr()).get("/api/v1/services").status, 200);
}

/// Sends `GET target`, and checks that the request is logged but nothing
/// comes back within half a second.
fn assert_unanswered(server: &ApiServer, target: &str) {
    let mut tcp = std::net::TcpStream::connect(server.addr()).expect("connect");
    let before = server.requests().len();
    std::io::Write::write_all(&mut tcp, format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).expect("send");
    assert!(eventually(Duration::from_secs(5), || server.requests().len() > before), "the request is logged");
    tcp.set_read_timeout(Some(Duration::from_millis(500))).expect("read timeout");
    let mut buffer = [0u8; 64];
    match std::io::Read::read(&mut tcp, &mut buffer) {
        Err(error) => {
            assert!(matches!(error.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut), "{error}")
        }
        Ok(read) => panic!("answered: {:?}", String::from_utf8_lossy(&buffer[..read])),
    }
}
