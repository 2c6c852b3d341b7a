//! A project on disk: `runtools.config.ts` and every agent under `agents/`, loaded with
//! [`load_project`] and checked with [`Project::validate`].
//!
//! Agent layouts: `agents/<name>.{ts,mts,js,mjs}`, `agents/<name>/index.{ts,mts,js,mjs}` (the
//! other files of the directory are only read when imported) and `agents/<name>.toml`.
//! Directories without an index file are skipped: they may hold shared modules. Declaration
//! files (`.d.ts`) and other files are ignored.
//!
//! `process.env.NAME` is read through the lookup passed to [`load_project`]; an unset variable
//! is an error wherever it is used (including a custom model's `apiKey`): the definition must
//! be complete once loaded. Secrets that should not be resolved at load time belong in `env`
//! as `{ secret: 'NAME' }`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::agent::{
    AgentDefinition, AgentSpans, DEFAULT_TEMPLATE, KeyStyle, agent_from_node, check_fields, invalid_template,
    is_valid_template,
};
use crate::error::{Loc, Problem, ProjectErrors};
use crate::eval::{EnvLookup, Loader};
use crate::toml_agent::toml_to_node;
use crate::value::{Kind, Node};

/// The file names tried for the project configuration, in order.
const CONFIG_FILES: [&str; 4] =
    ["runtools.config.ts", "runtools.config.mts", "runtools.config.js", "runtools.config.mjs"];

/// Extensions of TypeScript/JavaScript agent files.
const SCRIPT_EXTENSIONS: [&str; 4] = ["ts", "mts", "js", "mjs"];

/// A loaded project.
#[derive(Debug, Clone, PartialEq)]
pub struct Project {
    /// The project directory, as given to [`load_project`].
    pub root: PathBuf,
    pub config: ProjectConfig,
    /// Every agent, in file-name order.
    pub agents: Vec<AgentDefinition>,
    /// Where each agent's checked fields were written, parallel to `agents`.
    spans: Vec<AgentSpans>,
}

/// The static part of `runtools.config.ts` (`export default defineConfig({...})` or
/// `export default {...}`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProjectConfig {
    /// The template of agents that name none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_template: Option<String>,
    /// `runtools dev` settings, kept as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<serde_json::Value>,
}

/// Loads the project in `dir`: its config and every agent, evaluated statically with
/// `process.env` read through `env`, then [validated](Project::validate). Every problem found
/// anywhere is returned together.
pub fn load_project(dir: impl AsRef<Path>, env: impl Fn(&str) -> Option<String>) -> Result<Project, ProjectErrors> {
    let root = dir.as_ref();
    if !root.is_dir() {
        return Err(ProjectErrors::new(vec![Problem::new(
            Loc::start_of(root),
            "not a project directory (it does not exist or is not a directory)",
        )]));
    }
    let env: EnvLookup<'_> = &env;
    let mut loader = Loader::new(root, env);
    let mut problems = Vec::new();

    let mut config = ProjectConfig::default();
    if let Some(path) = CONFIG_FILES.iter().map(|name| root.join(name)).find(|path| path.is_file())
        && let Some(node) = loader.load_entry(&path, "defineConfig", &mut problems)
    {
        config = config_from_node(&node, &mut problems).unwrap_or_default();
    }
    let default_template = config.default_template.clone().unwrap_or_else(|| DEFAULT_TEMPLATE.to_owned());

    let mut agents = Vec::new();
    let mut spans = Vec::new();
    for path in agent_files(&root.join("agents"), root, &mut problems) {
        let display = loader.display(&path);
        let is_toml = path.extension().is_some_and(|extension| extension == "toml");
        let node = if is_toml {
            match std::fs::read_to_string(&path) {
                Ok(source) => toml_to_node(&display, &source, &mut problems),
                Err(error) => {
                    problems.push(Problem::new(Loc::start_of(&display), format!("cannot read the file: {error}")));
                    None
                }
            }
        } else {
            loader.load_entry(&path, "defineAgent", &mut problems)
        };
        let style = if is_toml { KeyStyle::Snake } else { KeyStyle::Camel };
        if let Some((agent, agent_spans)) =
            node.and_then(|node| agent_from_node(&node, &display, style, &default_template, &mut problems))
        {
            agents.push(agent);
            spans.push(agent_spans);
        }
    }

    let project = Project { root: root.to_path_buf(), config, agents, spans };
    problems.extend(project.problems(false));
    if problems.is_empty() { Ok(project) } else { Err(ProjectErrors::new(problems)) }
}

