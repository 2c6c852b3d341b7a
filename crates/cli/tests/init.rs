//! `runtools init` and `runtools validate` end to end: the seed's project layout, nothing existing
//! replaced without `--force`, and a project's problems reported together with their positions.

#![allow(clippy::unwrap_used)]

use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_runtools");

fn init(args: &[&str], cwd: &std::path::Path) -> Output {
    Command::new(BIN).arg("init").args(args).current_dir(cwd).output().unwrap()
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

#[test]
fn init_scaffolds_the_seed_layout() {
    let temp = tempfile::tempdir().unwrap();
    let output = init(&["My Agents"], temp.path());
    assert!(output.status.success(), "{}", text(&output));
    let project = temp.path().join("My Agents");
    for file in [
        "runtools.config.ts",
        "agents/code-assistant.ts",
        "templates/README.md",
        "tools/README.md",
        "package.json",
        "tsconfig.json",
        "README.md",
        ".gitignore",
    ] {
        assert!(project.join(file).is_file(), "{file} is missing");
    }
    let agent = std::fs::read_to_string(project.join("agents/code-assistant.ts")).unwrap();
    assert!(agent.contains("export default defineAgent({"));
    assert!(agent.contains("slug: 'code-assistant',"));
    assert!(agent.contains("tools: ['bash', 'read_file', 'edit_file', 'grep', 'glob', 'web_search'],"));
    let package: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(project.join("package.json")).unwrap()).unwrap();
    assert_eq!(package["name"], "my-agents");
    assert!(std::fs::read_to_string(project.join("README.md")).unwrap().starts_with("# My Agents\n"));
}

#[test]
fn init_never_overwrites_without_force() {
    let temp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(temp.path().join("agents")).unwrap();
    std::fs::write(temp.path().join("agents/code-assistant.ts"), "// mine\n").unwrap();
    std::fs::write(temp.path().join("notes.txt"), "keep me\n").unwrap();

    let output = init(&[], temp.path());
    assert!(!output.status.success());
    assert!(text(&output).contains("agents/code-assistant.ts"), "{}", text(&output));
    assert!(text(&output).contains("--force"));
    assert_eq!(std::fs::read_to_string(temp.path().join("agents/code-assistant.ts")).unwrap(), "// mine\n");
    assert!(!temp.path().join("runtools.config.ts").exists(), "nothing was written");

    let output = init(&["--force"], temp.path());
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("agents/code-assistant.ts (replaced)"));
    assert!(std::fs::read_to_string(temp.path().join("agents/code-assistant.ts")).unwrap().contains("defineAgent"));
    assert!(temp.path().join("runtools.config.ts").is_file());
    assert_eq!(std::fs::read_to_string(temp.path().join("notes.txt")).unwrap(), "keep me\n", "other files stay");
}

#[test]
fn a_new_project_validates_and_problems_are_reported_with_positions() {
    let temp = tempfile::tempdir().unwrap();
    assert!(init(&["proj"], temp.path()).status.success());
    let project = temp.path().join("proj");
    let validate = || Command::new(BIN).arg("validate").arg(&project).output().unwrap();
    let output = validate();
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("1 agent, no problems"), "{}", text(&output));
    assert!(text(&output).contains("code-assistant"));

    std::fs::write(
        project.join("agents/broken.ts"),
        "import { defineAgent } from '@runtools/sdk';\nexport default defineAgent({\n  slug: 'other',\n  model: getModel(),\n  tools: ['bash', 'teleport'],\n});\n",
    )
    .unwrap();
    let output = validate();
    assert!(!output.status.success());
    let report = text(&output);
    assert!(report.contains("agents/broken.ts:4:10: cannot evaluate a function call"), "{report}");
    assert!(report.contains("agents/broken.ts:5:19: unknown tool `teleport`"), "{report}");
    assert!(report.contains("has 2 problems"), "{report}");
}
