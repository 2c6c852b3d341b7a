//! Reads a RunTools project's agents from its files, statically.
//!
//! Agents are written as TypeScript (`agents/code-assistant.ts`, or `agents/<name>/index.ts`
//! for agents split across files) or TOML (`agents/<name>.toml`). Code is the source of
//! truth, but nothing is executed: files are parsed with [oxc](https://oxc.rs) and the
//! `defineAgent({...})` argument is evaluated from literals, `const`s, relative imports and
//! `process.env`. See [`load_project`].
//!
//! Decisions worth knowing:
//! - Static evaluation supports literals, template literals, arrays and objects (with spreads
//!   of known values), `+`, `as const`/`satisfies`/`!`, member access on known objects,
//!   `const` identifiers of the same file, named/default imports of `const`s from relative
//!   files (`./x` → `x.ts`, `x.mts`, `x.js`, `x.mjs`, `x/index.*`; `./x.js` also finds `x.ts`)
//!   and `process.env.NAME` (optionally `?? 'fallback'`). Anything else is a problem at its
//!   `path:line:col` naming what is supported; import cycles are problems too.
//! - An unset `process.env.NAME` (without `??`) is an error wherever it is read, including a
//!   custom model's `apiKey`: loaded definitions are complete. Values that must stay secret
//!   until run time go in `env` as `{ secret: 'NAME' }` ([`EnvValue::Secret`]).
//! - TOML agents spell keys in snake_case (`system_prompt`, `max_turns`, `model.api_key`…);
//!   camelCase keys there are rejected with the spelling to use.
//! - `systemPrompt` defaults to empty, `name` to the slug, `tools` to [`BUILTIN_TOOLS`],
//!   `template` to `runtools.config.ts`'s `defaultTemplate`, else [`DEFAULT_TEMPLATE`].
//! - Every problem in the project is returned at once ([`ProjectErrors`]); a field that failed
//!   to evaluate is not reported again by later checks.

mod agent;
mod error;
mod eval;
mod module;
mod project;
mod toml_agent;
mod value;

pub use agent::{AgentDefinition, BUILTIN_TOOLS, Budget, DEFAULT_TEMPLATE, EnvValue, is_valid_slug};
pub use error::{Loc, Problem, ProjectErrors};
pub use project::{Project, ProjectConfig, load_project};
