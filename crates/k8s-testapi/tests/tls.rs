//! HTTPS with a bearer token: a certificate made at test time with rcgen,
//! clients on rustls and curl.

mod support;

use k8s_testapi::{objects, ApiServer, TlsSetupError};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use serde_json::json;
use std::time::Duration;
use support::{curl, eventually, RawClient};

/// A CA and a server certificate for 127.0.0.1 (and localhost) signed by it.
struct Pki {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

fn pki() -> Pki {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.distinguished_name.push(DnType::CommonName, "k8s-testapi test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA cert");
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().expect("server key");
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).expect("params");
    params.distinguished_name.push(DnType::CommonName, "kube-apiserver");
    let cert = params.signed_by(&key, &issuer).expect("server cert");
    Pki { ca_pem: ca_cert.pem(), cert_pem: cert.pem(), key_pem: key.serialize_pem() }
}

#[test]
fn tls_requires_the_bearer_token_and_follows_rotation() {
    let pki = pki();
    let server = ApiServer::start_tls(&pki.cert_pem, &pki.key_pem, "token-one");
    server.apply(objects::config_map("prod", "dtabs", &[("k", "v")]));
    // A client offering h2 and http/1.1 gets http/1.1.
    let (mut client, alpn) = RawClient::connect_tls(server.addr(), &pki.ca_pem, &[b"h2", b"http/1.1"]);
    assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));

    client.send_get("/api/v1/namespaces/prod/configmaps", "");
    let anonymous = client.read_response();
    assert_eq!(anonymous.status, 401);
    assert_eq!(
        anonymous.json(),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": "Unauthorized", "reason": "Unauthorized", "code": 401})
    );
    client.send_get("/api/v1/namespaces/prod/configmaps", "Authorization: Bearer token-two\r\n");
    assert_eq!(client.read_response().status, 401);
    client.send_get("/api/v1/namespaces/prod/configmaps", "Authorization: Bearer token-one\r\n");
    let listed = client.read_response();
    assert_eq!(listed.status, 200);
    assert_eq!(listed.json()["items"][0]["metadata"]["name"], "dtabs");

    // A watch opened with the old token outlives the rotation, as on the real server.
    let (mut watcher, _) = RawClient::connect_tls(server.addr(), &pki.ca_pem, &[]);
    watcher.send_get("/api/v1/namespaces/prod/configmaps?watch=true", "Authorization: bearer token-one\r\n");
    assert_eq!(watcher.read_head().1, 200);
    assert_eq!(watcher.read_event()["type"], "ADDED");

    server.set_token("token-two");
    client.send_get("/api/v1/namespaces/prod/configmaps", "Authorization: Bearer token-one\r\n");
    assert_eq!(client.read_response().status, 401);
    client.send_get("/api/v1/namespaces/prod/configmaps", "Authorization: Bearer token-two\r\n");
    assert_eq!(client.read_response().status, 200);
    server.apply(objects::config_map("prod", "dtabs", &[("k", "w")]));
    assert_eq!(watcher.read_event()["type"], "MODIFIED");

    let authorizations: Vec<Option<String>> =
        server.requests().into_iter().map(|request| request.authorization).collect();
    assert_eq!(authorizations[0], None);
    assert_eq!(authorizations[1].as_deref(), Some("Bearer token-two"));
    assert!(authorizations.contains(&Some("bearer token-one".to_string())));

    // A TLS client that goes away frees its watch.
    let (mut leaving, _) = RawClient::connect_tls(server.addr(), &pki.ca_pem, &[]);
    leaving.send_get("/api/v1/namespaces/prod/configmaps?watch=true", "Authorization: Bearer token-two\r\n");
    assert_eq!(leaving.read_head().1, 200);
    assert!(eventually(Duration::from_secs(5), || server.open_watches() == 2));
    drop(leaving);
    assert!(eventually(Duration::from_secs(5), || server.open_watches() == 1), "TLS watch still registered");

    // The cut is abrupt over TLS too: no terminating chunk, no close_notify needed.
    server.drop_watches();
    watcher.closes_without_data(Duration::from_secs(5)).expect("watch cut");
}

