//! Namers: where bound names get their addresses. All discovery I/O
//! (reading namer directories, DNS) happens here, called from the control
//! thread and start-up; the routing snapshot receives the results
//! ([`NamerInputs`]).
//!
//! - `fs`: linkerd's `io.l5d.fs` (a directory of service files).
//! - `k8s`: linkerd's `io.l5d.k8s` (Services and EndpointSlices watched on a
//!   Kubernetes API server, by tasks the control thread runs).
//! - `inet`: `/$/inet/HOST/PORT` host names the config mentions (the
//!   delegation itself is built into `naming::delegate`).
//! - `dns`: the resolver (hickory-resolver, on the control thread's runtime)
//!   and the refresh of the config's host names by TTL.
//! - `watch`: change detection for watched paths (fs namers, the config file,
//!   certificates), by polling content fingerprints.

pub mod dns;
pub mod dnssrv;
pub mod fs;
pub mod inet;
pub mod k8s;
pub mod watch;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use naming::Dtab;

use config::{Config, NamerConfig};

pub use fs::{FsState, WeightedAddr};
pub use k8s::transform::LocalNodeEnv;
pub use k8s::{ClusterView, ConfigMapDtabs, K8sViews};

/// One configured namer's state.
#[derive(Clone, Debug)]
pub enum NamerState {
    Fs(FsState),
    /// What the watches of the namer's API server knew.
    K8s(Arc<ClusterView>),
    /// `io.l5d.dnssrv`: the records resolved so far.
    DnsSrv(Arc<dnssrv::SrvView>),
}

/// Two k8s states are the same when they are the same view (views are
/// taken whole, and only when something changed).
impl PartialEq for NamerState {
    fn eq(&self, other: &NamerState) -> bool {
        match (self, other) {
            (NamerState::Fs(a), NamerState::Fs(b)) => a == b,
            (NamerState::K8s(a), NamerState::K8s(b)) => Arc::ptr_eq(a, b),
            (NamerState::DnsSrv(a), NamerState::DnsSrv(b)) => a == b,
            _ => false,
        }
    }
}

/// What the namers and DNS said when the snapshot was built.
#[derive(Clone, Default)]
pub struct NamerInputs {
    /// One per configured namer, in config order.
    pub namers: Vec<NamerState>,
    /// Host names seen in dtabs, namer files and ConfigMap dtabs, resolved.
    pub dns: HashMap<String, Vec<IpAddr>>,
    /// The host names of dtabs and namer files (`dns` also has the
    /// ConfigMap dtabs').
    config_names: Vec<String>,
    /// The configMap interpreters' dtabs, as their watches last read them
    /// (an interpreter missing here has not been read yet).
    pub config_maps: ConfigMapDtabs,
    /// What every watched API server knew (the namers' views above, and the
    /// `io.l5d.k8s.daemonset` transformers').
    pub k8s: K8sViews,
    /// `POD_IP` and `NODE_NAME`, for `io.l5d.k8s.localnode`.
    pub local_node: LocalNodeEnv,
    /// The `io.l5d.dnssrv` namers' records, by prefix.
    dnssrv: std::collections::BTreeMap<String, Arc<dnssrv::SrvView>>,
}

