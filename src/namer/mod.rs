//! Namers: where bound names get their addresses. All discovery I/O
//! (reading namer directories, DNS) happens here, called from the control
//! thread and start-up; the routing snapshot receives the results
//! ([`NamerInputs`]).
//!
//! - `fs`: linkerd's `io.l5d.fs` (a directory of service files).
//! - `inet`: `/$/inet/HOST/PORT` host names, resolved ahead (the delegation
//!   itself is built into `naming::delegate`).
//! - `watch`: change detection for watched paths (fs namers, the config file,
//!   certificates), by polling content fingerprints.

pub mod fs;
pub mod inet;
pub mod watch;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;

use naming::Dtab;

use config::{Config, NamerConfig};

pub use fs::{FsState, WeightedAddr};

/// What the namers and DNS said when the snapshot was built.
#[derive(Clone, Default)]
pub struct NamerInputs {
    /// One per configured namer, in config order.
    pub fs: Vec<FsState>,
    /// Host names seen in dtabs and namer files, resolved.
    pub dns: HashMap<String, Vec<IpAddr>>,
}

impl NamerInputs {
    /// Reads every namer directory and resolves every host name the config
    /// and the namers mention. Blocking: call it off the data path.
    pub fn load(config: &Config, previous: Option<&NamerInputs>) -> NamerInputs {
        let mut inputs = NamerInputs::default();
        for namer in &config.namers {
            let NamerConfig::Fs { root_dir, .. } = namer;
            let state = fs::read_dir(&PathBuf::from(root_dir)).unwrap_or_else(|e| {
                tracing::warn!(namer = namer.prefix(), root_dir, error = %e, "cannot read namer directory");
                FsState::default()
            });
            for problem in &state.problems {
                tracing::warn!(namer = namer.prefix(), %problem, "skipped a namer line");
            }
            inputs.fs.push(state);
        }
        let mut names = Vec::new();
        for router in &config.routers {
            if let Ok(dtab) = Dtab::parse(&router.dtab) {
                for dentry in dtab.dentries() {
                    inet::collect_inet_hosts(&dentry.dst, &mut names);
                }
            }
        }
        for state in &inputs.fs {
            for addrs in state.services.values() {
                names.extend(addrs.iter().filter(|a| a.host.parse::<IpAddr>().is_err()).map(|a| a.host.clone()));
            }
        }
        inputs.dns = inet::resolve(names, previous.map(|p| &p.dns));
        inputs
    }
}
