//! `corelink delegate`: how a path delegates, each rewrite step then the
//! bound name tree, as linkerd's delegator shows it. It contacts no
//! Kubernetes API server: k8s names show as not yet listed, and a configMap
//! interpreter's dtab is left out (said on stderr; `/delegator.json` on a
//! running corelink uses it).

use std::path::PathBuf;

/// `corelink delegate [--config PATH] [--router LABEL] [--dtab DTAB] [--json] PATH`.
pub fn delegate(
    config: Option<PathBuf>,
    router: Option<String>,
    dtab: Option<String>,
    json: bool,
    path: &str,
) -> anyhow::Result<()> {
    use naming::{Delegator, Dtab, EmptyNamers, Path};
    let path = Path::parse(path).map_err(|e| anyhow::anyhow!("path {path:?}: {e}"))?;
    let extra = dtab.as_deref().map(Dtab::parse).transpose().map_err(|e| anyhow::anyhow!("--dtab: {e}"))?;
    let delegation = match config {
        Some(config_path) => {
            let config = super::load(&config_path)?;
            let snapshot = crate::server::control::compile(&config, 0).map_err(anyhow::Error::msg)?;
            let index = match &router {
                Some(label) => {
                    snapshot.router_index(label).ok_or_else(|| anyhow::anyhow!("no router labelled {label:?}"))?
                }
                None => 0,
            };
            if let Some((router, c)) =
                config.routers.get(index).and_then(|r| Some((r, r.interpreter.config_map.as_ref()?)))
            {
                eprintln!(
                    "note: router {}'s interpreter io.l5d.k8s.configMap puts the dtab of {} in front of the router's; `corelink delegate` does not contact the API server, so only the router's own dtab is used here (a running corelink's /delegator.json uses both)",
                    router.label(),
                    c.describe()
                );
            }
            snapshot.delegate(index, &path, extra.as_ref())
        }
        None => {
            let dtab = extra.ok_or_else(|| anyhow::anyhow!("give --config, --dtab or both"))?;
            Delegator::new(&dtab, &EmptyNamers).delegate(&path)
        }
    };
    if json {
        println!("{}", delegation.to_json());
    } else {
        print!("{}", delegation.render_text());
    }
    Ok(())
}
