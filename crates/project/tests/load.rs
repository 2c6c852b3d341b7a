//! End-to-end tests of `load_project`: fixture projects written to temporary directories,
//! agents compared field by field, problems compared as rendered `path:line:col: message`.

#![allow(clippy::unwrap_used)] // test helpers: a failed step should panic with its location

use std::collections::BTreeMap;

use runtools_agent::{CustomModel, ModelRef};
use runtools_project::{AgentDefinition, BUILTIN_TOOLS, Budget, EnvValue, Project, ProjectErrors, load_project};

/// Writes `files` into a fresh project directory and loads it with `MY_MODEL_KEY` set.
fn load(files: &[(&str, &str)]) -> Result<Project, ProjectErrors> {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let env = |name: &str| (name == "MY_MODEL_KEY").then(|| "sk-test-123".to_owned());
    load_project(dir.path(), env)
}

fn only_agent(files: &[(&str, &str)]) -> AgentDefinition {
    let project = load(files).unwrap_or_else(|errors| panic!("unexpected problems:\n{errors}"));
    assert_eq!(project.agents.len(), 1);
    project.agents.into_iter().next().unwrap()
}

/// The rendered problems of a project that must fail to load.
fn problems(files: &[(&str, &str)]) -> String {
    match load(files) {
        Ok(project) => panic!("expected problems, loaded {:?}", project.agents),
        Err(errors) => errors.to_string(),
    }
}

fn builtin_tools() -> Vec<String> {
    BUILTIN_TOOLS.iter().map(|tool| (*tool).to_owned()).collect()
}

const CODE_ASSISTANT: &str = "import { defineAgent } from '@runtools/sdk';
export default defineAgent({
  slug: 'code-assistant',
  name: 'Code Assistant',
  model: 'claude-sonnet-4-20250514',
  systemPrompt: `You are an expert software engineer...`,
  tools: ['bash', 'read_file', 'edit_file', 'grep', 'glob', 'web_search'],
  template: 'nodejs-20',
});
";

/// The same file as the product documentation prints it (spaces before punctuation).
const CODE_ASSISTANT_SEED: &str = "import { defineAgent } from '@runtools/sdk' ;
export default defineAgent ({
slug: 'code-assistant' ,
name: 'Code Assistant' ,
model: 'claude-sonnet-4-20250514' ,
systemPrompt: `You are an expert software engineer...` ,
tools: [ 'bash' , 'read_file' , 'edit_file' , 'grep' , 'glob' , 'web_search' ] ,
template: 'nodejs-20' ,
}) ;
";

#[test]
fn the_documented_code_assistant_loads() {
    for text in [CODE_ASSISTANT, CODE_ASSISTANT_SEED] {
        let agent = only_agent(&[("agents/code-assistant.ts", text)]);
        assert_eq!(
            agent,
            AgentDefinition {
                slug: "code-assistant".into(),
                name: "Code Assistant".into(),
                model: ModelRef::Name("claude-sonnet-4-20250514".into()),
                system_prompt: "You are an expert software engineer...".into(),
                tools: builtin_tools(),
                template: "nodejs-20".into(),
                max_turns: None,
                timeout: None,
                budget: None,
                env: BTreeMap::new(),
                mcp_servers: Vec::new(),
                source: "agents/code-assistant.ts".into(),
            }
        );
    }
}

