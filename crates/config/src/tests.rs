use super::*;

fn parse(text: &str) -> Config {
    match Config::parse(text, "t.yaml") {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    }
}

fn error(text: &str) -> String {
    match Config::parse(text, "t.yaml") {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e.to_string(),
    }
}

fn warnings(text: &str) -> Vec<String> {
    match Config::parse_with_warnings(text, "t.yaml") {
        Ok((_, w)) => w,
        Err(e) => panic!("{e}"),
    }
}

/// One router on port 1 with `extra` (indented by two) added to it.
fn router(extra: &str) -> String {
    format!("routers:\n- protocol: http\n  servers:\n  - port: 1\n{extra}")
}

#[test]
fn minimal_router_gets_linkerd_defaults() {
    let c = parse("routers:\n- protocol: http\n  servers:\n  - {}\n");
    let r = &c.routers[0];
    assert_eq!(r.label(), "http");
    assert_eq!(r.dst_prefix, "/svc");
    assert_eq!(r.servers[0].addr(), "127.0.0.1:4140".parse().unwrap());
    assert_eq!(c.admin.addr(), "127.0.0.1:9990".parse().unwrap());
    assert_eq!(c.admin.shutdown_grace_ms, 10_000);
    assert_eq!(r.max_headers_kb, 8);
    assert_eq!(r.max_initial_line_kb, 4);
    assert_eq!(r.max_call_depth, 1000);
    assert!(r.streaming_enabled && !r.dtab_headers && r.context_headers);
    assert!(!r.servers[0].clear_context);
    assert!(r.servers[0].tls.is_none());
    assert!(matches!(r.identifier(), IdentifierConfig::HeaderToken { header } if header == "Host"));
    assert_eq!(r.identifiers(), [IdentifierKind::HeaderToken { header: "Host".into() }]);
    assert_eq!(r.client.kind, ClientKind::Global);
    assert_eq!(r.client.load_balancer.kind, LoadBalancerKind::P2c);
    assert_eq!(r.client.load_balancer.max_effort, 5);
    assert!(r.client.tls.is_none());
    assert_eq!(r.service.kind, ServiceKind::Global);
    assert!(r.interpreter.transformers.is_empty());
    assert!(c.namers.is_empty());
    assert_eq!(c.corelink.buffer_size, 16 * 1024);
}

#[test]
fn identifier_defaults_per_kind() {
    let kinds = [
        ("io.l5d.header.token", IdentifierKind::HeaderToken { header: "Host".into() }),
        ("io.l5d.header", IdentifierKind::Header { header: "l5d-name".into() }),
        ("io.l5d.methodAndHost", IdentifierKind::MethodAndHost { http_uri_in_dst: false }),
        ("io.l5d.path", IdentifierKind::Path { segments: 1, consume: false }),
    ];
    for (kind, expected) in kinds {
        let c = parse(&router(&format!("  identifier:\n    kind: {kind}\n")));
        assert_eq!(c.routers[0].identifiers(), [expected]);
    }
    let c = parse(&router("  identifier: {kind: io.l5d.static, path: /svc/web}\n"));
    assert_eq!(c.routers[0].identifiers(), [IdentifierKind::Static { path: "/svc/web".into() }]);
    assert!(c.routers[0].identifier.is_none());
}

#[test]
fn identifier_list_is_tried_in_order() {
    let text = router(
        "  identifier:\n  - kind: io.l5d.path\n    segments: 2\n    consume: true\n  - kind: io.l5d.header.token\n    header: X-Svc\n  - kind: io.l5d.methodAndHost\n    httpUriInDst: true\n",
    );
    let c = parse(&text);
    assert_eq!(
        c.routers[0].identifiers(),
        [
            IdentifierKind::Path { segments: 2, consume: true },
            IdentifierKind::HeaderToken { header: "X-Svc".into() },
            IdentifierKind::MethodAndHost { http_uri_in_dst: true },
        ]
    );
    // Not expressible as the single legacy identifier.
    assert!(c.routers[0].identifier.is_none());
    // A list of one header.token is.
    let c = parse(&router("  identifier:\n  - kind: io.l5d.header.token\n    header: X-Svc\n"));
    assert_eq!(c.routers[0].identifier, Some(IdentifierConfig::HeaderToken { header: "X-Svc".into() }));
    let err = error(&router("  identifier:\n  - kind: io.l5d.path\n  - {kind: io.l5d.header, bogus: 1}\n"));
    assert_eq!(err, "t.yaml:7:27: routers[0].identifier[1].bogus: unknown key (expected one of: kind, header)");
}

#[test]
fn unknown_key_is_an_error_with_position() {
    let text = "routers:\n- protocol: http\n  servers:\n  - port: 1\n    bogus: 2\n";
    assert_eq!(
        error(text),
        "t.yaml:5:5: routers[0].servers[0].bogus: unknown key (expected one of: port, ip, tls, clearContext, serverSession, maxConcurrentRequests, maxCallDepth, timeoutMs, socketOptions, label, timestampHeader, announce, addForwardedHeader)"
    );
    let text = "routers:\n- protocol: http\n  servers:\n  - port: 1\n    tls:\n      certpath: a\n";
    assert_eq!(error(text), "t.yaml:6:7: routers[0].servers[0].tls.certpath: unknown key; did you mean `certPath`?");
    assert_eq!(error("admin: {port: 1}\nrouter: []\n"), "t.yaml:2:1: router: unknown key; did you mean `routers`?");
}

#[test]
fn duplicate_key_is_an_error_with_both_positions() {
    let text = "routers:\n- protocol: http\n  servers:\n  - port: 1\n    ip: 0.0.0.0\n    port: 2\n";
    assert_eq!(error(text), "t.yaml:6:5: routers[0].servers[0].port: duplicate key (first given at 4:5)");
    // Also inside sections corelink ignores.
    let text = format!("{}telemetry:\n- kind: io.l5d.prometheus\n  path: /a\n  path: /b\n", router(""));
    assert_eq!(error(&text), "t.yaml:8:3: telemetry[0].path: duplicate key (first given at 7:3)");
}

#[test]
fn rejected_key_is_an_error_with_the_reason() {
    let text = router("  client:\n    requestAuthorizers:\n    - kind: io.l5d.k8s.istio\n");
    let err = error(&text);
    assert!(
        err.starts_with(
            "t.yaml:6:5: routers[0].client.requestAuthorizers: rejected: request authorization is not implemented"
        ),
        "{err}"
    );
    let text = router("  client:\n    tls:\n      commonName: b\n      ciphers: [x]\n");
    // `ciphers` exists on server TLS only: unknown here.
    assert!(error(&text).starts_with("t.yaml:8:7: routers[0].client.tls.ciphers: unknown key"));
    let text =
        "routers:\n- protocol: http\n  servers:\n  - tls:\n      certPath: c\n      keyPath: k\n      ciphers: [x]\n";
    assert!(error(text).starts_with("t.yaml:7:7: routers[0].servers[0].tls.ciphers: rejected: "));
    let text = "routers:\n- protocol: http\n  servers:\n  - tls: {enabled: false, certPath: c, keyPath: k}\n";
    assert!(error(text).starts_with("t.yaml:4:11: routers[0].servers[0].tls.enabled: rejected: "));
    assert!(error(&format!("{}admin:\n  tls: {{certPath: c, keyPath: k}}\n", router("")))
        .starts_with("t.yaml:6:3: admin.tls: rejected: "));
}

