//! Templates: what a sandbox's root filesystem is made of.
//!
//! A template is a directory `<templates dir>/<name>/` holding `rootfs/` (any directory tree — it
//! becomes the read-only lower layer of every sandbox made from it, so creating a sandbox copies
//! nothing) and optionally `template.toml`:
//!
//! ```toml
//! description = "Python 3.12 with uv"
//! [env]
//! PYTHONUNBUFFERED = "1"
//! ```
//!
//! The built-in `base` template needs nothing installed: it is built on first use at
//! `<templates dir>/base/` as a skeleton rootfs (the usual top-level directories; `bin`, `sbin`,
//! `lib*` mirror the host — symlinks into `usr` on a merged-`/usr` host) with a curated `/etc`
//! (accounts `root`, `nobody` and `user` (uid 1000, home `/home/user`), hosts, resolv.conf,
//! nsswitch.conf, os-release, the dynamic loader's cache and config, CA certificates,
//! alternatives, shell profiles — never the host's shadow, SSH keys, machine-id or other secrets),
//! and shares the host's `/usr` (plus any of `/bin`, `/sbin`, `/lib*` that are real directories)
//! as read-only host layers under a per-sandbox copy-on-write layer.

use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The built-in template's name.
pub const BASE: &str = "base";
const MANIFEST: &str = "template.toml";

/// A template a sandbox can be created from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub name: String,
    /// The read-only lower layer of the sandbox's root.
    pub rootfs: PathBuf,
    /// Host directories shared read-only at the same path (copy-on-write inside).
    pub host_layers: Vec<PathBuf>,
    pub description: Option<String>,
    /// Environment defaults for every process in the sandbox (the request's env wins).
    pub env: BTreeMap<String, String>,
}

/// Why a template cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("unknown template `{name}`; available: {}", available.join(", "))]
    Unknown { name: String, available: Vec<String> },
    #[error("`{0}` is not a valid template name (letters, digits, `.`, `_`, `-`; not starting with `.`)")]
    InvalidName(String),
    #[error("template `{name}`: {path}: {message}")]
    Manifest { name: String, path: PathBuf, message: String },
    #[error("templates: {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
}