impl NamerInputs {
    /// Reads every namer directory, takes the k8s namers' state from `k8s`
    /// (what the control thread's watches know; a namer whose API server is
    /// not in it is not yet known), keeps `previous`'s ConfigMap dtabs (see
    /// [`NamerInputs::set_config_maps`]), reads the environment variables of
    /// `io.l5d.k8s.localnode` and has `dns` resolve every host name the
    /// config, the namers and those dtabs mention. Blocking: call it off the
    /// data path.
    pub fn load(
        config: &Config,
        previous: Option<&NamerInputs>,
        k8s: &K8sViews,
        dns: &mut dyn dns::HostResolver,
    ) -> NamerInputs {
        let mut inputs = NamerInputs { k8s: k8s.clone(), local_node: LocalNodeEnv::from_env(), ..Default::default() };
        if let Some(previous) = previous {
            inputs.config_maps = previous.config_maps.clone();
            inputs.dnssrv = previous.dnssrv.clone();
        }
        for namer in &config.namers {
            let state = match namer {
                NamerConfig::Fs { root_dir, .. } => {
                    let state = fs::read_dir(&PathBuf::from(root_dir)).unwrap_or_else(|e| {
                        tracing::warn!(namer = namer.prefix(), root_dir, error = %e, "cannot read namer directory");
                        FsState::default()
                    });
                    for problem in &state.problems {
                        tracing::warn!(namer = namer.prefix(), %problem, "skipped a namer line");
                    }
                    NamerState::Fs(state)
                }
                NamerConfig::K8s(k) => NamerState::K8s(k8s.get(&k.api).cloned().unwrap_or_default()),
                NamerConfig::DnsSrv(d) => {
                    NamerState::DnsSrv(previous.and_then(|p| p.dnssrv.get(&d.prefix)).cloned().unwrap_or_default())
                }
            };
            inputs.namers.push(state);
        }
        let mut names = Vec::new();
        for router in &config.routers {
            if let Ok(dtab) = Dtab::parse(&router.dtab) {
                for dentry in dtab.dentries() {
                    inet::collect_inet_hosts(&dentry.dst, &mut names);
                }
            }
        }
        for state in inputs.fs() {
            for addrs in state.services.values() {
                names.extend(addrs.iter().filter(|a| a.host.parse::<IpAddr>().is_err()).map(|a| a.host.clone()));
            }
        }
        names.sort();
        names.dedup();
        inputs.config_names = names;
        inputs.dns = dns.resolve(&inputs.host_names());
        inputs
    }

    /// Every host name these inputs mention: the config's and the ConfigMap
    /// dtabs'.
    pub fn host_names(&self) -> Vec<String> {
        let mut names = self.config_names.clone();
        names.extend(config_map_hosts(&self.config_maps));
        names.sort();
        names.dedup();
        names
    }

    /// Takes the configMap interpreters' dtabs (from the control thread's
    /// watches), having `dns` resolve the host names they mention (those
    /// not resolved yet are resolved now). Blocking: call it off the data
    /// path.
    pub fn set_config_maps(&mut self, config_maps: ConfigMapDtabs, dns: &mut dyn dns::HostResolver) {
        self.config_maps = config_maps;
        self.dns = dns.resolve(&self.host_names());
    }

    /// The fs namers' states, in config order.
    pub fn fs(&self) -> impl Iterator<Item = &FsState> {
        self.namers.iter().filter_map(|n| match n {
            NamerState::Fs(s) => Some(s),
            NamerState::K8s(_) | NamerState::DnsSrv(_) => None,
        })
    }

    /// Takes the `io.l5d.dnssrv` namers' records (by prefix) from the
    /// control thread's watches.
    pub fn set_dnssrv(&mut self, config: &Config, views: std::collections::BTreeMap<String, Arc<dnssrv::SrvView>>) {
        for (namer, state) in config.namers.iter().zip(&mut self.namers) {
            if let NamerConfig::DnsSrv(d) = namer {
                *state = NamerState::DnsSrv(views.get(&d.prefix).cloned().unwrap_or_default());
            }
        }
        self.dnssrv = views;
    }

    /// Takes the k8s namers' state from `k8s` again, leaving the rest.
    pub fn set_k8s(&mut self, config: &Config, k8s: &K8sViews) {
        self.k8s = k8s.clone();
        for (namer, state) in config.namers.iter().zip(&mut self.namers) {
            if let NamerConfig::K8s(k) = namer {
                *state = NamerState::K8s(k8s.get(&k.api).cloned().unwrap_or_default());
            }
        }
    }

    /// Whether the fs namers' files or DNS answers differ.
    pub fn files_or_dns_differ(&self, other: &NamerInputs) -> bool {
        !self.fs().eq(other.fs()) || self.dns != other.dns
    }
}

/// The `/$/inet` host names the configMap interpreters' dtabs mention.
fn config_map_hosts(config_maps: &ConfigMapDtabs) -> Vec<String> {
    let mut names = Vec::new();
    for d in config_maps.values() {
        for dentry in d.dtab.dentries() {
            inet::collect_inet_hosts(&dentry.dst, &mut names);
        }
    }
    names
}
