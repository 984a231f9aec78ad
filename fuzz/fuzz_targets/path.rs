//! `Path::parse` and `NameTree::<Path>::parse` on arbitrary UTF-8. Must never
//! panic; what parses must round-trip through `show()` (parse → show → parse
//! gives an equal value and the same text). Also checks the O(1) path
//! operations against their definitions, and that `simplify` is idempotent
//! and `pick`/`eval` do not panic on parsed trees.
//!
//! Every parsed path is also given, as arguments, to the built-in `/$/`
//! namers linkerd ships (`check_builtin_namers`): no panic, rewrites are
//! valid paths that keep the prefix segment and the unconsumed rest, and each
//! namer's result can be taken apart back into its input.
#![no_main]

use corelink_naming::inet::{inet_address, rinet_bind, InetAddress};
use corelink_naming::{global_lookup, BoundName, Name, NameTree, Path, RewriteError, Rewriter};
use libfuzzer_sys::fuzz_target;

fn seg(p: &Path, i: usize) -> &[u8] {
    p.segment(i).unwrap_or_default()
}

/// `args` given to every rewriting namer and to rinet.
fn check_builtin_namers(s: &str, args: &Path) {
    let results: Vec<Result<Option<Path>, RewriteError>> = Rewriter::ALL.iter().map(|r| r.rewrite(args)).collect();
    for (r, res) in Rewriter::ALL.iter().zip(&results) {
        // The same answer through finagle's global namer, under /$/<kind>.
        let full = Path::from_segments([&b"$"[..], r.kind().as_bytes()]).unwrap().concat(args);
        let global = global_lookup(&full);
        match (res, &global) {
            (Ok(None), Ok(NameTree::Neg)) => {}
            (Ok(Some(q)), Ok(NameTree::Leaf(Name::Path { namer, path }))) => {
                assert_eq!((*namer, path), (r.kind(), q), "{s:?}");
            }
            (Err(e), Err(g)) => assert_eq!(&e.to_string(), &g.to_string(), "{s:?}"),
            _ => panic!("{}: rewrite {res:?} but global lookup {global:?}\ninput: {s:?}", r.kind()),
        }
        let Ok(Some(q)) = res else { continue };
        // A valid path: non-empty segments, round-trips through show().
        assert!(q.segments().all(|x| !x.is_empty()), "{s:?}");
        assert_eq!(Path::parse(&q.show()).as_ref(), Ok(q), "{s:?}");
        // The prefix segment comes first, the unconsumed rest last.
        let (pfx, used) = match r {
            Rewriter::SubdomainOfPfx => (seg(args, 1), 3),
            _ => (seg(args, 0), 2),
        };
        assert_eq!(q.segment(0), Some(pfx), "{}: {s:?}", r.kind());
        let rest = args.drop(used);
        assert!(q.len() > rest.len() && q.drop(q.len() - rest.len()) == rest, "{}: {s:?}", r.kind());
        let head_path = q.take(q.len() - rest.len());
        let head: Vec<&[u8]> = head_path.segments().skip(1).collect();
        match r {
            // host ":" port (plus the trailing colons split drops) is the
            // argument; the port is a DNS label, the host has no ':'.
            Rewriter::PortHostPfx | Rewriter::HostPortPfx => {
                let [a, b] = head.as_slice() else { panic!("{}: {head:?} {s:?}", r.kind()) };
                let (host, port) = if *r == Rewriter::PortHostPfx { (b, a) } else { (a, b) };
                let hp = seg(args, 1);
                let joined = [*host, b":", *port].concat();
                assert!(hp.starts_with(&joined) && hp[joined.len()..].iter().all(|&c| c == b':'), "{s:?}");
                assert!(!host.contains(&b':') && port.len() <= 63, "{s:?}");
                assert!(port.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-'), "{s:?}");
            }
            // The labels, reversed and joined by '.', are the host without
            // its trailing dots.
            Rewriter::DomainToPathPfx => {
                let host = seg(args, 1);
                let mut trimmed = host;
                while let [rest @ .., b'.'] = trimmed {
                    trimmed = rest;
                }
                let labels: Vec<&[u8]> = head.iter().rev().copied().collect();
                assert_eq!(labels.join(&b'.'), trimmed, "{s:?}");
                assert!(labels.iter().all(|l| !l.contains(&b'.')), "{s:?}");
            }
            // sub "." domain is the host without its port.
            Rewriter::SubdomainOfPfx => {
                let [sub] = head.as_slice() else { panic!("subdomainOfPfx: {head:?} {s:?}") };
                let host = seg(args, 2);
                let expect = [*sub, b".", seg(args, 0)].concat();
                assert!(host.starts_with(&expect), "{s:?}");
                assert!(host.len() == expect.len() || host[expect.len()] == b':', "{s:?}");
            }
        }
    }
    // porthostPfx and hostportPfx agree on what matches; their results are
    // each other's with the two segments after the prefix swapped.
    match (&results[0], &results[1]) {
        (Ok(Some(a)), Ok(Some(b))) => {
            let swapped = Path::from_segments(
                [seg(a, 0), seg(a, 2), seg(a, 1)].into_iter().chain(a.drop(3).segments().collect::<Vec<_>>()),
            )
            .unwrap();
            assert_eq!(&swapped, b, "{s:?}");
        }
        (Ok(None), Ok(None)) | (Err(_), Err(_)) => {}
        (a, b) => panic!("porthostPfx {a:?} but hostportPfx {b:?}: {s:?}"),
    }
    // rinet: any two segments bind, and the id reads back as the address
    // /$/inet/<host>/<port> names.
    match rinet_bind(args) {
        None => assert!(args.len() < 2, "{s:?}"),
        Some((id, residual)) => {
            assert_eq!(residual, args.drop(2), "{s:?}");
            let want = InetAddress { host: seg(args, 1), port: seg(args, 0) };
            assert_eq!(inet_address(&id), Some(want), "{s:?}");
            let inet = Path::from_segments([&b"$"[..], b"inet", want.host, want.port]).unwrap();
            assert_eq!(inet_address(&inet), Some(want), "{s:?}");
            let full = Path::from_segments([&b"$"[..], b"io.buoyant.rinet"]).unwrap().concat(args);
            let bound = NameTree::Leaf(Name::Bound(BoundName::new(id, residual)));
            assert_eq!(global_lookup(&full), Ok(bound), "{s:?}");
        }
    }
}

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
        check_builtin_namers(s, &p);
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
