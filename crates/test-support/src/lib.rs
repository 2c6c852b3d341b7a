//! Test helpers shared by every crate's integration tests:
//!
//! - [`TestDatabase`]: an empty store on either engine — a SQLite file in a temp dir, or a fresh
//!   database on the PostgreSQL server named by `RUNTOOLS_TEST_POSTGRES_URL`.
//! - [`TestServer`]: a real server on `127.0.0.1:0` with a temp data dir, its admin key and a typed
//!   client, shut down gracefully on [`TestServer::stop`] (or killed on drop).
//! - [`on_both_engines!`]: runs one async test body once per engine, as `sqlite::<name>` and
//!   `postgres::<name>`, so test output shows both.
//!
//! Without `RUNTOOLS_TEST_POSTGRES_URL` the PostgreSQL variants are skipped with a note, unless
//! `RUNTOOLS_TEST_REQUIRE_POSTGRES=1` (set by `scripts/test`), which turns the skip into a failure.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use runtools_client::Client;
use runtools_server::{Server, ServerConfig};
use sqlx::ConnectOptions;
use sqlx::postgres::PgConnectOptions;
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use {reqwest, runtools_client};

/// The environment variable naming a PostgreSQL server the tests may create databases on.
pub const POSTGRES_URL_VAR: &str = "RUNTOOLS_TEST_POSTGRES_URL";
/// Set to `1` to make a missing PostgreSQL server a test failure instead of a skip.
pub const REQUIRE_POSTGRES_VAR: &str = "RUNTOOLS_TEST_REQUIRE_POSTGRES";

/// Which database engine a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// An empty database for one test, plus a temp data dir.
#[derive(Debug)]
pub struct TestDatabase {
    pub engine: Engine,
    /// `None` for SQLite (the server's default file in the data dir), the URL for PostgreSQL.
    pub database_url: Option<String>,
    pub data_dir: TempDir,
}

impl TestDatabase {
    /// A fresh database on `engine`; `None` when PostgreSQL is not configured (the test should skip).
    pub async fn create(engine: Engine) -> Option<Self> {
        let data_dir =
            tempfile::Builder::new().prefix("runtools-test-").tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
        let database_url = match engine {
            Engine::Sqlite => None,
            Engine::Postgres => Some(create_postgres_database().await?),
        };
        Some(Self { engine, database_url, data_dir })
    }

    /// A server config on this database, listening on an OS-assigned loopback port.
    pub fn server_config(&self) -> ServerConfig {
        ServerConfig { database_url: self.database_url.clone(), ..ServerConfig::ephemeral(self.data_dir.path()) }
    }

    pub fn data_dir(&self) -> &Path {
        self.data_dir.path()
    }

    /// An empty stand-in, for moving a database out of a server being restarted.
    fn placeholder() -> Self {
        let data_dir = tempfile::Builder::new()
            .prefix("runtools-placeholder-")
            .tempdir()
            .unwrap_or_else(|e| panic!("temp dir: {e}"));
        Self { engine: Engine::Sqlite, database_url: None, data_dir }
    }
}

/// The static envd binary for sandbox tests: `RUNTOOLS_ENVD_BINARY`, or the one `scripts/build-envd`
/// builds in this checkout.
pub fn envd_binary() -> PathBuf {
    // Relative paths (as `scripts/build-envd` prints them) are relative to the workspace root, not
    // to the crate directory tests run in.
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let path = std::env::var_os("RUNTOOLS_ENVD_BINARY")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/envd/x86_64-unknown-linux-gnu/release/envd"));
    if path.is_relative() { workspace.join(path) } else { path }
}

/// Whether sandbox tests can run here: as root, with a built envd. Prints why not, and fails
/// instead when `RUNTOOLS_TEST_REQUIRE_SANDBOXES=1` (CI).
#[allow(clippy::print_stderr)] // the skip note must show in the test output
pub fn sandbox_prerequisites() -> Option<PathBuf> {
    let required = std::env::var("RUNTOOLS_TEST_REQUIRE_SANDBOXES").is_ok_and(|v| v == "1");
    let is_root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false);
    let envd = envd_binary();
    let problem = if !is_root {
        Some("sandbox tests need root (namespaces, cgroups, overlay mounts)".to_owned())
    } else if !envd.is_file() {
        Some(format!("no envd at {} (run scripts/build-envd)", envd.display()))
    } else {
        None
    };
    match problem {
        Some(problem) if required => panic!("RUNTOOLS_TEST_REQUIRE_SANDBOXES=1 but {problem}"),
        Some(problem) => {
            eprintln!("skipped: {problem}");
            None
        }
        None => Some(envd),
    }
}

#[allow(clippy::print_stderr)] // the skip note must show in the test output
async fn create_postgres_database() -> Option<String> {
    let Ok(admin_url) = std::env::var(POSTGRES_URL_VAR) else {
        if std::env::var(REQUIRE_POSTGRES_VAR).is_ok_and(|v| v == "1") {
            panic!("{REQUIRE_POSTGRES_VAR}=1 but {POSTGRES_URL_VAR} is not set");
        }
        eprintln!("skipped: set {POSTGRES_URL_VAR} to run the PostgreSQL variant (scripts/test does)");
        return None;
    };
    let options = PgConnectOptions::from_str(&admin_url).unwrap_or_else(|e| panic!("{POSTGRES_URL_VAR}: {e}"));
    let mut admin = options.connect().await.unwrap_or_else(|e| panic!("cannot connect to {POSTGRES_URL_VAR}: {e}"));
    let name = format!("rt_test_{}", ulid::Ulid::new().to_string().to_ascii_lowercase());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
    let mut url = url::Url::parse(&admin_url).unwrap_or_else(|e| panic!("{POSTGRES_URL_VAR}: {e}"));
    url.set_path(&name);
    Some(url.to_string())
}