/// The templates directory.
#[derive(Debug, Clone)]
pub struct Templates {
    dir: PathBuf,
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> TemplateError + '_ {
    move |source| TemplateError::Io { path: path.to_owned(), source }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

impl Templates {
    /// Opens (creating if needed) the templates directory.
    pub fn open(dir: PathBuf) -> Result<Templates, TemplateError> {
        std::fs::DirBuilder::new().recursive(true).mode(0o755).create(&dir).map_err(io_at(&dir))?;
        Ok(Templates { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The template called `name`, building `base` on first use.
    pub fn get(&self, name: &str) -> Result<Template, TemplateError> {
        if !valid_name(name) {
            return Err(TemplateError::InvalidName(name.to_owned()));
        }
        if name == BASE {
            self.ensure_base()?;
        }
        let dir = self.dir.join(name);
        let rootfs = dir.join("rootfs");
        if !rootfs.is_dir() {
            return Err(TemplateError::Unknown { name: name.to_owned(), available: self.names()? });
        }
        let manifest_path = dir.join(MANIFEST);
        let manifest = match std::fs::read_to_string(&manifest_path) {
            Ok(text) => toml::from_str::<Manifest>(&text).map_err(|error| TemplateError::Manifest {
                name: name.to_owned(),
                path: manifest_path.clone(),
                message: error.to_string(),
            })?,
            Err(error) if error.kind() == io::ErrorKind::NotFound => Manifest::default(),
            Err(error) => return Err(io_at(&manifest_path)(error)),
        };
        let host_layers = if name == BASE { base_host_layers() } else { Vec::new() };
        Ok(Template {
            name: name.to_owned(),
            rootfs,
            host_layers,
            description: manifest.description,
            env: manifest.env,
        })
    }

    /// Every template (`base` always, built if needed).
    pub fn list(&self) -> Result<Vec<Template>, TemplateError> {
        self.ensure_base()?;
        self.names()?.iter().map(|name| self.get(name)).collect()
    }

    fn names(&self) -> Result<Vec<String>, TemplateError> {
        let mut names = vec![BASE.to_owned()];
        for entry in std::fs::read_dir(&self.dir).map_err(io_at(&self.dir))? {
            let entry = entry.map_err(io_at(&self.dir))?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else { continue };
            if name != BASE && valid_name(&name) && entry.path().join("rootfs").is_dir() {
                names.push(name);
            }
        }
        names[1..].sort();
        Ok(names)
    }

    /// Builds `base` in a temporary directory and renames it into place, so a half-built base is
    /// never used and two racing builders do not collide.
    fn ensure_base(&self) -> Result<(), TemplateError> {
        let target = self.dir.join(BASE);
        if target.join("rootfs").is_dir() {
            return Ok(());
        }
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        let temp = self.dir.join(format!(".base-{}-{nanos}", std::process::id()));
        let result = build_base(&temp).map_err(|(path, source)| TemplateError::Io { path, source });
        if let Err(error) = result {
            let _ = std::fs::remove_dir_all(&temp);
            return Err(error);
        }
        if let Err(error) = std::fs::rename(&temp, &target) {
            let _ = std::fs::remove_dir_all(&temp);
            if !target.join("rootfs").is_dir() {
                return Err(io_at(&target)(error));
            }
        }
        tracing::info!(dir = %target.display(), "built the base template");
        Ok(())
    }
}

/// `/usr`, plus each of `/bin`, `/sbin`, `/lib*` that is a real directory on this host.
pub fn base_host_layers() -> Vec<PathBuf> {
    let mut layers = vec![PathBuf::from("/usr")];
    for name in TOP_LEVEL_MIRRORED {
        let path = Path::new("/").join(name);
        if std::fs::symlink_metadata(&path).is_ok_and(|meta| meta.is_dir()) {
            layers.push(path);
        }
    }
    layers
}

const TOP_LEVEL_MIRRORED: [&str; 6] = ["bin", "sbin", "lib", "lib32", "lib64", "libx32"];

type BuildResult = Result<(), (PathBuf, io::Error)>;

fn at<T>(path: &Path, result: io::Result<T>) -> Result<T, (PathBuf, io::Error)> {
    result.map_err(|error| (path.to_owned(), error))
}

fn mkdir(path: &Path, mode: u32) -> BuildResult {
    at(path, std::fs::DirBuilder::new().recursive(true).create(path))?;
    at(path, std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)))
}

fn write(path: &Path, content: &str, mode: u32) -> BuildResult {
    at(path, std::fs::write(path, content))?;
    at(path, std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)))
}

/// Copies a host file (following symlinks) or, when `keep_links` and it is a symlink, recreates
/// the link. A missing source is skipped.
fn copy_host(source: &Path, target: &Path, keep_links: bool) -> BuildResult {
    let Ok(meta) = std::fs::symlink_metadata(source) else { return Ok(()) };
    if meta.file_type().is_symlink() && keep_links {
        let link = at(source, std::fs::read_link(source))?;
        return at(target, std::os::unix::fs::symlink(link, target));
    }
    if std::fs::metadata(source).is_ok_and(|meta| meta.is_file()) {
        at(target, std::fs::copy(source, target))?;
    }
    Ok(())
}

/// Copies the regular files and symlinks directly inside a host directory (no subdirectories,
/// nothing else).
fn copy_host_dir(source: &Path, target: &Path, mode: u32) -> BuildResult {
    let Ok(entries) = std::fs::read_dir(source) else { return Ok(()) };
    mkdir(target, mode)?;
    for entry in entries {
        let entry = at(source, entry)?;
        let kind = at(&entry.path(), entry.file_type())?;
        if kind.is_symlink() || kind.is_file() {
            copy_host(&entry.path(), &target.join(entry.file_name()), true)?;
        }
    }
    Ok(())
}

