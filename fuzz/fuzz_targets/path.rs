//! `Path::parse` and `NameTree::<Path>::parse` on arbitrary UTF-8. Must never
//! panic; what parses must round-trip through `show()` (parse → show → parse
//! gives an equal value and the same text). Also checks the O(1) path
//! operations against their definitions, and that `simplify` is idempotent
//! and `pick`/`eval` do not panic on parsed trees.
#![no_main]

use corelink_naming::{NameTree, Path};
use libfuzzer_sys::fuzz_target;

fn check_path(s: &str, p: &Path) {
    let shown = p.show();
    let again = match Path::parse(&shown) {
        Ok(p) => p,
        Err(e) => panic!("Path show() does not parse: {e}\ninput: {s:?}\nshown: {shown:?}"),
    };
    assert_eq!(&again, p, "Path round trip\ninput: {s:?}\nshown: {shown:?}");
    assert_eq!(again.show(), shown);
    assert_eq!(p.segments().count(), p.len());
    assert!(p.segments().all(|seg| !seg.is_empty()), "empty segment from {s:?}");
    for k in 0..=p.len() {
        let (head, tail) = (p.take(k), p.drop(k));
        assert_eq!(head.len(), k);
        assert_eq!(head.concat(&tail), *p, "take/drop/concat at {k}: {s:?}");
        assert!(p.starts_with(&head));
    }
    assert_eq!(Path::from_segments(p.segments()).ok().as_ref(), Some(p));
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(p) = Path::parse(s) {
        check_path(s, &p);
    }
    if let Ok(t) = NameTree::<Path>::parse(s) {
        let shown = t.show();
        let again = match NameTree::<Path>::parse(&shown) {
            Ok(t) => t,
            Err(e) => panic!("NameTree show() does not parse: {e}\ninput: {s:?}\nshown: {shown:?}"),
        };
        assert_eq!(again, t, "NameTree round trip\ninput: {s:?}\nshown: {shown:?}");
        assert_eq!(again.show(), shown);
        let simple = t.simplify();
        assert_eq!(simple.simplify(), simple, "simplify not idempotent: {s:?}");
        for r in [0, 1, u64::MAX / 3, u64::MAX] {
            let _ = t.pick(r);
            let _ = simple.pick(r);
        }
        let _ = t.eval();
        let lens = t.map(&mut |p: &Path| p.len());
        assert_eq!(lens.show().is_empty(), shown.is_empty());
    }
});
