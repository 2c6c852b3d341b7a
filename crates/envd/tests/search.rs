//! grep and glob through the real envd binary, confined to a temp root: output modes, regex
//! options, glob and type filters, ignore rules and their overrides, binary files, truncation,
//! errors, path escapes, newest-first globs, results split over many replies, and cancellation.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use common::TestEnvd;
use runtools_envd::frame::{Frame, read_frame, write_frame};
use runtools_envd::{ClientError, EnvdClient, GlobResults, GrepResults};
use runtools_protocol::envd::{
    Control, EnvdErrorCode, FrameKind, GlobSpec, GrepFile, GrepLine, GrepOutput, GrepSpec, Reply, Request,
};
use tokio::io::AsyncWriteExt;

fn write(root: &Path, relative: &str, contents: impl AsRef<[u8]>) {
    let path = root.join(relative);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, contents).unwrap();
}

/// A tree that is not a git repository but has a `.gitignore`, with hidden files, a binary file,
/// nested directories and several file types. Files containing `needle` (case-sensitive) that a
/// default search sees: Cargo.toml, scripts/run.py, src/lib.rs, src/main.rs,
/// src/nested/deep/mod.rs.
fn fixture(root: &Path) {
    write(root, "repo/.gitignore", "target/\n*.log\n");
    write(root, "repo/.hidden.txt", "needle, hidden\n");
    write(root, "repo/.config/settings.toml", "needle = true\n");
    write(root, "repo/Cargo.toml", "[package]\nname = \"needle\"\n");
    write(root, "repo/README.md", "# Needle\nThe NEEDLE is here.\nnothing\n");
    write(root, "repo/notes.log", "a needle in a log\n");
    write(
        root,
        "repo/src/main.rs",
        "fn main() {\n    // needle one\n    let x = 1;\n    let y = 2;\n    println!(\"needle two\");\n}\n",
    );
    write(root, "repo/src/lib.rs", "pub fn needle() {}\n");
    write(root, "repo/src/nested/deep/mod.rs", "// deep needle\n");
    write(root, "repo/src/nested/extra.toml", "key = 1\n");
    write(root, "repo/scripts/run.py", "print('needle')\n");
    write(root, "repo/target/debug/out.rs", "needle in target\n");
    write(root, "repo/data.bin", b"needle\x00\x01\x02 binary needle\n");
    write(root, "repo/special.txt", "a.b\naxb\n(lit\n");
    write(root, "repo/multi.txt", "start\nmiddle\nend\n");
}

async fn start() -> (TestEnvd, EnvdClient) {
    let envd = TestEnvd::start_with_root().await;
    fixture(envd.root());
    let client = envd.connect().await;
    (envd, client)
}

fn spec(pattern: &str, path: &str) -> GrepSpec {
    GrepSpec { pattern: pattern.into(), path: Some(path.into()), ..GrepSpec::default() }
}

fn paths(results: &GrepResults) -> Vec<&str> {
    results.files.iter().map(|file| file.path.as_str()).collect()
}

fn glob_paths(results: &GlobResults) -> Vec<&str> {
    results.matches.iter().map(|found| found.path.as_str()).collect()
}

fn code(result: Result<impl std::fmt::Debug, ClientError>) -> (EnvdErrorCode, String) {
    match result {
        Err(ClientError::Envd(error)) => (error.code, error.message),
        other => panic!("expected an envd error, got {other:?}"),
    }
}

const DEFAULT_MATCHES: [&str; 5] = [
    "/repo/Cargo.toml",
    "/repo/scripts/run.py",
    "/repo/src/lib.rs",
    "/repo/src/main.rs",
    "/repo/src/nested/deep/mod.rs",
];

fn line(line_number: u64, text: &str, context: bool) -> GrepLine {
    GrepLine { line_number, text: text.into(), context }
}

#[tokio::test]
async fn grep_files_mode_respects_gitignore_hidden_and_binary_files() {
    let (_envd, client) = start().await;
    let results = client.grep(spec("needle", "/repo")).await.unwrap();
    assert_eq!(paths(&results), DEFAULT_MATCHES);
    assert!(results.files.iter().all(|file| file.lines.is_empty()));
    assert_eq!(results.files.iter().find(|file| file.path == "/repo/src/main.rs").unwrap().matches, 2);
    assert!(!results.truncated);
    // Cargo.toml, README.md, data.bin, multi.txt, run.py, special.txt, extra.toml and the three
    // .rs files; not .gitignore and .hidden.txt (hidden), notes.log and target/ (ignored).
    assert_eq!(results.files_searched, 10);
}

