//! The linkerd config parser on arbitrary text: every input either parses or
//! gives an error with a position; nothing panics, hangs or recurses without
//! bound. Parsed configs must also survive what start-up does with them
//! (validation of not-yet-effective keys, compiling the routing snapshot).
//!
//! Compiling touches neither the file system nor the network: start-up
//! opens access logs (creating or truncating them), reads certificate files
//! and resolves the dtabs' host names, each of which a fuzzed config could
//! aim anywhere (or make wait up to its own `dns.timeoutMs`). Here the
//! snapshot is compiled from inputs as they would be with nothing found:
//! no namer state, no host name resolved, no log opened, no file read.
#![no_main]

use corelink::table::{NamerInputs, RouterInputs, RoutingSnapshot, SnapshotInputs};
use corelink::tls::ClientTlsPolicy;
use corelink_config::Config;
use libfuzzer_sys::fuzz_target;

fn inputs_without_io(config: &Config) -> SnapshotInputs {
    let routers = config
        .routers
        .iter()
        .map(|r| {
            let client_tls_files = r.client.tls.is_some() || r.client.configs.iter().any(|c| c.params.tls.is_some());
            RouterInputs {
                access_log: None,
                server_tls: r
                    .servers
                    .iter()
                    .map(|s| {
                        s.tls.as_ref().map(|_| Err("server TLS files are not read by the fuzz target".to_string()))
                    })
                    .collect(),
                client_tls: if client_tls_files {
                    Err("client TLS files are not read by the fuzz target".to_string())
                } else {
                    ClientTlsPolicy::compile(&r.client)
                },
            }
        })
        .collect();
    SnapshotInputs { namers: NamerInputs::default(), routers }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match Config::parse_with_warnings(text, "fuzz.yaml") {
        Ok((config, _warnings)) => {
            let _ = config.not_yet_in_effect();
            // The namers' state is one entry per configured namer; with
            // namers it would come from their directories and watches.
            if config.namers.is_empty() {
                let _ = RoutingSnapshot::compile_with(&config, &inputs_without_io(&config), 1);
            }
        }
        Err(e) => {
            let message = e.to_string();
            assert!(message.starts_with("fuzz.yaml"), "error without origin: {message}");
        }
    }
});
