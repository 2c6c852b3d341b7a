//! `runtools init [DIR]`: scaffolds a project in the seed's layout — `runtools.config.ts`,
//! `agents/code-assistant.ts` (a `defineAgent` with the default tools), `templates/`, `tools/`,
//! `package.json`, `tsconfig.json`, a README and a `.gitignore`. The files live in
//! `crates/cli/scaffold/` and are compiled in. Nothing that exists is overwritten without
//! `--force`; without it, every file that would be replaced is named and nothing is written.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// Scaffold a new project.
#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// Where to create the project (created if missing) [default: the current directory].
    dir: Option<PathBuf>,
    /// Replace files of the scaffold that already exist.
    #[arg(long)]
    force: bool,
}

/// `(path in the project, contents)`; `{{name}}` and `{{package}}` are filled in.
const FILES: &[(&str, &str)] = &[
    ("runtools.config.ts", include_str!("../scaffold/runtools.config.ts")),
    ("agents/code-assistant.ts", include_str!("../scaffold/agents/code-assistant.ts")),
    ("templates/README.md", include_str!("../scaffold/templates/README.md")),
    ("tools/README.md", include_str!("../scaffold/tools/README.md")),
    ("package.json", include_str!("../scaffold/package.json")),
    ("tsconfig.json", include_str!("../scaffold/tsconfig.json")),
    ("README.md", include_str!("../scaffold/README.md")),
    (".gitignore", include_str!("../scaffold/gitignore")),
];

pub fn run(args: &InitArgs) -> anyhow::Result<()> {
    let dir = match &args.dir {
        Some(dir) => dir.clone(),
        None => std::env::current_dir().context("cannot read the current directory")?,
    };
    let name = project_name(&dir)?;
    let existing: Vec<&str> = FILES.iter().map(|(path, _)| *path).filter(|path| dir.join(path).exists()).collect();
    if !existing.is_empty() && !args.force {
        bail!(
            "{} already has {}; nothing was written (use --force to replace them)",
            dir.display(),
            existing.join(", ")
        );
    }
    for (path, contents) in FILES {
        let target = dir.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
        }
        let contents = contents.replace("{{name}}", &name).replace("{{package}}", &package_name(&name));
        std::fs::write(&target, contents).with_context(|| format!("cannot write {}", target.display()))?;
    }
    println!("Created a RunTools project in {}:", dir.display());
    for (path, _) in FILES {
        let note = if existing.contains(path) { " (replaced)" } else { "" };
        println!("  {path}{note}");
    }
    println!("\nYour first agent is agents/code-assistant.ts.");
    Ok(())
}

/// The project's name: its directory's name.
fn project_name(dir: &Path) -> anyhow::Result<String> {
    let absolute = if dir.is_absolute() { dir.to_path_buf() } else { std::env::current_dir()?.join(dir) };
    let name = absolute
        .components()
        .rev()
        .find_map(|part| match part {
            std::path::Component::Normal(name) => Some(name.to_string_lossy().into_owned()),
            _ => None,
        })
        .unwrap_or_else(|| "runtools-project".to_owned());
    Ok(name)
}

/// An npm package name from a directory name: lower case, with anything npm does not allow
/// replaced by `-`.
fn package_name(name: &str) -> String {
    let cleaned: String = name
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '-' })
        .collect();
    let trimmed = cleaned.trim_matches(|c| matches!(c, '-' | '_' | '.'));
    if trimmed.is_empty() { "runtools-project".to_owned() } else { trimmed.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_names_are_what_npm_accepts() {
        assert_eq!(package_name("My Agents!"), "my-agents");
        assert_eq!(package_name("..."), "runtools-project");
        assert_eq!(package_name("data_lab.v2"), "data_lab.v2");
    }
}
