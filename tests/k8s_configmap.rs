//! The `io.l5d.k8s.configMap` interpreter through the real binary, against
//! the test Kubernetes API server (`crates/k8s-testapi`), on every I/O
//! backend: the router's dtab behind the dtab in one key of a watched
//! ConfigMap.
//!
//! The destinations are tiny HTTP servers that answer every request with
//! their name, so a test sees where a request was routed.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::named::{ask, served_by, wait_for, wait_served_by, NamedServer as Named};
use common::{backends, client, Corelink};
use k8s_testapi::objects;
use k8s_testapi::ApiServer;

fn wait_unrouted(addr: SocketAddr, host: &str, limit: Duration) -> Duration {
    wait_for(addr, host, limit, |r| matches!(r, Ok((s, _)) if *s >= 400))
}

const NS: &str = "prod";
const NAME: &str = "dtabs";
const KEY: &str = "outgoing.dtab";

/// A router whose own dtab routes `Host: own` to `own`, with the configMap
/// interpreter on `api`'s ConfigMap prod/dtabs, key outgoing.dtab.
fn config(api: SocketAddr, own: &Named) -> String {
    format!(
        "admin:\n  port: 0\nrouters:\n- protocol: http\n  label: out\n  dtab: |\n    /svc/own => /$/inet/127.0.0.1/{};\n  interpreter:\n    kind: io.l5d.k8s.configMap\n    experimental: true\n    host: {}\n    port: {}\n    namespace: {NS}\n    name: {NAME}\n    filename: {KEY}\n  servers:\n  - port: 0\ncorelink:\n  workers: 2\n  shutdownDelayMs: 0\n",
        own.port(),
        api.ip(),
        api.port(),
    )
}

fn inet(host: &str, to: &Named) -> String {
    format!("/svc/{host} => /$/inet/127.0.0.1/{};\n", to.port())
}

fn put_dtab(api: &ApiServer, dtab: &str) {
    api.apply(objects::config_map(NS, NAME, &[(KEY, dtab), ("unrelated", "x")]));
}

fn interpreter_metric(corelink: &Corelink, name: &str) -> f64 {
    let value = corelink.metric_ending(&format!("{NS}/{NAME}/{KEY}/{name}"));
    let all = corelink.metrics();
    assert!(all.iter().any(|(k, _)| k.starts_with("corelink/interpreter/io.l5d.k8s.configMap/") && k.ends_with(name)));
    value
}

fn watch_metric(corelink: &Corelink, name: &str) -> f64 {
    corelink.metric_ending(&format!("configmaps/{NS}/{NAME}/{name}"))
}

