//! `io.l5d.fs`: one file per service in `rootDir`; each line `HOST PORT`,
//! optionally followed by `* WEIGHT` (linkerd 1.x's format). Blank lines and
//! lines starting with `#` are skipped. The directory is re-read by the
//! watcher (`watch.rs`) and each change produces a new routing snapshot.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One address line of a service file. The host may be a name; it is
/// resolved off the data path.
#[derive(Debug, Clone, PartialEq)]
pub struct WeightedAddr {
    pub host: String,
    pub port: u16,
    pub weight: f64,
}

/// The parsed contents of an fs namer's directory.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FsState {
    pub services: BTreeMap<String, Vec<WeightedAddr>>,
    /// Lines that could not be parsed, as `file:line: reason` (logged).
    pub problems: Vec<String>,
}

/// Parses one service file. Bad lines are reported and skipped, as linkerd
/// skips them, so one typo does not take a whole service down.
pub fn parse_service_file(name: &str, text: &str, problems: &mut Vec<String>) -> Vec<WeightedAddr> {
    let mut addrs = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let parsed = match fields.as_slice() {
            [host, port] => port.parse::<u16>().ok().map(|p| (host, p, 1.0)),
            [host, port, "*", weight] => match (port.parse::<u16>(), weight.parse::<f64>()) {
                (Ok(p), Ok(w)) if w.is_finite() && w >= 0.0 => Some((host, p, w)),
                _ => None,
            },
            _ => None,
        };
        match parsed {
            Some((host, port, weight)) => addrs.push(WeightedAddr { host: host.to_string(), port, weight }),
            None => {
                problems.push(format!("{name}:{}: expected `HOST PORT` or `HOST PORT * WEIGHT`, got {line:?}", i + 1))
            }
        }
    }
    addrs
}

/// Reads every regular file in `dir` (following symlinks, so Kubernetes'
/// `..data` symlink swaps are seen as the new contents). Hidden entries
/// (`..data`, `..2024_…`) are skipped as Kubernetes' own bookkeeping.
pub fn read_dir(dir: &Path) -> std::io::Result<FsState> {
    let mut state = FsState::default();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for path in entries {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
        if name.starts_with('.') || !path.is_file() {
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let addrs = parse_service_file(name, &text, &mut state.problems);
                state.services.insert(name.to_string(), addrs);
            }
            Err(e) => state.problems.push(format!("{name}: {e}")),
        }
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_linkerd_lines() {
        let mut problems = Vec::new();
        let addrs =
            parse_service_file("svc", "127.0.0.1 8080\n\n# c\nlocalhost 9090 * 0.25\nbad line here\n", &mut problems);
        assert_eq!(
            addrs,
            vec![
                WeightedAddr { host: "127.0.0.1".into(), port: 8080, weight: 1.0 },
                WeightedAddr { host: "localhost".into(), port: 9090, weight: 0.25 },
            ]
        );
        assert_eq!(problems.len(), 1);
        assert!(problems[0].starts_with("svc:5:"), "{problems:?}");
    }

    #[test]
    fn reads_a_directory_through_symlinks() {
        let dir = std::env::temp_dir().join(format!("corelink-fs-{}", std::process::id()));
        let data = dir.join("..data_1");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("serviceB"), "127.0.0.1 7000\n").unwrap();
        let _ = std::fs::remove_file(dir.join("serviceB"));
        std::os::unix::fs::symlink(data.join("serviceB"), dir.join("serviceB")).unwrap();
        let state = read_dir(&dir).unwrap();
        assert_eq!(state.services.keys().collect::<Vec<_>>(), vec!["serviceB"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
