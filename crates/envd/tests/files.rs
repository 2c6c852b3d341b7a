//! Files through the real envd binary, confined to a temp root: a 100 MiB round trip in bounded
//! memory, stat/list/mkdir/move/remove, ownership (replaced files keep theirs; new files can be a
//! user's), error codes, path escapes and watches.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::Duration;

use common::TestEnvd;
use runtools_envd::{ClientError, WriteOptions};
use runtools_protocol::envd::{EnvdErrorCode, FileType, WatchEvent, WatchEventKind};
use sha2::{Digest, Sha256};
use tokio::io::AsyncRead;

fn code(result: Result<impl std::fmt::Debug, ClientError>) -> EnvdErrorCode {
    match result {
        Err(ClientError::Envd(error)) => error.code,
        other => panic!("expected an envd error, got {other:?}"),
    }
}

/// A deterministic pseudo-random byte stream of `len` bytes, generated as it is read.
struct Generated {
    remaining: u64,
    state: u64,
    hasher: Sha256,
}

impl Generated {
    fn new(len: u64) -> Self {
        Self { remaining: len, state: 0x9E37_79B9_7F4A_7C15, hasher: Sha256::new() }
    }
}

impl AsyncRead for Generated {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let n = (buf.remaining() as u64).min(self.remaining).min(64 * 1024) as usize;
        let mut chunk = vec![0u8; n];
        for byte in &mut chunk {
            self.state ^= self.state << 13;
            self.state ^= self.state >> 7;
            self.state ^= self.state << 17;
            *byte = self.state as u8;
        }
        self.hasher.update(&chunk);
        self.remaining -= n as u64;
        buf.put_slice(&chunk);
        std::task::Poll::Ready(Ok(()))
    }
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|line| line.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn writes_and_reads_back_100_mib_in_bounded_memory() {
    const SIZE: u64 = 100 * 1024 * 1024;
    let envd = TestEnvd::start_with_root().await;
    let client = envd.connect().await;
    let envd_rss_before = rss_kib(envd.pid());

    let mut source = Generated::new(SIZE);
    let options = WriteOptions { create_parents: true, ..WriteOptions::default() };
    let written = client.write("/data/big.bin", options, &mut source).await.unwrap();
    assert_eq!(written, SIZE);
    let expected = source.hasher.finalize();
    assert_eq!(std::fs::metadata(envd.root().join("data/big.bin")).unwrap().len(), SIZE);

    let (entry, mut reader) = client.read("/data/big.bin", None, None).await.unwrap();
    assert_eq!(entry.size, SIZE);
    assert_eq!(entry.file_type, FileType::File);
    let mut hasher = Sha256::new();
    let mut total = 0u64;
    while let Some(chunk) = reader.chunk().await.unwrap() {
        assert!(chunk.len() <= runtools_protocol::envd::MAX_DATA_CHUNK);
        total += chunk.len() as u64;
        hasher.update(&chunk);
    }
    assert_eq!(total, SIZE);
    assert_eq!(hasher.finalize(), expected);

    let growth = rss_kib(envd.pid()).saturating_sub(envd_rss_before);
    assert!(growth < 16 * 1024, "envd grew by {growth} KiB while moving 100 MiB");

    // Ranges.
    let (_, mut reader) = client.read("/data/big.bin", Some(SIZE - 10), Some(100)).await.unwrap();
    assert_eq!(reader.read_to_end().await.unwrap().len(), 10);
    let (_, mut reader) = client.read("/data/big.bin", Some(5), Some(3)).await.unwrap();
    assert_eq!(reader.read_to_end().await.unwrap().len(), 3);
}

