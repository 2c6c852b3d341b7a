//! edit_file's matching, case by case: exact and fuzzy matches, the refusals, the closest regions
//! when nothing matches, line endings, file creation and re-indentation; and the answer texts.

use super::candidates::closest_regions;
use super::matcher::{EditError, LineEndings, Stage, edit_text};
use super::{refusal, summary};

/// What a case expects.
#[derive(Debug)]
enum Expect {
    /// The new content, and the stage that found the match.
    Edited(&'static str, Stage),
    Ambiguous(Stage, &'static [usize]),
    NotFound,
}

struct Case {
    name: &'static str,
    content: &'static str,
    old: &'static str,
    new: &'static str,
    replace_all: bool,
    expect: Expect,
}

const fn case(name: &'static str, content: &'static str, old: &'static str, new: &'static str, expect: Expect) -> Case {
    Case { name, content, old, new, replace_all: false, expect }
}

const CASES: &[Case] = &[
    case("exact unique", "a\nb\nc\n", "b\n", "B\n", Expect::Edited("a\nB\nc\n", Stage::Exact)),
    case("exact within a line", "let x = 1;\n", "x = 1", "x = 2", Expect::Edited("let x = 2;\n", Stage::Exact)),
    case("exact ambiguous is refused", "x\ny\nx\n", "x", "z", Expect::Ambiguous(Stage::Exact, &[1, 3])),
    Case {
        name: "replace_all replaces every exact occurrence",
        content: "x\ny\nx\n",
        old: "x",
        new: "z",
        replace_all: true,
        expect: Expect::Edited("z\ny\nz\n", Stage::Exact),
    },
    case(
        "trailing whitespace ignored",
        "fn a() {   \n    body();\t\n}\n",
        "fn a() {\n    body();\n}",
        "fn a() {\n    other();\n}",
        Expect::Edited("fn a() {\n    other();\n}\n", Stage::TrailingWhitespace),
    ),
    case(
        "trailing whitespace: ambiguous is refused",
        "x  \ny\nx \n",
        "x\n",
        "z\n",
        Expect::Ambiguous(Stage::TrailingWhitespace, &[1, 3]),
    ),
    case(
        "indentation: block shifted as a whole, new_string re-indented",
        "impl A {\n        fn f() {\n            g();\n        }\n}\n",
        "fn f() {\n    g();\n}",
        "fn f() {\n    h();\n    i();\n}",
        Expect::Edited(
            "impl A {\n        fn f() {\n            h();\n            i();\n        }\n}\n",
            Stage::Indentation,
        ),
    ),
    case(
        "indentation: tabs in the file, spaces from the model",
        "if x {\n\tif y {\n\t\tz();\n\t}\n}\n",
        "    if y {\n        z();\n    }\n",
        "    if y {\n        w();\n    }\n",
        Expect::Edited("if x {\n\tif y {\n\t\tw();\n\t}\n}\n", Stage::TrimmedLines),
    ),
    case(
        "indentation: ambiguous is refused",
        "  a();\n  b();\n    a();\n    b();\n",
        "a();\nb();",
        "c();",
        Expect::Ambiguous(Stage::Indentation, &[1, 3]),
    ),
    case(
        "trimmed lines: irregular indentation",
        "def f():\n    if x:\n        return 1\n",
        "if x:\n  return 1",
        "if x:\n  return 2",
        Expect::Edited("def f():\n    if x:\n        return 2\n", Stage::TrimmedLines),
    ),
    case(
        "trimmed lines: ambiguous is refused",
        "  a\n    b\n\n      a\n  b\n",
        " a\n b",
        "c",
        Expect::Ambiguous(Stage::TrimmedLines, &[1, 4]),
    ),
    case(
        "unicode punctuation in old_string, ASCII in the file",
        "say(\"it's -- done...\");\n",
        "say(\u{201c}it\u{2019}s \u{2013}\u{2014} done\u{2026}\u{201d});",
        "say(\u{201c}it\u{2019}s done\u{201d});",
        Expect::Edited("say(\"it's done\");\n", Stage::UnicodePunctuation),
    ),
    case(
        "unicode punctuation in the file, ASCII in old_string",
        "title = \u{201c}Caf\u{e9}\u{a0}au lait\u{201d}\n",
        "title = \"Caf\u{e9} au lait\"",
        "title = \"Tea\"",
        Expect::Edited("title = \"Tea\"\n", Stage::UnicodePunctuation),
    ),
    case(
        "unicode punctuation: ambiguous is refused",
        "a = 'x'\nb = 'x'\n",
        "\u{2018}x\u{2019}",
        "'y'",
        Expect::Ambiguous(Stage::UnicodePunctuation, &[1, 2]),
    ),
    case("not found", "alpha\nbeta\n", "gamma", "delta", Expect::NotFound),
    case(
        "old_string ending in a line break matches the last line without one",
        "a\nb",
        "b  \n",
        "c\n",
        Expect::Edited("a\nc", Stage::TrailingWhitespace),
    ),
    case("deleting text", "keep\ndrop\nkeep\n", "drop\n", "", Expect::Edited("keep\nkeep\n", Stage::Exact)),
];

#[test]
fn matching_cases() {
    for case in CASES {
        let result = edit_text(case.content, case.old, case.new, case.replace_all);
        match (&case.expect, result) {
            (Expect::Edited(content, stage), Ok(edit)) => {
                assert_eq!(edit.content, *content, "{}", case.name);
                assert_eq!(edit.stage, *stage, "{}", case.name);
            }
            (Expect::Ambiguous(stage, lines), Err(EditError::Ambiguous { stage: got, lines: got_lines })) => {
                assert_eq!((got, got_lines.as_slice()), (*stage, *lines), "{}", case.name);
            }
            (Expect::NotFound, Err(EditError::NotFound { .. })) => {}
            (expect, got) => panic!("{}: expected {expect:?}, got {got:?}", case.name),
        }
    }
}

#[test]
fn identical_strings_are_refused() {
    assert_eq!(edit_text("a", "a", "a", false), Err(EditError::Identical));
}

#[test]
fn replace_all_does_not_widen_a_fuzzy_match() {
    // Two places match after ignoring trailing whitespace: still ambiguous, even with replace_all.
    let result = edit_text("x  \nx \n", "x\n", "y\n", true);
    assert_eq!(result, Err(EditError::Ambiguous { stage: Stage::TrailingWhitespace, lines: vec![1, 2] }));
}

#[test]
fn crlf_files_stay_crlf() {
    assert_eq!(LineEndings::detect("a\r\nb\r\n"), LineEndings::Crlf);
    assert_eq!(LineEndings::detect("a\nb\r\n"), LineEndings::Mixed);
    assert_eq!(LineEndings::detect("a\nb"), LineEndings::Lf);
    // The model sends LF; the file keeps its CRLF everywhere, including in the new lines.
    let edit = edit_text("one\r\ntwo\r\nthree\r\n", "two\nthree", "2\n3\n3.5", false).unwrap();
    assert_eq!(edit.content, "one\r\n2\r\n3\r\n3.5\r\n");
    assert_eq!(edit.stage, Stage::Exact);
    assert_eq!(edit.regions, vec![(2, 4)]);
    // A CRLF old_string in an LF file matches too, and the file stays LF.
    let edit = edit_text("one\ntwo\n", "one\r\ntwo", "1\r\n2", false).unwrap();
    assert_eq!(edit.content, "1\n2\n");
}

#[test]
fn an_empty_old_string_creates_a_file() {
    let edit = edit_text("", "", "fn main() {}\n", false).unwrap();
    assert_eq!(edit.content, "fn main() {}\n");
    assert_eq!(edit.stage, Stage::Create);
    assert_eq!(edit_text("existing\n", "", "x", false), Err(EditError::FileNotEmpty));
}

#[test]
fn re_indentation_keeps_the_new_blocks_shape() {
    let content = "class A:\n    def f(self):\n        return 1\n";
    let old = "def f(self):\n    return 1\n";
    let new = "def f(self):\n    if self.x:\n        return 2\n\n    return 1\n";
    let edit = edit_text(content, old, new, false).unwrap();
    assert_eq!(edit.stage, Stage::Indentation);
    assert_eq!(
        edit.content,
        "class A:\n    def f(self):\n        if self.x:\n            return 2\n\n        return 1\n"
    );
    assert_eq!(edit.regions, vec![(2, 6)]);
}

#[test]
fn regions_are_where_the_new_text_is() {
    let edit = edit_text("a\nx\nb\nx\nc\n", "x", "y\nz", true).unwrap();
    assert_eq!(edit.content, "a\ny\nz\nb\ny\nz\nc\n");
    assert_eq!(edit.regions, vec![(2, 3), (5, 6)]);
}

#[test]
fn not_found_offers_the_closest_regions_with_line_numbers() {
    let content = "fn alpha() {\n    let total = compute(1, 2);\n    println!(\"{total}\");\n}\n\nfn beta() {\n    \
                   let count = 3;\n}\n\nfn gamma() {\n    let total = compute(1, 3);\n    println!(\"{}\", total);\n}\n";
    let old = "    let total = compute(1, 4);\n    println!(\"{total}\");\n";
    let Err(EditError::NotFound { candidates, has_line_numbers }) = edit_text(content, old, "x", false) else {
        panic!("expected not found");
    };
    assert!(!has_line_numbers);
    let places: Vec<(usize, usize)> = candidates.iter().map(|c| (c.first_line, c.last_line)).collect();
    assert_eq!(places, vec![(2, 3), (11, 12)]);
    assert!(candidates[0].similarity > candidates[1].similarity);
    assert!(candidates[0].similarity > 0.9);

    let answer = refusal(&EditError::NotFound { candidates, has_line_numbers }, "src/lib.rs", content);
    assert!(answer.content.starts_with("old_string was not found in src/lib.rs"), "{}", answer.content);
    assert!(answer.content.contains("Lines 2-3 ("), "{}", answer.content);
    assert!(answer.content.contains("     2\t    let total = compute(1, 2);\n"), "{}", answer.content);
    assert!(answer.content.contains("Lines 11-12 ("), "{}", answer.content);
}

#[test]
fn nothing_similar_means_no_candidates() {
    assert!(closest_regions("aaaa\nbbbb\n", "zzzz qqqq").is_empty());
    assert!(closest_regions("", "x").is_empty());
}

#[test]
fn copied_line_numbers_are_pointed_out() {
    let old = "    12\tlet x = 1;\n    13\tlet y = 2;\n";
    let Err(error) = edit_text("let x = 1;\nlet y = 2;\n", old, "z", false) else { panic!("expected an error") };
    assert!(matches!(error, EditError::NotFound { has_line_numbers: true, .. }), "{error:?}");
    let answer = refusal(&error, "a.rs", "");
    assert!(answer.content.contains("line-number prefixes"), "{}", answer.content);
}

#[test]
fn ambiguity_is_explained_with_line_numbers() {
    let answer = refusal(&EditError::Ambiguous { stage: Stage::Exact, lines: vec![4, 10, 22] }, "a.rs", "");
    assert!(answer.content.contains("matches 3 places in a.rs (lines 4, 10, 22)"), "{}", answer.content);
    assert!(answer.content.contains("replace_all"), "{}", answer.content);
    let answer = refusal(&EditError::Ambiguous { stage: Stage::TrimmedLines, lines: vec![1, 2] }, "a.rs", "");
    assert!(answer.content.contains("After ignoring whitespace at the start and end of each line it matches 2 places"));
}

#[test]
fn the_answer_shows_the_edited_lines_and_the_stage() {
    let content: String = (1..=20).map(|n| format!("line {n}\n")).collect();
    let edit = edit_text(&content, "line 10  \n", "line ten\n", false);
    // No such trailing whitespace in the file: that is the model's, and stage 1 forgives it.
    let edit = edit.unwrap();
    assert_eq!(edit.stage, Stage::TrailingWhitespace);
    let text = summary("notes.txt", &edit, &edit.content);
    assert!(text.starts_with("Edited notes.txt: replaced 1 occurrence. old_string did not match exactly"), "{text}");
    assert!(text.contains("     7\tline 7\n"), "{text}");
    assert!(text.contains("    10\tline ten\n"), "{text}");
    assert!(text.contains("    13\tline 13\n"), "{text}");
    assert!(!text.contains("line 14"), "{text}");
}

#[test]
fn irregular_indentation_follows_the_lines_it_matched() {
    // The model's old_string has the two lines 2 apart; the file has them 4 apart (8 and 4).
    let content = "def f():\n        a = 1\n    return a\n";
    let edit = edit_text(content, "  a = 1\nreturn a", "  a = 2\nreturn a", false).unwrap();
    assert_eq!(edit.stage, Stage::TrimmedLines);
    assert_eq!(edit.content, "def f():\n        a = 2\n    return a\n");
}
