//! The tools inside a real namespace sandbox (the base template, envd as PID 1): bash, edit_file,
//! read_file, grep and glob, with the default working directory and as the sandbox's user; and a
//! whole agent run — the loop, the Anthropic adapter over HTTP against the wire-format model
//! server, and these tools in the sandbox.
//!
//! Needs root and a static envd (`RUNTOOLS_ENVD_BINARY`, else the one `scripts/build-envd`
//! builds): see `runtools_test_support::sandbox_prerequisites`. Without them the tests say why and
//! pass, unless `RUNTOOLS_TEST_REQUIRE_SANDBOXES=1`, which makes them fail.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::path::PathBuf;
use std::time::Duration;

use runtools_agent::providers::{ProviderSettings, RetryPolicy, WireProtocol, connect};
use runtools_agent::{Agent, CollectingSink, RunControl, RunState, ToolCall, ToolOutput, ToolSet, run};
use runtools_envd::EnvdClient;
use runtools_model_server::{ModelServer, ToolCall as ScriptedCall, Turn};
use runtools_protocol::RunId;
use runtools_protocol::SandboxId;
use runtools_protocol::agent::ToolStatus;
use runtools_protocol::agent::{AgentEvent, StopReason};
use runtools_protocol::sandbox::NetworkMode;
use runtools_sandbox::{Backend, NamespaceBackend, NamespaceConfig, ResolvedLimits, SandboxSpec, Templates};
use runtools_test_support::sandbox_prerequisites;
use runtools_tools::{ToolContext, Toolbox};
use serde_json::{Value, json};

/// A sandbox from the base template, deleted (with its cgroup parent) when dropped.
struct Sandbox {
    backend: NamespaceBackend,
    id: SandboxId,
    cgroup_parent: String,
    _dir: tempfile::TempDir,
}

impl Sandbox {
    async fn create(envd: PathBuf) -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        let cgroup_parent = format!("runtools-tools-test-{}", SandboxId::new().ulid().to_string().to_ascii_lowercase());
        let mut config = NamespaceConfig::new(dir.path().join("sandboxes"), envd);
        config.cgroup_parent = cgroup_parent.clone();
        let backend = NamespaceBackend::new(config).unwrap();
        let base = Templates::open(dir.path().join("templates")).unwrap().get("base").unwrap();
        let spec = SandboxSpec {
            id: SandboxId::new(),
            rootfs: base.rootfs.clone(),
            host_layers: base.host_layers.clone(),
            hostname: "sandbox".into(),
            env: Vec::new(),
            limits: ResolvedLimits { cpu: 1.0, memory_bytes: 256 << 20, pids: 256, disk_bytes: 256 << 20 },
            network: NetworkMode::None,
            volumes: Vec::new(),
        };
        backend.create(&spec).await.unwrap();
        Sandbox { backend, id: spec.id, cgroup_parent, _dir: dir }
    }

    async fn client(&self) -> EnvdClient {
        EnvdClient::new(self.backend.connect_envd(self.id).await.unwrap())
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let (backend, id) = (&self.backend, self.id);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                if let Err(error) = runtime.block_on(backend.delete(id)) {
                    eprintln!("deleting sandbox {id}: {error}");
                }
            });
        });
        for controller in ["cpu", "cpuacct", "memory", "pids", "freezer", ""] {
            let _ = std::fs::remove_dir(PathBuf::from("/sys/fs/cgroup").join(controller).join(&self.cgroup_parent));
        }
    }
}