#[tokio::test]
async fn writes_atomically_appends_and_sets_modes() {
    let envd = TestEnvd::start_with_root().await;
    let client = envd.connect().await;
    client.write("/note.txt", WriteOptions::default(), &b"one\n"[..]).await.unwrap();
    let append = WriteOptions { append: true, ..WriteOptions::default() };
    client.write("/note.txt", append, &b"two\n"[..]).await.unwrap();
    let (_, mut reader) = client.read("/note.txt", None, None).await.unwrap();
    assert_eq!(reader.read_to_end().await.unwrap(), b"one\ntwo\n");

    let exec = WriteOptions { mode: Some(0o750), ..WriteOptions::default() };
    client.write("/run.sh", exec, &b"#!/bin/sh\n"[..]).await.unwrap();
    assert_eq!(client.stat("/run.sh").await.unwrap().mode, 0o750);
    // Replacing keeps the mode.
    client.write("/run.sh", WriteOptions::default(), &b"#!/bin/sh\necho\n"[..]).await.unwrap();
    assert_eq!(client.stat("/run.sh").await.unwrap().mode, 0o750);
    // No temp files are left behind.
    let names: Vec<String> = client.list("/", None).await.unwrap().into_iter().map(|e| e.name).collect();
    assert_eq!(names, ["note.txt", "run.sh"]);

    assert_eq!(code(client.write("/missing/dir/f", WriteOptions::default(), &b"x"[..]).await), EnvdErrorCode::NotFound);
    client.mkdir("/adir", false).await.unwrap();
    assert_eq!(code(client.write("/adir", WriteOptions::default(), &b"x"[..]).await), EnvdErrorCode::IsADirectory);
}

/// Changing owners needs root; without it, says so and skips.
fn running_as_root() -> bool {
    let root = rustix::process::geteuid().is_root();
    if !root {
        eprintln!("note: skipping: changing owners needs root");
    }
    root
}

/// Uid and gid of a path in the sandbox root (not following a final symlink).
fn owner(envd: &TestEnvd, path: &str) -> (u32, u32) {
    let meta = std::fs::symlink_metadata(envd.root().join(path)).unwrap();
    (meta.uid(), meta.gid())
}

#[tokio::test]
async fn replacing_a_file_keeps_its_owner_and_mode() {
    if !running_as_root() {
        return;
    }
    let envd = TestEnvd::start_with_root().await;
    let client = envd.connect().await;
    let theirs = envd.root().join("theirs.sh");
    std::fs::write(&theirs, "old\n").unwrap();
    std::os::unix::fs::chown(&theirs, Some(1000), Some(1001)).unwrap();
    // Set after the chown; a chown would clear the set-user-ID bit.
    std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o4750)).unwrap();

    client.write("/theirs.sh", WriteOptions::default(), &b"new\n"[..]).await.unwrap();
    assert_eq!(std::fs::read(&theirs).unwrap(), b"new\n");
    assert_eq!(owner(&envd, "theirs.sh"), (1000, 1001));
    assert_eq!(std::fs::metadata(&theirs).unwrap().mode() & 0o7777, 0o4750);

    // A user for new files does not change an existing file's owner, replaced or appended to.
    client.write_as("/theirs.sh", WriteOptions::default(), Some("1234"), &b"newer\n"[..]).await.unwrap();
    assert_eq!(owner(&envd, "theirs.sh"), (1000, 1001));
    let append = WriteOptions { append: true, ..WriteOptions::default() };
    client.write_as("/theirs.sh", append, Some("1234"), &b"more\n"[..]).await.unwrap();
    assert_eq!(std::fs::read(&theirs).unwrap(), b"newer\nmore\n");
    assert_eq!(owner(&envd, "theirs.sh"), (1000, 1001));
    // Nor does an explicit mode.
    client.write("/theirs.sh", WriteOptions { mode: Some(0o600), ..WriteOptions::default() }, &b"x"[..]).await.unwrap();
    assert_eq!(owner(&envd, "theirs.sh"), (1000, 1001));
    assert_eq!(std::fs::metadata(&theirs).unwrap().mode() & 0o7777, 0o600);
    // Root's files stay root's.
    std::fs::write(envd.root().join("mine.txt"), "a").unwrap();
    client.write_as("/mine.txt", WriteOptions::default(), Some("1234"), &b"b"[..]).await.unwrap();
    assert_eq!(owner(&envd, "mine.txt"), (0, 0));
    let names: Vec<String> = client.list("/", None).await.unwrap().into_iter().map(|e| e.name).collect();
    assert_eq!(names, ["mine.txt", "theirs.sh"]);
}