#[test]
fn rejected_kinds_point_at_the_kind() {
    let text = format!("{}namers:\n- kind: io.l5d.k8s.external\n  host: localhost\n", router(""));
    let err = error(&text);
    assert!(
        err.starts_with(
            "t.yaml:6:9: namers[0].kind: rejected: `io.l5d.k8s.external`: corelink implements only the io.l5d.fs, io.l5d.k8s and io.l5d.dnssrv namers"
        ),
        "{err}"
    );
    let err = error(&router("  interpreter:\n    kind: io.l5d.namerd\n    dst: /$/inet/namerd/4100\n"));
    assert!(err.starts_with("t.yaml:6:11: routers[0].interpreter.kind: rejected: `io.l5d.namerd`: "), "{err}");
    let err = error(&router("  interpreter:\n    transformers:\n    - kind: io.l5d.replace\n"));
    assert!(err.starts_with("t.yaml:7:13: routers[0].interpreter.transformers[0].kind: rejected: "), "{err}");
    let err = error("routers:\n- protocol: h2\n  servers: [{}]\n");
    assert!(err.starts_with("t.yaml:2:13: routers[0].protocol: rejected: `h2`: "), "{err}");
    let err = error(&router("  identifier: {kind: io.l5d.bogus}\n"));
    assert_eq!(
        err,
        "t.yaml:5:22: routers[0].identifier.kind: unknown kind `io.l5d.bogus` (expected one of: io.l5d.header.token, io.l5d.methodAndHost, io.l5d.path, io.l5d.header, io.l5d.static)"
    );
}

#[test]
fn warned_keys_come_back_as_positioned_warnings() {
    let text = format!(
        "{}  bindingCache:\n    paths: 100\ntelemetry:\n- kind: io.l5d.prometheus\nusage:\n  orgId: x\n",
        router("")
    );
    let w = warnings(&text);
    assert_eq!(w.len(), 3, "{w:?}");
    assert!(w[0].starts_with("t.yaml:5:3: routers[0].bindingCache: warning: corelink caches bindings"), "{w:?}");
    assert!(w[1].starts_with("t.yaml:7:1: telemetry: warning: "), "{w:?}");
    assert!(w[2].starts_with("t.yaml:9:1: usage: warning: "), "{w:?}");
    // A clean config warns about nothing.
    assert!(warnings(&router("")).is_empty());
}

#[test]
fn type_errors_have_positions() {
    let text = "routers:\n- protocol: http\n  servers:\n  - port: http\n";
    assert_eq!(error(text), "t.yaml:4:11: routers[0].servers[0].port: expected an integer, found string \"http\"");
    // Quoted numbers are strings, as YAML says.
    let text = "routers:\n- protocol: http\n  servers:\n  - port: \"4140\"\n";
    assert_eq!(error(text), "t.yaml:4:11: routers[0].servers[0].port: expected an integer, found string \"4140\"");
    let text = "routers:\n- protocol: http\n  servers:\n  - port: 70000\n";
    assert_eq!(error(text), "t.yaml:4:11: routers[0].servers[0].port: 70000 is out of range (0 to 65535)");
    assert_eq!(
        error("routers:\n- protocol: http\n  servers:\n  - ip: nowhere\n"),
        "t.yaml:4:9: routers[0].servers[0].ip: expected an IP address, found string \"nowhere\""
    );
    assert_eq!(
        error(&router("  streamingEnabled: yes\n")),
        "t.yaml:5:21: routers[0].streamingEnabled: expected true or false, found string \"yes\""
    );
    assert_eq!(error("routers: {protocol: http}\n"), "t.yaml:1:10: routers: expected a sequence, found a mapping");
}

#[test]
fn errors_inside_kind_variants_have_positions() {
    let text = router("  client:\n    loadBalancer:\n      kind: ewma\n      decayTimeMs: 100\n      maxEfort: 3\n");
    assert_eq!(
        error(&text),
        "t.yaml:9:7: routers[0].client.loadBalancer.maxEfort: unknown key; did you mean `maxEffort`?"
    );
    // A key of another kind is unknown in this one.
    let text = router("  client:\n    loadBalancer:\n      kind: p2c\n      decayTimeMs: 100\n");
    assert!(error(&text).starts_with("t.yaml:8:7: routers[0].client.loadBalancer.decayTimeMs: unknown key"));
    let text = router("  client:\n    failureAccrual:\n      kind: io.l5d.consecutiveFailures\n      failures: many\n");
    assert_eq!(
        error(&text),
        "t.yaml:8:17: routers[0].client.failureAccrual.failures: expected an integer, found string \"many\""
    );
    let text = router("  client:\n    failureAccrual:\n      kind: io.l5d.successRate\n      successRate: 0.9\n");
    assert_eq!(error(&text), "t.yaml:7:7: routers[0].client.failureAccrual.requests: missing required key");
    let text = router(
        "  service:\n    retries:\n      backoff:\n        kind: jittered\n        minMs: 10\n        maxMs: x\n",
    );
    assert_eq!(
        error(&text),
        "t.yaml:10:16: routers[0].service.retries.backoff.maxMs: expected an integer, found string \"x\""
    );
    let text = router("  identifier:\n    kind: io.l5d.path\n    segments: two\n");
    assert_eq!(error(&text), "t.yaml:7:15: routers[0].identifier.segments: expected an integer, found string \"two\"");
}

#[test]
fn server_tls_and_session() {
    let text = "routers:\n- protocol: http\n  servers:\n  - port: 4143\n    ip: 0.0.0.0\n    clearContext: true\n    serverSession: {idleTimeMs: 2500, lifeTimeMs: 60000}\n    tls:\n      certPath: /c/b.pem\n      keyPath: /c/b.key\n      caCertPath: /c/ca.pem\n      requireClientAuth: true\n      protocols: [TLSv1.3]\n";
    let (c, w) = Config::parse_with_warnings(text, "t.yaml").unwrap();
    assert!(w.is_empty(), "{w:?}");
    let s = &c.routers[0].servers[0];
    assert_eq!(s.addr(), "0.0.0.0:4143".parse().unwrap());
    assert!(s.clear_context);
    assert_eq!(s.server_session.idle_time_ms, Some(2500));
    assert_eq!(
        s.tls,
        Some(ServerTlsConfig {
            cert_path: "/c/b.pem".into(),
            key_path: "/c/b.key".into(),
            intermediate_certs_path: None,
            ca_cert_path: Some("/c/ca.pem".into()),
            require_client_auth: true,
            protocols: vec![TlsVersion::Tls13],
        })
    );
    let err =
        error("routers:\n- protocol: http\n  servers:\n  - tls: {certPath: c, keyPath: k, requireClientAuth: true}\n");
    assert!(err.starts_with("t.yaml:4:36: routers[0].servers[0].tls.requireClientAuth: "), "{err}");
    let err = error("routers:\n- protocol: http\n  servers:\n  - tls: {certPath: c}\n");
    assert_eq!(err, "t.yaml:4:10: routers[0].servers[0].tls.keyPath: missing required key");
    let err =
        error("routers:\n- protocol: http\n  servers:\n  - tls: {certPath: c, keyPath: k, protocols: [TLSv1.1]}\n");
    assert!(err.starts_with("t.yaml:4:48: routers[0].servers[0].tls.protocols[0]: rejected: "), "{err}");
    let w = warnings("routers:\n- protocol: http\n  servers:\n  - tls: {certPath: c, keyPath: k, caCertPath: ca}\n");
    assert!(w[0].contains("requireClientAuth"), "{w:?}");
}

