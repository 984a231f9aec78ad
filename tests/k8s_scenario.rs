//! The write-up's scenario where it lives: serviceA's sidecar resolves
//! `serviceB` with the `io.l5d.k8s` namer (against the test Kubernetes API
//! server) to the incoming router of serviceB's sidecar, and speaks TLS to
//! it, checking the certificate name the boundPath module derives from the
//! bound path; serviceB's sidecar terminates TLS and forwards plain HTTP to
//! serviceB. Real binary, both I/O backends, certificates made at test time.

mod common;

use std::net::SocketAddr;
use std::path::Path;

use common::backend::Backend;
use common::certs::{Ca, Names};
use common::client::get;
use common::tempdir::Dir;
use common::{backends, Corelink};
use k8s_testapi::objects::{self, Endpoint, ServicePort, TargetPort};
use k8s_testapi::ApiServer;

/// serviceB's sidecar: an incoming router terminating TLS with `cert`/`key`
/// and sending everything to `app`.
fn incoming_sidecar(app: SocketAddr, cert: &Path, key: &Path, io: &str) -> Corelink {
    let config = format!(
        "admin:\n  port: 0\nrouters:\n- protocol: http\n  label: incoming\n  dtab: |\n    /svc/* => /$/inet/{}/{};\n  servers:\n  - port: 0\n    ip: 127.0.0.1\n    tls:\n      certPath: {}\n      keyPath: {}\ncorelink:\n  workers: 1\n  shutdownDelayMs: 0\n",
        app.ip(),
        app.port(),
        cert.display(),
        key.display()
    );
    Corelink::start(&config, io)
}

/// serviceA's sidecar: the outgoing router, the write-up's dtab through the
/// k8s namer, and a boundPath client that takes the certificate name from
/// the Service segment of the bound path.
fn outgoing_sidecar(api: SocketAddr, ca: &Path, io: &str) -> Corelink {
    let config = format!(
        "admin:\n  port: 0\nnamers:\n- kind: io.l5d.k8s\n  host: {}\n  port: {}\nrouters:\n- protocol: http\n  label: outgoing\n  dtab: |\n    /svc => /ns/prod/router;\n    /ns => /#/io.l5d.k8s;\n  servers:\n  - port: 0\n    ip: 127.0.0.1\n  client:\n    tls:\n      kind: io.l5d.boundPath\n      caCertPath: {}\n      names:\n      - prefix: \"/#/io.l5d.k8s/prod/router/{{service}}\"\n        commonNamePattern: \"{{service}}\"\ncorelink:\n  workers: 1\n  shutdownDelayMs: 0\n",
        api.ip(),
        api.port(),
        ca.display()
    );
    Corelink::start(&config, io)
}

/// The Service `serviceb` in `prod`, its `router` port served by the
/// incoming router at `sidecar` (a Deployment's pods, each with its sidecar).
fn publish_serviceb(api: &ApiServer, sidecar: SocketAddr) {
    api.apply(objects::service(
        "prod",
        "serviceb",
        &[ServicePort { name: Some("router"), port: 4141, target_port: TargetPort::Name("router") }],
    ));
    api.apply(objects::endpoint_slice(
        "prod",
        "serviceb-7xk2p",
        "serviceb",
        &[(Some("router"), sidecar.port())],
        &[Endpoint::ready(&sidecar.ip().to_string())],
    ));
}

/// The TLS handshakes the incoming router's server completed.
fn handshakes(sidecar: &Corelink) -> f64 {
    sidecar
        .metrics()
        .into_iter()
        .find(|(k, _)| k.contains("/server/") && k.ends_with("/tls/handshakes"))
        .map(|(_, v)| v)
        .unwrap_or(0.0)
}

#[test]
fn service_a_reaches_service_b_over_tls_through_the_k8s_namer() {
    for io in backends() {
        let dir = Dir::new("k8s-scenario");
        let ca = Ca::new("corelink test CA");
        let ca_path = ca.write(dir.path(), "ca.pem");
        // As the write-up makes it: the certificate names `serviceB`; the
        // bound path names the Service `serviceb` (DNS names compare
        // without case).
        let (cert, key) = ca.issue("serviceB", Names::CnAndSan).write(dir.path(), "serviceB");
        let service_b = Backend::start();
        let b = incoming_sidecar(service_b.addr, &cert, &key, io);
        let api = ApiServer::start();
        publish_serviceb(&api, b.addr());
        let a = outgoing_sidecar(api.addr(), &ca_path, io);

        for i in 0..3 {
            let rsp = get(a.addr(), "/hello", "serviceB").unwrap();
            assert_eq!(
                rsp.status,
                200,
                "{io}, request {i}: {:?} {}",
                rsp.header("l5d-err"),
                String::from_utf8_lossy(&rsp.body)
            );
        }
        assert_eq!(service_b.requests(), 3, "{io}: serviceB got every request");
        assert!(handshakes(&b) >= 1.0, "{io}: the hop between the sidecars was TLS");
    }
}

#[test]
fn an_endpoint_whose_certificate_names_another_service_gets_nothing() {
    for io in backends() {
        let dir = Dir::new("k8s-scenario");
        let ca = Ca::new("corelink test CA");
        let ca_path = ca.write(dir.path(), "ca.pem");
        // A sidecar with a good certificate of the same CA, but serviceC's,
        // listed (by mistake or malice) as an endpoint of serviceb.
        let (cert, key) = ca.issue("serviceC", Names::CnAndSan).write(dir.path(), "serviceC");
        let service_c = Backend::start();
        let impostor = incoming_sidecar(service_c.addr, &cert, &key, io);
        let api = ApiServer::start();
        publish_serviceb(&api, impostor.addr());
        let a = outgoing_sidecar(api.addr(), &ca_path, io);

        let rsp = get(a.addr(), "/hello", "serviceB").unwrap();
        let err = rsp.header("l5d-err").unwrap_or_default().replace('+', " ");
        assert_eq!(rsp.status, 502, "{io}: {err}");
        assert!(err.contains("not valid for serviceb"), "{io}: l5d-err {err:?}");
        assert_eq!(service_c.requests(), 0, "{io}: nothing reaches the impostor's service");
    }
}
