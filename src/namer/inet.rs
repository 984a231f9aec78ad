//! `/$/inet/HOST/PORT`: the delegation is built into `naming::delegate`;
//! the host names dtabs mention are found here, to be resolved by `dns` (on
//! the control thread / at start-up), never while compiling a snapshot.

use std::net::IpAddr;

use naming::{NameTree, Path};

/// Finds `/$/inet/HOST[/...]` leaves with a non-IP HOST (the port may come
/// from the rest of the name, as in `/svc => /$/inet/localhost`).
/// A host that only a request supplies (`/svc => /$/inet`) cannot be found
/// here: such names answer 502 "not a resolved address".
pub fn collect_inet_hosts(tree: &NameTree<Path>, out: &mut Vec<String>) {
    match tree {
        NameTree::Leaf(p) => {
            if p.len() >= 3 && p.segment(0) == Some(b"$") && p.segment(1) == Some(b"inet") {
                if let Some(host) = p.segment_str(2) {
                    if host.parse::<IpAddr>().is_err() {
                        out.push(host.to_string());
                    }
                }
            }
        }
        NameTree::Alt(ts) => ts.iter().for_each(|t| collect_inet_hosts(t, out)),
        NameTree::Union(ws) => ws.iter().for_each(|w| collect_inet_hosts(&w.tree, out)),
        NameTree::Neg | NameTree::Fail | NameTree::Empty => {}
    }
}
