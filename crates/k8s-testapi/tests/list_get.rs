//! List and get, checked with curl and with the raw client.

mod support;

use k8s_testapi::objects::{self, Endpoint, ServicePort, TargetPort};
use k8s_testapi::ApiServer;
use serde_json::{json, Value};
use support::{curl, form_encode, RawClient};

fn fixture(text: &str) -> Value {
    serde_json::from_str(text).expect("fixture JSON")
}

/// Every fixture applied, as a cluster would hold them.
fn server_with_fixtures() -> ApiServer {
    let server = ApiServer::start();
    for (_, text) in objects::fixtures::ALL {
        server.apply(fixture(text));
    }
    server
}

fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["metadata"]["name"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn curl_lists_typed_lists_whose_items_have_no_type_meta() {
    let server = server_with_fixtures();
    let url = format!("http://{}/apis/discovery.k8s.io/v1/namespaces/prod/endpointslices", server.addr());
    let Some(output) = curl(&["--fail", &url]) else { return };
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let list: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(list["kind"], "EndpointSliceList");
    assert_eq!(list["apiVersion"], "discovery.k8s.io/v1");
    assert_eq!(list["metadata"], json!({"resourceVersion": server.resource_version().to_string()}));
    assert_eq!(names(&list), ["web-q9d4v", "web-x7k2p"], "sorted by namespace/name, as etcd keys");
    for item in list["items"].as_array().expect("items") {
        assert!(item.get("kind").is_none() && item.get("apiVersion").is_none(), "typed list items carry no type meta");
        let metadata = &item["metadata"];
        assert!(metadata["resourceVersion"].as_str().is_some_and(|rv| rv.parse::<u64>().is_ok()));
        assert_eq!(metadata["uid"].as_str().map(str::len), Some(36));
        assert!(metadata["creationTimestamp"].as_str().is_some_and(|t| t.ends_with('Z')));
        assert_eq!(metadata["generation"], 1, "EndpointSlices get generation 1 on create");
    }
    // The stored content is the fixture's, apart from server-set metadata.
    let mut expected = fixture(objects::fixtures::ENDPOINT_SLICE_IPV4);
    let mut item = list["items"][1].clone();
    for object in [&mut expected, &mut item] {
        let metadata = object["metadata"].as_object_mut().expect("metadata");
        for field in ["uid", "resourceVersion", "creationTimestamp", "generation"] {
            metadata.remove(field);
        }
        object.as_object_mut().expect("object").retain(|key, _| key != "kind" && key != "apiVersion");
    }
    assert_eq!(item, expected);
}

#[test]
fn curl_gets_one_object_and_a_missing_one_is_not_found() {
    let server = server_with_fixtures();
    let base = format!("http://{}", server.addr());
    let Some(output) = curl(&["--fail", &format!("{base}/api/v1/namespaces/prod/services/web")]) else { return };
    let service: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(service["kind"], "Service", "a get carries kind and apiVersion");
    assert_eq!(service["apiVersion"], "v1");
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "http");
    assert_eq!(service["spec"]["ports"][1]["targetPort"], 9990);
    assert!(service["metadata"].get("generation").is_none(), "Services carry no generation");

    let Some(output) =
        curl(&["--write-out", "\n%{http_code}", &format!("{base}/api/v1/namespaces/prod/services/nope")])
    else {
        return;
    };
    let text = String::from_utf8_lossy(&output.stdout);
    let (body, code) = text.rsplit_once('\n').expect("body and code");
    assert_eq!(code, "404");
    let status: Value = serde_json::from_str(body).expect("Status JSON");
    assert_eq!(
        status,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": "services \"nope\" not found", "reason": "NotFound",
               "details": {"name": "nope", "kind": "services"}, "code": 404})
    );
    let mut client = RawClient::connect(server.addr());
    let missing_slice = client.get("/apis/discovery.k8s.io/v1/namespaces/prod/endpointslices/gone");
    assert_eq!(missing_slice.status, 404);
    assert_eq!(missing_slice.json()["message"], "endpointslices.discovery.k8s.io \"gone\" not found");
    assert_eq!(
        missing_slice.json()["details"],
        json!({"name": "gone", "group": "discovery.k8s.io", "kind": "endpointslices"})
    );
}