/// Nameservers the sandbox can reach: the host's, unless they are loopback addresses (a local
/// stub resolver the sandbox cannot see), then systemd-resolved's upstream list if present.
fn resolv_conf() -> String {
    let usable = |text: &str| {
        let servers: Vec<&str> = text
            .lines()
            .filter_map(|line| line.trim().strip_prefix("nameserver"))
            .map(str::trim)
            .filter(|server| !server.starts_with("127.") && *server != "::1")
            .collect();
        (!servers.is_empty()).then(|| servers.iter().map(|server| format!("nameserver {server}\n")).collect::<String>())
    };
    for path in ["/etc/resolv.conf", "/run/systemd/resolve/resolv.conf"] {
        if let Some(text) = std::fs::read_to_string(path).ok().as_deref().and_then(usable) {
            return text;
        }
    }
    String::new()
}

fn build_base(temp: &Path) -> BuildResult {
    mkdir(temp, 0o755)?;
    let root = temp.join("rootfs");
    mkdir(&root, 0o755)?;
    for (dir, mode) in [
        ("dev", 0o755),
        ("etc", 0o755),
        ("home", 0o755),
        ("media", 0o755),
        ("mnt", 0o755),
        ("opt", 0o755),
        ("proc", 0o555),
        ("root", 0o700),
        ("run", 0o755),
        ("srv", 0o755),
        ("sys", 0o555),
        ("tmp", 0o1777),
        ("usr", 0o755),
        ("var", 0o755),
        ("var/cache", 0o755),
        ("var/lib", 0o755),
        ("var/log", 0o755),
        ("var/tmp", 0o1777),
        ("home/user", 0o755),
    ] {
        mkdir(&root.join(dir), mode)?;
    }
    let home = root.join("home/user");
    at(&home, std::os::unix::fs::chown(&home, Some(1000), Some(1000))).or_else(|error| {
        // Without root the home stays root-owned; exec as `user` still works, writes there don't.
        tracing::warn!(error = ?error.1, "could not chown /home/user in the base template");
        Ok::<(), (PathBuf, io::Error)>(())
    })?;
    at(&root.join("var/run"), std::os::unix::fs::symlink("../run", root.join("var/run")))?;
    for name in TOP_LEVEL_MIRRORED {
        let host = Path::new("/").join(name);
        match std::fs::symlink_metadata(&host) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let link = at(&host, std::fs::read_link(&host))?;
                at(&root.join(name), std::os::unix::fs::symlink(link, root.join(name)))?;
            }
            Ok(meta) if meta.is_dir() => mkdir(&root.join(name), 0o755)?,
            _ => {}
        }
    }

    let etc = root.join("etc");
    write(
        &etc.join("passwd"),
        "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\nuser:x:1000:1000:user:/home/user:/bin/bash\n",
        0o644,
    )?;
    write(&etc.join("group"), "root:x:0:\ntty:x:5:\nusers:x:100:user\nnogroup:x:65534:\nuser:x:1000:\n", 0o644)?;
    write(&etc.join("hostname"), "sandbox\n", 0o644)?;
    write(&etc.join("hosts"), "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n", 0o644)?;
    write(&etc.join("resolv.conf"), &resolv_conf(), 0o644)?;
    write(
        &etc.join("nsswitch.conf"),
        "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nnetworks: files\nprotocols: files\nservices: files\nethers: files\nrpc: files\n",
        0o644,
    )?;
    at(&etc.join("mtab"), std::os::unix::fs::symlink("../proc/self/mounts", etc.join("mtab")))?;
    // Plain configuration a userland expects, copied (or re-linked) from the host. Nothing
    // secret: no shadow, gshadow, ssh, ssl/private, machine-id, sudoers, credentials.
    for name in [
        "os-release",
        "debian_version",
        "ld.so.cache",
        "ld.so.conf",
        "profile",
        "bash.bashrc",
        "shells",
        "localtime",
        "timezone",
        "protocols",
        "services",
        "inputrc",
        "host.conf",
        "gai.conf",
    ] {
        copy_host(&Path::new("/etc").join(name), &etc.join(name), true)?;
    }
    copy_host_dir(Path::new("/etc/ld.so.conf.d"), &etc.join("ld.so.conf.d"), 0o755)?;
    copy_host_dir(Path::new("/etc/profile.d"), &etc.join("profile.d"), 0o755)?;
    copy_host_dir(Path::new("/etc/alternatives"), &etc.join("alternatives"), 0o755)?;
    copy_host_dir(Path::new("/etc/skel"), &etc.join("skel"), 0o755)?;
    mkdir(&etc.join("ssl"), 0o755)?;
    copy_host_dir(Path::new("/etc/ssl/certs"), &etc.join("ssl/certs"), 0o755)?;
    copy_host(Path::new("/etc/ssl/openssl.cnf"), &etc.join("ssl/openssl.cnf"), false)?;
    write(
        &temp.join(MANIFEST),
        "description = \"The host's own userland (/usr) read-only, with a curated /etc\"\n\n[env]\n",
        0o644,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_is_built_once_with_a_curated_etc() {
        let dir = tempfile::tempdir().unwrap();
        let templates = Templates::open(dir.path().join("templates")).unwrap();
        let base = templates.get(BASE).unwrap();
        assert!(base.host_layers.contains(&PathBuf::from("/usr")));
        let etc = base.rootfs.join("etc");
        let passwd = std::fs::read_to_string(etc.join("passwd")).unwrap();
        assert!(passwd.contains("user:x:1000:1000:user:/home/user:/bin/bash"), "{passwd}");
        for secret in ["shadow", "gshadow", "machine-id", "ssh", "sudoers", "ssl/private"] {
            assert!(!etc.join(secret).exists(), "{secret} must not be in the base template");
        }
        assert!(base.rootfs.join("usr").is_dir());
        // Mirrors a merged-/usr host's top-level symlinks.
        for name in TOP_LEVEL_MIRRORED {
            let host = Path::new("/").join(name);
            if let Ok(link) = std::fs::read_link(&host) {
                assert_eq!(std::fs::read_link(base.rootfs.join(name)).unwrap(), link);
            }
        }
        // A second get reuses it.
        let again = templates.get(BASE).unwrap();
        assert_eq!(again, base);
        assert_eq!(base.description.as_deref(), Some("The host's own userland (/usr) read-only, with a curated /etc"));
    }

    #[test]
    fn directory_templates_with_manifests_and_unknown_names() {
        let dir = tempfile::tempdir().unwrap();
        let templates = Templates::open(dir.path().to_owned()).unwrap();
        std::fs::create_dir_all(dir.path().join("tiny/rootfs/etc")).unwrap();
        std::fs::write(dir.path().join("tiny/template.toml"), "description = \"tiny\"\n[env]\nFOO = \"bar\"\n")
            .unwrap();
        let tiny = templates.get("tiny").unwrap();
        assert_eq!(tiny.rootfs, dir.path().join("tiny/rootfs"));
        assert!(tiny.host_layers.is_empty());
        assert_eq!(tiny.env.get("FOO").map(String::as_str), Some("bar"));

        let error = templates.get("nope").unwrap_err();
        assert!(error.to_string().contains("unknown template `nope`"), "{error}");
        assert!(error.to_string().contains("tiny"), "{error}");
        assert!(matches!(templates.get("../etc"), Err(TemplateError::InvalidName(_))));

        let names: Vec<String> = templates.list().unwrap().into_iter().map(|t| t.name).collect();
        assert_eq!(names, ["base", "tiny"]);

        std::fs::create_dir_all(dir.path().join("bad/rootfs")).unwrap();
        std::fs::write(dir.path().join("bad/template.toml"), "unknown_key = 1\n").unwrap();
        assert!(matches!(templates.get("bad"), Err(TemplateError::Manifest { .. })));
    }
}
