//! `Dtab::parse` on arbitrary UTF-8. Must never panic; when it succeeds,
//! `show()` must parse back to an equal dtab whose `show()` is the same text
//! (parse → show → parse), and each dentry must round-trip on its own.
//!
//! A parsed dtab is also used the way an `l5d-dtab` request header would be:
//! binding and tracing a few paths through it must terminate without
//! panicking (the lookup budget bounds hostile dtabs).
#![no_main]

use corelink_naming::{Delegator, Dentry, Dtab, EmptyNamers, Path, PrefixElem};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(dtab) = Dtab::parse(s) else {
        return;
    };
    let shown = dtab.show();
    let again = match Dtab::parse(&shown) {
        Ok(d) => d,
        Err(e) => panic!("show() output does not parse: {e}\ninput: {s:?}\nshown: {shown:?}"),
    };
    assert_eq!(again, dtab, "parse(show(d)) != d\ninput: {s:?}\nshown: {shown:?}");
    assert_eq!(again.show(), shown, "show not stable\ninput: {s:?}");
    for d in dtab.dentries() {
        let text = d.show();
        match Dentry::parse(&text) {
            Ok(back) => assert_eq!(&back, d, "dentry round trip\ninput: {s:?}\nshown: {text:?}"),
            Err(e) => panic!("dentry show() does not parse: {e}\ninput: {s:?}\nshown: {text:?}"),
        }
    }

    // Bind each dentry's prefix (wildcards filled in) plus one more segment,
    // through the dtab as base and as a per-request dtab over a small base.
    let base = Dtab::parse("/svc=>/$/inet/127.0.0.1/8080").unwrap_or_default();
    for d in dtab.dentries().iter().take(4) {
        let segs: Vec<&[u8]> = d
            .prefix
            .elems()
            .iter()
            .map(|e| match e {
                PrefixElem::Any => &b"x"[..],
                PrefixElem::Label(l) => &l[..],
            })
            .chain([&b"fuzz"[..]])
            .collect();
        let Ok(path) = Path::from_segments(segs) else {
            continue;
        };
        let _ = Delegator::new(&dtab, &EmptyNamers).bind(&path);
        let _ = Delegator::new(&base, &EmptyNamers).with_local(&dtab).bind(&path);
        let _ = Delegator::new(&dtab, &EmptyNamers).delegate(&path);
    }
});