#[test]
fn unknown_paths_methods_and_discovery() {
    let server = ApiServer::start();
    let mut client = RawClient::connect(server.addr());
    for path in ["/api/v1/pods", "/apis/apps/v1/deployments", "/healthz/nope", "/api/v1/namespaces/a/services/b/status"]
    {
        let response = client.get(path);
        assert_eq!(response.status, 404, "{path}");
        assert_eq!(response.header("content-type"), Some("application/json"));
        assert_eq!(response.json()["reason"], "NotFound");
        assert_eq!(response.json()["kind"], "Status");
    }
    client.send(b"POST /api/v1/namespaces/a/configmaps HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}");
    let refused = client.read_response();
    assert_eq!(refused.status, 405);
    assert_eq!(refused.json()["reason"], "MethodNotAllowed");
    let version = client.get("/version").json();
    assert_eq!(version["major"], "1");
    for key in ["minor", "gitVersion", "gitCommit", "gitTreeState", "buildDate", "goVersion", "compiler", "platform"] {
        assert!(version[key].is_string(), "version.Info requires {key}");
    }
    assert_eq!(client.get("/api").json()["versions"], json!(["v1"]));
    assert_eq!(client.get("/apis").json()["groups"][0]["name"], "discovery.k8s.io");
    let core = client.get("/api/v1").json();
    let core_names: Vec<&str> =
        core["resources"].as_array().expect("resources").iter().filter_map(|r| r["name"].as_str()).collect();
    assert_eq!(core_names, ["services", "configmaps"]);
}

#[test]
fn label_selectors_filter_lists() {
    let server = ApiServer::start();
    let port = [ServicePort { name: None, port: 80, target_port: TargetPort::Number(8080) }];
    for (name, tier) in [("a", Some("front")), ("b", Some("back")), ("c", None)] {
        let mut service = objects::service("prod", name, &port);
        if let Some(tier) = tier {
            service["metadata"]["labels"]["tier"] = json!(tier);
        }
        server.apply(service);
    }
    let mut client = RawClient::connect(server.addr());
    let mut select = |selector: &str| {
        let response = client.get(&format!("/api/v1/namespaces/prod/services?labelSelector={}", form_encode(selector)));
        assert_eq!(response.status, 200, "{selector}: {}", String::from_utf8_lossy(&response.body));
        names(&response.json())
    };
    assert_eq!(select("tier=front"), ["a"]);
    assert_eq!(select("tier==back"), ["b"]);
    assert_eq!(select("tier!=front"), ["b", "c"], "!= also selects objects without the label");
    assert_eq!(select("tier"), ["a", "b"]);
    assert_eq!(select("!tier"), ["c"]);
    assert_eq!(select("tier in (front,back)"), ["a", "b"]);
    assert_eq!(select("tier notin (front)"), ["b", "c"]);
    assert_eq!(select("app in (a, b, c),tier"), ["a", "b"]);
    assert_eq!(select("app=a,tier=back"), Vec::<String>::new());
    assert_eq!(select(""), ["a", "b", "c"]);
    // kube may also send the comma and parentheses unencoded.
    let raw = client.get("/api/v1/namespaces/prod/services?labelSelector=tier%20in%20(front,back),app!=a");
    assert_eq!(names(&raw.json()), ["b"]);
    let bad = client.get("/api/v1/namespaces/prod/services?labelSelector=tier%20in%20front");
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["reason"], "BadRequest");
}