#[test]
fn client_tls_2016_forms() {
    let c = parse(&router(
        "  client:\n    tls:\n      kind: io.l5d.boundPath\n      caCertPath: /c/ca.pem\n      names:\n      - prefix: \"/#/io.l5d.fs/{service}\"\n        commonNamePattern: \"{service}\"\n",
    ));
    assert_eq!(
        c.routers[0].client.tls,
        Some(ClientTlsConfig::BoundPath {
            ca_cert_path: Some("/c/ca.pem".into()),
            names: vec![BoundPathName {
                prefix: "/#/io.l5d.fs/{service}".into(),
                common_name_pattern: "{service}".into(),
            }],
            strict: true,
        })
    );
    let c =
        parse(&router("  client:\n    tls: {kind: io.l5d.clientTls.static, commonName: linkerd, caCertPath: /ca}\n"));
    assert_eq!(
        c.routers[0].client.tls,
        Some(ClientTlsConfig::Static { common_name: "linkerd".into(), ca_cert_path: Some("/ca".into()) })
    );
    let (c, w) =
        Config::parse_with_warnings(&router("  client:\n    tls:\n      kind: io.l5d.noValidation\n"), "t.yaml")
            .unwrap();
    assert_eq!(c.routers[0].client.tls, Some(ClientTlsConfig::NoValidation { common_name: None }));
    assert!(!c.routers[0].client.tls.as_ref().unwrap().validates());
    assert_eq!(w.len(), 1);
    assert!(w[0].starts_with("t.yaml:7:7: routers[0].client.tls.kind: warning: TLS without validation"), "{w:?}");
    // Captures must exist in the prefix.
    let err = error(&router(
        "  client:\n    tls:\n      kind: io.l5d.boundPath\n      names:\n      - prefix: /#/io.l5d.fs/{svc}\n        commonNamePattern: \"{service}.example\"\n",
    ));
    assert!(
        err.starts_with("t.yaml:10:28: routers[0].client.tls.names[0].commonNamePattern: {service} is not captured"),
        "{err}"
    );
    let err = error(&router("  client:\n    tls: {kind: io.l5d.static}\n"));
    assert_eq!(err, "t.yaml:6:10: routers[0].client.tls.commonName: missing required key");
}

#[test]
fn client_tls_later_form_with_static_configs() {
    let text = router(
        "  client:\n    kind: io.l5d.static\n    configs:\n    - prefix: /#/io.l5d.fs\n      loadBalancer: {kind: ewma, decayTimeMs: 5000}\n      hostConnectionPool: {minSize: 1, maxSize: 100, idleTimeMs: 5000, maxWaiters: 10, maxIdle: 8}\n    - prefix: \"/#/io.l5d.fs/{service}\"\n      tls:\n        commonName: \"{service}.linkerd.io\"\n        trustCerts: [/c/ca.pem]\n        clientAuth: {certPath: /c/a.pem, keyPath: /c/a.key}\n      requestAttemptTimeoutMs: 300\n",
    );
    let c = parse(&text);
    let client = &c.routers[0].client;
    assert_eq!(client.kind, ClientKind::Static);
    assert_eq!(client.configs.len(), 2);
    assert_eq!(client.configs[0].prefix, "/#/io.l5d.fs");
    let lb = client.configs[0].params.load_balancer.as_ref().unwrap();
    assert_eq!((lb.kind, lb.decay_time_ms), (LoadBalancerKind::Ewma, Some(5000)));
    assert_eq!(
        client.configs[0].params.host_connection_pool,
        Some(HostConnectionPool {
            min_size: Some(1),
            max_size: Some(100),
            idle_time_ms: Some(5000),
            max_waiters: Some(10),
            max_idle: Some(8),
        })
    );
    assert_eq!(
        client.configs[1].params.tls,
        Some(ClientTlsConfig::Params(TlsClientParams {
            enabled: true,
            common_name: Some("{service}.linkerd.io".into()),
            trust_certs: vec!["/c/ca.pem".into()],
            disable_validation: false,
            client_auth: Some(ClientAuth {
                cert_path: "/c/a.pem".into(),
                key_path: "/c/a.key".into(),
                intermediate_certs_path: None,
            }),
            protocols: vec![],
        }))
    );
    assert_eq!(client.configs[1].params.request_attempt_timeout_ms, Some(300));

    // Global form, bundle, and linkerd's own consistency rules.
    let c = parse(&router("  client:\n    tls: {commonName: linkerd, trustCertsBundle: /c/bundle.pem}\n"));
    assert!(matches!(&c.routers[0].client.tls,
        Some(ClientTlsConfig::Params(p)) if p.trust_certs == ["/c/bundle.pem"]));
    let err = error(&router("  client:\n    tls: {trustCerts: [/a]}\n"));
    assert!(err.starts_with("t.yaml:6:10: routers[0].client.tls.commonName: commonName is required"), "{err}");
    let err = error(&router("  client:\n    tls: {commonName: a, trustCerts: [/a], trustCertsBundle: /b}\n"));
    assert!(err.starts_with("t.yaml:6:44: routers[0].client.tls.trustCertsBundle: both"), "{err}");
    let err = error(&router("  client:\n    tls: {commonName: \"{service}\"}\n"));
    assert!(err.starts_with("t.yaml:6:23: routers[0].client.tls.commonName: {service} needs a prefix"), "{err}");
    let err = error(&router("  client:\n    tls: {disableValidation: true, clientAuth: {certPath: a, keyPath: b}}\n"));
    assert!(err.contains("incompatible with clientAuth"), "{err}");
    let w = warnings(&router("  client:\n    tls: {disableValidation: true}\n"));
    assert!(w[0].contains("TLS without validation"), "{w:?}");
    // io.l5d.static takes only `configs`.
    let err = error(&router("  client:\n    kind: io.l5d.static\n    configs: []\n    failFast: true\n"));
    assert!(err.starts_with("t.yaml:8:5: routers[0].client.failFast: unknown key"), "{err}");
}