/// Runs `async fn name(db: TestDatabase)` bodies on both engines, as `sqlite::name` and
/// `postgres::name`.
#[macro_export]
macro_rules! on_both_engines {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = $crate::TestDatabase::create($crate::Engine::Sqlite).await.expect("sqlite is always available");
                    super::$name(db).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(db) = $crate::TestDatabase::create($crate::Engine::Postgres).await {
                        super::$name(db).await;
                    }
                }
            )*
        }
    };
}

/// A running server.
#[derive(Debug)]
pub struct TestServer {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// The admin key the first start created.
    pub admin_key: String,
    pub db: TestDatabase,
    /// The configuration it runs with (its `listen` is the bound address).
    pub config: ServerConfig,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), runtools_server::ServeError>>>,
}

impl TestServer {
    /// A server on a fresh SQLite database.
    pub async fn start() -> Self {
        let db = TestDatabase::create(Engine::Sqlite).await.unwrap_or_else(|| panic!("sqlite is always available"));
        Self::start_on(db).await
    }

    /// A server on the given database.
    pub async fn start_on(db: TestDatabase) -> Self {
        Self::start_with(db, |_| {}).await
    }

    /// A server on the given database with adjusted configuration.
    pub async fn start_with(db: TestDatabase, adjust: impl FnOnce(&mut ServerConfig)) -> Self {
        let mut config = db.server_config();
        adjust(&mut config);
        Self::launch(db, config, None).await
    }

    /// A server that runs sandboxes (needs root and a built envd: see [`envd_binary`]); `None`
    /// when this machine cannot, after printing why.
    pub async fn start_with_sandboxes() -> Option<Self> {
        let envd = sandbox_prerequisites()?;
        let db = TestDatabase::create(Engine::Sqlite).await.unwrap_or_else(|| panic!("sqlite is always available"));
        let mut config = db.server_config();
        config.sandbox.enabled = true;
        config.sandbox.envd_binary = Some(envd);
        config.sandbox.reaper_interval = std::time::Duration::from_millis(200);
        // Everything under a cgroup parent belongs to one server: tests run many side by side.
        config.sandbox.cgroup_parent = format!("runtools-test-{}", ulid::Ulid::new().to_string().to_ascii_lowercase());
        Some(Self::launch(db, config, None).await)
    }

    /// Stops this server gracefully and starts a new one on the same data dir and database (as a
    /// restart of the process would).
    pub async fn restart(mut self) -> Self {
        let config = self.config.clone();
        let admin_key = self.admin_key.clone();
        self.begin_stop();
        if let Some(task) = self.task.take() {
            task.await.unwrap_or_else(|e| panic!("server task: {e}")).unwrap_or_else(|e| panic!("server: {e}"));
        }
        let db = std::mem::replace(&mut self.db, TestDatabase::placeholder());
        Self::launch(db, config, Some(admin_key)).await
    }

    async fn launch(db: TestDatabase, mut config: ServerConfig, admin_key: Option<String>) -> Self {
        // `RUNTOOLS_TEST_LOG=debug` shows the server's logs in a failing test's output.
        if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_env("RUNTOOLS_TEST_LOG") {
            let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
        }
        let listener = tokio::net::TcpListener::bind(config.listen).await.unwrap_or_else(|e| panic!("bind: {e}"));
        let address = listener.local_addr().unwrap_or_else(|e| panic!("local_addr: {e}"));
        let url = format!("http://{address}");
        config.listen = address;
        let server = Server::open(config.clone()).await.unwrap_or_else(|e| panic!("server open: {e}"));
        let admin_key = admin_key
            .or_else(|| server.new_admin_key().map(|key| key.secret.clone()))
            .unwrap_or_else(|| panic!("fresh data dir creates an admin key"));
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(server.serve(listener, async move {
            let _ = stopped.await;
        }));
        Self { url, admin_key, db, config, stop: Some(stop), task: Some(task) }
    }

    /// A client authenticated with the admin key.
    pub fn admin(&self) -> Client {
        self.client(Some(self.admin_key.clone()))
    }

    /// A client with the given key (or none).
    pub fn client(&self, api_key: Option<String>) -> Client {
        Client::new(&self.url, api_key).unwrap_or_else(|e| panic!("client: {e}"))
    }

    /// This server's URL for `path`, for raw requests the typed client would never send
    /// (malformed bodies, missing headers).
    pub fn url_of(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// Signals graceful shutdown without waiting for it.
    pub fn begin_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Shuts down gracefully and waits until the server has stopped.
    pub async fn stop(mut self) {
        self.begin_stop();
        if let Some(task) = self.task.take() {
            task.await.unwrap_or_else(|e| panic!("server task: {e}")).unwrap_or_else(|e| panic!("server: {e}"));
        }
    }

    /// The data dir's path.
    pub fn data_dir(&self) -> PathBuf {
        self.db.data_dir().to_owned()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        // Each sandbox-running test server has its own cgroup parent; remove it once it is empty
        // (a sandbox a test left behind keeps it, and shows up).
        if self.config.sandbox.enabled {
            let parent = &self.config.sandbox.cgroup_parent;
            if let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") {
                for hierarchy in hierarchies.flatten() {
                    let _ = std::fs::remove_dir(hierarchy.path().join(parent));
                }
            }
            let _ = std::fs::remove_dir(Path::new("/sys/fs/cgroup").join(parent));
        }
    }
}
