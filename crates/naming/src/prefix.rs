//! linkerd's prefix patterns over names (`client.configs[].prefix`,
//! `service.configs[].prefix`, the 2016 boundPath `names`): `*` matches one
//! segment, `{var}` matches one and captures it, `/` matches everything.
//! Every `configs` entry whose prefix matches applies, in file order, later
//! ones overriding earlier ones.

/// `{var}` captures of a prefix match.
pub type Captures<'a> = Vec<(&'a str, &'a str)>;

/// Matches a linkerd prefix pattern against the leading segments of a path:
/// a literal segment matches itself, `*` any one segment, `{var}` any one
/// segment, captured. `/` matches every path.
pub fn match_prefix<'a>(pattern: &'a str, path: &'a str) -> Option<Captures<'a>> {
    let mut captures = Vec::new();
    let mut segments = path.split('/').filter(|s| !s.is_empty());
    for want in pattern.split('/').filter(|s| !s.is_empty()) {
        let got = segments.next()?;
        if want == "*" {
            continue;
        }
        // `{name}` captures; a name holding braces is not one (found by
        // fuzz/tls_name), so the segment is matched literally.
        let var = want.strip_prefix('{').and_then(|w| w.strip_suffix('}')).filter(|v| !v.contains(['{', '}']));
        if let Some(var) = var {
            captures.push((var, got));
        } else if want != got {
            return None;
        }
    }
    Some(captures)
}

/// Replaces each `{var}` in `pattern` by its capture; unknown ones stay.
pub fn substitute(pattern: &str, captures: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut rest = pattern;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        // A var name runs to the next `}`; a `{` before it means this `{`
        // was a literal one.
        match after.find(['{', '}']) {
            Some(close) if after.as_bytes()[close] == b'}' => {
                let var = &after[..close];
                match captures.iter().find(|(v, _)| *v == var) {
                    Some((_, value)) => out.push_str(value),
                    None => out.push_str(&rest[open..open + close + 2]),
                }
                rest = &after[close + 1..];
            }
            _ => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The `configs` entries whose prefix matches `name`, in file order (apply
/// them in turn: later ones override earlier ones).
pub fn matching<'c, T>(
    configs: &'c [T],
    name: &'c str,
    prefix: impl Fn(&T) -> &str + 'c,
) -> impl Iterator<Item = &'c T> + 'c {
    configs.iter().filter(move |c| match_prefix(prefix(c), name).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_match_segments_and_capture() {
        assert_eq!(
            match_prefix("/#/io.l5d.fs/{service}", "/#/io.l5d.fs/serviceB"),
            Some(vec![("service", "serviceB")])
        );
        assert_eq!(match_prefix("/#/io.l5d.fs/{service}", "/#/io.l5d.fs"), None);
        assert_eq!(match_prefix("/#/*/{s}", "/#/io.l5d.fs/b/extra"), Some(vec![("s", "b")]));
        assert_eq!(match_prefix("/", "/anything"), Some(vec![]));
        assert_eq!(match_prefix("/#/io.l5d.k8s", "/#/io.l5d.fs/b"), None);
        // The transformer prefix is part of the client name.
        let port = "/%/io.l5d.port/4141/#/io.l5d.fs/serviceB";
        assert_eq!(
            match_prefix("/%/io.l5d.port/4141/#/io.l5d.fs/{service}", port),
            Some(vec![("service", "serviceB")])
        );
        assert_eq!(match_prefix("/#/io.l5d.fs/{service}", port), None);
    }

    #[test]
    fn substitution_fills_captured_vars() {
        assert_eq!(substitute("{service}.linkerd", &[("service", "b")]), "b.linkerd");
        assert_eq!(substitute("{a}-{b}", &[("a", "1"), ("b", "2")]), "1-2");
        assert_eq!(substitute("{x}", &[]), "{x}");
        assert_eq!(substitute("open{", &[]), "open{");
        // Found by fuzz/tls_name: a literal `{` before a var.
        assert_eq!(substitute("{b-{a}", &[("a", "1")]), "{b-1");
        assert_eq!(substitute("{{a}}", &[("a", "1")]), "{1}");
        // Literal braces around a value that spells a var's name leave that
        // `{var}` in the name, as linkerd's `PathMatcher.substitute` does.
        assert_eq!(substitute("{{a}}.ns", &[("a", "a")]), "{a}.ns");
    }

    #[test]
    fn matching_keeps_file_order() {
        let configs = ["/#/io.l5d.fs", "/#/io.l5d.k8s", "/", "/#/*/serviceB"];
        let found: Vec<_> = matching(&configs, "/#/io.l5d.fs/serviceB", |c| c).collect();
        assert_eq!(found, [&"/#/io.l5d.fs", &"/", &"/#/*/serviceB"]);
    }
}