#[test]
fn client_and_service_parameters() {
    let text = router(
        "  client:\n    failFast: true\n    requestAttemptTimeoutMs: 100\n    clientSession: {idleTimeMs: 1000}\n    hostConnectionPool: {idleTimeMs: 3000, maxIdle: 4}\n    requeueBudget: {percentCanRetry: 0.5}\n    failureAccrual:\n      kind: io.l5d.consecutiveFailures\n      failures: 10\n      backoff: {kind: constant, ms: 100}\n  service:\n    totalTimeoutMs: 500\n    responseClassifier: {kind: io.l5d.http.retryableRead5XX}\n    retries:\n      budget: {minRetriesPerSec: 5, percentCanRetry: 0.5, ttlSecs: 15}\n      backoff: {kind: jittered, minMs: 10, maxMs: 10000}\n",
    );
    let c = parse(&text);
    let r = &c.routers[0];
    assert!(r.client.fail_fast);
    assert_eq!(r.client.request_attempt_timeout_ms, Some(100));
    assert_eq!(r.client.client_session.idle_time_ms, Some(1000));
    assert_eq!(r.client.host_connection_pool.idle_time_ms, Some(3000));
    assert_eq!(r.client.host_connection_pool.max_idle, Some(4));
    assert_eq!(
        r.client.requeue_budget,
        Some(RetryBudgetConfig { min_retries_per_sec: 10, percent_can_retry: 0.5, ttl_secs: 10 })
    );
    assert_eq!(
        r.client.failure_accrual,
        Some(FailureAccrualConfig {
            policy: FailureAccrualPolicy::ConsecutiveFailures { failures: 10 },
            backoff: Some(BackoffConfig::Constant { ms: 100 }),
        })
    );
    assert_eq!(r.service.total_timeout_ms, Some(500));
    assert_eq!(r.service.response_classifier, Some(ResponseClassifier::RetryableRead5XX));
    assert_eq!(
        r.service.retries,
        Some(RetriesConfig {
            budget: RetryBudgetConfig { min_retries_per_sec: 5, percent_can_retry: 0.5, ttl_secs: 15 },
            backoff: Some(BackoffConfig::Jittered { min_ms: 10, max_ms: 10000 }),
        })
    );
    let c = parse(&router(
        "  service:\n    kind: io.l5d.static\n    configs:\n    - prefix: /svc/foo\n      totalTimeoutMs: 200\n",
    ));
    assert_eq!(c.routers[0].service.kind, ServiceKind::Static);
    assert_eq!(c.routers[0].service.configs[0].total_timeout_ms, Some(200));
    let err = error(&router("  service:\n    responseClassifier: {kind: io.l5d.h2.grpc.default}\n"));
    assert!(err.starts_with("t.yaml:6:32: routers[0].service.responseClassifier.kind: rejected: "), "{err}");
}

#[test]
fn namers_interpreter_and_router_flags() {
    let text = "namers:\n- kind: io.l5d.fs\n  rootDir: disco\nrouters:\n- protocol: http\n  label: outgoing\n  baseDtab: /svc => /#/io.l5d.fs\n  dtabHeaders: false\n  contextHeaders: false\n  httpAccessLog: /var/log/access.log\n  interpreter:\n    kind: default\n    transformers:\n    - kind: io.l5d.port\n      port: 4143\n    - kind: io.l5d.localhost\n  servers:\n  - port: 4141\n    maxCallDepth: 5\n";
    let c = parse(text);
    assert_eq!(
        c.namers,
        [NamerConfig::Fs { root_dir: "disco".into(), prefix: "/io.l5d.fs".into(), transformers: vec![] }]
    );
    let r = &c.routers[0];
    assert_eq!(r.dtab, "/svc => /#/io.l5d.fs");
    assert!(!r.dtab_headers && !r.context_headers);
    assert_eq!(r.http_access_log.as_deref(), Some("/var/log/access.log"));
    assert_eq!(
        r.interpreter.transformers,
        [TransformerConfig::Port { port: 4143, prefix: None }, TransformerConfig::Localhost { prefix: None },]
    );
    assert_eq!(r.interpreter.transformers[0].client_prefix(), "/%/io.l5d.port/4143");
    assert_eq!(r.max_call_depth_for(&r.servers[0]), 5);
    let c = parse(&format!("{}namers:\n- {{kind: io.l5d.fs, rootDir: d, prefix: disco}}\n", router("")));
    assert_eq!(c.namers[0].prefix(), "/disco");
    let err = error(&format!(
        "{}namers:\n- {{kind: io.l5d.fs, rootDir: a}}\n- {{kind: io.l5d.fs, rootDir: b}}\n",
        router("")
    ));
    assert!(err.starts_with("t.yaml:7:3: namers[1]: a second namer"), "{err}");
    let err = error(&router("  dtab: /svc => \n"));
    assert!(err.starts_with("t.yaml:5:9: routers[0].dtab: invalid dtab"), "{err}");
    let err = error(&router("  dtab: /a => /b\n  baseDtab: /a => /c\n"));
    assert!(err.starts_with("t.yaml:6:13: routers[0].baseDtab: give either"), "{err}");
}

#[test]
fn corelink_section_and_validation() {
    let text = "routers:\n- protocol: http\n  servers: [{port: 1}]\ncorelink:\n  workers: 0\n";
    assert_eq!(error(text), "t.yaml:5:12: corelink.workers: must be at least 1");
    let text = "routers:\n- protocol: http\n  servers: [{port: 1}]\ncorelink:\n  io: epoll\n  workers: 2\n";
    let c = parse(text);
    assert_eq!(c.corelink.io, BackendChoice::Epoll);
    assert!(error("routers:\n- protocol: http\n  servers: [{port: 1}]\ncorelink: {io: fast}\n")
        .starts_with("t.yaml:4:16: corelink.io: unknown io backend"));
    let dup =
        "routers:\n- protocol: http\n  servers: [{port: 1}]\n- protocol: http\n  label: b\n  servers: [{port: 1}]\n";
    assert_eq!(
        error(dup),
        "t.yaml:6:13: routers[1].servers[0]: 127.0.0.1:1 is used by another server (routers[0].servers[0])"
    );
    let dup = "routers:\n- protocol: http\n  servers: [{port: 1}]\n- protocol: http\n  servers: [{port: 2}]\n";
    assert_eq!(error(dup), "t.yaml:4:3: routers[1].label: duplicate router label \"http\"");
    assert_eq!(error(""), "t.yaml:1:1: routers: missing required key");
    assert_eq!(error("routers: []\n"), "t.yaml:1:10: routers: at least one router is required");
    assert!(error("routers:\n- protocol: http\n  servers: []\n").contains("at least one server"));
    assert!(error("routers: [\n").starts_with("t.yaml:2:1: (document): YAML syntax error: "));
    // Port 0 (an ephemeral port, as the tests use) may repeat.
    parse("admin: {port: 0}\nrouters:\n- protocol: http\n  servers: [{port: 0}, {port: 0}]\n");
}

#[test]
fn every_example_config_parses_cleanly() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/linkerd");
    let mut seen = 0;
    let mut entries: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for path in entries {
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let (config, warnings) = match Config::load_with_warnings(&path) {
            Ok(x) => x,
            Err(e) => panic!("{e}"),
        };
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        // Only the no-validation examples warn (loudly, on purpose).
        if name.contains("no-validation") {
            assert_eq!(warnings.len(), 1, "{name}: {warnings:?}");
        } else {
            assert!(warnings.is_empty(), "{name}: {warnings:?}");
        }
        // corelink's `cli::check` tests compile each into a routing snapshot.
        let _ = config;
        seen += 1;
    }
    assert!(seen >= 6, "only {seen} examples");
}