#[tokio::test]
async fn grep_no_ignore_and_hidden_widen_the_search() {
    let (_envd, client) = start().await;
    let no_ignore = client.grep(GrepSpec { no_ignore: true, ..spec("needle", "/repo") }).await.unwrap();
    assert_eq!(
        paths(&no_ignore),
        [
            "/repo/Cargo.toml",
            "/repo/notes.log",
            "/repo/scripts/run.py",
            "/repo/src/lib.rs",
            "/repo/src/main.rs",
            "/repo/src/nested/deep/mod.rs",
            "/repo/target/debug/out.rs",
        ]
    );
    let hidden = client.grep(GrepSpec { hidden: true, ..spec("needle", "/repo") }).await.unwrap();
    assert_eq!(&paths(&hidden)[..2], ["/repo/.config/settings.toml", "/repo/.hidden.txt"]);
    assert_eq!(&paths(&hidden)[2..], DEFAULT_MATCHES);

    // The binary file is skipped even with everything else let in, and when named directly.
    let everything = client.grep(GrepSpec { hidden: true, no_ignore: true, ..spec("needle", "/repo") }).await.unwrap();
    assert_eq!(everything.files.len(), 9);
    assert!(!paths(&everything).contains(&"/repo/data.bin"));
    let binary = client.grep(spec("needle", "/repo/data.bin")).await.unwrap();
    assert!(binary.files.is_empty());
    assert_eq!(binary.files_searched, 1);
}

#[tokio::test]
async fn grep_content_mode_has_line_numbers_and_context() {
    let (envd, client) = start().await;
    let request = GrepSpec {
        output: GrepOutput::Content,
        before_context: 1,
        after_context: 1,
        ..spec("needle", "/repo/src/main.rs")
    };
    let results = client.grep(request).await.unwrap();
    assert_eq!(
        results.files,
        [GrepFile {
            path: "/repo/src/main.rs".into(),
            matches: 2,
            lines: vec![
                line(1, "fn main() {", true),
                line(2, "    // needle one", false),
                line(3, "    let x = 1;", true),
                line(4, "    let y = 2;", true),
                line(5, "    println!(\"needle two\");", false),
                line(6, "}", true),
            ],
        }]
    );

    // Without context only the matches; over a directory, grouped by file in walk order.
    let plain = client.grep(GrepSpec { output: GrepOutput::Content, ..spec("needle", "/repo/src") }).await.unwrap();
    let flat: Vec<(&str, u64, &str)> = plain
        .files
        .iter()
        .flat_map(|file| file.lines.iter().map(move |l| (file.path.as_str(), l.line_number, l.text.as_str())))
        .collect();
    assert_eq!(
        flat,
        [
            ("/repo/src/lib.rs", 1, "pub fn needle() {}"),
            ("/repo/src/main.rs", 2, "    // needle one"),
            ("/repo/src/main.rs", 5, "    println!(\"needle two\");"),
            ("/repo/src/nested/deep/mod.rs", 1, "// deep needle"),
        ]
    );

    // A very long line comes back cut, with a marker.
    write(envd.root(), "long/line.txt", format!("{}needle{}\n", "a".repeat(3_000), "b".repeat(3_000)));
    let long = client.grep(GrepSpec { output: GrepOutput::Content, ..spec("needle", "/long") }).await.unwrap();
    let text = &long.files[0].lines[0].text;
    assert!(text.starts_with(&"a".repeat(2_000)) && text.ends_with("[… line cut; 6006 bytes in all]"), "{text}");
    assert!(text.chars().count() < 2_100);
}