#[test]
fn the_config_map_dtab_routes_in_front_of_the_routers_and_a_change_applies_within_a_second() {
    for io in backends() {
        let api = ApiServer::start();
        let (a, b, own) = (Named::start("a"), Named::start("b"), Named::start("own"));
        // The ConfigMap routes `web`, and `own` too: the router's own entry,
        // later in the combined dtab, wins for `own`.
        put_dtab(&api, &format!("{}{}", inet("web", &a), inet("own", &a)));
        let corelink = Corelink::start(&config(api.addr(), &own), io);
        assert_eq!(served_by(corelink.addr(), "web"), "a", "{io}");
        assert_eq!(served_by(corelink.addr(), "own"), "own", "{io}: the router's own entry wins");

        // One ConfigMap, by name, in its namespace: what a Role with
        // `resourceNames: [dtabs]` and get/list/watch allows.
        let requests = api.requests();
        assert!(!requests.is_empty(), "{io}");
        for r in &requests {
            assert_eq!(r.path, "/api/v1/namespaces/prod/configmaps", "{io}: {r:?}");
            assert_eq!(r.query_param("fieldSelector").as_deref(), Some("metadata.name=dtabs"), "{io}: {r:?}");
        }
        assert!(requests.iter().any(|r| r.is_watch()), "{io}: {requests:?}");
        assert!(requests.iter().any(|r| !r.is_watch()), "{io}: {requests:?}");

        // A change is applied within a second.
        put_dtab(&api, &inet("web", &b));
        let took = wait_served_by(corelink.addr(), "web", "b", Duration::from_secs(1));
        eprintln!("{io}: the ConfigMap change served in {took:?}");
        // The ConfigMap no longer routes `own`; the router still does.
        assert_eq!(served_by(corelink.addr(), "own"), "own", "{io}");

        // The admin server shows it as linkerd's interpreter state page does.
        let rsp = client::get(
            corelink.admin,
            "/out/interpreter_state/io.l5d.k8s.configmap.json",
            &corelink.admin.to_string(),
        )
        .unwrap();
        assert_eq!(rsp.status, 200, "{io}");
        let state: serde_json::Value = serde_json::from_slice(&rsp.body).unwrap();
        let want = format!("/svc/web=>/$/inet/127.0.0.1/{}", b.port());
        assert_eq!(state["state"]["value"], want.as_str(), "{io}: {state}");
        assert_eq!(state["state"]["source"], "key", "{io}: {state}");
        assert_eq!(
            state["dtab"],
            format!("{want};/svc/own=>/$/inet/127.0.0.1/{}", own.port()).as_str(),
            "{io}: {state}"
        );
        // So does the delegator: the ConfigMap's entry is used.
        let rsp = client::get(corelink.admin, "/delegator.json?path=/svc/web", &corelink.admin.to_string()).unwrap();
        let delegation = String::from_utf8_lossy(&rsp.body).into_owned();
        let dentry = format!(r#""dentry":{{"prefix":"/svc/web","dst":"/$/inet/127.0.0.1/{}"}}"#, b.port());
        assert!(delegation.contains(&dentry), "{io}: {delegation}");
        assert_eq!(interpreter_metric(&corelink, "updates"), 2.0, "{io}");
        assert_eq!(interpreter_metric(&corelink, "dentries"), 1.0, "{io}");
        assert_eq!(watch_metric(&corelink, "synced"), 1.0, "{io}");
    }
}

#[test]
fn a_broken_dtab_is_refused_and_the_previous_one_keeps_serving() {
    for io in backends() {
        let api = ApiServer::start();
        let (a, b, own) = (Named::start("a"), Named::start("b"), Named::start("own"));
        put_dtab(&api, &inet("web", &a));
        let corelink = Corelink::start(&config(api.addr(), &own), io);
        assert_eq!(served_by(corelink.addr(), "web"), "a", "{io}");
        put_dtab(&api, &format!("{}/svc/broken => ;;\n", inet("web", &b)));
        let refused = Instant::now();
        while interpreter_metric(&corelink, "refused") < 1.0 {
            assert!(refused.elapsed() < Duration::from_secs(1), "{io}: the broken dtab is counted");
            std::thread::sleep(Duration::from_millis(10));
        }
        for _ in 0..20 {
            assert_eq!(served_by(corelink.addr(), "web"), "a", "{io}: the old dtab keeps serving");
        }
        let logs = corelink.stderr_lines().join("\n");
        assert!(logs.contains("io.l5d.k8s.configMap: the dtab does not parse; refused"), "{io}:\n{logs}");
        // A good dtab afterwards is applied.
        put_dtab(&api, &inet("web", &b));
        wait_served_by(corelink.addr(), "web", "b", Duration::from_secs(1));
        assert_eq!(interpreter_metric(&corelink, "refused"), 1.0, "{io}");
    }
}

#[test]
fn a_deleted_config_map_or_key_leaves_the_routers_own_dtab() {
    for io in backends() {
        let api = ApiServer::start();
        let (a, own) = (Named::start("a"), Named::start("own"));
        // No ConfigMap at start: an empty dtab, and corelink starts.
        let corelink = Corelink::start(&config(api.addr(), &own), io);
        assert!(ask(corelink.addr(), "web").is_ok_and(|(s, _)| s >= 400), "{io}");
        assert_eq!(served_by(corelink.addr(), "own"), "own", "{io}");
        put_dtab(&api, &inet("web", &a));
        wait_served_by(corelink.addr(), "web", "a", Duration::from_secs(1));

        // Deleted: the router's dtab alone.
        api.delete("ConfigMap", NS, NAME);
        let took = wait_unrouted(corelink.addr(), "web", Duration::from_secs(1));
        assert_eq!(served_by(corelink.addr(), "own"), "own", "{io}");
        eprintln!("{io}: the deleted ConfigMap's dtab left in {took:?}");

        // Back, then its key removed: the same.
        put_dtab(&api, &inet("web", &a));
        wait_served_by(corelink.addr(), "web", "a", Duration::from_secs(1));
        api.apply(objects::config_map(NS, NAME, &[("unrelated", "x")]));
        wait_unrouted(corelink.addr(), "web", Duration::from_secs(1));
        assert_eq!(served_by(corelink.addr(), "own"), "own", "{io}");

        let logs = corelink.stderr_lines().join("\n");
        let missing = logs.matches("the ConfigMap does not exist").count();
        assert_eq!(missing, 2, "{io}: logged once each time it goes missing:\n{logs}");
        assert!(logs.contains("the ConfigMap has no such key"), "{io}:\n{logs}");
    }
}

#[test]
fn a_dropped_watch_and_a_410_gone_recover() {
    for io in backends() {
        let api = ApiServer::start();
        let (a, b, own) = (Named::start("a"), Named::start("b"), Named::start("own"));
        put_dtab(&api, &inet("web", &a));
        let corelink = Corelink::start(&config(api.addr(), &own), io);
        assert_eq!(served_by(corelink.addr(), "web"), "a", "{io}");

        api.drop_watches();
        put_dtab(&api, &inet("web", &b));
        let took = wait_served_by(corelink.addr(), "web", "b", Duration::from_secs(2));
        eprintln!("{io}: after a dropped watch, the change served in {took:?}");

        // Down, changed meanwhile, history compacted: the watch gets 410
        // Gone and lists again.
        api.set_available(false);
        put_dtab(&api, &inet("web", &a));
        api.expire_history();
        api.set_available(true);
        let took = wait_served_by(corelink.addr(), "web", "a", Duration::from_secs(3));
        eprintln!("{io}: after 410 Gone, the change served in {took:?}");

        assert!(watch_metric(&corelink, "reconnects") >= 2.0, "{io}");
        assert!(watch_metric(&corelink, "relists") >= 1.0, "{io}");
        assert!(watch_metric(&corelink, "last_event_age_ms") < 5_000.0, "{io}");
        let logs = corelink.stderr_lines().join("\n");
        assert!(logs.contains("io.l5d.k8s: watch"), "{io}: restarts are logged:\n{logs}");
    }
}

#[test]
fn ready_waits_for_the_first_read_of_the_config_map() {
    for io in backends() {
        let api = Arc::new(ApiServer::start());
        let (a, own) = (Named::start("a"), Named::start("own"));
        put_dtab(&api, &inet("web", &a));
        api.set_available(false);
        let up_at = Duration::from_millis(3000);
        let started = Instant::now();
        let thread = std::thread::spawn({
            let api = api.clone();
            move || {
                std::thread::sleep(up_at);
                api.set_available(true);
            }
        });
        // Start-up waits 2 s for the first read, then starts anyway;
        // /admin/ready answers 503 until the ConfigMap has been read.
        let corelink = Corelink::start(&config(api.addr(), &own), io);
        assert!(started.elapsed() >= up_at, "{io}: ready after {:?}", started.elapsed());
        assert_eq!(served_by(corelink.addr(), "web"), "a", "{io}");
        thread.join().unwrap();
    }
}

#[test]
fn delegate_and_check_do_not_contact_the_api_server_and_say_so() {
    let api = ApiServer::start();
    let own = Named::start("own");
    put_dtab(&api, &inet("web", &own));
    let dir = common::tempdir::Dir::new("cm-cli");
    let path = dir.path().join("corelink.yaml");
    std::fs::write(&path, config(api.addr(), &own)).unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(common::binary()).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        (String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
    };
    let config_path = path.to_str().unwrap();
    let (stdout, stderr) = run(&["delegate", "--config", config_path, "/svc/own"]);
    assert_eq!(stdout.lines().last(), Some(format!("=> /$/inet/127.0.0.1/{}", own.port()).as_str()), "{stdout}");
    assert!(stderr.contains("does not contact the API server"), "{stderr}");
    assert!(stderr.contains("ConfigMap prod/dtabs key \"outgoing.dtab\""), "{stderr}");
    let (stdout, _) = run(&["check", "--config", config_path]);
    assert!(stdout.contains("interpreter: io.l5d.k8s.configMap: the dtab of ConfigMap prod/dtabs"), "{stdout}");
    assert!(api.requests().is_empty(), "{:?}", api.requests());
}

#[test]
fn the_config_map_dtab_names_services_of_the_k8s_namer_on_the_same_api_server() {
    use k8s_testapi::objects::{Endpoint, ServicePort, TargetPort};
    for io in backends() {
        let api = ApiServer::start();
        let (web, own) = (Named::start("web-pod"), Named::start("own"));
        api.apply(objects::service(
            NS,
            "web",
            &[ServicePort { name: Some("http"), port: 80, target_port: TargetPort::Name("http") }],
        ));
        api.apply(objects::endpoint_slice(
            NS,
            "web-a",
            "web",
            &[(Some("http"), web.port())],
            &[Endpoint::ready("127.0.0.1")],
        ));
        // The write-up's shape: the shared routes in the ConfigMap, the k8s
        // namer beside the router.
        put_dtab(&api, "/svc => /#/io.l5d.k8s/prod/http;");
        let text = config(api.addr(), &own).replace(
            "routers:\n",
            &format!(
                "namers:\n- kind: io.l5d.k8s\n  host: {}\n  port: {}\nrouters:\n",
                api.addr().ip(),
                api.addr().port()
            ),
        );
        let corelink = Corelink::start(&text, io);
        assert_eq!(served_by(corelink.addr(), "web"), "web-pod", "{io}");
        assert_eq!(served_by(corelink.addr(), "own"), "own", "{io}");
        // A name the ConfigMap routes to a missing Service: `~`, nothing else
        // routes it.
        assert!(ask(corelink.addr(), "nosuch").is_ok_and(|(s, _)| s >= 400), "{io}");
    }
}