#[tokio::test]
async fn new_files_and_their_created_parents_belong_to_the_user() {
    if !running_as_root() {
        return;
    }
    let envd = TestEnvd::start_with_root().await;
    let client = envd.connect().await;
    let parents = WriteOptions { create_parents: true, ..WriteOptions::default() };

    // A uid with no /etc/passwd entry: its group is the same number.
    client.mkdir("/existing", false).await.unwrap();
    client.write_as("/existing/a/b/new.txt", parents, Some("1234"), &b"x"[..]).await.unwrap();
    assert_eq!(owner(&envd, "existing"), (0, 0));
    for path in ["existing/a", "existing/a/b", "existing/a/b/new.txt"] {
        assert_eq!(owner(&envd, path), (1234, 1234), "{path}");
    }
    // A name, with its login group, from the sandbox's /etc/passwd.
    std::fs::create_dir(envd.root().join("etc")).unwrap();
    std::fs::write(
        envd.root().join("etc/passwd"),
        "root:x:0:0::/root:/bin/sh\nalice:x:1500:1600::/home/alice:/bin/sh\n",
    )
    .unwrap();
    client.write_as("/home/alice/notes.txt", parents, Some("alice"), &b"x"[..]).await.unwrap();
    assert_eq!(owner(&envd, "home"), (1500, 1600));
    assert_eq!(owner(&envd, "home/alice/notes.txt"), (1500, 1600));
    // An append that creates the file gives it to the user too.
    let append = WriteOptions { append: true, ..WriteOptions::default() };
    client.write_as("/home/alice/log", append, Some("alice"), &b"1\n"[..]).await.unwrap();
    client.write_as("/home/alice/log", append, Some("alice"), &b"2\n"[..]).await.unwrap();
    assert_eq!(std::fs::read(envd.root().join("home/alice/log")).unwrap(), b"1\n2\n");
    assert_eq!(owner(&envd, "home/alice/log"), (1500, 1600));
    // Without a user, new files are envd's.
    client.write("/home/alice/root.txt", WriteOptions::default(), &b"x"[..]).await.unwrap();
    assert_eq!(owner(&envd, "home/alice/root.txt"), (0, 0));
}

#[tokio::test]
async fn mkdir_gives_the_directories_it_creates_to_the_user() {
    if !running_as_root() {
        return;
    }
    let envd = TestEnvd::start_with_root().await;
    let client = envd.connect().await;
    client.mkdir("/top", false).await.unwrap();
    client.mkdir_as("/top/x/y", true, Some("4321")).await.unwrap();
    assert_eq!(owner(&envd, "top"), (0, 0));
    assert_eq!(owner(&envd, "top/x"), (4321, 4321));
    assert_eq!(owner(&envd, "top/x/y"), (4321, 4321));
    client.mkdir_as("/top/z", false, Some("4321")).await.unwrap();
    assert_eq!(owner(&envd, "top/z"), (4321, 4321));
    // Existing directories are left alone.
    client.mkdir_as("/top/x/y", true, Some("99")).await.unwrap();
    assert_eq!(owner(&envd, "top/x/y"), (4321, 4321));
}

#[tokio::test]
async fn an_unknown_user_is_refused_before_anything_is_created() {
    let envd = TestEnvd::start_with_root().await;
    let client = envd.connect().await;
    let parents = WriteOptions { create_parents: true, ..WriteOptions::default() };
    let result = client.write_as("/d/f.txt", parents, Some("nosuchuser"), &b"x"[..]).await;
    assert_eq!(code(result), EnvdErrorCode::UnknownUser);
    let append = WriteOptions { append: true, ..WriteOptions::default() };
    assert_eq!(
        code(client.write_as("/f.txt", append, Some("nosuchuser"), &b"x"[..]).await),
        EnvdErrorCode::UnknownUser
    );
    assert_eq!(code(client.mkdir_as("/d/e", true, Some("nosuchuser")).await), EnvdErrorCode::UnknownUser);
    assert!(client.list("/", None).await.unwrap().is_empty());
}