#[test]
fn a_multi_file_agent_takes_its_prompt_and_tools_from_sibling_files() {
    let project = load(&[
        (
            "runtools.config.ts",
            "import { defineConfig } from '@runtools/sdk';\nexport default defineConfig({ defaultTemplate: 'full-stack', dev: { port: 3000 } });\n",
        ),
        (
            "agents/support-bot/index.ts",
            "import { defineAgent } from '@runtools/sdk';
import { SYSTEM_PROMPT } from './prompts';
import { TOOLS } from './tools';
import type { Agent } from '@runtools/sdk';

export const agent = defineAgent({
  slug: 'support-bot',
  model: 'openai/gpt-4.1',
  systemPrompt: SYSTEM_PROMPT,
  tools: [...TOOLS, 'web_search'],
  maxTurns: 20,
  timeout: 300,
  budget: { maxTokens: 100000, maxCostUsd: 0.5 },
});
",
        ),
        (
            "agents/support-bot/prompts.ts",
            "const COMPANY = 'Acme';\nexport const SYSTEM_PROMPT = `You support ${COMPANY} customers.\\n` + 'Be kind.';\n",
        ),
        ("agents/support-bot/tools.ts", "export const TOOLS = ['read_file', 'grep'] as const;\n"),
    ])
    .unwrap_or_else(|errors| panic!("{errors}"));
    assert_eq!(project.config.default_template.as_deref(), Some("full-stack"));
    assert_eq!(project.config.dev, Some(serde_json::json!({"port": 3000})));
    let agent = &project.agents[0];
    assert_eq!(agent.slug, "support-bot");
    assert_eq!(agent.name, "support-bot");
    assert_eq!(agent.system_prompt, "You support Acme customers.\nBe kind.");
    assert_eq!(agent.tools, ["read_file", "grep", "web_search"]);
    assert_eq!(agent.template, "full-stack");
    assert_eq!((agent.max_turns, agent.timeout), (Some(20), Some(300)));
    assert_eq!(agent.budget, Some(Budget { max_tokens: Some(100_000), max_cost_usd: Some(0.5) }));
    assert_eq!(agent.source, std::path::Path::new("agents/support-bot/index.ts"));
}

#[test]
fn template_literals_interpolate_consts() {
    let agent = only_agent(&[(
        "agents/a.ts",
        "const ROLE = 'reviewer';\nconst YEARS = 10;\nexport default defineAgent({ slug: 'a', model: 'gpt-4.1', systemPrompt: `You are a ${ROLE} with ${YEARS} years.` });\n",
    )]);
    assert_eq!(agent.system_prompt, "You are a reviewer with 10 years.");
    assert_eq!(agent.tools, builtin_tools());
    assert_eq!(agent.template, "base");
}

#[test]
fn process_env_fills_a_custom_models_api_key() {
    let agent = only_agent(&[(
        "agents/local.mts",
        "export default defineAgent({
  slug: 'local',
  model: {
    provider: 'custom',
    endpoint: 'https://llm.internal.example/v1',
    apiKey: process.env.MY_MODEL_KEY,
    model: 'qwen-72b',
  },
  env: { LOG_LEVEL: 'debug', GITHUB_TOKEN: { secret: 'GITHUB_TOKEN' } },
});
",
    )]);
    assert_eq!(
        agent.model,
        ModelRef::Custom(CustomModel {
            provider: "custom".into(),
            endpoint: "https://llm.internal.example/v1".into(),
            api_key: Some("sk-test-123".into()),
            model: Some("qwen-72b".into()),
            protocol: None,
        })
    );
    assert_eq!(agent.env["LOG_LEVEL"], EnvValue::Value("debug".into()));
    assert_eq!(agent.env["GITHUB_TOKEN"], EnvValue::Secret { secret: "GITHUB_TOKEN".into() });
}

#[test]
fn an_unset_env_var_is_an_error_where_it_is_read() {
    let text = "export default defineAgent({\n  slug: 'local',\n  model: { provider: 'custom', endpoint: 'http://x/v1', apiKey: process.env.OTHER_KEY },\n});\n";
    assert_eq!(
        problems(&[("agents/local.ts", text)]),
        "agents/local.ts:3:65: environment variable `OTHER_KEY` is not set (read by `process.env.OTHER_KEY`)"
    );
}

