//! Server configuration and its layering: built-in defaults < `runtools.toml` (`[server]` table) <
//! `RUNTOOLS_*` environment < command-line flags. The CLI turns environment and flags into
//! [`ServerOverrides`] (clap reads both, flags winning); [`ServerConfig::resolve`] applies them over
//! the file and the defaults. Unknown keys in the file are an error that names the key, and
//! secrets (the database password, the secrets key) never appear in `Debug` output.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use runtools_store::{SecretsKey, SecretsKeyError, StoreLocation, redact_url_password};
use serde::Deserialize;

/// The default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7070";
/// The name of the config file looked for in the current directory.
pub const CONFIG_FILE_NAME: &str = "runtools.toml";

/// The fully resolved server configuration.
#[derive(Clone)]
pub struct ServerConfig {
    /// Address to listen on (`--listen`, `RUNTOOLS_LISTEN`, `server.listen`).
    pub listen: SocketAddr,
    /// Where the server keeps its SQLite database, admin key and secrets key.
    pub data_dir: PathBuf,
    /// A `postgres://` URL; `None` means the embedded SQLite database in `data_dir`.
    pub database_url: Option<String>,
    /// Seals stored secrets. `None` means the key in `<data_dir>/secrets.key`, created on first start.
    pub secrets_key: Option<SecretsKey>,
    /// How long graceful shutdown waits for in-flight requests.
    pub shutdown_timeout: Duration,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Sandboxes on this node.
    pub sandbox: SandboxConfig,
}

/// The `[sandbox]` settings, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct SandboxConfig {
    /// Run sandboxes on this node (needs root for the namespace backend).
    pub enabled: bool,
    /// The static `envd` binary; found next to the `runtools` binary when unset.
    pub envd_binary: Option<PathBuf>,
    /// This node's name in the store (default: the host name).
    pub node_name: Option<String>,
    /// How often lifetimes are checked.
    pub reaper_interval: Duration,
    /// The cgroup every sandbox's cgroup is made under. Everything under it belongs to this
    /// server: give each server on a host its own.
    pub cgroup_parent: String,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            envd_binary: None,
            node_name: None,
            reaper_interval: Duration::from_secs(1),
            cgroup_parent: "runtools".to_owned(),
        }
    }
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("database_url", &self.database_url.as_deref().map(redact_url_password))
            .field("secrets_key", &self.secrets_key.as_ref().map(|_| "<redacted>"))
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("sandbox", &self.sandbox)
            .finish()
    }
}