#[tokio::test]
async fn grep_count_mode_counts_matching_lines() {
    let (_envd, client) = start().await;
    let results = client.grep(GrepSpec { output: GrepOutput::Count, ..spec("needle", "/repo/src") }).await.unwrap();
    let counts: Vec<(&str, u64, bool)> =
        results.files.iter().map(|file| (file.path.as_str(), file.matches, file.lines.is_empty())).collect();
    assert_eq!(
        counts,
        [("/repo/src/lib.rs", 1, true), ("/repo/src/main.rs", 2, true), ("/repo/src/nested/deep/mod.rs", 1, true)]
    );
}

#[tokio::test]
async fn grep_case_fixed_strings_and_multiline() {
    let (_envd, client) = start().await;
    let content = |pattern: &str| GrepSpec { output: GrepOutput::Content, ..spec(pattern, "/repo") };

    let sensitive = client.grep(spec("NEEDLE", "/repo/README.md")).await.unwrap();
    assert_eq!(sensitive.files[0].matches, 1);
    let insensitive = client.grep(GrepSpec { case_insensitive: true, ..content("needle") }).await.unwrap();
    let readme = insensitive.files.iter().find(|file| file.path == "/repo/README.md").unwrap();
    assert_eq!(readme.lines, [line(1, "# Needle", false), line(2, "The NEEDLE is here.", false)]);

    let regex = client.grep(content("a.b")).await.unwrap();
    assert_eq!(regex.files[0].lines.iter().map(|l| l.text.as_str()).collect::<Vec<_>>(), ["a.b", "axb"]);
    let fixed = client.grep(GrepSpec { fixed_strings: true, ..content("a.b") }).await.unwrap();
    assert_eq!(fixed.files[0].lines, [line(1, "a.b", false)]);
    // `(lit` is not a valid regex, but is a fine literal.
    let literal = client.grep(GrepSpec { fixed_strings: true, ..content("(lit") }).await.unwrap();
    assert_eq!(literal.files[0].lines, [line(3, "(lit", false)]);

    // Across lines only in multiline mode, where `.` also matches a newline.
    assert!(client.grep(content("start.*end")).await.unwrap().files.is_empty());
    let multi = client.grep(GrepSpec { multiline: true, ..content("start.*end") }).await.unwrap();
    assert_eq!(multi.files.len(), 1);
    assert_eq!(multi.files[0].path, "/repo/multi.txt");
    assert_eq!(multi.files[0].matches, 3);
    assert_eq!(multi.files[0].lines, [line(1, "start", false), line(2, "middle", false), line(3, "end", false)]);
    let newline = client.grep(GrepSpec { multiline: true, ..content(r"middle\nend") }).await.unwrap();
    assert_eq!(newline.files[0].lines, [line(2, "middle", false), line(3, "end", false)]);
    // Line by line, a pattern that needs a newline cannot match and is refused.
    assert_eq!(code(client.grep(content(r"middle\nend")).await).0, EnvdErrorCode::InvalidRequest);
}

#[tokio::test]
async fn grep_glob_and_type_filters() {
    let (_envd, client) = start().await;
    let with = |globs: &[&str], file_types: &[&str]| GrepSpec {
        globs: globs.iter().map(|glob| (*glob).to_owned()).collect(),
        file_types: file_types.iter().map(|name| (*name).to_owned()).collect(),
        ..spec("needle", "/repo")
    };
    let rust_files = ["/repo/src/lib.rs", "/repo/src/main.rs", "/repo/src/nested/deep/mod.rs"];

    assert_eq!(paths(&client.grep(with(&["*.rs"], &[])).await.unwrap()), rust_files);
    assert_eq!(paths(&client.grep(with(&["!*.rs"], &[])).await.unwrap()), ["/repo/Cargo.toml", "/repo/scripts/run.py"]);
    assert_eq!(paths(&client.grep(with(&["*.rs", "!**/nested/**"], &[])).await.unwrap()), &rust_files[..2]);
    assert_eq!(paths(&client.grep(with(&[], &["rust"])).await.unwrap()), rust_files);
    assert_eq!(
        paths(&client.grep(with(&[], &["py", "toml"])).await.unwrap()),
        ["/repo/Cargo.toml", "/repo/scripts/run.py"]
    );

    let (error, message) = code(client.grep(with(&[], &["rust", "nosuchtype"])).await);
    assert_eq!(error, EnvdErrorCode::InvalidRequest);
    assert!(message.contains("nosuchtype"), "{message}");
    assert_eq!(code(client.grep(with(&["src/[z"], &[])).await).0, EnvdErrorCode::InvalidRequest);
}

