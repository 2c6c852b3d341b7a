//! Paths inside the sandbox: lexical normalisation of request paths ([`SandboxPath`]), opening them
//! confined to the sandbox root ([`SandboxRoot`], `openat2` with `RESOLVE_IN_ROOT`, so neither
//! `..` nor a symlink can lead outside), and mapping OS errors onto envd error codes.

use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use runtools_protocol::envd::{EnvdError, EnvdErrorCode};
use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use super::connection::envd_error;

/// An absolute, normalised path inside the sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SandboxPath {
    components: Vec<String>,
}

impl SandboxPath {
    /// Accepts absolute paths only; resolves `.` and `..` lexically and refuses any `..` that
    /// would climb above the root.
    pub(crate) fn parse(path: &str) -> Result<Self, EnvdError> {
        if !path.starts_with('/') {
            return Err(envd_error(EnvdErrorCode::PathOutsideSandbox, format!("`{path}` is not an absolute path")));
        }
        if path.contains('\0') {
            return Err(envd_error(EnvdErrorCode::InvalidRequest, "paths may not contain NUL bytes"));
        }
        let mut components: Vec<String> = Vec::new();
        for component in path.split('/') {
            match component {
                "" | "." => {}
                ".." => {
                    if components.pop().is_none() {
                        return Err(envd_error(
                            EnvdErrorCode::PathOutsideSandbox,
                            format!("`{path}` climbs above the sandbox root"),
                        ));
                    }
                }
                name => components.push(name.to_owned()),
            }
        }
        Ok(Self { components })
    }

    pub(crate) fn is_root(&self) -> bool {
        self.components.is_empty()
    }

    /// The last component (`/` for the root).
    pub(crate) fn name(&self) -> &str {
        self.components.last().map_or("/", String::as_str)
    }

    pub(crate) fn parent(&self) -> Self {
        let mut components = self.components.clone();
        components.pop();
        Self { components }
    }

    pub(crate) fn join(&self, name: &str) -> Self {
        let mut components = self.components.clone();
        components.push(name.to_owned());
        Self { components }
    }

    /// Every ancestor from the top down, then the path itself (not the root).
    pub(crate) fn prefixes(&self) -> impl Iterator<Item = Self> + '_ {
        (1..=self.components.len()).map(|len| Self { components: self.components[..len].to_vec() })
    }

    /// The path relative to the root (`.` for the root itself).
    fn relative(&self) -> String {
        if self.is_root() { ".".to_owned() } else { self.components.join("/") }
    }
}

impl std::fmt::Display for SandboxPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_root() {
            return f.write_str("/");
        }
        for component in &self.components {
            write!(f, "/{component}")?;
        }
        Ok(())
    }
}

/// The directory that file operations are confined to.
#[derive(Debug)]
pub(crate) struct SandboxRoot {
    fd: OwnedFd,
    path: PathBuf,
}