#[test]
fn docs_list_every_key() {
    let doc =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/config.md")).unwrap();
    for (table, keys) in schema::ALL_TABLES {
        for key in *keys {
            let status = match key.status {
                decode::Status::Supported => "**supported**",
                decode::Status::Warn(_) => "accepted with a **warning**",
                decode::Status::Reject(_) => "**rejected**",
            };
            let row = doc
                .lines()
                .find(|l| l.starts_with(&format!("| `{}` ", key.name)) && l.contains(&format!("<!-- {table} -->")));
            let Some(row) = row else { panic!("docs/config.md has no row for `{}` in {table}", key.name) };
            let cell = row.split('|').nth(2).map(str::trim);
            assert_eq!(cell, Some(status), "docs/config.md: `{}` in {table}: {row}", key.name);
        }
    }
}

#[test]
fn lax_bound_path_and_no_validation_warn_naming_the_router() {
    let lax = "routers:\n- protocol: http\n  label: out\n  servers: [{port: 1}]\n  client:\n    tls:\n      kind: io.l5d.boundPath\n      strict: false\n      names:\n      - prefix: \"/#/io.l5d.fs/{service}\"\n        commonNamePattern: \"{service}\"\n";
    let warnings = Config::parse(lax, "t").unwrap().tls_warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("router out") && warnings[0].contains("PLAINTEXT"), "{warnings:?}");
    let open = "routers:\n- protocol: http\n  label: out\n  servers: [{port: 1}]\n  client:\n    tls:\n      kind: io.l5d.noValidation\n";
    let warnings = Config::parse(open, "t").unwrap().tls_warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("router out") && warnings[0].contains("NOT authenticated"), "{warnings:?}");
    let strict = lax.replace("strict: false", "strict: true");
    assert!(Config::parse(&strict, "t").unwrap().tls_warnings().is_empty());
}

#[test]
fn effective_json_uses_linkerd_keys_with_defaults_and_no_key_material() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/linkerd");
    for file in ["linker-to-linker.yaml", "linker-to-linker-2016.yaml"] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        let json = parse(&text).effective_json();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{file}: {e}\n{json}"));
        let outgoing = &v["routers"][0];
        assert_eq!(outgoing["label"], "outgoing", "{file}");
        assert_eq!(outgoing["identifier"][0]["kind"], "io.l5d.header.token", "{file}: defaults filled in");
        assert_eq!(outgoing["identifier"][0]["header"], "Host", "{file}");
        assert_eq!(outgoing["maxHeadersKB"], default_max_headers_kb(), "{file}");
        assert_eq!(outgoing["client"]["loadBalancer"]["kind"], "p2c", "{file}");
        assert_eq!(outgoing["service"]["kind"], "io.l5d.global", "{file}");
        assert_eq!(v["namers"][0]["kind"], "io.l5d.fs", "{file}");
        assert_eq!(v["namers"][0]["rootDir"], "disco", "{file}");
        assert_eq!(v["admin"]["port"], 9990, "{file}");
        assert_eq!(v["corelink"]["io"], "auto", "{file}");
        let server_tls = &v["routers"][1]["servers"][0]["tls"];
        assert_eq!(server_tls["keyPath"], "certificates/serviceA.key", "{file}: paths are shown");
        assert!(!json.contains("null"), "{file}: unset keys are left out\n{json}");
        assert!(!json.contains("PRIVATE KEY") && !json.contains("BEGIN"), "{file}: no key material");
    }
    let legacy = parse(&std::fs::read_to_string(dir.join("linker-to-linker-2016.yaml")).unwrap()).effective_json();
    let v: serde_json::Value = serde_json::from_str(&legacy).unwrap();
    let tls = &v["routers"][0]["client"]["tls"];
    assert_eq!(tls["kind"], "io.l5d.boundPath");
    assert_eq!(tls["names"][0]["commonNamePattern"], "{service}");
    let modern = parse(&std::fs::read_to_string(dir.join("linker-to-linker.yaml")).unwrap()).effective_json();
    let v: serde_json::Value = serde_json::from_str(&modern).unwrap();
    let config = &v["routers"][0]["client"]["configs"][0];
    assert_eq!(config["prefix"], "/#/io.l5d.fs/{service}");
    assert_eq!(config["tls"]["commonName"], "{service}");
    assert_eq!(v["routers"][0]["client"]["kind"], "io.l5d.static");
}

#[test]
fn effective_json_names_policies_by_kind() {
    let c = parse(&router(
        "  client:\n    failureAccrual:\n      kind: io.l5d.successRateWindowed\n      successRate: 0.9\n      window: 30\n      backoff: {kind: jittered, minMs: 10, maxMs: 100}\n  service:\n    responseClassifier: {kind: io.l5d.http.retryableRead5XX}\n    retries:\n      budget: {percentCanRetry: 0.5}\n",
    ));
    let v: serde_json::Value = serde_json::from_str(&c.effective_json()).unwrap();
    let accrual = &v["routers"][0]["client"]["failureAccrual"];
    assert_eq!(accrual["kind"], "io.l5d.successRateWindowed");
    assert_eq!(accrual["successRate"], 0.9);
    assert_eq!(accrual["window"], 30);
    assert_eq!(accrual["backoff"], serde_json::json!({"kind": "jittered", "minMs": 10, "maxMs": 100}));
    let service = &v["routers"][0]["service"];
    assert_eq!(service["responseClassifier"]["kind"], "io.l5d.http.retryableRead5XX");
    assert_eq!(service["retries"]["budget"]["percentCanRetry"], 0.5);
    assert_eq!(service["retries"]["budget"]["minRetriesPerSec"], 10, "linkerd's default filled in");
}

#[test]
fn server_timeouts_and_the_body_progress_timeout() {
    let text = "routers:\n- protocol: http\n  servers:\n  - port: 1\n    timeoutMs: 300\n    maxConcurrentRequests: 8\n    socketOptions: {readTimeoutMs: 400, writeTimeoutMs: 500}\ncorelink: {bodyProgressTimeoutMs: 700}\n";
    let (c, w) = Config::parse_with_warnings(text, "t.yaml").unwrap();
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(c.not_yet_in_effect(), (Vec::new(), Vec::new()), "every key here is in effect");
    let s = &c.routers[0].servers[0];
    assert_eq!((s.timeout_ms, s.max_concurrent_requests), (Some(300), Some(8)));
    assert_eq!((s.socket_options.read_timeout_ms, s.socket_options.write_timeout_ms), (Some(400), Some(500)));
    assert_eq!(c.corelink.body_progress_timeout_ms, 700);
    // `/config.json` shows them where linkerd has them.
    let v: serde_json::Value = serde_json::from_str(&c.effective_json()).unwrap();
    assert_eq!(v["routers"][0]["servers"][0]["socketOptions"]["readTimeoutMs"], 400);
    assert_eq!(v["routers"][0]["servers"][0]["timeoutMs"], 300);
    assert_eq!(v["corelink"]["bodyProgressTimeoutMs"], 700);
    // Unset: no socket timeouts, and bodies get the safe default.
    let c = parse(&router(""));
    let s = &c.routers[0].servers[0];
    assert_eq!((s.socket_options.read_timeout_ms, s.timeout_ms), (None, None));
    assert_eq!(c.corelink.body_progress_timeout_ms, 60_000);
    assert!(!c.effective_json().contains("socketOptions"), "unset: left out");
    // Zero would mean "at once" to finagle and "never" to a reader: refused.
    let err = error("routers:\n- protocol: http\n  servers:\n  - socketOptions: {readTimeoutMs: 0}\n");
    assert!(err.starts_with("t.yaml:4:36: routers[0].servers[0].socketOptions.readTimeoutMs: "), "{err}");
    let err = error("routers:\n- protocol: http\n  servers: [{port: 1}]\ncorelink: {bodyProgressTimeoutMs: 0}\n");
    assert!(err.starts_with("t.yaml:4:35: corelink.bodyProgressTimeoutMs: "), "{err}");
    let err = error("routers:\n- protocol: http\n  servers:\n  - timeoutMs: 0\n");
    assert!(err.starts_with("t.yaml:4:16: routers[0].servers[0].timeoutMs: "), "{err}");
}