#[tokio::test]
async fn grep_truncates_at_max_results() {
    let (_envd, client) = start().await;
    // Files mode counts files.
    let two = client.grep(GrepSpec { max_results: Some(2), ..spec("needle", "/repo") }).await.unwrap();
    assert_eq!(paths(&two), &DEFAULT_MATCHES[..2]);
    assert!(two.truncated);
    let exact = client.grep(GrepSpec { max_results: Some(5), ..spec("needle", "/repo") }).await.unwrap();
    assert_eq!(paths(&exact), DEFAULT_MATCHES);
    assert!(!exact.truncated);

    // Content mode counts lines; a file cut short still reports all its matches.
    let content = GrepSpec { output: GrepOutput::Content, max_results: Some(2), ..spec("needle", "/repo/src") };
    let cut = client.grep(content).await.unwrap();
    let lines: Vec<(&str, u64)> =
        cut.files.iter().flat_map(|file| file.lines.iter().map(move |l| (file.path.as_str(), l.line_number))).collect();
    assert_eq!(lines, [("/repo/src/lib.rs", 1), ("/repo/src/main.rs", 2)]);
    assert_eq!(cut.files[1].matches, 2);
    assert!(cut.truncated);
}

#[tokio::test]
async fn grep_errors_and_path_escapes() {
    let (envd, client) = start().await;
    let (error, message) = code(client.grep(spec("needle(", "/repo")).await);
    assert_eq!(error, EnvdErrorCode::InvalidRequest);
    assert!(message.contains("regex"), "{message}");
    assert_eq!(code(client.grep(spec("needle", "/nowhere")).await).0, EnvdErrorCode::NotFound);
    assert_eq!(code(client.grep(spec("needle", "/../..")).await).0, EnvdErrorCode::PathOutsideSandbox);
    assert_eq!(code(client.grep(spec("needle", "relative")).await).0, EnvdErrorCode::PathOutsideSandbox);

    // Symlinks out of the root lead nowhere: named directly they resolve inside the root (and
    // are missing there); met during the walk they are not followed.
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "needle outside\n").unwrap();
    std::os::unix::fs::symlink(outside.path(), envd.root().join("repo/src/escape")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret.txt"), envd.root().join("repo/src/secret.txt")).unwrap();
    assert_eq!(code(client.grep(spec("needle", "/repo/src/escape")).await).0, EnvdErrorCode::NotFound);
    assert_eq!(code(client.grep(spec("needle", "/repo/src/secret.txt")).await).0, EnvdErrorCode::NotFound);
    let walked = client.grep(GrepSpec { hidden: true, no_ignore: true, ..spec("needle", "/") }).await.unwrap();
    assert!(paths(&walked).iter().all(|path| !path.contains("escape") && !path.contains("secret")), "{walked:?}");
    assert!(paths(&walked).contains(&"/repo/src/main.rs"));
    let globbed = client.glob(GlobSpec { patterns: vec!["**/*.txt".into()], ..GlobSpec::default() }).await.unwrap();
    assert!(glob_paths(&globbed).iter().all(|path| !path.contains("secret")), "{globbed:?}");
    assert_eq!(
        code(
            client
                .glob(GlobSpec {
                    patterns: vec!["*".into()],
                    path: Some("/repo/src/escape".into()),
                    ..GlobSpec::default()
                })
                .await
        )
        .0,
        EnvdErrorCode::NotFound
    );
}

#[tokio::test]
async fn walks_skip_pseudo_filesystems_unless_searched_directly() {
    let (envd, client) = start().await;
    write(envd.root(), "proc/1/status", "needle in proc\n");
    write(envd.root(), "sys/kernel/x", "needle in sys\n");
    let everywhere = client.grep(spec("needle", "/")).await.unwrap();
    assert_eq!(paths(&everywhere), DEFAULT_MATCHES);
    let glob_everywhere = GlobSpec { patterns: vec!["**/status".into()], ..GlobSpec::default() };
    assert!(client.glob(glob_everywhere).await.unwrap().matches.is_empty());
    assert_eq!(paths(&client.grep(spec("needle", "/proc")).await.unwrap()), ["/proc/1/status"]);
}

