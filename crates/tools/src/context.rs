//! What every tool call runs against: [`ToolContext`] (the run's sandbox through its envd, the
//! working directory, the user commands run as, the web-search configuration and output limits),
//! how tool paths resolve against the working directory, and how envd failures read to a model.

use runtools_envd::{ClientError, EnvdClient};
use runtools_protocol::envd::{EnvdErrorCode, FileType};
use tokio::sync::OnceCell;

use crate::output::OutputLimits;
use crate::web_search::WebSearchConfig;

/// The working directory when none is set and `/home/user` exists in the sandbox.
pub const DEFAULT_WORKING_DIR: &str = "/home/user";

/// Everything the tools of one run share.
#[derive(Debug)]
pub struct ToolContext {
    envd: EnvdClient,
    /// Set explicitly, or found on first use (see [`ToolContext::working_dir`]).
    working_dir: OnceCell<String>,
    user: Option<String>,
    web_search: WebSearchConfig,
    limits: OutputLimits,
    /// The shell `bash` runs commands with, found on first use.
    shell: OnceCell<String>,
}

impl ToolContext {
    /// Tools running in the sandbox behind `envd`, as envd's default user (root), in
    /// `/home/user` if it exists (else `/`), without web search and with the default limits.
    pub fn new(envd: EnvdClient) -> Self {
        Self {
            envd,
            working_dir: OnceCell::new(),
            user: None,
            web_search: WebSearchConfig::disabled(),
            limits: OutputLimits::default(),
            shell: OnceCell::new(),
        }
    }

    /// The directory commands run in and relative paths resolve against (absolute, inside the
    /// sandbox).
    pub fn with_working_dir(mut self, dir: impl Into<String>) -> Self {
        self.working_dir = OnceCell::new_with(Some(dir.into()));
        self
    }

    /// The user (name or uid in the sandbox's `/etc/passwd`) `bash` runs commands as.
    pub fn with_user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }

    pub fn with_web_search(mut self, config: WebSearchConfig) -> Self {
        self.web_search = config;
        self
    }

    pub fn with_output_limits(mut self, limits: OutputLimits) -> Self {
        self.limits = limits;
        self
    }

    pub fn envd(&self) -> &EnvdClient {
        &self.envd
    }

    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    pub fn web_search(&self) -> &WebSearchConfig {
        &self.web_search
    }

    pub fn output_limits(&self) -> &OutputLimits {
        &self.limits
    }

    /// The working directory: the one set, else `/home/user` when it is a directory in the
    /// sandbox, else `/` (looked up once).
    pub async fn working_dir(&self) -> &str {
        self.working_dir
            .get_or_init(|| async {
                match self.envd.stat(DEFAULT_WORKING_DIR).await {
                    Ok(entry) if entry.file_type == FileType::Directory => DEFAULT_WORKING_DIR.to_owned(),
                    Ok(_) | Err(_) => "/".to_owned(),
                }
            })
            .await
    }

    /// `/bin/bash` when the sandbox has it, else `/bin/sh` (looked up once).
    pub(crate) async fn shell(&self) -> &str {
        self.shell
            .get_or_init(|| async {
                match self.envd.stat("/bin/bash").await {
                    Ok(entry) if matches!(entry.file_type, FileType::File | FileType::Symlink) => {
                        "/bin/bash".to_owned()
                    }
                    Ok(_) | Err(_) => "/bin/sh".to_owned(),
                }
            })
            .await
    }

    /// `path` as an absolute path inside the sandbox: relative paths are taken from the working
    /// directory.
    pub(crate) async fn resolve(&self, path: &str) -> Result<String, String> {
        resolve_against(self.working_dir().await, path)
    }

    /// `path` as the model should see it: relative to the working directory when inside it.
    pub(crate) async fn display_path<'a>(&self, path: &'a str) -> &'a str {
        relative_to(self.working_dir().await, path)
    }
}

/// `path` resolved against `dir` (lexically; envd normalises `.` and `..`).
pub(crate) fn resolve_against(dir: &str, path: &str) -> Result<String, String> {
    let path = path.trim();
    if path.is_empty() {
        return Err("the path is empty".to_owned());
    }
    if path == "~" || path.starts_with("~/") {
        return Err(format!("`{path}`: `~` is not expanded; give an absolute path or one relative to {dir}"));
    }
    if path.starts_with('/') {
        return Ok(path.to_owned());
    }
    let path = path.strip_prefix("./").unwrap_or(path);
    if dir.ends_with('/') { Ok(format!("{dir}{path}")) } else { Ok(format!("{dir}/{path}")) }
}

/// `path` relative to `dir` when it lies inside it; otherwise unchanged.
pub(crate) fn relative_to<'a>(dir: &str, path: &'a str) -> &'a str {
    let dir = dir.trim_end_matches('/');
    if dir.is_empty() {
        return path;
    }
    match path.strip_prefix(dir).and_then(|rest| rest.strip_prefix('/')) {
        Some(rest) if !rest.is_empty() => rest,
        _ => path,
    }
}

/// An envd failure about `path`, worded for the model.
pub(crate) fn describe_error(error: &ClientError, path: &str) -> String {
    let ClientError::Envd(envd) = error else {
        return format!("{path}: {error}");
    };
    match envd.code {
        EnvdErrorCode::NotFound => format!("{path} does not exist"),
        EnvdErrorCode::PermissionDenied => format!("{path}: permission denied"),
        EnvdErrorCode::NotADirectory => format!("{path}: a component of the path is not a directory"),
        EnvdErrorCode::IsADirectory => format!("{path} is a directory"),
        EnvdErrorCode::PathOutsideSandbox => format!("{path}: {}", envd.message),
        EnvdErrorCode::NoSpace => format!("{path}: the sandbox's disk is full"),
        _ => format!("{path}: {}", envd.message),
    }
}

/// envd's own message for a failed operation (or the client error).
pub(crate) fn envd_message(error: &ClientError) -> String {
    match error {
        ClientError::Envd(envd) => envd.message.clone(),
        other => other.to_string(),
    }
}

/// True when `error` is envd's `code`.
pub(crate) fn is_envd_error(error: &ClientError, code: EnvdErrorCode) -> bool {
    matches!(error, ClientError::Envd(envd) if envd.code == code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_resolve_against_the_working_directory() {
        assert_eq!(resolve_against("/home/user", "src/main.rs").unwrap(), "/home/user/src/main.rs");
        assert_eq!(resolve_against("/home/user", "./a").unwrap(), "/home/user/a");
        assert_eq!(resolve_against("/", "etc/hosts").unwrap(), "/etc/hosts");
        assert_eq!(resolve_against("/home/user", "/etc/hosts").unwrap(), "/etc/hosts");
        assert!(resolve_against("/home/user", "~/x").unwrap_err().contains("not expanded"));
        assert!(resolve_against("/home/user", " ").is_err());
    }

    #[test]
    fn paths_inside_the_working_directory_are_shown_relative() {
        assert_eq!(relative_to("/home/user", "/home/user/src/a.rs"), "src/a.rs");
        assert_eq!(relative_to("/home/user/", "/home/user/a"), "a");
        assert_eq!(relative_to("/home/user", "/home/username/a"), "/home/username/a");
        assert_eq!(relative_to("/home/user", "/home/user"), "/home/user");
        assert_eq!(relative_to("/", "/etc/hosts"), "/etc/hosts");
    }
}