#[test]
fn a_toml_agent_loads_with_snake_case_keys() {
    let agent = only_agent(&[(
        "agents/triage.toml",
        r#"slug = "triage"
name = "Issue Triage"
model = "gemini-2.5-pro"
system_prompt = """
Label incoming issues."""
tools = ["read_file", "github__add_label", "linear"]
max_turns = 8

[budget]
max_cost_usd = 1.25

[env]
MODE = "strict"
API_TOKEN = { secret = "TRIAGE_TOKEN" }

[[mcp_servers]]
name = "github"
command = "github-mcp"

[[mcp_servers]]
name = "linear"
url = "https://mcp.linear.app/sse"
"#,
    )]);
    assert_eq!(agent.slug, "triage");
    assert_eq!(agent.name, "Issue Triage");
    assert_eq!(agent.model, ModelRef::Name("gemini-2.5-pro".into()));
    assert_eq!(agent.system_prompt, "Label incoming issues.");
    assert_eq!(agent.tools, ["read_file", "github__add_label", "linear"]);
    assert_eq!(agent.max_turns, Some(8));
    assert_eq!(agent.budget, Some(Budget { max_tokens: None, max_cost_usd: Some(1.25) }));
    assert_eq!(agent.env["API_TOKEN"], EnvValue::Secret { secret: "TRIAGE_TOKEN".into() });
    assert_eq!(agent.mcp_server_names(), ["github", "linear"]);
    assert_eq!(agent.source, std::path::Path::new("agents/triage.toml"));
}

#[test]
fn toml_errors_point_at_the_key() {
    assert_eq!(
        problems(&[("agents/t.toml", "slug = \"t\"\nmodel = \"gpt-4.1\"\nsystemPrompt = \"x\"\nturns = 3\n")]),
        "agents/t.toml:3:1: TOML agents use snake_case keys: write `system_prompt` instead of `systemPrompt`\n\
         agents/t.toml:4:1: unknown key `turns` in the agent; supported keys: slug, name, model, system_prompt, tools, template, max_turns, timeout, budget, env, mcp_servers"
    );
}

#[test]
fn layouts_js_files_directories_and_declarations() {
    let project = load(&[
        ("agents/a.js", "export default defineAgent({ slug: 'a', model: 'gpt-4.1' });\n"),
        (
            "agents/b/index.ts",
            "import { M } from '../shared/models';\nexport default defineAgent({ slug: 'b', model: M });\n",
        ),
        ("agents/shared/models.ts", "export const M = 'anthropic/claude-opus-4';\n"),
        ("agents/types.d.ts", "export type X = string;\n"),
        ("agents/README.md", "# agents\n"),
    ])
    .unwrap_or_else(|errors| panic!("{errors}"));
    let slugs: Vec<&str> = project.agents.iter().map(|agent| agent.slug.as_str()).collect();
    assert_eq!(slugs, ["a", "b"]);
    assert_eq!(project.agents[1].model, ModelRef::Name("anthropic/claude-opus-4".into()));
    assert!(project.validate().is_ok());
}

#[test]
fn an_empty_project_has_no_agents() {
    let project = load(&[("package.json", "{}")]).unwrap();
    assert!(project.agents.is_empty());
    assert_eq!(project.config, Default::default());
}

#[test]
fn a_missing_directory_is_an_error() {
    let errors = load_project("/nonexistent/runtools-project", |_| None).unwrap_err();
    assert_eq!(
        errors.to_string(),
        "/nonexistent/runtools-project:1:1: not a project directory (it does not exist or is not a directory)"
    );
}

// ---- one test per kind of problem, with exact positions ----

const SUPPORTED: &str = "supported: string, number, boolean and null literals, template literals, arrays, objects, `+` concatenation, `as const`/`satisfies`, `const` identifiers (declared in the file or imported from a relative file like './prompts') and `process.env.NAME` (optionally `?? 'fallback'`)";

#[test]
fn a_function_call_in_a_field() {
    let text = "export default defineAgent({\n  slug: 'a',\n  model: 'gpt-4.1',\n  systemPrompt: readFileSync('prompt.md', 'utf8'),\n});\n";
    assert_eq!(
        problems(&[("agents/a.ts", text)]),
        format!(
            "agents/a.ts:4:17: cannot evaluate a function call (`readFileSync(…)`) statically (agent files are never executed); {SUPPORTED}"
        )
    );
}

#[test]
fn a_let_binding() {
    let text =
        "let prompt = 'hi';\nexport default defineAgent({ slug: 'a', model: 'gpt-4.1', systemPrompt: prompt });\n";
    assert_eq!(
        problems(&[("agents/a.ts", text)]),
        "agents/a.ts:2:73: `prompt` is declared with `let`; only `const` bindings can be evaluated statically"
    );
}