fn set_modified(root: &Path, relative: &str, seconds_after_epoch: u64) {
    let file = std::fs::File::options().append(true).open(root.join(relative)).unwrap();
    file.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(seconds_after_epoch)).unwrap();
}

#[tokio::test]
async fn glob_matches_relative_paths_newest_first() {
    let (envd, client) = start().await;
    set_modified(envd.root(), "repo/src/main.rs", 1_700_000_300);
    set_modified(envd.root(), "repo/src/nested/deep/mod.rs", 1_700_000_200);
    set_modified(envd.root(), "repo/src/lib.rs", 1_700_000_100);
    let glob = |patterns: &[&str]| GlobSpec {
        patterns: patterns.iter().map(|pattern| (*pattern).to_owned()).collect(),
        path: Some("/repo".into()),
        ..GlobSpec::default()
    };

    let rust = client.glob(glob(&["**/*.rs"])).await.unwrap();
    assert_eq!(glob_paths(&rust), ["/repo/src/main.rs", "/repo/src/nested/deep/mod.rs", "/repo/src/lib.rs"]);
    assert_eq!(rust.matches[0].modified_ms, 1_700_000_300_000);
    assert_eq!(rust.matches[2].size, "pub fn needle() {}\n".len() as u64);
    assert!(!rust.truncated);

    // `*` does not cross `/`: only top-level files, or only files directly in `src`.
    assert_eq!(glob_paths(&client.glob(glob(&["*.toml"])).await.unwrap()), ["/repo/Cargo.toml"]);
    assert_eq!(glob_paths(&client.glob(glob(&["src/*.rs"])).await.unwrap()), ["/repo/src/main.rs", "/repo/src/lib.rs"]);
    let tomls = client.glob(glob(&["**/*.toml"])).await.unwrap();
    assert_eq!(tomls.matches.len(), 2);
    // Several patterns: a file matching any of them.
    assert_eq!(client.glob(glob(&["*.md", "scripts/*"])).await.unwrap().matches.len(), 2);

    let newest = client.glob(GlobSpec { max_results: Some(1), ..glob(&["**/*.rs"]) }).await.unwrap();
    assert_eq!(glob_paths(&newest), ["/repo/src/main.rs"]);
    assert!(newest.truncated);

    // The same ignore and hidden rules as grep.
    assert!(client.glob(glob(&["**/*.log"])).await.unwrap().matches.is_empty());
    assert_eq!(
        glob_paths(&client.glob(GlobSpec { no_ignore: true, ..glob(&["**/*.log"]) }).await.unwrap()),
        ["/repo/notes.log"]
    );
    assert!(client.glob(glob(&["**/settings.toml"])).await.unwrap().matches.is_empty());
    assert_eq!(
        glob_paths(&client.glob(GlobSpec { hidden: true, ..glob(&["**/settings.toml"]) }).await.unwrap()),
        ["/repo/.config/settings.toml"]
    );

    assert_eq!(code(client.glob(glob(&["src/[z"])).await).0, EnvdErrorCode::InvalidRequest);
    assert_eq!(code(client.glob(glob(&[])).await).0, EnvdErrorCode::InvalidRequest);
    let missing = GlobSpec { path: Some("/missing".into()), ..glob(&["*"]) };
    assert_eq!(code(client.glob(missing).await).0, EnvdErrorCode::NotFound);
}

