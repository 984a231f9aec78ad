use super::*;

#[test]
fn minimal_router_gets_linkerd_defaults() {
    let c = Config::parse("routers:\n- protocol: http\n  servers:\n  - {}\n", "t.yaml").unwrap();
    let r = &c.routers[0];
    assert_eq!(r.label(), "http");
    assert_eq!(r.dst_prefix, "/svc");
    assert_eq!(r.servers[0].addr(), "127.0.0.1:4140".parse().unwrap());
    assert_eq!(c.admin.addr(), "127.0.0.1:9990".parse().unwrap());
    assert_eq!(r.max_headers_kb, 8);
    assert_eq!(r.max_initial_line_kb, 4);
    assert!(matches!(r.identifier(), IdentifierConfig::HeaderToken { header } if header == "Host"));
}

#[test]
fn unknown_key_is_an_error_with_position() {
    let text = "routers:\n- protocol: http\n  servers:\n  - port: 1\n    bogus: 2\n";
    let err = Config::parse(text, "t.yaml").unwrap_err().to_string();
    assert!(err.starts_with("t.yaml: 5:5: routers[0].servers[0]: unknown field `bogus`"), "{err}");
    assert!(err.contains("bogus"), "{err}");
}

#[test]
fn corelink_section_and_validation() {
    let text = "routers:\n- protocol: http\n  servers: [{port: 1}]\ncorelink:\n  workers: 0\n";
    assert!(Config::parse(text, "t").unwrap_err().to_string().contains("workers"));
    let text = "routers:\n- protocol: http\n  servers: [{port: 1}]\ncorelink:\n  io: epoll\n  workers: 2\n";
    let c = Config::parse(text, "t").unwrap();
    assert_eq!(c.corelink.io, crate::io::BackendChoice::Epoll);
    let dup =
        "routers:\n- protocol: http\n  servers: [{port: 1}]\n- protocol: http\n  label: b\n  servers: [{port: 1}]\n";
    assert!(Config::parse(dup, "t").unwrap_err().to_string().contains("used by another server"));
}
