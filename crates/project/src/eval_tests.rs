//! Unit tests of static evaluation: files written to a temporary directory, one entry file
//! evaluated, value and problems compared exactly.

use super::*;
use crate::module::resolve_import;

/// Writes `files` under a temporary directory and evaluates `agents/a.ts`'s `defineAgent`
/// argument. Returns the value as JSON (`None` if there was none) and the rendered problems.
fn evaluate(files: &[(&str, &str)]) -> (Option<serde_json::Value>, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let env = |name: &str| (name == "HOME").then(|| "/home/me".to_owned());
    let mut loader = Loader::new(dir.path(), &env);
    let mut out = Vec::new();
    let value = loader.load_entry(&dir.path().join("agents/a.ts"), "defineAgent", &mut out);
    let value = value.filter(|node| !node.has_invalid()).map(|node| node.to_json());
    (value, out.iter().map(ToString::to_string).collect())
}

fn agent(body: &str) -> (Option<serde_json::Value>, Vec<String>) {
    evaluate(&[("agents/a.ts", body)])
}

#[test]
fn literals_wrappers_and_operators_evaluate() {
    let (value, problems) = agent(
        r#"import { defineAgent } from '@runtools/sdk';
const N = 2;
const BASE = { k: 1, j: 'base' } as const;
const OTHER = ['b', 'c'];
const CONF = { inner: { deep: 'yes' } };
export default defineAgent({
  s: 'x',
  'quoted-key': "y",
  n: -3.5,
  b: true,
  z: null,
  arr: ['a', ...OTHER],
  t: `x${N}y${'z'}`,
  plus: ('a' + 1 + true) satisfies string,
  sum: 1 + N,
  o: { ...BASE, k: 2 },
  m: CONF.inner.deep,
  c: CONF['inner'],
  e: process.env.HOME,
  e2: process.env['HOME'],
  f1: process.env.UNSET ?? 'fallback',
  f2: process.env.HOME ?? 'fallback',
});
"#,
    );
    assert_eq!(problems, Vec::<String>::new());
    assert_eq!(
        value.unwrap(),
        serde_json::json!({
            "s": "x", "quoted-key": "y", "n": -3.5, "b": true, "z": null, "arr": ["a", "b", "c"],
            "t": "x2yz", "plus": "a1true", "sum": 3, "o": {"k": 2, "j": "base"}, "m": "yes",
            "c": {"deep": "yes"}, "e": "/home/me", "e2": "/home/me",
            "f1": "fallback", "f2": "/home/me"
        })
    );
}

#[test]
fn every_unsupported_expression_is_reported_with_its_position() {
    let (value, problems) = agent(
        "let x = 'a';
function f() { return 1; }
export const agent = defineAgent({
  a: foo(),
  b: x,
  [x]: 1,
  c: () => 1,
  d: nope,
  e: f,
  g() { return 1; },
  h: process.env.UNSET,
  i: [1, , 2],
  j: ok ? 1 : 2,
  k: `${{}}`,
  l: 'a' ?? 'b',
});
",
    );
    assert_eq!(value, None);
    let supported = SUPPORTED;
    assert_eq!(
        problems,
        [
            format!(
                "agents/a.ts:4:6: cannot evaluate a function call (`foo(…)`) statically (agent files are never executed); {supported}"
            ),
            "agents/a.ts:5:6: `x` is declared with `let`; only `const` bindings can be evaluated statically".to_owned(),
            "agents/a.ts:6:4: computed keys (`[key]: value`) are not supported; write the key out".to_owned(),
            format!(
                "agents/a.ts:7:6: cannot evaluate a function statically (agent files are never executed); {supported}"
            ),
            "agents/a.ts:8:6: unknown identifier `nope`: not a `const` in this file or a named import".to_owned(),
            "agents/a.ts:9:6: `f` is a function; only `const` bindings can be evaluated statically".to_owned(),
            "agents/a.ts:10:3: `g` is a method or accessor; only plain values are supported".to_owned(),
            "agents/a.ts:11:6: environment variable `UNSET` is not set (read by `process.env.UNSET`)".to_owned(),
            "agents/a.ts:12:10: array holes (`[a, , b]`) are not supported".to_owned(),
            format!(
                "agents/a.ts:13:6: cannot evaluate a conditional (`? :`) statically (agent files are never executed); {supported}"
            ),
            "agents/a.ts:14:9: cannot put an object into a template literal; only strings, numbers and booleans"
                .to_owned(),
            format!(
                "agents/a.ts:15:6: cannot evaluate a logical expression (`&&`, `||`, `??`) statically (agent files are never executed); {supported}"
            ),
        ]
    );
}

#[test]
fn consts_referring_to_themselves_are_errors() {
    let (_, problems) = agent("const A = B;\nconst B = A;\nexport default defineAgent({ a: A });\n");
    assert_eq!(problems, ["agents/a.ts:2:11: `A` refers to itself"]);
}