#[tokio::test]
async fn large_results_arrive_whole_over_many_replies() {
    let envd = TestEnvd::start_with_root().await;
    let client = envd.connect().await;
    // 300 files × 20 lines of ~1 KiB, then one file of 3,000 lines of ~1.5 KiB: ~6 MiB and
    // ~4.5 MiB of results, each many times what one reply may carry.
    let line = format!("needle {}\n", "x".repeat(1_000));
    for index in 0..300 {
        write(envd.root(), &format!("big/many/{index:03}.txt"), line.repeat(20));
    }
    write(envd.root(), "big/one/huge.txt", format!("needle {}\n", "y".repeat(1_500)).repeat(3_000));

    let request = GrepSpec { output: GrepOutput::Content, max_results: Some(100_000), ..spec("needle", "/big") };
    let results = client.grep(request).await.unwrap();
    assert!(!results.truncated);
    assert_eq!(results.files_searched, 301);
    assert_eq!(results.files.len(), 301);
    for (index, file) in results.files[..300].iter().enumerate() {
        assert_eq!(file.path, format!("/big/many/{index:03}.txt"));
        assert_eq!((file.matches, file.lines.len()), (20, 20));
    }
    let huge = &results.files[300];
    assert_eq!(huge.path, "/big/one/huge.txt");
    assert_eq!((huge.matches, huge.lines.len()), (3_000, 3_000));
    assert!(huge.lines.iter().zip(1..).all(|(line, number)| line.line_number == number && !line.context));

    // Globs too: 5,000 long paths are ~1.5 MiB of matches.
    let long_name = "n".repeat(200);
    for index in 0..5_000 {
        std::fs::write(envd.root().join(format!("big/many/{long_name}{index:04}.dat")), b"").unwrap();
    }
    let glob = GlobSpec {
        patterns: vec!["**/*.dat".into()],
        path: Some("/big".into()),
        max_results: Some(10_000),
        ..GlobSpec::default()
    };
    let globbed = client.glob(glob).await.unwrap();
    assert_eq!(globbed.matches.len(), 5_000);
    assert!(!globbed.truncated);
}

/// User and system CPU time envd has used, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may contain spaces) start with the state.
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// A directory of `links` hard links to one 1 MiB file without a match: gigabytes to search,
/// seconds of work even for a release build, made in a moment.
fn haystack(root: &Path, links: usize) {
    write(root, "hay/00000.txt", "hay and more hay\n".repeat(64 * 1024));
    for index in 1..links {
        std::fs::hard_link(root.join("hay/00000.txt"), root.join(format!("hay/{index:05}.txt"))).unwrap();
    }
}

/// Waits a moment, then asserts envd used (almost) no CPU meanwhile.
async fn assert_idle(pid: u32, what: &str) {
    let before = cpu_ticks(pid);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let used = cpu_ticks(pid) - before;
    assert!(used < 10, "envd kept using CPU after {what}: {used} ticks in 0.5 s");
}

fn grep_hay() -> Request {
    Request::Grep(GrepSpec { pattern: r"\w+needle\d".into(), path: Some("/hay".into()), ..GrepSpec::default() })
}

#[tokio::test]
async fn cancelling_a_grep_stops_the_walk() {
    let envd = TestEnvd::start_with_root().await;
    haystack(envd.root(), 4_000);
    let mut connection = envd.raw_connection().await;
    write_frame(&mut connection, &Frame::json(1, FrameKind::Open, &grep_hay()).unwrap()).await.unwrap();
    connection.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    write_frame(&mut connection, &Frame::json(1, FrameKind::Control, &Control::Cancel).unwrap()).await.unwrap();
    connection.flush().await.unwrap();

    let cancelled = Instant::now();
    let frame =
        tokio::time::timeout(Duration::from_secs(5), read_frame(&mut connection)).await.unwrap().unwrap().unwrap();
    // No final batch (the walk was still going): the stream just closes, promptly.
    assert_eq!(frame.kind, FrameKind::Close, "{frame:?}");
    assert!(cancelled.elapsed() < Duration::from_secs(1), "{:?}", cancelled.elapsed());
    assert_idle(envd.pid(), "a cancel").await;

    // The connection keeps working.
    write_frame(&mut connection, &Frame::json(2, FrameKind::Open, &Request::Ping).unwrap()).await.unwrap();
    connection.flush().await.unwrap();
    let frame = read_frame(&mut connection).await.unwrap().unwrap();
    let reply: Reply = serde_json::from_slice(&frame.payload).unwrap();
    assert!(matches!(reply, Reply::Pong { .. }), "{reply:?}");

    // Closing the connection mid-search stops the walk too.
    let mut doomed = envd.raw_connection().await;
    write_frame(&mut doomed, &Frame::json(1, FrameKind::Open, &grep_hay()).unwrap()).await.unwrap();
    doomed.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(doomed);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_idle(envd.pid(), "its connection closed").await;
}
