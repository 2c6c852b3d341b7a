//! Checks on the paths a sandbox spec names, before anything is mounted: clean absolute paths,
//! paths overlayfs options can carry, and mount points that do not pass through a symlink of the
//! template (before `pivot_root`, an absolute symlink would resolve on the host).

use std::os::unix::ffi::OsStrExt as _;
use std::path::{Component, Path, PathBuf};

/// A clean absolute path: no `.`/`..`, no empty or trailing components.
pub(crate) fn normalized_absolute(path: &str, what: &str) -> Result<PathBuf, String> {
    let parsed = Path::new(path);
    if !parsed.is_absolute() {
        return Err(format!("{what} `{path}` is not an absolute path"));
    }
    if parsed.components().any(|c| matches!(c, Component::ParentDir | Component::CurDir)) {
        return Err(format!("{what} `{path}` contains `.` or `..`"));
    }
    Ok(parsed.components().collect())
}

/// Paths that go into overlay's comma/colon-separated options.
pub(crate) fn overlay_safe(path: &Path, what: &str) -> Result<(), String> {
    let bytes = path.as_os_str().as_bytes();
    if bytes.iter().any(|b| matches!(b, b',' | b':' | b'\\')) {
        return Err(format!(
            "{what} `{}` contains `,`, `:` or `\\`, which overlayfs options cannot carry",
            path.display()
        ));
    }
    Ok(())
}

/// Where the merged view's `sandbox_path` comes from before anything is mounted: a host layer
/// (same path on the host) or the template rootfs.
fn backing(rootfs: &Path, layers: &[PathBuf], sandbox_path: &Path) -> PathBuf {
    if layers.iter().any(|layer| sandbox_path.starts_with(layer)) {
        return sandbox_path.to_owned();
    }
    rootfs.join(sandbox_path.strip_prefix("/").unwrap_or(sandbox_path))
}

/// Refuses a mount point or written file whose path passes through a symlink (see module docs).
/// Components that do not exist yet are fine: they will be created as directories.
pub(crate) fn check_no_symlinks(rootfs: &Path, layers: &[PathBuf], sandbox_path: &Path) -> Result<(), String> {
    let mut prefix = PathBuf::from("/");
    for component in sandbox_path.components().skip(1) {
        prefix.push(component);
        match std::fs::symlink_metadata(backing(rootfs, layers, &prefix)) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(format!(
                    "`{}` is a symlink in the template; cannot mount or write through it",
                    prefix.display()
                ));
            }
            Ok(_) => {}
            Err(_) => return Ok(()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalized_and_checked() {
        assert_eq!(normalized_absolute("/data//x/", "p").unwrap(), PathBuf::from("/data/x"));
        assert!(normalized_absolute("data", "p").is_err());
        assert!(normalized_absolute("/a/../etc", "p").is_err());
        assert!(overlay_safe(Path::new("/a,b"), "p").is_err());
        assert!(overlay_safe(Path::new("/a/b"), "p").is_ok());
    }

    #[test]
    fn symlinks_in_the_template_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let rootfs = dir.path();
        std::fs::create_dir(rootfs.join("etc")).unwrap();
        std::os::unix::fs::symlink("/etc", rootfs.join("data")).unwrap();
        assert!(check_no_symlinks(rootfs, &[], Path::new("/etc/hosts")).is_ok());
        assert!(check_no_symlinks(rootfs, &[], Path::new("/new/dir")).is_ok());
        assert!(check_no_symlinks(rootfs, &[], Path::new("/data/x")).is_err());
        assert!(check_no_symlinks(rootfs, &[], Path::new("/data")).is_err());
    }
}
