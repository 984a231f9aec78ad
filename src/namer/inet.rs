//! `/$/inet/HOST/PORT` and `/$/io.buoyant.rinet/PORT/HOST`: the delegation
//! is built into `naming::delegate`; the host names dtabs mention are found
//! here, to be resolved by `dns` (on the control thread / at start-up), never
//! while compiling a snapshot. Both forms name their host the same way
//! (`naming::inet`), so both resolve alike.

use std::net::IpAddr;

use naming::{NameTree, Path};

/// Finds `/$/inet/HOST[/...]` and `/$/io.buoyant.rinet/PORT/HOST[/...]`
/// leaves with a non-IP HOST (the port may come from the rest of the name,
/// as in `/svc => /$/inet/localhost`). A host that only a request supplies
/// (`/svc => /$/inet`, `/ph => /$/io.buoyant.rinet`) cannot be found here:
/// it is resolved when a request asks for it (`dns`, request-time names).
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