#[test]
fn curl_over_tls_with_a_token() {
    let pki = pki();
    let server = ApiServer::start_tls(&pki.cert_pem, &pki.key_pem, "s3cret");
    server.apply(objects::config_map("prod", "dtabs", &[("k", "v")]));
    let directory = std::env::temp_dir().join(format!("k8s-testapi-tls-{}", std::process::id()));
    std::fs::create_dir_all(&directory).expect("temp dir");
    let ca_path = directory.join("ca.pem");
    std::fs::write(&ca_path, &pki.ca_pem).expect("write CA");
    let ca = ca_path.to_string_lossy().to_string();
    let base = format!("https://127.0.0.1:{}", server.addr().port());

    let get = curl(&[
        "--cacert",
        &ca,
        "-H",
        "Authorization: Bearer s3cret",
        "--fail",
        &format!("{base}/api/v1/namespaces/prod/configmaps/dtabs"),
    ]);
    let Some(output) = get else {
        let _ = std::fs::remove_dir_all(&directory);
        return;
    };
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let object: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(object["kind"], "ConfigMap");

    let unauthorized = curl(&[
        "--cacert",
        &ca,
        "--write-out",
        "%{http_code}",
        "--output",
        "/dev/null",
        &format!("{base}/api/v1/configmaps"),
    ]);
    assert_eq!(unauthorized.map(|o| String::from_utf8_lossy(&o.stdout).to_string()).as_deref(), Some("401"));

    let watch_url = format!("{base}/api/v1/namespaces/prod/configmaps?watch=true&timeoutSeconds=1");
    let watch =
        curl(&["-N", "--cacert", &ca, "-H", "Authorization: Bearer s3cret", "--fail", &watch_url]).expect("curl");
    assert!(watch.status.success(), "{}", String::from_utf8_lossy(&watch.stderr));
    let events = support::json_lines(&watch.stdout);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["type"], "ADDED");
    let _ = std::fs::remove_dir_all(&directory);
}

#[test]
fn plain_http_can_require_a_token_too() {
    let server = ApiServer::start();
    let mut client = RawClient::connect(server.addr());
    assert_eq!(client.get("/api/v1/services").status, 200);
    server.set_token("t");
    assert_eq!(client.get("/api/v1/services").status, 401);
    client.send_get("/api/v1/services", "Authorization: Bearer t\r\n");
    assert_eq!(client.read_response().status, 200);
}

#[test]
fn tls_setup_errors_are_reported() {
    let pki = pki();
    assert!(matches!(ApiServer::try_start_tls("", &pki.key_pem, "t"), Err(TlsSetupError::Certificates(_))));
    assert!(matches!(ApiServer::try_start_tls(&pki.cert_pem, "not a key", "t"), Err(TlsSetupError::PrivateKey(_))));
    let other_key = KeyPair::generate().expect("key").serialize_pem();
    let mismatch = ApiServer::try_start_tls(&pki.cert_pem, &other_key, "t");
    assert!(matches!(mismatch, Err(TlsSetupError::Rustls(_))), "a key that does not match the certificate");
}

#[test]
fn a_plain_client_on_the_tls_port_gets_nothing_useful() {
    let pki = pki();
    let server = ApiServer::start_tls(&pki.cert_pem, &pki.key_pem, "t");
    let mut client = RawClient::connect(server.addr());
    client.send_ignoring_errors(b"GET /api/v1/services HTTP/1.1\r\nHost: x\r\n\r\n");
    let reply = client.read_to_close(64 * 1024);
    assert!(!reply.starts_with(b"HTTP/1.1 200"), "plain HTTP must not be served on the TLS port");
    // TLS clients are still served.
    let (mut tls_client, _) = RawClient::connect_tls(server.addr(), &pki.ca_pem, &[]);
    tls_client.send_get("/api/v1/services", "Authorization: Bearer t\r\n");
    assert_eq!(tls_client.read_response().status, 200);
}
