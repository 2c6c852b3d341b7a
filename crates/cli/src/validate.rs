//! `runtools validate [DIR]`: loads a project's agents statically (nothing is executed) and
//! prints every problem at once as `path:line:col: message`, or a summary of the agents found.
//! Exits non-zero when there is any problem.

use std::path::PathBuf;

use anyhow::bail;
use runtools_agent::ModelRef;

use crate::output;

/// Check a project's files.
#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// The project directory [default: the current directory].
    dir: Option<PathBuf>,
}

pub fn run(args: &ValidateArgs, json: bool) -> anyhow::Result<()> {
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from("."));
    let project = match runtools_project::load_project(&dir, |name| std::env::var(name).ok()) {
        Ok(project) => project,
        Err(errors) => {
            eprintln!("{errors}");
            let count = errors.problems.len();
            bail!("{} has {count} problem{}", dir.display(), if count == 1 { "" } else { "s" });
        }
    };
    if json {
        return output::json(&project.agents);
    }
    let plural = if project.agents.len() == 1 { "" } else { "s" };
    println!("{}: {} agent{plural}, no problems\n", dir.display(), project.agents.len());
    let rows: Vec<Vec<String>> = project
        .agents
        .iter()
        .map(|agent| {
            let model = match &agent.model {
                ModelRef::Name(name) => name.clone(),
                ModelRef::Custom(custom) => format!("custom ({})", custom.endpoint),
            };
            vec![
                agent.slug.clone(),
                model,
                agent.template.clone(),
                agent.tools.join(", "),
                agent.source.display().to_string(),
            ]
        })
        .collect();
    output::table(&["SLUG", "MODEL", "TEMPLATE", "TOOLS", "FILE"], &rows);
    Ok(())
}
