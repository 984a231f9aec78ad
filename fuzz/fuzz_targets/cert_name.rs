//! The subject-CN fallback of corelink's certificate verifier on arbitrary
//! bytes (a peer controls its certificate's DER): must never panic, and a CN
//! is only ever read from a certificate that parses and has no
//! subjectAltName. Reading an intermediate's name constraints (which turn
//! the fallback off) must never panic either.
#![no_main]

use corelink::tls::verify::cn_matches;
use corelink::tls::verify::may_constrain_names;
use corelink::tls::verify::subject_cn_without_san;
use libfuzzer_sys::fuzz_target;
use rustls::pki_types::{CertificateDer, ServerName};

fuzz_target!(|data: &[u8]| {
    let _ = may_constrain_names(data);
    let cn = subject_cn_without_san(data);
    let cert = CertificateDer::from(data);
    let name = ServerName::try_from("serviceB").unwrap();
    let matched = cn_matches(&cert, &name);
    let expected = cn.as_deref().is_some_and(|c| c.strip_suffix('.').unwrap_or(c).eq_ignore_ascii_case("serviceB"));
    assert_eq!(matched, expected);
    if let Some(cn) = &cn {
        if let Ok(n) = ServerName::try_from(cn.clone()) {
            assert!(cn_matches(&cert, &n), "CN {cn:?} as {n:?}");
        }
    }
});
