//! Bound path → TLS name derivation, on arbitrary text: the client TLS rules
//! (`match_prefix`, `substitute`, the 2016 boundPath `names`) and the name
//! check rustls applies. Input: lines `prefix`, `commonNamePattern`, then the
//! client name (bound path); more `prefix`/`pattern` pairs may follow.
//! Must never panic, and:
//! - a prefix matches only paths with at least as many segments, and each
//!   capture is one of the path's segments, in order;
//! - a pattern with no `{` is returned unchanged; `substitute` agrees with
//!   `substitute_by_scan` below, written another way: each `}` closes the
//!   last `{` before it, and every other brace is a literal one;
//! - the boundPath rule picks the first matching entry;
//! - a derived name rustls accepts is a non-empty name without `/`.
#![no_main]

use corelink::tls::client::{bound_path_name, server_name};
use corelink_naming::prefix::{match_prefix, substitute};
use libfuzzer_sys::fuzz_target;

fn segments(s: &str) -> Vec<&str> {
    s.split('/').filter(|x| !x.is_empty()).collect()
}

/// The substitution as one scan: remember the last `{`; a `}` after it closes
/// a var, filled from the captures (first by that name) or kept as written.
///
/// An earlier check here, "no captured `{var}` is left behind", did not hold:
/// literal braces around a value that spells a var's name (`{{a}}` with `a`
/// = `a`) give `{a}`, in linkerd's substitution as in ours (found by this
/// target in CI, 2026-12-07).
fn substitute_by_scan(pattern: &str, captures: &[(&str, &str)]) -> String {
    let mut out = String::new();
    let mut open = None;
    let mut copied = 0;
    for (i, c) in pattern.char_indices() {
        match (c, open) {
            ('{', _) => open = Some(i),
            ('}', Some(o)) => {
                out.push_str(&pattern[copied..o]);
                let var = &pattern[o + 1..i];
                match captures.iter().find(|(v, _)| *v == var) {
                    Some((_, value)) => out.push_str(value),
                    None => out.push_str(&pattern[o..=i]),
                }
                copied = i + 1;
                open = None;
            }
            _ => {}
        }
    }
    out.push_str(&pattern[copied..]);
    out
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let lines: Vec<&str> = text.split('\n').collect();
    let [prefix, pattern, path, rest @ ..] = lines.as_slice() else { return };

    if let Some(captures) = match_prefix(prefix, path) {
        let (want, got) = (segments(prefix), segments(path));
        assert!(got.len() >= want.len(), "{prefix:?} matched the shorter {path:?}");
        let mut at = 0;
        for (var, value) in &captures {
            let i = want[at..].iter().position(|w| *w == format!("{{{var}}}")).expect("capture from the pattern") + at;
            assert_eq!(got[i], *value, "capture {var} of {prefix:?} on {path:?}");
            at = i + 1;
        }
        let name = substitute(pattern, &captures);
        if !pattern.contains('{') {
            assert_eq!(&name, pattern);
        }
        assert_eq!(name, substitute_by_scan(pattern, &captures), "{pattern:?} with {captures:?}");
        if let Ok(checked) = server_name(&name) {
            let shown = checked.to_str();
            assert!(!shown.is_empty() && !shown.contains('/'), "rustls took {name:?}");
        }
    }

    let mut names = vec![(prefix.to_string(), pattern.to_string())];
    names.extend(rest.chunks_exact(2).map(|p| (p[0].to_string(), p[1].to_string())));
    let first = names.iter().find(|(p, _)| match_prefix(p, path).is_some());
    let derived = bound_path_name(&names, path);
    assert_eq!(derived.is_some(), first.is_some());
    if let (Some(name), Some((p, pat))) = (&derived, first) {
        let captures = match_prefix(p, path).unwrap();
        assert_eq!(*name, substitute(pat, &captures));
    }
});