impl ServerConfig {
    /// Defaults only: listen on 127.0.0.1:7070 and keep data in the user's data directory.
    pub fn defaults() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 7070)),
            data_dir: default_data_dir(),
            database_url: None,
            secrets_key: None,
            shutdown_timeout: Duration::from_secs(30),
            max_body_bytes: 1024 * 1024,
            sandbox: SandboxConfig::default(),
        }
    }

    /// A config for a server in `data_dir` on an OS-assigned loopback port, without sandboxes
    /// (tests, benchmarks; enable `sandbox` where needed).
    pub fn ephemeral(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: data_dir.into(),
            sandbox: SandboxConfig { enabled: false, ..SandboxConfig::default() },
            ..Self::defaults()
        }
    }

    /// Layers the file (if any) and then the overrides over the defaults.
    pub fn resolve(file: Option<&LoadedConfigFile>, overrides: ServerOverrides) -> Result<Self, ConfigError> {
        let mut config = Self::defaults();
        if let Some(loaded) = file {
            config.apply(loaded.file.server.clone(), Some(&loaded.path))?;
            config.apply_sandbox(loaded.file.sandbox.clone(), Some(&loaded.path));
        }
        config.apply(overrides.0, None)?;
        config.apply_sandbox(overrides.1, None);
        Ok(config)
    }

    fn apply_sandbox(&mut self, layer: SandboxSection, file: Option<&Path>) {
        if let Some(enabled) = layer.enabled {
            self.sandbox.enabled = enabled;
        }
        if let Some(path) = layer.envd_binary {
            self.sandbox.envd_binary = Some(match file.and_then(Path::parent) {
                Some(base) if path.is_relative() => base.join(path),
                _ => path,
            });
        }
        if let Some(name) = layer.node_name {
            self.sandbox.node_name = Some(name);
        }
        if let Some(parent) = layer.cgroup_parent {
            self.sandbox.cgroup_parent = parent;
        }
    }

    fn apply(&mut self, layer: ServerSection, file: Option<&Path>) -> Result<(), ConfigError> {
        let origin = || file.map_or_else(|| "the environment or flags".to_owned(), |p| p.display().to_string());
        if let Some(listen) = layer.listen {
            self.listen = listen.parse().map_err(|_| ConfigError::Invalid {
                key: "listen",
                origin: origin(),
                reason: format!("`{listen}` is not a host:port address"),
            })?;
        }
        if let Some(dir) = layer.data_dir {
            // A relative data_dir in a file is relative to the file, not to wherever the server starts.
            self.data_dir = match file.and_then(Path::parent) {
                Some(base) if dir.is_relative() => base.join(dir),
                _ => dir,
            };
        }
        if let Some(url) = layer.database_url {
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                return Err(ConfigError::Invalid {
                    key: "database_url",
                    origin: origin(),
                    reason: "only postgres:// URLs are supported; leave it unset for the embedded SQLite database"
                        .into(),
                });
            }
            self.database_url = Some(url);
        }
        if let Some(key) = layer.secrets_key {
            self.secrets_key = Some(
                SecretsKey::from_base64(&key).map_err(|source| ConfigError::SecretsKey { origin: origin(), source })?,
            );
        }
        if let Some(secs) = layer.shutdown_timeout_secs {
            self.shutdown_timeout = Duration::from_secs(secs);
        }
        if let Some(bytes) = layer.max_body_bytes {
            if bytes == 0 {
                return Err(ConfigError::Invalid {
                    key: "max_body_bytes",
                    origin: origin(),
                    reason: "must be at least 1".into(),
                });
            }
            self.max_body_bytes = bytes;
        }
        Ok(())
    }

    /// Where the store lives.
    pub fn store_location(&self) -> StoreLocation {
        match &self.database_url {
            Some(url) => StoreLocation::Postgres(url.clone()),
            None => StoreLocation::Sqlite(self.data_dir.join("runtools.db")),
        }
    }

    /// The file the first start writes the admin key to.
    pub fn admin_key_path(&self) -> PathBuf {
        admin_key_path(&self.data_dir)
    }
}

/// Where a data dir keeps its admin key; clients read it as a fallback credential.
pub fn admin_key_path(data_dir: &Path) -> PathBuf {
    data_dir.join("admin.key")
}

/// `$XDG_DATA_HOME/runtools` (usually `~/.local/share/runtools`), or `./.runtools` without a home.
pub fn default_data_dir() -> PathBuf {
    dirs::data_local_dir().map_or_else(|| PathBuf::from(".runtools"), |dir| dir.join("runtools"))
}

/// The `[server]` table of `runtools.toml`; also the shape of the environment/flag overrides.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub secrets_key: Option<String>,
    pub shutdown_timeout_secs: Option<u64>,
    pub max_body_bytes: Option<usize>,
}

/// The `[sandbox]` table of `runtools.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxSection {
    pub enabled: Option<bool>,
    pub envd_binary: Option<PathBuf>,
    pub node_name: Option<String>,
    pub cgroup_parent: Option<String>,
}

/// Values from `RUNTOOLS_*` variables and flags, which win over the file.
#[derive(Debug, Clone, Default)]
pub struct ServerOverrides(pub ServerSection, pub SandboxSection);

/// `runtools.toml`. Sections for other parts of the product (runners, projects) join this struct
/// as they are built; an unknown section or key is an error until then.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default)]
    pub server: ServerSection,
    #[serde(default)]
    pub sandbox: SandboxSection,
}

/// A parsed config file and where it came from.
#[derive(Debug, Clone)]
pub struct LoadedConfigFile {
    pub path: PathBuf,
    pub file: ConfigFile,
}

impl ServerOverrides {
    /// Overrides of `[server]` settings only.
    pub fn server(section: ServerSection) -> Self {
        Self(section, SandboxSection::default())
    }
}

