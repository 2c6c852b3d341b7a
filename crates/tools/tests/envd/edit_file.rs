//! edit_file end to end through envd: the file on disk changes (atomically, keeping its mode and
//! line endings), the diff comes back, new files are created, refusals leave the file alone, and
//! symlinks are edited through.

use std::os::unix::fs::PermissionsExt;

use runtools_protocol::agent::ToolStatus;
use serde_json::json;

use crate::common::Fixture;

#[tokio::test]
async fn an_edit_changes_the_file_keeps_its_mode_and_returns_a_diff() {
    let fixture = Fixture::new().await;
    let path = fixture.write("run.sh", "#!/bin/sh\necho old\nexit 0\n");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o750)).unwrap();

    let output = fixture
        .call("edit_file", json!({"path": "run.sh", "old_string": "echo old", "new_string": "echo new\necho more"}))
        .await;
    assert_eq!(output.status, ToolStatus::Ok, "{}", output.content);
    assert_eq!(fixture.read("run.sh"), "#!/bin/sh\necho new\necho more\nexit 0\n");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o750);

    assert!(output.content.starts_with("Edited run.sh: replaced 1 occurrence.\n"), "{}", output.content);
    assert!(output.content.contains("     2\techo new\n     3\techo more\n"), "{}", output.content);
    let diff = output.diff.expect("a diff");
    assert!(diff.contains("--- run.sh\n+++ run.sh\n"), "{diff}");
    assert!(diff.contains("-echo old\n+echo new\n+echo more\n"), "{diff}");
    // No temp file is left beside it.
    let names: Vec<String> =
        std::fs::read_dir(fixture.dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert_eq!(names, ["run.sh"]);
}

#[tokio::test]
async fn a_fuzzy_match_is_applied_and_named() {
    let fixture = Fixture::new().await;
    fixture.write("a.py", "class A:\n    def f(self):\n        return 1\n");
    let output = fixture
        .call(
            "edit_file",
            json!({"path": "a.py", "old_string": "def f(self):\n    return 1", "new_string": "def f(self):\n    return 2"}),
        )
        .await;
    assert_eq!(output.status, ToolStatus::Ok, "{}", output.content);
    assert_eq!(fixture.read("a.py"), "class A:\n    def f(self):\n        return 2\n");
    assert!(output.content.contains("ignoring a difference in indentation"), "{}", output.content);
}

#[tokio::test]
async fn crlf_files_stay_crlf_on_disk() {
    let fixture = Fixture::new().await;
    fixture.write("win.txt", "one\r\ntwo\r\nthree\r\n");
    let output =
        fixture.call("edit_file", json!({"path": "win.txt", "old_string": "two\n", "new_string": "2\n2.5\n"})).await;
    assert_eq!(output.status, ToolStatus::Ok, "{}", output.content);
    assert_eq!(fixture.read("win.txt"), "one\r\n2\r\n2.5\r\nthree\r\n");
}

#[tokio::test]
async fn an_empty_old_string_creates_the_file_and_its_directories() {
    let fixture = Fixture::new().await;
    let output = fixture
        .call("edit_file", json!({"path": "new/dir/hello.py", "old_string": "", "new_string": "print('hi')\n"}))
        .await;
    assert_eq!(output.status, ToolStatus::Ok, "{}", output.content);
    assert_eq!(output.content, "Created new/dir/hello.py (1 line).");
    assert_eq!(fixture.read("new/dir/hello.py"), "print('hi')\n");
    assert!(output.diff.unwrap().contains("+print('hi')"));

    // Not over a file that has content.
    let output =
        fixture.call("edit_file", json!({"path": "new/dir/hello.py", "old_string": "", "new_string": "x"})).await;
    assert_eq!(output.status, ToolStatus::Error);
    assert!(output.content.contains("already exists and is not empty"), "{}", output.content);
    assert_eq!(fixture.read("new/dir/hello.py"), "print('hi')\n");
}

