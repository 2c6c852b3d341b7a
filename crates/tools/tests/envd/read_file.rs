//! read_file through envd: numbering, offset and limit, long lines, binary and directory refusals,
//! missing and empty files, relative paths.

use runtools_protocol::agent::ToolStatus;
use serde_json::json;

use crate::common::Fixture;

#[tokio::test]
async fn lines_are_numbered_like_cat_n() {
    let fixture = Fixture::new().await;
    let path = fixture.write("notes.txt", "first\n\tindented\r\nlast");
    let output = fixture.call("read_file", json!({"path": path})).await;
    assert_eq!(output.status, ToolStatus::Ok, "{}", output.content);
    assert_eq!(output.content, "     1\tfirst\n     2\t\tindented\n     3\tlast\n");
}

#[tokio::test]
async fn relative_paths_resolve_against_the_working_directory() {
    let fixture = Fixture::new().await;
    fixture.write("src/lib.rs", "pub fn a() {}\n");
    for path in ["src/lib.rs", "./src/lib.rs"] {
        let output = fixture.call("read_file", json!({"path": path})).await;
        assert_eq!(output.content, "     1\tpub fn a() {}\n", "{path}");
    }
}

#[tokio::test]
async fn offset_and_limit_pick_a_window_and_say_how_to_read_on() {
    let fixture = Fixture::new().await;
    let text: String = (1..=3000).map(|n| format!("line {n}\n")).collect();
    let path = fixture.write("big.txt", &text);

    let output = fixture.call("read_file", json!({"path": path, "offset": 1000, "limit": 3})).await;
    assert_eq!(output.status, ToolStatus::Ok);
    assert!(
        output.content.starts_with("  1000\tline 1000\n  1001\tline 1001\n  1002\tline 1002\n"),
        "{}",
        output.content
    );
    assert!(!output.content.contains("line 1003"), "{}", output.content);
    assert!(output.content.contains("Showing lines 1,000-1,002"), "{}", output.content);
    assert!(output.content.contains("Read on with offset=1003"), "{}", output.content);

    // The default limit is 2,000 lines.
    let output = fixture.call("read_file", json!({"path": path})).await;
    assert!(output.content.contains("  2000\tline 2000\n"));
    assert!(!output.content.contains("line 2001\n"));
    assert!(output.content.contains("Read on with offset=2001"), "{}", output.content);

    // The last window has no note.
    let output = fixture.call("read_file", json!({"path": path, "offset": 2999})).await;
    assert_eq!(output.content, "  2999\tline 2999\n  3000\tline 3000\n");

    let output = fixture.call("read_file", json!({"path": path, "offset": 5000})).await;
    assert_eq!(output.status, ToolStatus::Error);
    assert!(output.content.contains("has 3,000 lines; offset 5,000 is past its end"), "{}", output.content);
}

#[tokio::test]
async fn long_lines_are_cut() {
    let fixture = Fixture::new().await;
    let path = fixture.write("min.js", format!("{}\nshort\n", "x".repeat(50_000)));
    let output = fixture.call("read_file", json!({"path": path})).await;
    let first = output.content.lines().next().unwrap();
    assert!(first.ends_with("… [line cut: 50,000 bytes in all]"), "{}", &first[first.len() - 60..]);
    assert!(first.len() < 2_100);
    assert_eq!(output.content.lines().nth(1), Some("     2\tshort"));
}

#[tokio::test]
async fn binary_files_are_refused_with_their_size_and_type() {
    let fixture = Fixture::new().await;
    let mut png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR".to_vec();
    png.resize(12_345, 0);
    let path = fixture.write("logo.png", &png);
    let output = fixture.call("read_file", json!({"path": path})).await;
    assert_eq!(output.status, ToolStatus::Error);
    assert!(output.content.contains("is a binary file (PNG image, 12,345 bytes)"), "{}", output.content);

    let path = fixture.write("blob.bin", [0u8, 1, 2, 3, 255, 0, 7]);
    let output = fixture.call("read_file", json!({"path": path})).await;
    assert!(output.content.contains("binary file (binary data, 7 bytes)"), "{}", output.content);
}

#[tokio::test]
async fn missing_files_directories_and_empty_files_are_explained() {
    let fixture = Fixture::new().await;
    let missing = format!("{}/nope.txt", fixture.root());
    let output = fixture.call("read_file", json!({"path": missing})).await;
    assert_eq!(output.status, ToolStatus::Error);
    assert_eq!(output.content, format!("file not found: {missing}"));

    std::fs::create_dir(fixture.path("dir")).unwrap();
    let output = fixture.call("read_file", json!({"path": "dir"})).await;
    assert_eq!(output.status, ToolStatus::Error);
    assert!(output.content.contains("is a directory, not a file"), "{}", output.content);
    assert!(output.content.contains("use glob"), "{}", output.content);

    let path = fixture.write("empty.txt", "");
    let output = fixture.call("read_file", json!({"path": path})).await;
    assert_eq!(output.status, ToolStatus::Ok);
    assert_eq!(output.content, format!("{path} is empty (0 bytes)."));
}

#[tokio::test]
async fn invalid_input_is_an_error() {
    let fixture = Fixture::new().await;
    let output = fixture.call("read_file", json!({"file": "x"})).await;
    assert_eq!(output.status, ToolStatus::Error);
    assert!(output.content.contains("invalid input for read_file"), "{}", output.content);
    let output = fixture.call("read_file", json!({"path": "x", "limit": 0})).await;
    assert!(output.content.contains("`limit` must be at least 1"), "{}", output.content);
}
