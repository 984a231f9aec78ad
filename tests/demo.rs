//! `corelink demo --check`: the linker-to-linker TLS scenario end to end, as the README's
//! first command runs it (sidecars on the write-up's ports 4141 and 4143,
//! TLS between them with certificates made on the spot).

mod common;

#[test]
fn demo_check_passes() {
    let out = std::process::Command::new(common::binary()).args(["demo", "--check"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("sidecar A: identified /svc/serviceB, dtab bound it to /#/io.l5d.fs/serviceB"), "{text}");
    assert!(text.contains("sidecar A verified the certificate of serviceB"), "{text}");
    assert!(
        text.contains("3 requests from ServiceA reached serviceB through both sidecars, over TLS between them."),
        "{text}"
    );
}
