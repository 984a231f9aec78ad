//! Change detection for watched files and directories by polling a content
//! fingerprint. Polling (every 200 ms, on the control thread) rather than
//! inotify, because Kubernetes updates ConfigMap and Secret volumes by swapping
//! a `..data` symlink: inotify watches on the old targets see nothing, while
//! re-reading what the path resolves to now always sees the new contents. A
//! fingerprint of a few small files costs microseconds.

use std::hash::{Hash, Hasher};
use std::path::Path;

/// A fingerprint of a file's or a directory's visible contents (names and
/// bytes, following symlinks). `None` when the path cannot be read.
pub fn fingerprint(path: &Path) -> Option<u64> {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    if path.is_dir() {
        let mut names: Vec<_> = std::fs::read_dir(path).ok()?.filter_map(|e| e.ok().map(|e| e.path())).collect();
        names.sort();
        for p in names {
            let Some(name) = p.file_name().and_then(|n| n.to_str()) else { continue };
            if name.starts_with('.') || !p.is_file() {
                continue;
            }
            name.hash(&mut hasher);
            std::fs::read(&p).ok()?.hash(&mut hasher);
        }
    } else {
        std::fs::read(path).ok()?.hash(&mut hasher);
    }
    Some(hasher.finish())
}

/// Tracks one path; `changed()` says whether its contents differ from the
/// last time it was asked.
pub struct Watched {
    path: std::path::PathBuf,
    last: Option<u64>,
}

impl Watched {
    pub fn new(path: &Path) -> Watched {
        Watched { path: path.to_path_buf(), last: fingerprint(path) }
    }

    pub fn changed(&mut self) -> bool {
        let now = fingerprint(&self.path);
        if now != self.last {
            self.last = now;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_content_changes_and_symlink_swaps() {
        let dir = std::env::temp_dir().join(format!("corelink-watch-{}", std::process::id()));
        let (a, b) = (dir.join("a"), dir.join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        std::fs::write(a.join("svc"), "127.0.0.1 1\n").unwrap();
        std::fs::write(b.join("svc"), "127.0.0.1 2\n").unwrap();
        let link = dir.join("current");
        std::os::unix::fs::symlink(&a, &link).unwrap();
        let mut w = Watched::new(&link);
        assert!(!w.changed());
        // Swap the symlink atomically, as Kubernetes does.
        let tmp = dir.join("tmp-link");
        std::os::unix::fs::symlink(&b, &tmp).unwrap();
        std::fs::rename(&tmp, &link).unwrap();
        assert!(w.changed());
        assert!(!w.changed());
        std::fs::write(b.join("svc"), "127.0.0.1 3\n").unwrap();
        assert!(w.changed());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