/// The agent entry files under `agents/`, sorted by path.
fn agent_files(agents: &Path, root: &Path, problems: &mut Vec<Problem>) -> Vec<PathBuf> {
    let entries = match std::fs::read_dir(agents) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(error) => {
            let display = agents.strip_prefix(root).unwrap_or(agents);
            problems.push(Problem::new(Loc::start_of(display), format!("cannot list the agents: {error}")));
            return Vec::new();
        }
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|entry| entry.ok().map(|entry| entry.path())).collect();
    paths.sort();
    paths
        .into_iter()
        .filter_map(|path| {
            if path.is_dir() {
                return SCRIPT_EXTENSIONS
                    .iter()
                    .map(|extension| path.join(format!("index.{extension}")))
                    .find(|index| index.is_file());
            }
            let name = path.file_name()?.to_string_lossy().into_owned();
            let extension = path.extension()?.to_string_lossy().into_owned();
            let agent =
                extension == "toml" || (SCRIPT_EXTENSIONS.contains(&extension.as_str()) && !name.contains(".d."));
            agent.then_some(path)
        })
        .collect()
}

fn config_from_node(node: &Node, problems: &mut Vec<Problem>) -> Option<ProjectConfig> {
    let Kind::Object(properties) = &node.kind else {
        if !matches!(node.kind, Kind::Invalid) {
            problems.push(Problem::new(node.loc.clone(), "the config must be an object"));
        }
        return None;
    };
    let mut config = ProjectConfig::default();
    let mut valid = !node.has_invalid();
    for property in properties {
        match property.key.as_str() {
            "defaultTemplate" => match &property.value.kind {
                Kind::Str(template) if is_valid_template(template) => config.default_template = Some(template.clone()),
                Kind::Str(template) => {
                    problems.push(Problem::new(property.value.loc.clone(), invalid_template(template)));
                    valid = false;
                }
                Kind::Invalid => {}
                other => {
                    problems.push(Problem::new(
                        property.value.loc.clone(),
                        format!("`defaultTemplate` must be a string, not {}", other.describe()),
                    ));
                    valid = false;
                }
            },
            "dev" => config.dev = Some(property.value.to_json()),
            other => {
                problems.push(Problem::new(
                    property.key_loc.clone(),
                    format!("unknown key `{other}` in the config; supported keys: defaultTemplate, dev"),
                ));
                valid = false;
            }
        }
    }
    valid.then_some(config)
}

impl Project {
    /// Checks the agents together: duplicate slugs, unknown tools, unknown models or providers
    /// (a missing API key is not a problem here: keys are the server's business) and template
    /// names. [`load_project`] already runs this.
    pub fn validate(&self) -> Result<(), ProjectErrors> {
        let problems = self.problems(true);
        if problems.is_empty() { Ok(()) } else { Err(ProjectErrors::new(problems)) }
    }

    /// Duplicate slugs, and each agent's own checks when `with_fields` (loading runs those
    /// per agent, including agents with other problems).
    fn problems(&self, with_fields: bool) -> Vec<Problem> {
        let mut problems = Vec::new();
        let mut slugs: HashMap<&str, &Loc> = HashMap::new();
        for (agent, spans) in self.agents.iter().zip(&self.spans) {
            if let Some(first) = slugs.get(agent.slug.as_str()) {
                problems.push(Problem::new(
                    spans.slug.clone(),
                    format!("duplicate slug `{}`: already defined at {first}", agent.slug),
                ));
            } else {
                slugs.insert(&agent.slug, &spans.slug);
            }

            if with_fields {
                let servers = agent.mcp_server_names();
                check_fields(Some(&agent.model), Some(&agent.tools), &servers, &agent.template, spans, &mut problems);
            }
        }
        problems
    }
}