#[test]
fn k8s_namer_keys_and_linkerd_defaults() {
    let c = parse(&format!("{}namers:\n- kind: io.l5d.k8s\n", router("")));
    assert_eq!(
        c.namers[0],
        NamerConfig::K8s(K8sNamerConfig {
            prefix: "/io.l5d.k8s".into(),
            api: K8sApiConfig::Proxy { host: "localhost".into(), port: 8001 },
            label_selector: None,
            transformers: vec![],
        })
    );
    let text = format!(
        "{}namers:\n- kind: io.l5d.k8s\n  prefix: k8s\n  host: 10.0.0.1\n  port: 8002\n  labelSelector: version\n  experimental: true\n  transformers:\n  - kind: io.l5d.port\n    port: 4141\n",
        router("")
    );
    let (c, warnings) = Config::parse_with_warnings(&text, "t.yaml").unwrap();
    let NamerConfig::K8s(k) = &c.namers[0] else { panic!("{:?}", c.namers[0]) };
    assert_eq!(k.prefix, "/k8s");
    assert_eq!(k.api, K8sApiConfig::Proxy { host: "10.0.0.1".into(), port: 8002 });
    assert_eq!(k.label_selector.as_deref(), Some("version"));
    assert_eq!(k.transformers.len(), 1);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("namers[0].experimental: warning: io.l5d.k8s is not experimental"), "{warnings:?}");
    // An fs namer and a k8s namer side by side; prefixes must differ.
    let both = format!("{}namers:\n- {{kind: io.l5d.fs, rootDir: d}}\n- {{kind: io.l5d.k8s}}\n", router(""));
    assert_eq!(parse(&both).namers.len(), 2);
    let clash = format!(
        "{}namers:\n- {{kind: io.l5d.fs, rootDir: d, prefix: /x}}\n- {{kind: io.l5d.k8s, prefix: /x}}\n",
        router("")
    );
    assert!(error(&clash).contains("namers[1]: a second namer with prefix /x"), "{}", error(&clash));
    let json = parse(&format!("{}namers:\n- {{kind: io.l5d.k8s, labelSelector: v}}\n", router(""))).effective_json();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["namers"][0]["kind"], "io.l5d.k8s");
    assert_eq!(v["namers"][0]["host"], "localhost");
    assert_eq!(v["namers"][0]["port"], 8001);
    assert_eq!(v["namers"][0]["labelSelector"], "v");
}

#[test]
fn k8s_namer_in_cluster_extension() {
    let c = parse(&format!("{}namers:\n- kind: io.l5d.k8s\n  inCluster: true\n", router("")));
    let NamerConfig::K8s(k) = &c.namers[0] else { panic!() };
    assert_eq!(
        k.api,
        K8sApiConfig::InCluster {
            token_path: "/var/run/secrets/kubernetes.io/serviceaccount/token".into(),
            ca_cert_path: "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt".into(),
        }
    );
    let json = c.effective_json();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["namers"][0]["inCluster"], true, "{json}");
    assert!(v["namers"][0].get("host").is_none(), "{json}");
    let c = parse(&format!(
        "{}namers:\n- {{kind: io.l5d.k8s, inCluster: true, tokenPath: /t/token, caCertPath: /t/ca.crt}}\n",
        router("")
    ));
    let NamerConfig::K8s(k) = &c.namers[0] else { panic!() };
    assert_eq!(k.api, K8sApiConfig::InCluster { token_path: "/t/token".into(), ca_cert_path: "/t/ca.crt".into() });
    let c = parse(&format!("{}namers:\n- {{kind: io.l5d.k8s, inCluster: false, port: 9000}}\n", router("")));
    let NamerConfig::K8s(k) = &c.namers[0] else { panic!() };
    assert_eq!(k.api, K8sApiConfig::Proxy { host: "localhost".into(), port: 9000 });
}

#[test]
fn k8s_namer_errors_point_at_the_key() {
    let e = |body: &str| error(&format!("{}namers:\n- kind: io.l5d.k8s\n{body}", router("")));
    assert_eq!(
        e("  inCluster: true\n  host: api\n"),
        "t.yaml:8:3: namers[0].host: with inCluster: true the API server is KUBERNETES_SERVICE_HOST:KUBERNETES_SERVICE_PORT; remove this key (or inCluster to use a kubectl proxy)"
    );
    assert!(e("  tokenPath: /t\n").starts_with("t.yaml:7:3: namers[0].tokenPath: only used with inCluster: true"));
    assert!(e("  port: 0\n").starts_with("t.yaml:7:9: namers[0].port: 0 is out of range"), "{}", e("  port: 0\n"));
    assert!(e("  port: \"8001\"\n").starts_with("t.yaml:7:9: namers[0].port: expected an integer"));
    assert!(e("  labelSelector: a=b\n").starts_with("t.yaml:7:18: namers[0].labelSelector: \"a=b\" is not a label key"));
    assert_eq!(e("  rootDir: x\n"), "t.yaml:7:3: namers[0].rootDir: unknown key (expected one of: kind, prefix, host, port, labelSelector, transformers, inCluster, tokenPath, caCertPath, experimental)");
    assert!(e("  labelselector: v\n").contains("did you mean `labelSelector`?"));
    assert!(e("  inCluster: yes\n").starts_with("t.yaml:7:14: namers[0].inCluster: expected true or false"));
}