#[test]
fn an_unknown_key() {
    let text = "export default defineAgent({\n  slug: 'a',\n  model: 'gpt-4.1',\n  prompt: 'hi',\n});\n";
    assert_eq!(
        problems(&[("agents/a.ts", text)]),
        "agents/a.ts:4:3: unknown key `prompt` in the agent; supported keys: slug, name, model, systemPrompt, tools, template, maxTurns, timeout, budget, env, mcpServers"
    );
}

#[test]
fn a_missing_slug_and_a_bad_one() {
    assert_eq!(
        problems(&[("agents/a.ts", "export default defineAgent({ model: 'gpt-4.1' });\n")]),
        "agents/a.ts:1:28: missing required key `slug`"
    );
    assert_eq!(
        problems(&[("agents/a.ts", "export default defineAgent({ slug: 'Bad Slug', model: 'gpt-4.1' });\n")]),
        "agents/a.ts:1:36: invalid slug `Bad Slug`: use 1-63 lowercase letters, digits and `-`, starting with a letter or digit"
    );
}

#[test]
fn an_import_of_a_missing_file() {
    let text = "import { PROMPT } from './prompts';\nexport default defineAgent({ slug: 'a', model: 'gpt-4.1', systemPrompt: PROMPT });\n";
    assert_eq!(
        problems(&[("agents/a/index.ts", text)]),
        "agents/a/index.ts:1:24: cannot find module `./prompts` (tried ./prompts.ts, ./prompts.mts, ./prompts.js, ./prompts.mjs, ./prompts/index.ts)"
    );
}

#[test]
fn an_import_cycle() {
    assert_eq!(
        problems(&[
            (
                "agents/a/index.ts",
                "import { PROMPT } from './prompts';\nexport default defineAgent({ slug: 'a', model: 'gpt-4.1', systemPrompt: PROMPT });\n",
            ),
            ("agents/a/prompts.ts", "import { INTRO } from './intro';\nexport const PROMPT = INTRO + '!';\n"),
            ("agents/a/intro.ts", "import { PROMPT } from './prompts';\nexport const INTRO = `Hi ${PROMPT}`;\n"),
        ]),
        "agents/a/intro.ts:1:10: import cycle: agents/a/prompts.ts → agents/a/intro.ts → agents/a/prompts.ts; static evaluation needs imports to form a tree"
    );
}

#[test]
fn a_duplicate_slug_across_two_files() {
    assert_eq!(
        problems(&[
            ("agents/one.ts", "export default defineAgent({ slug: 'dup', model: 'gpt-4.1' });\n"),
            ("agents/two.toml", "slug = \"dup\"\nmodel = \"gpt-4.1\"\n"),
        ]),
        "agents/two.toml:1:1: duplicate slug `dup`: already defined at agents/one.ts:1:36"
    );
}

#[test]
fn an_unknown_tool() {
    let text = "export default defineAgent({\n  slug: 'a',\n  model: 'gpt-4.1',\n  tools: ['bash', 'github__create_issue', 'slack__post'],\n  mcpServers: [{ name: 'github', command: 'gh-mcp' }],\n});\n";
    assert_eq!(
        problems(&[("agents/a.ts", text)]),
        "agents/a.ts:4:43: unknown tool `slack__post`: built-in tools are bash, read_file, edit_file, grep, glob, web_search; MCP tools are `<server>` or `<server>__<tool>` for a server in `mcpServers` (github)"
    );
}

#[test]
fn an_unknown_model_or_provider_but_not_a_missing_key() {
    let text = "export default defineAgent({ slug: 'a', model: 'gpt4-turbo-ish' });\n";
    let rendered = problems(&[("agents/a.ts", text)]);
    assert!(rendered.starts_with("agents/a.ts:1:48: unknown model `gpt4-turbo-ish`"), "{rendered}");
    let text = "export default defineAgent({ slug: 'a', model: 'acme/m1' });\n";
    let rendered = problems(&[("agents/a.ts", text)]);
    assert!(rendered.starts_with("agents/a.ts:1:48: unknown provider `acme` in `acme/m1`"), "{rendered}");
    // No ANTHROPIC_API_KEY is configured here: still valid.
    only_agent(&[("agents/a.ts", "export default defineAgent({ slug: 'a', model: 'claude-opus-4' });\n")]);
}