#[test]
fn field_selectors_and_namespaces() {
    let server = ApiServer::start();
    for namespace in ["prod", "staging"] {
        for name in ["dtabs", "other"] {
            server.apply(objects::config_map(namespace, name, &[("k", "v")]));
        }
    }
    let mut client = RawClient::connect(server.addr());
    let all = client.get("/api/v1/configmaps").json();
    let namespaced: Vec<String> = all["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| {
            format!(
                "{}/{}",
                item["metadata"]["namespace"].as_str().unwrap_or(""),
                item["metadata"]["name"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(namespaced, ["prod/dtabs", "prod/other", "staging/dtabs", "staging/other"]);
    assert_eq!(names(&client.get("/api/v1/namespaces/staging/configmaps").json()), ["dtabs", "other"]);
    let by_name = client.get(&format!("/api/v1/configmaps?fieldSelector={}", form_encode("metadata.name=dtabs")));
    assert_eq!(by_name.json()["items"].as_array().map(Vec::len), Some(2));
    let selector = form_encode("metadata.name=dtabs,metadata.namespace!=prod");
    let narrowed = client.get(&format!("/api/v1/configmaps?fieldSelector={selector}")).json();
    assert_eq!(narrowed["items"][0]["metadata"]["namespace"], "staging");
    assert_eq!(narrowed["items"].as_array().map(Vec::len), Some(1));
    let unsupported = client.get(&format!("/api/v1/configmaps?fieldSelector={}", form_encode("data.k=v")));
    assert_eq!(unsupported.status, 400);
    assert_eq!(unsupported.json()["message"], "field label not supported: data.k");
    assert_eq!(names(&client.get("/api/v1/namespaces/nowhere/configmaps").json()), Vec::<String>::new());
}

#[test]
fn pages_read_one_snapshot_and_report_what_remains() {
    let server = ApiServer::start();
    for name in ["a", "b", "c", "d", "e"] {
        server.apply(objects::config_map("prod", name, &[("k", "v")]));
    }
    let snapshot = server.resource_version().to_string();
    let mut client = RawClient::connect(server.addr());
    let first = client.get("/api/v1/namespaces/prod/configmaps?limit=2").json();
    assert_eq!(names(&first), ["a", "b"]);
    assert_eq!(first["metadata"]["resourceVersion"], snapshot);
    assert_eq!(first["metadata"]["remainingItemCount"], 3);
    let token = first["metadata"]["continue"].as_str().expect("continue token").to_string();

    // Writes between pages do not show: every page reads the first one's snapshot.
    server.delete("ConfigMap", "prod", "c");
    server.apply(objects::config_map("prod", "bb", &[("k", "v")]));
    server.apply(objects::config_map("prod", "d", &[("k", "changed")]));
    let second =
        client.get(&format!("/api/v1/namespaces/prod/configmaps?limit=2&continue={}", form_encode(&token))).json();
    assert_eq!(names(&second), ["c", "d"]);
    assert_eq!(second["items"][1]["data"]["k"], "v");
    assert_eq!(second["metadata"]["resourceVersion"], snapshot);
    assert_eq!(second["metadata"]["remainingItemCount"], 1);
    let token = second["metadata"]["continue"].as_str().expect("continue token").to_string();
    let last =
        client.get(&format!("/api/v1/namespaces/prod/configmaps?limit=2&continue={}", form_encode(&token))).json();
    assert_eq!(names(&last), ["e"]);
    assert!(last["metadata"].get("continue").is_none(), "the last page has no continue token");
    assert!(last["metadata"].get("remainingItemCount").is_none());

    // With a selector, pages fill up with matching items; remainingItemCount is not given.
    let selected = client.get("/api/v1/namespaces/prod/configmaps?limit=1&fieldSelector=metadata.name%21%3Da").json();
    assert_eq!(names(&selected), ["b"]);
    assert!(selected["metadata"].get("remainingItemCount").is_none());
    assert!(selected["metadata"]["continue"].is_string());

    // A token with a resourceVersion is refused, as is a made-up token.
    let both = client
        .get(&format!("/api/v1/namespaces/prod/configmaps?limit=2&continue={}&resourceVersion=3", form_encode(&token)));
    assert_eq!(both.status, 400);
    assert_eq!(both.json()["message"], "specifying resource version is not allowed when using continue");
    let garbage = client.get("/api/v1/namespaces/prod/configmaps?limit=2&continue=garbage");
    assert_eq!(garbage.status, 400);
    assert_eq!(garbage.json()["reason"], "BadRequest");
}

#[test]
fn curl_pages_through_a_list() {
    let server = ApiServer::start();
    let endpoints: Vec<Endpoint> = (1..=3).map(|i| Endpoint::ready(&format!("10.0.0.{i}"))).collect();
    for index in 0..7 {
        server.apply(objects::endpoint_slice(
            "prod",
            &format!("web-{index}"),
            "web",
            &[(Some("http"), 8080)],
            &endpoints,
        ));
    }
    let base = format!("http://{}/apis/discovery.k8s.io/v1/endpointslices?limit=3", server.addr());
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..10 {
        let url = match &token {
            Some(token) => format!("{base}&continue={}", form_encode(token)),
            None => base.clone(),
        };
        let Some(output) = curl(&["--fail", &url]) else { return };
        let page: Value = serde_json::from_slice(&output.stdout).expect("JSON");
        seen.extend(names(&page));
        token = page["metadata"]["continue"].as_str().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(seen, (0..7).map(|i| format!("web-{i}")).collect::<Vec<_>>());
}

#[test]
fn compacted_versions_are_gone_for_exact_lists_and_continue_tokens() {
    let server = ApiServer::start();
    for name in ["a", "b", "c"] {
        server.apply(objects::config_map("prod", name, &[("k", "v")]));
    }
    let old = server.resource_version();
    let mut client = RawClient::connect(server.addr());
    let page = client.get("/api/v1/namespaces/prod/configmaps?limit=1").json();
    let token = page["metadata"]["continue"].as_str().expect("token").to_string();
    server.apply(objects::config_map("prod", "d", &[("k", "v")]));

    // Before compaction, an exact list reads the old snapshot.
    let exact = client
        .get(&format!("/api/v1/namespaces/prod/configmaps?resourceVersion={old}&resourceVersionMatch=Exact"))
        .json();
    assert_eq!(names(&exact), ["a", "b", "c"]);
    assert_eq!(exact["metadata"]["resourceVersion"], old.to_string());

    server.expire_history();
    let gone =
        client.get(&format!("/api/v1/namespaces/prod/configmaps?resourceVersion={old}&resourceVersionMatch=Exact"));
    assert_eq!(gone.status, 410);
    assert_eq!(
        gone.json(),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": "The resourceVersion for the provided list is too old.", "reason": "Expired", "code": 410})
    );
    // The legacy form (a limit, a resourceVersion, no match) is exact too.
    assert_eq!(client.get(&format!("/api/v1/namespaces/prod/configmaps?resourceVersion={old}&limit=10")).status, 410);
    // NotOlderThan an old version is fine: it answers with the latest.
    let fresh = client.get(&format!("/api/v1/namespaces/prod/configmaps?resourceVersion={old}")).json();
    assert_eq!(names(&fresh), ["a", "b", "c", "d"]);
    let fresh = client
        .get(&format!("/api/v1/namespaces/prod/configmaps?resourceVersion={old}&resourceVersionMatch=NotOlderThan"));
    assert_eq!(fresh.status, 200);
    // "0" is any version; kube's `Any` semantic sends it.
    let any =
        client.get("/api/v1/namespaces/prod/configmaps?resourceVersion=0&resourceVersionMatch=NotOlderThan").json();
    assert_eq!(any["metadata"]["resourceVersion"], server.resource_version().to_string());

    // The old continue token gets 410, with a token that continues at the latest.
    let expired = client.get(&format!("/api/v1/namespaces/prod/configmaps?limit=1&continue={}", form_encode(&token)));
    assert_eq!(expired.status, 410);
    let status = expired.json();
    assert_eq!(status["reason"], "Expired");
    assert!(status["message"].as_str().is_some_and(|m| m.starts_with("The provided continue parameter is too old")));
    let latest = status["metadata"]["continue"].as_str().expect("a continue token in the 410").to_string();
    let resumed =
        client.get(&format!("/api/v1/namespaces/prod/configmaps?limit=5&continue={}", form_encode(&latest))).json();
    assert_eq!(names(&resumed), ["b", "c", "d"]);
}

#[test]
fn future_versions_wait_then_time_out() {
    let server = ApiServer::start();
    server.apply(objects::config_map("prod", "a", &[("k", "v")]));
    let next = server.resource_version() + 1;
    let mut client = RawClient::connect(server.addr());
    // A write arriving while the list waits satisfies it.
    std::thread::scope(|scope| {
        scope.spawn(|| {
            std::thread::sleep(std::time::Duration::from_millis(300));
            server.apply(objects::config_map("prod", "b", &[("k", "v")]));
        });
        let waited = client.get(&format!("/api/v1/namespaces/prod/configmaps?resourceVersion={next}"));
        assert_eq!(waited.status, 200);
        assert_eq!(names(&waited.json()), ["a", "b"]);
    });
    let far = server.resource_version() + 100;
    let started = std::time::Instant::now();
    let too_large = client.get(&format!("/api/v1/namespaces/prod/configmaps?resourceVersion={far}"));
    assert!(started.elapsed() >= std::time::Duration::from_millis(2900), "waits about 3 s first");
    assert_eq!(too_large.status, 504);
    let status = too_large.json();
    assert_eq!(status["reason"], "Timeout");
    assert_eq!(status["details"]["causes"][0]["reason"], "ResourceVersionTooLarge");
    assert_eq!(status["details"]["retryAfterSeconds"], 1);
}

#[test]
fn invalid_list_options_are_refused() {
    let server = ApiServer::start();
    let mut client = RawClient::connect(server.addr());
    let cases = [
        ("resourceVersionMatch=NotOlderThan", 422),
        ("resourceVersion=0&resourceVersionMatch=Exact", 422),
        ("resourceVersion=1&resourceVersionMatch=Sometime", 422),
        ("resourceVersion=abc", 400),
        ("limit=ten", 400),
        ("watch=maybe", 400),
        ("labelSelector=%zz", 400),
    ];
    for (query, code) in cases {
        let response = client.get(&format!("/api/v1/configmaps?{query}"));
        assert_eq!(response.status, code, "{query}: {}", String::from_utf8_lossy(&response.body));
        assert_eq!(response.json()["kind"], "Status");
    }
    let forbidden = client.get("/api/v1/configmaps?resourceVersionMatch=NotOlderThan").json();
    assert_eq!(forbidden["reason"], "Invalid");
    assert_eq!(
        forbidden["message"],
        "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided"
    );
}

#[test]
fn kube_runtime_watcher_initial_list_requests() {
    // The exact requests kube-runtime's watcher makes for its initial
    // (paginated, ListWatch) list: `labelSelector` then `limit`, no resourceVersion.
    let server = server_with_fixtures();
    let mut client = RawClient::connect(server.addr());
    let selector = form_encode("kubernetes.io/service-name=web");
    let page = client
        .get(&format!("/apis/discovery.k8s.io/v1/namespaces/prod/endpointslices?labelSelector={selector}&limit=500"));
    assert_eq!(page.status, 200);
    let list = page.json();
    assert_eq!(names(&list), ["web-q9d4v", "web-x7k2p"]);
    assert!(list["metadata"]["resourceVersion"].as_str().is_some_and(|rv| !rv.is_empty()));
    assert!(list["metadata"].get("continue").is_none());
    let logged = server.requests();
    let last = logged.last().expect("logged");
    assert_eq!(last.path, "/apis/discovery.k8s.io/v1/namespaces/prod/endpointslices");
    assert_eq!(last.query_param("labelSelector").as_deref(), Some("kubernetes.io/service-name=web"));
    assert_eq!(last.query_param("limit").as_deref(), Some("500"));
    assert!(!last.is_watch());
}
