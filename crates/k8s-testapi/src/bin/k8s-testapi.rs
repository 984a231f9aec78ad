//! `k8s-testapi`: the test API server as a process, for load measurements.
//!
//! ```text
//! k8s-testapi [--addr 127.0.0.1:0] [--services 1000] [--endpoints 10000]
//!             [--namespace loadtest] [--churn-ms K] [--duration-s S] [--history 1000]
//! k8s-testapi --dump DIR
//! ```
//!
//! Serves N Services with M endpoints in total (slices of at most 100) and,
//! with `--churn-ms`, flips one endpoint's readiness every K ms. The first
//! line on stdout is the base URL (`http://127.0.0.1:PORT`). It runs until
//! killed, or for `--duration-s` seconds. It keeps the latest `--history`
//! changes (default 1,000, to keep its own memory flat under churn) for
//! watches to resume from.
//!
//! `--dump DIR` writes objects made by the builders (and one Service and
//! slice of the load cluster) as JSON files, for `validate-fixtures.sh`.

use k8s_testapi::load::{LoadCluster, LoadShape};
use k8s_testapi::objects::{self, Endpoint, ServicePort, TargetPort};
use k8s_testapi::ApiServer;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Changes kept for resuming watches (the library's default is 10,000).
const DEFAULT_HISTORY: usize = 1_000;

const USAGE: &str = "usage: k8s-testapi [--addr 127.0.0.1:0] [--services N] [--endpoints M] [--namespace NS] \
                     [--churn-ms K] [--duration-s S] [--history CHANGES] | --dump DIR";

#[derive(Debug)]
struct Options {
    addr: SocketAddr,
    shape: LoadShape,
    churn_every: Option<Duration>,
    duration: Option<Duration>,
    history: Option<usize>,
    dump: Option<String>,
}

fn parse_options(args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        shape: LoadShape::default(),
        churn_every: None,
        duration: None,
        history: None,
        dump: None,
    };
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        let number = |text: &String| text.parse::<u64>().map_err(|_| format!("{flag}: not a number: {text}"));
        match flag.as_str() {
            "--addr" => options.addr = value()?.parse().map_err(|_| "--addr: not an address".to_string())?,
            "--services" => options.shape.services = number(value()?)? as usize,
            "--endpoints" => options.shape.endpoints = number(value()?)? as usize,
            "--namespace" => options.shape.namespace = value()?.clone(),
            "--churn-ms" => options.churn_every = Some(Duration::from_millis(number(value()?)?.max(1))),
            "--duration-s" => options.duration = Some(Duration::from_secs(number(value()?)?)),
            "--history" => options.history = Some(number(value()?)? as usize),
            "--dump" => options.dump = Some(value()?.clone()),
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    Ok(options)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match parse_options(&args) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let result = match &options.dump {
        Some(directory) => dump(Path::new(directory)),
        None => serve(&options),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("k8s-testapi: {message}");
            ExitCode::FAILURE
        }
    }
}

fn serve(options: &Options) -> Result<(), String> {
    let server =
        ApiServer::start_on(options.addr).map_err(|error| format!("cannot listen on {}: {error}", options.addr))?;
    server.set_history_limit(options.history.unwrap_or(DEFAULT_HISTORY));
    let started = Instant::now();
    let mut cluster = LoadCluster::generate(&options.shape);
    cluster.apply_all(&server);
    println!("http://{}", server.addr());
    let _ = std::io::stdout().flush();
    eprintln!(
        "k8s-testapi: {} services, {} endpoints in {} slices in namespace {:?}, resourceVersion {} (built in {:?})",
        cluster.service_count(),
        cluster.endpoint_count(),
        cluster.slice_count(),
        options.shape.namespace,
        server.resource_version(),
        started.elapsed()
    );
    let serving_since = Instant::now();
    let mut next_churn = options.churn_every.map(|every| Instant::now() + every);
    loop {
        if options.duration.is_some_and(|duration| serving_since.elapsed() >= duration) {
            return Ok(());
        }
        match (next_churn, options.churn_every) {
            (Some(due), Some(every)) => {
                let now = Instant::now();
                if now < due {
                    std::thread::sleep(due - now);
                }
                cluster.churn_one(&server);
                // Keep the cadence; if applying fell behind, do not burst to catch up.
                next_churn = Some((due + every).max(Instant::now()));
            }
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

fn dump(directory: &Path) -> Result<(), String> {
    std::fs::create_dir_all(directory).map_err(|error| format!("cannot create {}: {error}", directory.display()))?;
    let mut files: Vec<(&str, serde_json::Value)> = vec![
        (
            "built-service.json",
            objects::service(
                "prod",
                "web",
                &[
                    ServicePort { name: Some("http"), port: 80, target_port: TargetPort::Name("http") },
                    ServicePort { name: Some("admin"), port: 9990, target_port: TargetPort::Number(9990) },
                ],
            ),
        ),
        (
            "built-service-single-port.json",
            objects::service(
                "prod",
                "cache",
                &[ServicePort { name: None, port: 6379, target_port: TargetPort::Number(6379) }],
            ),
        ),
        (
            "built-endpointslice-ipv4.json",
            objects::endpoint_slice(
                "prod",
                "web-x7k2p",
                "web",
                &[(Some("http"), 8080), (Some("admin"), 9990)],
                &[
                    Endpoint::ready("10.244.1.12").on_node("node-a").in_zone("zone-a"),
                    Endpoint::not_ready("10.244.2.7").on_node("node-b").in_zone("zone-b"),
                    Endpoint::terminating("10.244.3.21").on_node("node-c"),
                ],
            ),
        ),
        (
            "built-endpointslice-ipv6.json",
            objects::endpoint_slice(
                "prod",
                "web-q9d4v",
                "web",
                &[(None, 8080)],
                &[Endpoint::ready("fd00:10:244:1::c")],
            ),
        ),
        (
            "built-endpointslice-empty.json",
            objects::endpoint_slice("prod", "web-empty", "web", &[(Some("http"), 8080)], &[]),
        ),
        (
            "built-configmap.json",
            objects::config_map("prod", "l5d-dtabs", &[("default", "/svc => /#/io.l5d.k8s/prod/http;")]),
        ),
    ];
    let cluster = LoadCluster::generate(&LoadShape { namespace: "loadtest".into(), services: 2, endpoints: 250 });
    if let Some(service) = cluster.service_objects().next() {
        files.push(("built-load-service.json", service));
    }
    if let Some(slice) = cluster.slice_objects().next() {
        files.push(("built-load-endpointslice.json", slice));
    }
    for (name, object) in files {
        let path = directory.join(name);
        let text = serde_json::to_string_pretty(&object).map_err(|error| format!("{name}: {error}"))?;
        std::fs::write(&path, text + "\n").map_err(|error| format!("cannot write {}: {error}", path.display()))?;
    }
    Ok(())
}