#[test]
fn config_map_interpreter_keys_and_linkerd_defaults() {
    let interp = |body: &str| router(&format!("  interpreter:\n    kind: io.l5d.k8s.configMap\n{body}"));
    let c = parse(&interp("    experimental: true\n    name: dtabs\n    filename: outgoing.dtab\n"));
    let r = &c.routers[0];
    assert_eq!(r.interpreter.kind(), "io.l5d.k8s.configMap");
    assert_eq!(
        r.interpreter.config_map,
        Some(ConfigMapInterpreterConfig {
            api: K8sApiConfig::Proxy { host: "localhost".into(), port: 8001 },
            namespace: "default".into(),
            name: "dtabs".into(),
            filename: "outgoing.dtab".into(),
        })
    );
    // linkerd's keys, the interpreter's transformers, and the in-cluster extension.
    let c = parse(&interp(
        "    experimental: true\n    name: dtabs\n    filename: my-dtab\n    namespace: prod\n    host: 10.0.0.1\n    port: 8002\n    transformers:\n    - kind: io.l5d.port\n      port: 4141\n",
    ));
    let cm = c.routers[0].interpreter.config_map.clone().unwrap();
    assert_eq!(cm.api, K8sApiConfig::Proxy { host: "10.0.0.1".into(), port: 8002 });
    assert_eq!((cm.namespace.as_str(), cm.filename.as_str()), ("prod", "my-dtab"));
    assert_eq!(c.routers[0].interpreter.transformers.len(), 1);
    let c = parse(&interp("    experimental: true\n    name: dtabs\n    filename: d\n    inCluster: true\n"));
    let cm = c.routers[0].interpreter.config_map.clone().unwrap();
    assert!(matches!(cm.api, K8sApiConfig::InCluster { .. }), "{cm:?}");
    // /config.json shows it with linkerd's keys.
    let json = c.effective_json();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let i = &v["routers"][0]["interpreter"];
    assert_eq!(i["kind"], "io.l5d.k8s.configMap", "{json}");
    assert_eq!(i["experimental"], true, "{json}");
    assert_eq!(i["name"], "dtabs", "{json}");
    assert_eq!(i["filename"], "d", "{json}");
    assert_eq!(i["namespace"], "default", "{json}");
    assert_eq!(i["inCluster"], true, "{json}");
    // The default interpreter still shows as before.
    let v: serde_json::Value = serde_json::from_str(&parse(&router("")).effective_json()).unwrap();
    assert_eq!(v["routers"][0]["interpreter"], serde_json::json!({"kind": "default", "transformers": []}));
}

#[test]
fn config_map_interpreter_needs_experimental_name_and_filename() {
    let interp = |body: &str| router(&format!("  interpreter:\n    kind: io.l5d.k8s.configMap\n{body}"));
    let err = error(&interp("    name: dtabs\n    filename: d\n"));
    assert!(
        err.starts_with(
            "t.yaml:6:5: routers[0].interpreter.experimental: the io.l5d.k8s.configMap interpreter is experimental"
        ) && err.contains("`experimental: true`"),
        "{err}"
    );
    let err = error(&interp("    experimental: false\n    name: dtabs\n    filename: d\n"));
    assert!(err.starts_with("t.yaml:7:5: routers[0].interpreter.experimental: "), "{err}");
    let err = error(&interp("    experimental: true\n    filename: d\n"));
    assert!(err.contains("routers[0].interpreter.name: "), "{err}");
    let err = error(&interp("    experimental: true\n    name: dtabs\n"));
    assert!(err.contains("routers[0].interpreter.filename: "), "{err}");
    let err = error(&interp("    experimental: true\n    name: Dtabs\n    filename: d\n"));
    assert!(err.starts_with("t.yaml:8:11: routers[0].interpreter.name: \"Dtabs\" is not a ConfigMap name"), "{err}");
    let err = error(&interp("    experimental: true\n    name: dtabs\n    filename: a/b\n"));
    assert!(err.contains("routers[0].interpreter.filename: \"a/b\" is not a ConfigMap key"), "{err}");
    let err = error(&interp("    experimental: true\n    name: dtabs\n    filename: d\n    namespace: a.b\n"));
    assert!(err.contains("routers[0].interpreter.namespace: \"a.b\" is not a namespace name"), "{err}");
    let err = error(&interp("    experimental: true\n    name: dtabs\n    filename: d\n    labelSelector: x\n"));
    assert!(err.contains("routers[0].interpreter.labelSelector: unknown key"), "{err}");
    let err =
        error(&interp("    experimental: true\n    name: dtabs\n    filename: d\n    inCluster: true\n    port: 1\n"));
    assert!(err.contains("routers[0].interpreter.port: with inCluster: true"), "{err}");
    // The default interpreter knows none of these keys.
    let err = error(&router("  interpreter:\n    name: dtabs\n"));
    assert!(err.contains("routers[0].interpreter.name: unknown key"), "{err}");
}

#[test]
fn k8s_transformers_take_linkerds_keys_and_defaults() {
    let text = router(
        "  interpreter:\n    transformers:\n    - kind: io.l5d.k8s.daemonset\n      namespace: kube-system\n      service: l5d\n      port: incoming\n    - kind: io.l5d.k8s.localnode\n",
    );
    let c = parse(&text);
    let t = &c.routers[0].interpreter.transformers;
    assert_eq!(
        t[0],
        TransformerConfig::DaemonSet(DaemonSetTransformerConfig {
            namespace: "kube-system".into(),
            service: "l5d".into(),
            port: "incoming".into(),
            api: K8sApiConfig::Proxy { host: "localhost".into(), port: 8001 },
            host_network: false,
            prefix: None,
        })
    );
    assert_eq!(t[1], TransformerConfig::LocalNode { host_network: false, prefix: None });
    // linkerd's prefixes: `/%` + the default prefix, or `/%` + `prefix`.
    assert_eq!(t[0].client_prefix(), "/%/io.l5d.k8s.daemonset/kube-system/incoming/l5d");
    assert_eq!(t[1].client_prefix(), "/%/io.l5d.k8s.localnode");
    assert_eq!(t[0].k8s_api(), Some(&K8sApiConfig::Proxy { host: "localhost".into(), port: 8001 }));
    let json: serde_json::Value = serde_json::from_str(&c.effective_json()).unwrap();
    let d = &json["routers"][0]["interpreter"]["transformers"][0];
    assert_eq!(d["kind"], "io.l5d.k8s.daemonset");
    assert_eq!((d["k8sHost"].as_str(), d["k8sPort"].as_u64()), (Some("localhost"), Some(8001)));
    assert_eq!((d["port"].as_str(), d["hostNetwork"].as_bool()), (Some("incoming"), Some(false)));
    assert_eq!(json["routers"][0]["interpreter"]["transformers"][1]["hostNetwork"], false);

    // Every key, on a namer's list; a numbered port is a string as in linkerd.
    let text = format!(
        "{}namers:\n- kind: io.l5d.k8s\n  transformers:\n  - kind: io.l5d.k8s.daemonset\n    namespace: default\n    service: l5d\n    port: 4141\n    k8sHost: 10.0.0.1\n    k8sPort: 8002\n    hostNetwork: true\n    prefix: /ds\n  - {{kind: io.l5d.k8s.localnode, hostNetwork: true, prefix: /ln}}\n  - {{kind: io.l5d.port, port: 4141, prefix: /p}}\n",
        router("")
    );
    let c = parse(&text);
    let t = c.namers[0].transformers();
    let TransformerConfig::DaemonSet(d) = &t[0] else { panic!("{t:?}") };
    assert_eq!((d.port.as_str(), d.host_network), ("4141", true));
    assert_eq!(d.api, K8sApiConfig::Proxy { host: "10.0.0.1".into(), port: 8002 });
    assert_eq!(t[0].client_prefix(), "/%/ds");
    assert_eq!(t[1], TransformerConfig::LocalNode { host_network: true, prefix: Some("/ln".into()) });
    assert_eq!(t[1].client_prefix(), "/%/ln");
    // As linkerd: a `prefix` replaces the whole default, port included.
    assert_eq!(t[2].client_prefix(), "/%/p");

    // corelink's inCluster extension, as on the namer.
    let c = parse(&router(
        "  interpreter:\n    transformers:\n    - {kind: io.l5d.k8s.daemonset, namespace: a, service: b, port: c, inCluster: true}\n",
    ));
    assert_eq!(
        c.routers[0].interpreter.transformers[0].k8s_api(),
        Some(&K8sApiConfig::InCluster {
            token_path: "/var/run/secrets/kubernetes.io/serviceaccount/token".into(),
            ca_cert_path: "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt".into(),
        })
    );
}

