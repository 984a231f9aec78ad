//! Routing micro-benchmarks: dtab parsing and uncached delegation
//! (`Delegator::bind`). Run with `cargo bench --bench routing`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use naming::{BoundName, Delegator, Dtab, NameTree, Namers, Path};

/// The linker-to-linker scenario: everything through the fs namer, serviceB
/// pinned to a local address.
const SCENARIO: &str = "/svc => /#/io.l5d.fs; /svc/serviceB => /$/inet/127.0.0.1/8080";

/// A larger, linkerd-docs style dtab: namers, fall-back, weights, wildcard.
const LARGE: &str = "/srv => /#/io.l5d.fs ;\
 /host => /srv ;\
 /svc => /host ;\
 /host/world => /srv/world-v2 ;\
 /svc/serviceB => /$/inet/127.0.0.1/8080 ;\
 /svc/foo => 1 * /srv/foo-v1 & 9 * /srv/foo-v2 ;\
 /http/1.1/*/* => /svc ;\
 /svc/bar => /#/io.l5d.fs/bar | /$/inet/127.0.0.1/9990 ;";

/// `/#/io.l5d.fs/NAME[/rest]` binds to id `/#/io.l5d.fs/NAME`, residual
/// `/rest`, as linkerd's fs namer does for a file NAME in its rootDir.
struct FsNamers {
    prefix: Path,
}

impl Namers for FsNamers {
    fn bind(&self, path: &Path) -> Option<NameTree<BoundName>> {
        if !path.starts_with(&self.prefix) || path.len() <= self.prefix.len() {
            return None;
        }
        let n = self.prefix.len() + 1;
        Some(NameTree::Leaf(BoundName::new(path.take(n), path.drop(n))))
    }
}

fn quick<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group(name);
    g.warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    g
}

fn dtab_parse(c: &mut Criterion) {
    let mut g = quick(c, "dtab_parse");
    for (name, text) in [("scenario", SCENARIO), ("large_8_dentries", LARGE)] {
        g.throughput(Throughput::Bytes(text.len() as u64));
        g.bench_function(name, |b| b.iter(|| black_box(Dtab::parse(black_box(text)).expect("valid dtab"))));
    }
    g.finish();
}

fn bind(c: &mut Criterion) {
    let namers = FsNamers { prefix: Path::parse("/#/io.l5d.fs").expect("path") };
    let scenario = Dtab::parse(SCENARIO).expect("valid dtab");
    let large = Dtab::parse(LARGE).expect("valid dtab");
    let local = Dtab::parse("/svc/serviceB => /$/inet/127.0.0.1/9999").expect("valid dtab");

    let mut g = quick(c, "delegator_bind");
    let cases: [(&str, &Dtab, Option<&Dtab>, &str); 5] = [
        // Later dentry wins: /svc/serviceB → /$/inet/127.0.0.1/8080.
        ("scenario/svc_serviceB_inet", &scenario, None, "/svc/serviceB"),
        // Falls to /svc → /#/io.l5d.fs/serviceA, bound by the fs namer.
        ("scenario/svc_serviceA_fs", &scenario, None, "/svc/serviceA"),
        // Per-request l5d-dtab override on top of the base dtab.
        ("scenario+local/svc_serviceB", &scenario, Some(&local), "/svc/serviceB"),
        // /svc → /host → /srv → /#/io.l5d.fs/world (3 rewrites).
        ("large/svc_world_3_hops", &large, None, "/svc/world"),
        // Weighted union of two fs names.
        ("large/svc_foo_union", &large, None, "/svc/foo"),
    ];
    for (name, dtab, local, path) in cases {
        let path = Path::parse(path).expect("path");
        let delegator = match local {
            Some(l) => Delegator::new(dtab, &namers).with_local(l),
            None => Delegator::new(dtab, &namers),
        };
        let bound = delegator.bind(&path).expect("binds");
        assert!(matches!(bound, NameTree::Leaf(_) | NameTree::Union(_)), "{name}: {bound:?}");
        g.bench_function(name, |b| b.iter(|| black_box(delegator.bind(black_box(&path)).expect("binds"))));
    }
    // The data path builds the name from the Host header every time.
    let delegator = Delegator::new(&scenario, &namers);
    g.bench_function("scenario/host_to_path_and_bind", |b| {
        b.iter(|| {
            let path = Path::from_segments(["svc", black_box("serviceB")]).expect("path");
            black_box(delegator.bind(&path).expect("binds"))
        })
    });
    g.finish();
}

/// The whole per-request routing step as a worker runs it: the per-core
/// cache hit (identify from the parsed head, one hash lookup, a weighted pick)
/// against what a miss costs (build the name, delegate, resolve endpoints).
fn route(c: &mut Criterion) {
    use config::Config;
    use corelink::table::{ClientContext, RouteTable, SharedSnapshot};
    use http1::{parse_request, Limits, HEADER_SLOTS};
    use std::mem::MaybeUninit;

    let text = format!("routers:\n- protocol: http\n  dtab: |\n    {SCENARIO};\n  servers: [{{port: 1}}]\n");
    let config = Config::parse(&text, "bench.yaml").expect("config");
    let shared = SharedSnapshot::new(corelink::server::control::compile(&config, 1).expect("snapshot"));
    let routes = RouteTable::new(shared.clone());
    let request = b"GET / HTTP/1.1\r\nHost: serviceB\r\nUser-Agent: bench\r\n\r\n";
    let mut slots = [MaybeUninit::uninit(); HEADER_SLOTS];
    let head = parse_request(request, &mut slots, &Limits::default()).expect("parses").expect("complete");
    routes.route(0, &head, ClientContext::Honoured).expect("routes");

    let mut g = quick(c, "route");
    g.bench_function("cached (per-core cache hit)", |b| {
        b.iter(|| black_box(routes.route(0, black_box(&head), ClientContext::Honoured).expect("routes")))
    });
    let snapshot = shared.load_full();
    g.bench_function("uncached (name, delegate, endpoints)", |b| {
        b.iter(|| {
            let name = Path::from_segments(["svc", black_box("serviceB")]).expect("path");
            let bound = snapshot.bind(0, &name, None).expect("binds");
            let NameTree::Leaf(leaf) = &bound else { panic!("a leaf") };
            black_box(snapshot.endpoints(0, leaf, &corelink::table::NoRequestHosts))
        })
    });
    g.finish();
}

criterion_group!(benches, dtab_parse, bind, route);
criterion_main!(benches);