#[test]
fn package_imports_are_not_evaluated() {
    let (_, problems) =
        agent("import { defineAgent, PROMPT } from '@runtools/sdk';\nexport default defineAgent({ p: PROMPT });\n");
    assert_eq!(
        problems,
        [
            "agents/a.ts:2:33: `PROMPT` is imported from the package `@runtools/sdk`; only `const`s imported from relative files (like './prompts') can be evaluated statically"
        ]
    );
}

#[test]
fn relative_imports_resolve_default_named_and_renamed_exports() {
    let (value, problems) = evaluate(&[
        (
            "agents/a.ts",
            "import P, { T as Tools } from './lib/prompt.js';\nimport { X } from '../shared';\nexport default defineAgent({ p: P, t: Tools, x: X });\n",
        ),
        (
            "agents/lib/prompt.ts",
            "const TOOLS = ['bash'];\nexport { TOOLS as T };\nexport default `hi ${TOOLS[0] ?? ''}`;\nexport const unused = compute();\n",
        ),
        ("shared/index.mjs", "export const X = 'shared';\n"),
    ]);
    // `TOOLS[0] ?? ''` is not supported: the default export fails, and only because it is used.
    assert_eq!(
        problems,
        [format!(
            "agents/lib/prompt.ts:3:22: cannot evaluate a logical expression (`&&`, `||`, `??`) statically (agent files are never executed); {SUPPORTED}"
        )]
    );
    assert_eq!(value, None);

    let (value, problems) = evaluate(&[
        (
            "agents/a.ts",
            "import P, { T as Tools } from './lib/prompt.js';\nimport { X } from '../shared';\nexport default defineAgent({ p: P, t: Tools, x: X });\n",
        ),
        (
            "agents/lib/prompt.ts",
            "const TOOLS = ['bash'];\nexport { TOOLS as T };\nexport default `hi`;\nexport const unused = compute();\n",
        ),
        ("shared/index.mjs", "export const X = 'shared';\n"),
    ]);
    assert_eq!(problems, Vec::<String>::new());
    assert_eq!(value.unwrap(), serde_json::json!({"p": "hi", "t": ["bash"], "x": "shared"}));
}

#[test]
fn missing_exports_and_files_are_reported_at_the_import() {
    let (_, problems) = evaluate(&[
        (
            "agents/a.ts",
            "import { NOPE } from './p';\nimport { Q } from './q';\nexport default defineAgent({ a: NOPE, b: Q });\n",
        ),
        ("agents/p.ts", "export const P = 1;\n"),
    ]);
    assert_eq!(
        problems,
        [
            "agents/a.ts:2:19: cannot find module `./q` (tried ./q.ts, ./q.mts, ./q.js, ./q.mjs, ./q/index.ts)",
            "agents/a.ts:1:10: `agents/p.ts` has no exported const `NOPE`",
        ]
    );
}

#[test]
fn the_entry_must_be_one_define_agent_call_with_one_argument() {
    let (_, problems) = agent("export const x = 1;\n");
    assert_eq!(
        problems,
        [
            "agents/a.ts:1:1: no agent found: expected `export default defineAgent({...})` or `export const agent = defineAgent({...})`"
        ]
    );
    let (_, problems) = agent("export const a = defineAgent({});\nexport default defineAgent({});\n");
    assert_eq!(problems, ["agents/a.ts:2:16: only one agent per file: another `defineAgent` is at line 1"]);
    let (_, problems) = agent("export default defineAgent({}, {});\n");
    assert_eq!(problems, ["agents/a.ts:1:16: `defineAgent` takes one object argument"]);
    let (value, problems) = agent("const agent = defineAgent({ a: 1 });\nexport default agent;\n");
    assert_eq!((value, problems), (Some(serde_json::json!({"a": 1})), Vec::new()));
}

#[test]
fn syntax_errors_carry_the_parser_position() {
    let (value, problems) = agent("export default defineAgent({\n  slug: 'a',,\n});\n");
    assert_eq!(value, None);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].starts_with("agents/a.ts:2:13: syntax error: "), "{problems:?}");
}

#[test]
fn imports_resolve_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("x")).unwrap();
    std::fs::write(root.join("x/index.ts"), "").unwrap();
    assert_eq!(resolve_import(root, "./x"), Some(root.join("x/index.ts")));
    std::fs::write(root.join("x.js"), "").unwrap();
    assert_eq!(resolve_import(root, "./x"), Some(root.join("x.js")));
    std::fs::write(root.join("x.ts"), "").unwrap();
    assert_eq!(resolve_import(root, "./x"), Some(root.join("x.ts")));
    assert_eq!(resolve_import(&root.join("x"), "../x.js"), Some(root.join("x.js")));
    std::fs::remove_file(root.join("x.js")).unwrap();
    assert_eq!(resolve_import(&root.join("x"), "../x.js"), Some(root.join("x.ts")));
    assert_eq!(resolve_import(root, "./y"), None);
}
