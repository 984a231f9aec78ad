//! perf/compare's Pingora contender: the smallest `ProxyHttp` that forwards
//! every request to one upstream, with Pingora's defaults (keep-alive on both
//! sides, the upstream connection pool), no logging, a given number of
//! service threads.
//!
//!     pingora-proxy-bench LISTEN UPSTREAM [--threads N] [--tls CERT KEY]
//!                         [--upstream-tls CA SNI]
//!
//! `--tls` terminates TLS on LISTEN; `--upstream-tls` speaks TLS to UPSTREAM,
//! verifying its certificate against CA for the name SNI.

use std::process::exit;

use async_trait::async_trait;
use pingora::prelude::*;
use pingora::server::configuration::ServerConf;

struct Forward {
    upstream: String,
    tls: bool,
    sni: String,
}

#[async_trait]
impl ProxyHttp for Forward {
    type CTX = ();

    fn new_ctx(&self) -> Self::CTX {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.upstream.as_str(), self.tls, self.sni.clone())))
    }
}

fn usage() -> ! {
    eprintln!("usage: pingora-proxy-bench LISTEN UPSTREAM [--threads N] [--tls CERT KEY] [--upstream-tls CA SNI]");
    exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        usage();
    }
    let (listen, upstream) = (args[0].clone(), args[1].clone());
    let mut threads = 1;
    let mut server_tls = None;
    let mut upstream_tls = None;
    let mut rest = args[2..].iter();
    while let Some(flag) = rest.next() {
        let mut value = || rest.next().cloned().unwrap_or_else(|| usage());
        match flag.as_str() {
            "--threads" => threads = value().parse().unwrap_or_else(|_| usage()),
            "--tls" => server_tls = Some((value(), value())),
            "--upstream-tls" => upstream_tls = Some((value(), value())),
            _ => usage(),
        }
    }

    let mut conf = ServerConf { threads, ..Default::default() };
    let (tls, sni) = match upstream_tls {
        Some((ca, sni)) => {
            conf.ca_file = Some(ca);
            (true, sni)
        }
        None => (false, String::new()),
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut service = http_proxy_service(&server.configuration, Forward { upstream, tls, sni });
    match server_tls {
        Some((cert, key)) => service.add_tls(&listen, &cert, &key).unwrap_or_else(|e| {
            eprintln!("pingora-proxy-bench: TLS on {listen}: {e}");
            exit(1)
        }),
        None => service.add_tcp(&listen),
    }
    server.add_service(service);
    server.run_forever();
}