async fn call(toolbox: &Toolbox, tool: &str, input: Value) -> ToolOutput {
    let call = ToolCall { id: "1".into(), name: tool.into(), input };
    let output = tokio::time::timeout(Duration::from_secs(60), toolbox.call(&call)).await.expect("the tool call hung");
    assert_ne!(output.status, ToolStatus::Error, "{tool}: {}", output.content);
    output
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bash_edit_file_grep_and_glob_work_in_a_namespace_sandbox() {
    let Some(envd) = sandbox_prerequisites() else { return };
    let sandbox = Sandbox::create(envd).await;
    // No working directory given: the base template has /home/user, so that is it.
    let context = ToolContext::new(sandbox.client().await).with_user("user");
    let toolbox = Toolbox::all(context);
    assert_eq!(toolbox.context().working_dir().await, "/home/user");

    let output = call(&toolbox, "bash", json!({"command": "pwd; id -un; echo $((6 * 7))"})).await;
    assert_eq!(output.content, "/home/user\nuser\n42\n[exit code 0]");

    // Create a file (and its directory), then edit it.
    let created = json!({"path": "app/main.py", "old_string": "", "new_string": "ANSWER = 41\nprint(ANSWER)\n"});
    assert_eq!(call(&toolbox, "edit_file", created).await.content, "Created app/main.py (2 lines).");
    let edited =
        call(&toolbox, "edit_file", json!({"path": "app/main.py", "old_string": "41", "new_string": "42"})).await;
    assert!(edited.diff.unwrap().contains("-ANSWER = 41\n+ANSWER = 42\n"));

    // The user's own commands see the change and can still change the file.
    let output = call(
        &toolbox,
        "bash",
        json!({"command": "stat -c '%U %a' app app/main.py && echo '# end' >> app/main.py && cat app/main.py"}),
    )
    .await;
    assert_eq!(output.content, "user 755\nuser 644\nANSWER = 42\nprint(ANSWER)\n# end\n[exit code 0]");

    let output = call(&toolbox, "read_file", json!({"path": "/home/user/app/main.py"})).await;
    assert_eq!(output.content, "     1\tANSWER = 42\n     2\tprint(ANSWER)\n     3\t# end\n");

    let output = call(&toolbox, "grep", json!({"pattern": "ANSWER", "output_mode": "content"})).await;
    assert_eq!(output.content, "app/main.py:1:ANSWER = 42\napp/main.py:2:print(ANSWER)\n");

    let output = call(&toolbox, "glob", json!({"pattern": "**/*.py"})).await;
    assert_eq!(output.content, "app/main.py\n");

    let output = call(&toolbox, "bash", json!({"command": "sleep 10", "timeout_secs": 1})).await;
    assert_eq!(output.status, ToolStatus::Timeout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_run_thinks_acts_and_repeats_in_a_sandbox() {
    let Some(envd) = sandbox_prerequisites() else { return };
    let sandbox = Sandbox::create(envd).await;
    let envd = sandbox.client().await;
    let tools =
        Toolbox::new(["bash", "read_file", "edit_file", "grep", "glob"], ToolContext::new(envd.clone())).unwrap();

    let server = ModelServer::start().await.unwrap();
    let create = json!({"path": "app/main.py", "old_string": "", "new_string": "ANSWER = 41\nprint(ANSWER)\n"});
    server.push(
        Turn::tools(vec![ScriptedCall::new("toolu_1", "edit_file", create)])
            .with_thinking("The project is empty; start with main.py.", "sig-1")
            .with_text("I'll create the program."),
    );
    server.push(Turn::tools(vec![
        ScriptedCall::new("toolu_2", "grep", json!({"pattern": "ANSWER", "output_mode": "content"})),
        ScriptedCall::new("toolu_3", "glob", json!({"pattern": "**/*.py"})),
    ]));
    server.push(Turn::tools(vec![ScriptedCall::new(
        "toolu_4",
        "edit_file",
        json!({"path": "app/main.py", "old_string": "ANSWER = 41", "new_string": "ANSWER = 42"}),
    )]));
    server.push(Turn::tools(vec![ScriptedCall::new("toolu_5", "bash", json!({"command": "cat app/main.py; exit 3"}))]));
    server.push(Turn::text("The answer is now 42."));

    let mut settings = ProviderSettings::new("anthropic", WireProtocol::Anthropic, server.url());
    settings.api_key = Some(runtools_agent::ApiKey::new("sk-ant-test"));
    settings.retry = RetryPolicy::none();
    let model = connect(settings, reqwest::Client::new());
    let mut agent = Agent::new(model, "claude-sonnet-4-20250514", std::sync::Arc::new(tools));
    agent.system_prompt = Some("You are an expert software engineer.".into());
    let mut sink = CollectingSink::default();
    let state = run(&agent, RunState::new(RunId::new(), "Make the program print 42."), &RunControl::new(), &mut sink)
        .await
        .unwrap();

    match state.terminal.clone().unwrap() {
        AgentEvent::Complete { stop_reason, output, turns, usage, .. } => {
            assert_eq!(stop_reason, StopReason::EndTurn);
            assert_eq!(output, "The answer is now 42.");
            assert_eq!(turns, 5);
            assert!(usage.output_tokens > 0);
        }
        other => panic!("the run did not complete: {other:?} ({:?})", sink.kinds()),
    }
    let kinds = sink.kinds();
    assert_eq!(kinds.iter().filter(|kind| **kind == "tool_result").count(), 5, "{kinds:?}");
    assert!(kinds.contains(&"thinking") && kinds.contains(&"thinking.delta") && kinds.contains(&"message.delta"));
    let results: Vec<&serde_json::Value> =
        sink.events.iter().filter(|event| event.kind == "tool_result").map(|event| &event.data).collect();
    for result in &results {
        assert_eq!(result["status"], "ok", "{result}");
    }
    let edit = results.iter().find(|result| result["call_id"] == "toolu_4").unwrap();
    assert!(edit["diff"].as_str().unwrap().contains("+ANSWER = 42"));
    let bash = results.iter().find(|result| result["call_id"] == "toolu_5").unwrap();
    assert_eq!(bash["exit_code"], 3, "a failing command is still a result the model reads");
    assert!(bash["output"].as_str().unwrap().contains("ANSWER = 42"));

    // What the model was sent: its thinking (signature unchanged) and each tool's real output.
    let requests = server.requests();
    assert_eq!(requests.len(), 5);
    assert_eq!(requests[0].header("x-api-key"), Some("sk-ant-test"));
    assert_eq!(requests[0].body["system"], "You are an expert software engineer.");
    let second = requests[1].body["messages"].to_string();
    assert!(second.contains("\"signature\":\"sig-1\""), "{second}");
    assert!(second.contains("Created app/main.py"), "{second}");
    let third = requests[2].body["messages"].to_string();
    assert!(third.contains("app/main.py:1:ANSWER = 41"), "{third}");

    // And the sandbox really changed.
    let (_, mut reader) = envd.read("/home/user/app/main.py", None, None).await.unwrap();
    let contents = reader.read_to_end().await.unwrap();
    assert_eq!(String::from_utf8(contents).unwrap(), "ANSWER = 42\nprint(ANSWER)\n");
}

/// (name, file, old_string, new_string, the file afterwards — `None` when refused — and what the
/// answer says).
type FuzzyCase = (&'static str, &'static str, &'static str, &'static str, Option<&'static str>, &'static str);

/// edit_file's staged matching, end to end in a sandbox: each fallback, an ambiguous fuzzy match
/// refused, and not-found with the closest candidates. (Every stage is also unit-tested on its
/// own in `edit_file::tests`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edit_file_fuzzy_cases_in_a_namespace_sandbox() {
    let Some(envd) = sandbox_prerequisites() else { return };
    let sandbox = Sandbox::create(envd).await;
    let envd = sandbox.client().await;
    let toolbox = Toolbox::new(["edit_file"], ToolContext::new(envd.clone()).with_working_dir("/tmp")).unwrap();
    let cases: &[FuzzyCase] = &[
        ("exact", "a\nb\nc\n", "b\n", "B\n", Some("a\nB\nc\n"), "replaced 1 occurrence."),
        (
            "trailing whitespace",
            "fn a() {   \n    body();\t\n}\n",
            "fn a() {\n    body();\n}",
            "fn a() {\n    other();\n}",
            Some("fn a() {\n    other();\n}\n"),
            "ignoring trailing whitespace",
        ),
        (
            "indentation, re-indented",
            "impl A {\n        fn f() {\n            g();\n        }\n}\n",
            "fn f() {\n    g();\n}",
            "fn f() {\n    h();\n}",
            Some("impl A {\n        fn f() {\n            h();\n        }\n}\n"),
            "ignoring a difference in indentation",
        ),
        (
            "trimmed lines",
            "def f():\n    if x:\n        return 1\n",
            "if x:\n  return 1",
            "if x:\n  return 2",
            Some("def f():\n    if x:\n        return 2\n"),
            "ignoring whitespace at the start and end of each line",
        ),
        (
            "unicode punctuation",
            "say(\"it's -- done...\");\n",
            "say(\u{201c}it\u{2019}s \u{2013}\u{2014} done\u{2026}\u{201d});",
            "say(\"it's done\");",
            Some("say(\"it's done\");\n"),
            "punctuation",
        ),
        ("exact ambiguous", "x\ny\nx\n", "x", "z", None, "matches 2 places in fuzzy.txt (lines 1, 3)"),
        ("fuzzy ambiguous", "x  \ny\nx \n", "x\n", "z\n", None, "which is ambiguous"),
        (
            "not found",
            "alpha\nbeta\ngamma\n",
            "betta\ngama",
            "delta",
            None,
            "Lines 2-3 (86% similar):\n     2\tbeta\n     3\tgamma",
        ),
    ];
    for &(name, file, old, new, expected, says) in cases {
        let data: &[u8] = file.as_bytes();
        envd.write("/tmp/fuzzy.txt", runtools_envd::WriteOptions::default(), data).await.unwrap();
        let call = ToolCall {
            id: name.into(),
            name: "edit_file".into(),
            input: json!({"path": "fuzzy.txt", "old_string": old, "new_string": new}),
        };
        let output = toolbox.call(&call).await;
        let (_, mut reader) = envd.read("/tmp/fuzzy.txt", None, None).await.unwrap();
        let after = String::from_utf8(reader.read_to_end().await.unwrap()).unwrap();
        match expected {
            Some(expected) => {
                assert_eq!(output.status, ToolStatus::Ok, "{name}: {}", output.content);
                assert_eq!(after, expected, "{name}");
                assert!(output.diff.is_some(), "{name}: a diff");
            }
            None => {
                assert_eq!(output.status, ToolStatus::Error, "{name}: {}", output.content);
                assert_eq!(after, file, "{name}: a refused edit changes nothing");
            }
        }
        assert!(output.content.contains(says), "{name}: {:?} should say {says:?}", output.content);
    }
}
