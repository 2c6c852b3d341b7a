//! grep and glob through envd's in-process search over a fixture tree.

use std::time::{Duration, SystemTime};

use runtools_protocol::agent::ToolStatus;
use serde_json::json;

use crate::common::Fixture;

/// A small project: two Rust files, a Python file, a README, a hidden and an ignored file.
async fn project() -> Fixture {
    let fixture = Fixture::new().await;
    fixture.write("src/main.rs", "fn main() {\n    let value = helper();\n    println!(\"{value}\");\n}\n");
    fixture.write("src/lib.rs", "pub fn helper() -> u32 {\n    42\n}\n\npub fn Helper2() {}\n");
    fixture.write("tools/build.py", "def helper():\n    return 'HELPER'\n");
    fixture.write("README.md", "Call helper() from main.\n");
    fixture.write(".hidden/notes.txt", "helper\n");
    fixture.write(".gitignore", "target/\n");
    fixture.write("target/out.rs", "fn helper() {}\n");
    // Oldest to newest: README, lib.rs, build.py, main.rs.
    let now = SystemTime::now();
    for (age, path) in [(40, "README.md"), (30, "src/lib.rs"), (20, "tools/build.py"), (10, "src/main.rs")] {
        let file = std::fs::File::options().write(true).open(fixture.path(path)).unwrap();
        file.set_modified(now - Duration::from_secs(age)).unwrap();
    }
    fixture
}

#[tokio::test]
async fn grep_lists_matching_files_by_default() {
    let fixture = project().await;
    let output = fixture.call("grep", json!({"pattern": "helper"})).await;
    assert_eq!(output.status, ToolStatus::Ok, "{}", output.content);
    // Hidden and .gitignored files are skipped; paths are relative to the working directory.
    assert_eq!(output.content, "4 files with matches:\nREADME.md\nsrc/lib.rs\nsrc/main.rs\ntools/build.py\n");
}

#[tokio::test]
async fn grep_content_mode_reads_like_ripgrep() {
    let fixture = project().await;
    let output = fixture
        .call("grep", json!({"pattern": "helper\\(\\)", "output_mode": "content", "-C": 1, "type": "rust"}))
        .await;
    assert_eq!(output.status, ToolStatus::Ok, "{}", output.content);
    assert_eq!(
        output.content,
        "src/lib.rs:1:pub fn helper() -> u32 {\nsrc/lib.rs-2-    42\n\
         src/main.rs-1-fn main() {\nsrc/main.rs:2:    let value = helper();\nsrc/main.rs-3-    println!(\"{value}\");\n"
    );
    let output = fixture
        .call("grep", json!({"pattern": "HELPER", "-i": true, "output_mode": "content", "-n": false, "glob": "*.py"}))
        .await;
    assert_eq!(output.content, "tools/build.py:def helper():\ntools/build.py:    return 'HELPER'\n");
}

#[tokio::test]
async fn grep_counts_and_limits() {
    let fixture = project().await;
    let output = fixture.call("grep", json!({"pattern": "(?i)helper", "output_mode": "count", "path": "src"})).await;
    assert_eq!(output.content, "3 matching lines in 2 files:\nsrc/lib.rs:2\nsrc/main.rs:1\n");
    let output = fixture.call("grep", json!({"pattern": "helper", "head_limit": 1})).await;
    assert!(output.content.starts_with("1 files with matches:\nREADME.md\n"), "{}", output.content);
    assert!(output.content.contains("[Results stop at 1 files; more matches exist."), "{}", output.content);
}

#[tokio::test]
async fn grep_explains_no_matches_and_bad_patterns() {
    let fixture = project().await;
    let output = fixture.call("grep", json!({"pattern": "nowhere_to_be_found"})).await;
    assert_eq!(output.status, ToolStatus::Ok);
    assert!(output.content.starts_with("No matches for `nowhere_to_be_found` in "), "{}", output.content);
    let output = fixture.call("grep", json!({"pattern": "fn (", "path": "src"})).await;
    assert_eq!(output.status, ToolStatus::Error);
    assert!(output.content.starts_with("grep: "), "{}", output.content);
    let output = fixture.call("grep", json!({"pattern": "x", "path": "missing-dir"})).await;
    assert_eq!(output.status, ToolStatus::Error);
    assert!(output.content.ends_with("missing-dir does not exist"), "{}", output.content);
}

#[tokio::test]
async fn glob_lists_files_newest_first() {
    let fixture = project().await;
    let output = fixture.call("glob", json!({"pattern": "**/*.rs"})).await;
    assert_eq!(output.status, ToolStatus::Ok, "{}", output.content);
    assert_eq!(output.content, "src/main.rs\nsrc/lib.rs\n");
    let output = fixture.call("glob", json!({"pattern": "*", "path": "src"})).await;
    assert_eq!(output.content, "src/main.rs\nsrc/lib.rs\n");
    // An absolute pattern searches from its literal directory.
    let output = fixture.call("glob", json!({"pattern": format!("{}/tools/*.py", fixture.root())})).await;
    assert_eq!(output.content, "tools/build.py\n");
}

#[tokio::test]
async fn glob_says_when_nothing_matched() {
    let fixture = project().await;
    let output = fixture.call("glob", json!({"pattern": "*.rs"})).await;
    assert_eq!(output.status, ToolStatus::Ok);
    assert!(output.content.starts_with("No files match `*.rs` in "), "{}", output.content);
    assert!(output.content.contains("`**/*.rs`"), "{}", output.content);
}
