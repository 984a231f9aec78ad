//! `/$/inet/HOST/PORT` and `/$/io.buoyant.rinet/PORT/HOST`: the delegation
//! is built into `naming::delegate`; host names seen in dtabs and namer files
//! are resolved here (blocking DNS, on the control thread / at start-up),
//! never while compiling a snapshot. Both forms name their host the same
//! way (`naming::inet`), so both resolve alike.

use std::collections::HashMap;
use std::net::{IpAddr, ToSocketAddrs};

use naming::{NameTree, Path};

/// Resolves each name once. A name that fails keeps what `previous` had for
/// it: a DNS hiccup must not take a working route away.
pub fn resolve(names: Vec<String>, previous: Option<&HashMap<String, Vec<IpAddr>>>) -> HashMap<String, Vec<IpAddr>> {
    let mut dns = HashMap::new();
    for name in names {
        if dns.contains_key(&name) {
            continue;
        }
        let ips: Vec<IpAddr> = match (name.as_str(), 0u16).to_socket_addrs() {
            Ok(addrs) => addrs.map(|a| a.ip()).collect(),
            Err(e) => {
                let kept = previous.and_then(|p| p.get(&name)).cloned().unwrap_or_default();
                tracing::warn!(host = %name, error = %e, kept = kept.len(), "DNS resolution failed");
                kept
            }
        };
        dns.insert(name, ips);
    }
    dns
}

/// Finds `/$/inet/HOST[/...]` and `/$/io.buoyant.rinet/PORT/HOST[/...]`
/// leaves with a non-IP HOST (the port may come from the rest of the name,
/// as in `/svc => /$/inet/localhost`).
/// A host that only a request supplies (`/svc => /$/inet`,
/// `/ph => /$/io.buoyant.rinet`) cannot be found here: such names answer
/// 502 "not a resolved address".
pub fn collect_inet_hosts(tree: &NameTree<Path>, out: &mut Vec<String>) {
    match tree {
        NameTree::Leaf(p) => {
            if let Some(host) = naming::inet::leaf_host(p).and_then(|h| std::str::from_utf8(h).ok()) {
                if host.parse::<IpAddr>().is_err() {
                    out.push(host.to_string());
                }
            }
        }
        NameTree::Alt(ts) => ts.iter().for_each(|t| collect_inet_hosts(t, out)),
        NameTree::Union(ws) => ws.iter().for_each(|w| collect_inet_hosts(&w.tree, out)),
        NameTree::Neg | NameTree::Fail | NameTree::Empty => {}
    }
}