impl LoadedConfigFile {
    /// Reads and parses a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        Self::parse(path, &text)
    }

    /// Parses config text; `path` is used in errors and to resolve relative paths.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let file = toml::from_str(text)
            .map_err(|source| ConfigError::Parse { path: path.to_owned(), source: Box::new(source) })?;
        Ok(Self { path: path.to_owned(), file })
    }

    /// The explicitly named file, or `./runtools.toml` when it exists, or none.
    pub fn discover(explicit: Option<&Path>) -> Result<Option<Self>, ConfigError> {
        match explicit {
            Some(path) => Self::load(path).map(Some),
            None => {
                let default = Path::new(CONFIG_FILE_NAME);
                if default.is_file() { Self::load(default).map(Some) } else { Ok(None) }
            }
        }
    }
}

/// The configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid config file {}: {source}", path.display())]
    Parse { path: PathBuf, source: Box<toml::de::Error> },
    #[error("invalid `{key}` in {origin}: {reason}")]
    Invalid { key: &'static str, origin: String, reason: String },
    #[error("invalid `secrets_key` in {origin}: {source}")]
    SecretsKey { origin: String, source: SecretsKeyError },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> LoadedConfigFile {
        LoadedConfigFile::parse(Path::new("/etc/runtools/runtools.toml"), text).unwrap()
    }

    #[test]
    fn defaults_listen_on_loopback_7070() {
        let config = ServerConfig::resolve(None, ServerOverrides::default()).unwrap();
        assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
        assert!(config.database_url.is_none());
        assert!(matches!(config.store_location(), StoreLocation::Sqlite(path) if path.ends_with("runtools.db")));
    }

    #[test]
    fn file_overrides_defaults_and_overrides_win_over_the_file() {
        let loaded = file("[server]\nlisten = \"0.0.0.0:8080\"\ndata_dir = \"data\"\nshutdown_timeout_secs = 5\n");
        let config = ServerConfig::resolve(Some(&loaded), ServerOverrides::default()).unwrap();
        assert_eq!(config.listen.to_string(), "0.0.0.0:8080");
        assert_eq!(config.data_dir, PathBuf::from("/etc/runtools/data"), "relative to the file");
        assert_eq!(config.shutdown_timeout, Duration::from_secs(5));

        let overrides =
            ServerOverrides::server(ServerSection { listen: Some("127.0.0.1:9999".into()), ..Default::default() });
        let config = ServerConfig::resolve(Some(&loaded), overrides).unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:9999");
        assert_eq!(config.data_dir, PathBuf::from("/etc/runtools/data"), "untouched layers stay");
    }

    #[test]
    fn unknown_keys_are_errors_that_name_the_key() {
        let error = LoadedConfigFile::parse(Path::new("runtools.toml"), "[server]\nlisten_addr = \"x\"\n").unwrap_err();
        assert!(error.to_string().contains("listen_addr"), "{error}");
        let error = LoadedConfigFile::parse(Path::new("runtools.toml"), "[sever]\n").unwrap_err();
        assert!(error.to_string().contains("sever"), "{error}");
    }

    #[test]
    fn bad_values_name_key_and_origin() {
        let error = ServerConfig::resolve(Some(&file("[server]\nlisten = \"nope\"\n")), ServerOverrides::default())
            .unwrap_err();
        assert!(error.to_string().contains("`listen`") && error.to_string().contains("runtools.toml"), "{error}");
        let overrides =
            ServerOverrides::server(ServerSection { database_url: Some("mysql://x".into()), ..Default::default() });
        let error = ServerConfig::resolve(None, overrides).unwrap_err();
        assert!(error.to_string().contains("database_url"), "{error}");
    }

    #[test]
    fn debug_output_redacts_secrets() {
        let key = SecretsKey::generate();
        let overrides = ServerOverrides::server(ServerSection {
            database_url: Some("postgres://rt:hunter2@db/rt".into()),
            secrets_key: Some(key.to_base64()),
            ..Default::default()
        });
        let shown = format!("{:?}", ServerConfig::resolve(None, overrides).unwrap());
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains(&key.to_base64()), "{shown}");
    }
}