#[test]
fn k8s_transformer_errors_point_at_the_key() {
    let ds = |body: &str| {
        error(&router(&format!("  interpreter:\n    transformers:\n    - kind: io.l5d.k8s.daemonset\n{body}")))
    };
    let full = "      namespace: default\n      service: l5d\n      port: incoming\n";
    assert_eq!(
        ds("      namespace: default\n      port: incoming\n"),
        "t.yaml:7:7: routers[0].interpreter.transformers[0].service: missing required key"
    );
    assert_eq!(
        ds(&format!("{full}      k8sport: 8001\n")),
        "t.yaml:11:7: routers[0].interpreter.transformers[0].k8sport: unknown key; did you mean `k8sPort`?"
    );
    assert!(ds(&format!("{full}      host: x\n"))
        .starts_with("t.yaml:11:7: routers[0].interpreter.transformers[0].host: unknown key"));
    assert!(ds(&format!("{full}      k8sPort: 0\n"))
        .starts_with("t.yaml:11:16: routers[0].interpreter.transformers[0].k8sPort: 0 is out of range"));
    assert!(ds(&format!("{full}      hostNetwork: yes\n"))
        .starts_with("t.yaml:11:20: routers[0].interpreter.transformers[0].hostNetwork: expected true or false"));
    assert_eq!(
        ds("      namespace: default\n      service: a/b\n      port: incoming\n"),
        "t.yaml:9:16: routers[0].interpreter.transformers[0].service: \"a/b\" is not a single path segment"
    );
    assert!(ds(&format!("{full}      inCluster: true\n      k8sHost: api\n")).starts_with(
        "t.yaml:12:7: routers[0].interpreter.transformers[0].k8sHost: with inCluster: true the API server is"
    ));
    assert!(ds(&format!("{full}      tokenPath: /t\n"))
        .starts_with("t.yaml:11:7: routers[0].interpreter.transformers[0].tokenPath: only used with inCluster: true"));
    let ln = |body: &str| {
        error(&format!(
            "{}namers:\n- kind: io.l5d.k8s\n  transformers:\n  - kind: io.l5d.k8s.localnode\n{body}",
            router("")
        ))
    };
    assert_eq!(
        ln("    namespace: x\n"),
        "t.yaml:9:5: namers[0].transformers[0].namespace: unknown key (expected one of: kind, prefix, hostNetwork)"
    );
    assert!(ln("    hostNetwork: 1\n")
        .starts_with("t.yaml:9:18: namers[0].transformers[0].hostNetwork: expected true or false"));
    assert!(ln("    prefix: ln\n").starts_with("t.yaml:9:13: namers[0].transformers[0].prefix: \"ln\" is not a path"));
}

#[test]
fn corelink_dns_names_servers_and_bounds_ttls() {
    let base = "routers:\n- protocol: http\n  servers: [{port: 1}]\ncorelink:\n  dns:\n";
    let c =
        parse(&format!("{base}    servers: [\"127.0.0.2\", \"127.0.0.3:5353\", \"[::1]:53\"]\n    minTtlSecs: 2\n"));
    let want: Vec<std::net::SocketAddr> =
        vec!["127.0.0.2:53".parse().unwrap(), "127.0.0.3:5353".parse().unwrap(), "[::1]:53".parse().unwrap()];
    assert_eq!(c.corelink.dns.servers, want);
    assert_eq!((c.corelink.dns.min_ttl_secs, c.corelink.dns.max_ttl_secs), (2, 300));
    assert_eq!(parse(base.trim_end_matches("  dns:\n")).corelink.dns, DnsConfig::default());
    let err = Config::parse(&format!("{base}    servers: [dns.example]\n"), "t").unwrap_err().to_string();
    assert!(err.contains("corelink.dns.servers[0]") && err.contains("not an IP address"), "{err}");
    let err = Config::parse(&format!("{base}    minTtlSecs: 10\n    maxTtlSecs: 5\n"), "t").unwrap_err().to_string();
    assert!(err.contains("corelink.dns.maxTtlSecs") && err.contains("at least minTtlSecs"), "{err}");
    let err = Config::parse(&format!("{base}    server: []\n"), "t").unwrap_err().to_string();
    assert!(err.contains("unknown key"), "{err}");
}

#[test]
fn dnssrv_namer_needs_experimental_and_takes_linkerds_defaults() {
    let router = "routers:\n- protocol: http\n  servers: [{port: 1}]\n";
    let c = parse(&format!("namers:\n- kind: io.l5d.dnssrv\n  experimental: true\n{router}"));
    let NamerConfig::DnsSrv(d) = &c.namers[0] else { panic!("{:?}", c.namers) };
    assert_eq!(
        (d.prefix.as_str(), d.refresh_interval_secs, d.srv_weights, d.keep_last_good_secs, d.idle_ttl_secs),
        ("/io.l5d.dnssrv", 5, false, 0, 600)
    );
    assert!(d.dns_hosts.is_empty());
    let err = Config::parse(&format!("namers:\n- kind: io.l5d.dnssrv\n{router}"), "t").unwrap_err().to_string();
    assert!(err.contains("namers[0].experimental") && err.contains("experimental: true"), "{err}");
    let c = parse(&format!("namers:\n- kind: io.l5d.dnssrv\n  experimental: true\n  dnsHosts: [127.0.0.2]\n  refreshIntervalSeconds: 1\n  srvWeights: true\n  keepLastGoodSecs: 30\n  idleTtlSecs: 20\n{router}"));
    let NamerConfig::DnsSrv(d) = &c.namers[0] else { panic!() };
    assert_eq!(d.dns_hosts, ["127.0.0.2"]);
    assert_eq!((d.refresh_interval_secs, d.srv_weights, d.keep_last_good_secs, d.idle_ttl_secs), (1, true, 30, 20));
    // linkerd's docs name the servers (`ns0.example.org`): host names too.
    let c = parse(&format!(
        "namers:\n- kind: io.l5d.dnssrv\n  experimental: true\n  dnsHosts: [ns0.example.org, \"::1\"]\n{router}"
    ));
    let NamerConfig::DnsSrv(d) = &c.namers[0] else { panic!() };
    assert_eq!(d.dns_hosts, ["ns0.example.org", "::1"]);
    let err = Config::parse(
        &format!("namers:\n- kind: io.l5d.dnssrv\n  experimental: true\n  dnsHosts: [\"ns.example:53\"]\n{router}"),
        "t",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("namers[0].dnsHosts[0]") && err.contains("neither an IP address nor a DNS host name"),
        "{err}"
    );
}
