//! The linkerd config parser on arbitrary text: every input either parses or
//! gives an error with a position; nothing panics, hangs or recurses without
//! bound. Parsed configs must also survive what start-up does with them
//! (validation of not-yet-effective keys, compiling the routing snapshot).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match corelink_config::Config::parse_with_warnings(text, "fuzz.yaml") {
        Ok((config, _warnings)) => {
            let _ = config.not_yet_in_effect();
            // Namer directories are read from disk: only compile configs
            // without namers, so the fuzzer never touches the file system.
            if config.namers.is_empty() {
                let _ = corelink::server::control::compile(&config, 1);
            }
        }
        Err(e) => {
            let message = e.to_string();
            assert!(message.starts_with("fuzz.yaml"), "error without origin: {message}");
        }
    }
});