#[tokio::test]
async fn stat_list_mkdir_move_remove() {
    let envd = TestEnvd::start_with_root().await;
    let client = envd.connect().await;

    client.mkdir("/a/b/c", true).await.unwrap();
    client.mkdir("/a/b/c", true).await.unwrap();
    assert_eq!(code(client.mkdir("/a/b/c", false).await), EnvdErrorCode::AlreadyExists);
    assert_eq!(code(client.mkdir("/x/y", false).await), EnvdErrorCode::NotFound);
    client.write("/a/b/file.txt", WriteOptions::default(), &b"hello"[..]).await.unwrap();
    std::os::unix::fs::symlink("file.txt", envd.root().join("a/b/link")).unwrap();

    let entry = client.stat("/a/b/file.txt").await.unwrap();
    assert_eq!((entry.path.as_str(), entry.name.as_str(), entry.size), ("/a/b/file.txt", "file.txt", 5));
    assert_eq!(entry.file_type, FileType::File);
    assert!(entry.modified_ms > 1_600_000_000_000);
    let link = client.stat("/a/b/link").await.unwrap();
    assert_eq!(link.file_type, FileType::Symlink);
    assert_eq!(link.symlink_target.as_deref(), Some("file.txt"));
    assert_eq!(client.stat("/").await.unwrap().file_type, FileType::Directory);
    assert_eq!(code(client.stat("/nope").await), EnvdErrorCode::NotFound);
    assert_eq!(code(client.stat("/a/b/file.txt/x").await), EnvdErrorCode::NotADirectory);

    let top: Vec<String> = client.list("/a", None).await.unwrap().into_iter().map(|e| e.path).collect();
    assert_eq!(top, ["/a/b"]);
    let deep: Vec<String> = client.list("/a", Some(3)).await.unwrap().into_iter().map(|e| e.path).collect();
    assert_eq!(deep, ["/a/b", "/a/b/c", "/a/b/file.txt", "/a/b/link"]);
    assert_eq!(code(client.list("/a/b/file.txt", None).await), EnvdErrorCode::NotADirectory);

    client.rename("/a/b/file.txt", "/a/moved.txt").await.unwrap();
    let (_, mut reader) = client.read("/a/moved.txt", None, None).await.unwrap();
    assert_eq!(reader.read_to_end().await.unwrap(), b"hello");
    assert_eq!(code(client.rename("/a/nothing", "/a/other").await), EnvdErrorCode::NotFound);
    assert_eq!(code(client.read("/a", None, None).await), EnvdErrorCode::IsADirectory);

    assert_eq!(code(client.remove("/a", false).await), EnvdErrorCode::DirectoryNotEmpty);
    client.remove("/a/moved.txt", false).await.unwrap();
    client.remove("/a", true).await.unwrap();
    assert_eq!(code(client.stat("/a").await), EnvdErrorCode::NotFound);
    assert_eq!(code(client.remove("/a", true).await), EnvdErrorCode::NotFound);
    assert_eq!(code(client.remove("/", true).await), EnvdErrorCode::InvalidRequest);
}

#[tokio::test]
async fn large_listings_arrive_whole() {
    let envd = TestEnvd::start_with_root().await;
    let client = envd.connect().await;
    let dir = envd.root().join("many");
    std::fs::create_dir(&dir).unwrap();
    let long = "n".repeat(200);
    for i in 0..6000 {
        std::fs::write(dir.join(format!("{long}{i:05}")), b"").unwrap();
    }
    // ~6000 entries of ~450 bytes of JSON each: well over one frame.
    let entries = client.list("/many", None).await.unwrap();
    assert_eq!(entries.len(), 6000);
}

