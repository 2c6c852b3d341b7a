//! How client commands find their server and key: `--url`/`RUNTOOLS_URL`, then
//! `--api-key`/`RUNTOOLS_API_KEY`, falling back to the admin key a local server saved in its data
//! dir (`--data-dir`, `RUNTOOLS_DATA_DIR`, `runtools.toml`, or the default).

use std::path::PathBuf;

use anyhow::{Context, bail};
use runtools_client::Client;
use runtools_server::config::{LoadedConfigFile, ServerConfig, ServerOverrides, ServerSection, admin_key_path};

use crate::GlobalArgs;

/// The data dir the global options, config file and defaults point at.
pub fn data_dir(global: &GlobalArgs) -> anyhow::Result<PathBuf> {
    let file = LoadedConfigFile::discover(global.config.as_deref())?;
    let overrides = ServerOverrides::server(ServerSection { data_dir: global.data_dir.clone(), ..Default::default() });
    Ok(ServerConfig::resolve(file.as_ref(), overrides)?.data_dir)
}

/// A client for the configured server and key.
pub fn client(global: &GlobalArgs) -> anyhow::Result<Client> {
    let api_key = match &global.api_key {
        Some(key) => key.trim().to_owned(),
        None => {
            let path = admin_key_path(&data_dir(global)?);
            match std::fs::read_to_string(&path) {
                Ok(text) => text.trim().to_owned(),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => bail!(
                    "no API key: pass --api-key or set RUNTOOLS_API_KEY (no local admin key at {})",
                    path.display()
                ),
                Err(error) => {
                    return Err(error).with_context(|| format!("cannot read the admin key at {}", path.display()));
                }
            }
        }
    };
    Ok(Client::new(&global.url, Some(api_key))?)
}