#[tokio::test]
async fn refusals_leave_the_file_untouched() {
    let fixture = Fixture::new().await;
    let original = "fn a() {\n    let total = compute(1, 2);\n}\n\nfn b() {\n    let total = compute(1, 2);\n}\n";
    fixture.write("lib.rs", original);

    let output = fixture
        .call("edit_file", json!({"path": "lib.rs", "old_string": "let total = compute(1, 2);", "new_string": "x"}))
        .await;
    assert_eq!(output.status, ToolStatus::Error);
    assert!(output.content.contains("matches 2 places in lib.rs (lines 2, 6)"), "{}", output.content);

    let output = fixture
        .call("edit_file", json!({"path": "lib.rs", "old_string": "let total = compute(1, 3);", "new_string": "x"}))
        .await;
    assert_eq!(output.status, ToolStatus::Error);
    assert!(output.content.contains("old_string was not found in lib.rs"), "{}", output.content);
    assert!(output.content.contains("Line 2 ("), "{}", output.content);
    assert!(output.content.contains("     2\t    let total = compute(1, 2);"), "{}", output.content);

    let output = fixture.call("edit_file", json!({"path": "lib.rs", "old_string": "a", "new_string": "a"})).await;
    assert!(output.content.contains("identical"), "{}", output.content);

    let output = fixture.call("edit_file", json!({"path": "gone.rs", "old_string": "a", "new_string": "b"})).await;
    assert!(output.content.starts_with("file not found:"), "{}", output.content);
    assert!(output.content.contains("empty old_string"), "{}", output.content);
    assert_eq!(fixture.read("lib.rs"), original);
    assert!(output.diff.is_none());

    // With replace_all, every occurrence changes.
    let output = fixture
        .call(
            "edit_file",
            json!({"path": "lib.rs", "old_string": "compute(1, 2)", "new_string": "compute(3, 4)", "replace_all": true}),
        )
        .await;
    assert_eq!(output.status, ToolStatus::Ok, "{}", output.content);
    assert!(output.content.starts_with("Edited lib.rs: replaced 2 occurrences."), "{}", output.content);
    assert_eq!(fixture.read("lib.rs"), original.replace("compute(1, 2)", "compute(3, 4)"));
}

#[tokio::test]
async fn symlinks_are_edited_through() {
    let fixture = Fixture::new().await;
    fixture.write("real/config.toml", "debug = false\n");
    std::os::unix::fs::symlink("real/config.toml", fixture.path("config.toml")).unwrap();
    let output =
        fixture.call("edit_file", json!({"path": "config.toml", "old_string": "false", "new_string": "true"})).await;
    assert_eq!(output.status, ToolStatus::Ok, "{}", output.content);
    assert!(std::fs::symlink_metadata(fixture.path("config.toml")).unwrap().file_type().is_symlink());
    assert_eq!(fixture.read("real/config.toml"), "debug = true\n");
}

#[tokio::test]
async fn binary_files_are_not_edited() {
    let fixture = Fixture::new().await;
    fixture.write("data.bin", b"abc\x00def");
    let output = fixture.call("edit_file", json!({"path": "data.bin", "old_string": "abc", "new_string": "x"})).await;
    assert_eq!(output.status, ToolStatus::Error);
    assert!(output.content.contains("binary file"), "{}", output.content);
}

#[tokio::test]
async fn with_a_user_files_keep_their_owner_and_new_ones_are_the_users() {
    use std::os::unix::fs::MetadataExt;
    if !std::fs::metadata("/proc/self").is_ok_and(|meta| meta.uid() == 0) {
        eprintln!("note: skipping: changing owners needs root");
        return;
    }
    let fixture = Fixture::with_context(|context| context.with_user("nobody")).await;
    let nobody = fixture.write("theirs.txt", "a\n");
    std::os::unix::fs::chown(&nobody, Some(65534), Some(65534)).unwrap();
    let root_owned = fixture.write("root.txt", "a\n");
    for path in ["theirs.txt", "root.txt"] {
        let output = fixture.call("edit_file", json!({"path": path, "old_string": "a", "new_string": "b"})).await;
        assert_eq!(output.status, ToolStatus::Ok, "{}", output.content);
    }
    assert_eq!(std::fs::metadata(&nobody).unwrap().uid(), 65534);
    assert_eq!(std::fs::metadata(&root_owned).unwrap().uid(), 0);

    let output = fixture.call("edit_file", json!({"path": "made/new.txt", "old_string": "", "new_string": "x"})).await;
    assert_eq!(output.status, ToolStatus::Ok, "{}", output.content);
    assert_eq!(std::fs::metadata(fixture.path("made")).unwrap().uid(), 65534);
    assert_eq!(std::fs::metadata(fixture.path("made/new.txt")).unwrap().uid(), 65534);
}