#[tokio::test]
async fn refuses_paths_that_escape_the_root() {
    let envd = TestEnvd::start_with_root().await;
    let client = envd.connect().await;
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), b"host secret").unwrap();
    std::fs::create_dir(envd.root().join("etc")).unwrap();
    std::fs::write(envd.root().join("etc/hostname"), b"sandbox\n").unwrap();

    for path in ["/../../etc/passwd", "/a/../../etc/passwd", "etc/passwd", "./etc", ""] {
        assert_eq!(code(client.stat(path).await), EnvdErrorCode::PathOutsideSandbox, "{path}");
    }
    assert_eq!(
        code(client.write("../evil", WriteOptions::default(), &b"x"[..]).await),
        EnvdErrorCode::PathOutsideSandbox
    );
    assert_eq!(code(client.rename("/etc/hostname", "/../stolen").await), EnvdErrorCode::PathOutsideSandbox);

    // Symlinks resolve as if the root were `/`: an absolute or `..`-laden target never leaves it.
    let secret = outside.path().join("secret");
    std::os::unix::fs::symlink(&secret, envd.root().join("absolute")).unwrap();
    std::os::unix::fs::symlink("../../../../../../../..", envd.root().join("climb")).unwrap();
    std::os::unix::fs::symlink(outside.path(), envd.root().join("outdir")).unwrap();
    assert_eq!(code(client.read("/absolute", None, None).await), EnvdErrorCode::NotFound);
    let secret_via_climb = format!("/climb{}", secret.display());
    assert_eq!(code(client.read(&secret_via_climb, None, None).await), EnvdErrorCode::NotFound);
    assert_eq!(code(client.list("/outdir", None).await), EnvdErrorCode::NotFound);
    let (_, mut reader) = client.read("/climb/etc/hostname", None, None).await.unwrap();
    assert_eq!(reader.read_to_end().await.unwrap(), b"sandbox\n");
    // Writing through a symlinked directory cannot land outside either.
    let through = format!("/climb{}/planted", outside.path().display());
    assert_eq!(code(client.write(&through, WriteOptions::default(), &b"x"[..]).await), EnvdErrorCode::NotFound);
    assert!(!outside.path().join("planted").exists());
    // The symlink itself can be inspected and removed.
    assert_eq!(client.stat("/absolute").await.unwrap().file_type, FileType::Symlink);
    client.remove("/outdir", true).await.unwrap();
    assert!(outside.path().join("secret").exists());
}

async fn next_event(watch: &mut runtools_envd::Watch) -> WatchEvent {
    tokio::time::timeout(Duration::from_secs(5), watch.next()).await.expect("no watch event").expect("watch ended")
}

/// Waits for an event of `kind` on `path`, skipping others (inotify may add e.g. extra modifies).
async fn expect_event(watch: &mut runtools_envd::Watch, kind: WatchEventKind, path: &str) {
    loop {
        let event = next_event(watch).await;
        if event.kind == kind && event.path == path {
            return;
        }
    }
}

#[tokio::test]
async fn watch_reports_create_modify_remove() {
    let envd = TestEnvd::start_with_root().await;
    let client = envd.connect().await;
    client.mkdir("/w", false).await.unwrap();
    let mut watch = client.watch("/w", true).await.unwrap();

    client.write("/w/new.txt", WriteOptions { append: true, ..WriteOptions::default() }, &b"1"[..]).await.unwrap();
    expect_event(&mut watch, WatchEventKind::Create, "/w/new.txt").await;
    std::fs::write(envd.root().join("w/new.txt"), b"changed").unwrap();
    expect_event(&mut watch, WatchEventKind::Modify, "/w/new.txt").await;

    client.mkdir("/w/sub", false).await.unwrap();
    expect_event(&mut watch, WatchEventKind::Create, "/w/sub").await;
    // Recursive: the new subdirectory is watched too.
    tokio::time::sleep(Duration::from_millis(100)).await;
    std::fs::write(envd.root().join("w/sub/inner"), b"x").unwrap();
    expect_event(&mut watch, WatchEventKind::Create, "/w/sub/inner").await;

    client.rename("/w/new.txt", "/w/renamed.txt").await.unwrap();
    expect_event(&mut watch, WatchEventKind::Rename, "/w/renamed.txt").await;
    client.remove("/w/renamed.txt", false).await.unwrap();
    expect_event(&mut watch, WatchEventKind::Remove, "/w/renamed.txt").await;

    // Dropping the watch cancels it; the connection keeps working.
    drop(watch);
    client.write("/w/after", WriteOptions::default(), &b"x"[..]).await.unwrap();
    assert_eq!(client.stat("/w/after").await.unwrap().size, 1);
    assert_eq!(code(client.watch("/nowhere", false).await), EnvdErrorCode::NotFound);
}