impl SandboxRoot {
    pub(crate) fn open(path: &Path) -> io::Result<Self> {
        let path = path.canonicalize()?;
        let fd = rustix::fs::open(&path, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
        Ok(Self { fd, path })
    }

    /// The root as a path in envd's own mount namespace.
    pub(crate) fn host_path(&self) -> &Path {
        &self.path
    }

    /// Opens `path`, resolving every component (symlinks included) as if the root were `/`.
    pub(crate) fn open_at(&self, path: &SandboxPath, flags: OFlags, mode: Mode) -> Result<OwnedFd, EnvdError> {
        self.open_relative(Path::new(&path.relative()), flags, mode, path)
    }

    /// Opens `real`, a path in envd's own namespace below [`Self::host_path`] (as a directory walk
    /// yields them), with the same confinement as [`Self::open_at`]: should a component have been
    /// swapped for a symlink meanwhile, it still resolves inside the root. Works for names that
    /// are not UTF-8.
    pub(crate) fn open_host_path(&self, real: &Path, flags: OFlags) -> Result<OwnedFd, EnvdError> {
        let display = real.display();
        let Ok(relative) = real.strip_prefix(&self.path) else {
            return Err(envd_error(EnvdErrorCode::PathOutsideSandbox, format!("`{display}` is outside the sandbox")));
        };
        let relative = if relative.as_os_str().is_empty() { Path::new(".") } else { relative };
        self.open_relative(relative, flags, Mode::empty(), display)
    }

    fn open_relative(
        &self,
        relative: &Path,
        flags: OFlags,
        mode: Mode,
        path: impl std::fmt::Display,
    ) -> Result<OwnedFd, EnvdError> {
        let resolve = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
        let mut attempts = 0;
        loop {
            match rustix::fs::openat2(&self.fd, relative, flags | OFlags::CLOEXEC, mode, resolve) {
                // The kernel asks for a retry when a rename raced the lookup.
                Err(Errno::AGAIN) if attempts < 8 => attempts += 1,
                Err(Errno::XDEV) => {
                    return Err(envd_error(
                        EnvdErrorCode::PathOutsideSandbox,
                        format!("`{path}` leads outside the sandbox"),
                    ));
                }
                Err(Errno::NOSYS) => {
                    return Err(envd_error(EnvdErrorCode::Io, "this kernel lacks openat2 (Linux 5.6+ is required)"));
                }
                result => return result.map_err(|error| os_error(error, path)),
            }
        }
    }

    /// The directory containing `path` (opened as `O_PATH`) and `path`'s last component. The root
    /// has no parent.
    pub(crate) fn open_parent(&self, path: &SandboxPath) -> Result<(OwnedFd, String), EnvdError> {
        if path.is_root() {
            return Err(envd_error(EnvdErrorCode::InvalidRequest, "this operation is not possible on `/`"));
        }
        let parent = self.open_at(&path.parent(), OFlags::PATH | OFlags::DIRECTORY, Mode::empty())?;
        Ok((parent, path.name().to_owned()))
    }
}

/// Maps an OS error on `path` onto an envd error code.
pub(crate) fn os_error(error: impl Into<io::Error>, path: impl std::fmt::Display) -> EnvdError {
    let error: io::Error = error.into();
    let code = match error.raw_os_error().map(Errno::from_raw_os_error) {
        Some(Errno::NOENT) => EnvdErrorCode::NotFound,
        Some(Errno::EXIST) => EnvdErrorCode::AlreadyExists,
        Some(Errno::ACCESS | Errno::PERM | Errno::ROFS) => EnvdErrorCode::PermissionDenied,
        Some(Errno::NOTDIR) => EnvdErrorCode::NotADirectory,
        Some(Errno::ISDIR) => EnvdErrorCode::IsADirectory,
        Some(Errno::NOTEMPTY) => EnvdErrorCode::DirectoryNotEmpty,
        Some(Errno::NOSPC | Errno::DQUOT) => EnvdErrorCode::NoSpace,
        _ => EnvdErrorCode::Io,
    };
    let description = match error.raw_os_error() {
        Some(_) => {
            let text = error.to_string();
            text.split(" (os error").next().unwrap_or_default().to_owned()
        }
        None => error.to_string(),
    };
    envd_error(code, format!("{path}: {description}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn normalises_lexically_and_refuses_escapes() {
        assert_eq!(SandboxPath::parse("/a/./b//c/../d/").unwrap().to_string(), "/a/b/d");
        assert_eq!(SandboxPath::parse("/").unwrap().to_string(), "/");
        assert_eq!(SandboxPath::parse("/a/..").unwrap().to_string(), "/");
        for bad in ["/../etc/passwd", "/a/../../b", "relative", "", "./x"] {
            assert_eq!(SandboxPath::parse(bad).unwrap_err().code, EnvdErrorCode::PathOutsideSandbox, "{bad}");
        }
        let path = SandboxPath::parse("/x/y/z").unwrap();
        let prefixes: Vec<String> = path.prefixes().map(|p| p.to_string()).collect();
        assert_eq!(prefixes, ["/x", "/x/y", "/x/y/z"]);
        assert_eq!(path.name(), "z");
        assert_eq!(path.parent().join("w").to_string(), "/x/y/w");
    }

    #[test]
    fn maps_errnos_to_codes() {
        let error = os_error(io::Error::from_raw_os_error(Errno::NOTEMPTY.raw_os_error()), "/d");
        assert_eq!(error.code, EnvdErrorCode::DirectoryNotEmpty);
        assert_eq!(error.message, "/d: Directory not empty");
        assert_eq!(os_error(Errno::DQUOT, "/f").code, EnvdErrorCode::NoSpace);
        assert_eq!(os_error(Errno::LOOP, "/f").code, EnvdErrorCode::Io);
    }
}