#[test]
fn a_syntax_error_has_the_parsers_position() {
    let text = "export default defineAgent({\n  slug: 'a'\n  model: 'gpt-4.1',\n});\n";
    let rendered = problems(&[("agents/a.ts", text)]);
    assert!(rendered.starts_with("agents/a.ts:3:3: syntax error: "), "{rendered}");
    assert_eq!(rendered.lines().count(), 1, "{rendered}");
}

#[test]
fn a_bad_template_and_config() {
    assert_eq!(
        problems(&[
            ("runtools.config.ts", "export default { defaultTemplate: 'ok', port: 3 };\n"),
            ("agents/a.ts", "export default defineAgent({ slug: 'a', model: 'gpt-4.1', template: 'Node 20' });\n"),
        ]),
        "agents/a.ts:1:69: invalid template name `Node 20`: use 1-63 lowercase letters, digits, `-`, `.` and `_`, starting with a letter or digit\n\
         runtools.config.ts:1:41: unknown key `port` in the config; supported keys: defaultTemplate, dev"
    );
}

#[test]
fn all_problems_in_a_project_are_reported_together() {
    let errors = load(&[
        ("runtools.config.ts", "export default defineConfig({ defaultTemplate: TEMPLATE });\n"),
        (
            "agents/broken.ts",
            "let name = 'x';
export default defineAgent({
  name,
  model: 'gpt-4.1',
  systemPrompt: load('prompt.md'),
  tools: ['bash', 'teleport'],
  extra: true,
});
",
        ),
        ("agents/one.ts", "export default defineAgent({ slug: 'same', model: 'mystery-model', tools: ['fly'] });\n"),
        ("agents/two.ts", "export default defineAgent({ slug: 'same', model: 'gpt-4.1', maxTurns: 0 });\n"),
        ("agents/three.ts", "export default defineAgent({ slug: 'same', model: 'gpt-4.1' });\n"),
        ("agents/syntax.ts", "export default defineAgent({ slug: 'x' model: 1 });\n"),
        ("agents/cycle/index.ts", "import { A } from './a';\nexport default defineAgent({ slug: A, model: 'gpt-4.1' });\n"),
        ("agents/cycle/a.ts", "import { B } from './b';\nexport const A = B;\n"),
        ("agents/cycle/b.ts", "import { A } from './a';\nexport const B = A;\n"),
        ("agents/missing.ts", "import { P } from './nowhere';\nexport default defineAgent({ slug: 'm', model: 'gpt-4.1', systemPrompt: P });\n"),
        ("agents/bad.toml", "slug = \"t\"\nmodel = \n"),
    ])
    .unwrap_err();
    insta::assert_snapshot!("all_problems", errors.to_string());
}

#[test]
fn validate_rechecks_an_edited_project() {
    let mut project = load(&[
        ("agents/a.ts", "export default defineAgent({ slug: 'a', model: 'gpt-4.1' });\n"),
        ("agents/b.ts", "export default defineAgent({ slug: 'b', model: 'gpt-4.1' });\n"),
    ])
    .unwrap();
    assert_eq!(project.validate(), Ok(()));
    project.agents[0].tools.push("nope".into());
    project.agents[1].slug = "a".into();
    project.agents[1].model = ModelRef::Name("who-knows".into());
    let rendered = project.validate().unwrap_err().to_string();
    let lines: Vec<&str> = rendered.lines().collect();
    assert_eq!(lines.len(), 3, "{rendered}");
    assert!(lines[0].starts_with("agents/a.ts:1:28: unknown tool `nope`"), "{rendered}");
    assert_eq!(lines[1], "agents/b.ts:1:36: duplicate slug `a`: already defined at agents/a.ts:1:36");
    assert!(lines[2].starts_with("agents/b.ts:1:48: unknown model `who-knows`"), "{rendered}");
}
