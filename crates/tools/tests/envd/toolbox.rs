//! The toolbox itself: choosing tools by name, what the model is told, and calls to tools it
//! does not have.

use runtools_agent::ToolSet;
use runtools_protocol::agent::ToolStatus;
use runtools_tools::{ToolContext, Toolbox, ToolboxError};
use serde_json::json;

use crate::common::{TestEnvd, call};

#[tokio::test]
async fn tools_are_chosen_by_name_in_order() {
    let envd = TestEnvd::start().await;
    let toolbox = Toolbox::new(["grep", "bash", "grep"], ToolContext::new(envd.client().await)).unwrap();
    let names: Vec<String> = toolbox.specs().into_iter().map(|spec| spec.name).collect();
    assert_eq!(names, ["grep", "bash"]);
}

#[tokio::test]
async fn an_unknown_name_is_an_error_listing_the_known_ones() {
    let envd = TestEnvd::start().await;
    let error = Toolbox::new(["bash", "browser"], ToolContext::new(envd.client().await)).unwrap_err();
    assert_eq!(
        error,
        ToolboxError::UnknownTool {
            name: "browser".into(),
            known: "bash, read_file, edit_file, grep, glob, web_search".into()
        }
    );
    assert_eq!(
        error.to_string(),
        "unknown tool `browser` (the built-in tools are: bash, read_file, edit_file, grep, glob, web_search)"
    );
}

#[tokio::test]
async fn calls_to_tools_the_agent_lacks_are_denied() {
    let envd = TestEnvd::start().await;
    let toolbox = Toolbox::new(["read_file"], ToolContext::new(envd.client().await)).unwrap();
    let output = call(&toolbox, "bash", json!({"command": "rm -rf /"})).await;
    assert_eq!(output.status, ToolStatus::Denied);
    assert_eq!(output.content, "no tool named `bash` is available to this agent (available: read_file)");
    let output = call(&toolbox, "teleport", json!({})).await;
    assert_eq!(output.status, ToolStatus::Denied);
}

#[tokio::test]
async fn the_working_directory_defaults_to_home_user_else_root() {
    // The host (which this envd serves) may or may not have /home/user; either way the default
    // is what the sandbox has.
    let envd = TestEnvd::start().await;
    let context = ToolContext::new(envd.client().await);
    let expected = if std::path::Path::new("/home/user").is_dir() { "/home/user" } else { "/" };
    assert_eq!(context.working_dir().await, expected);
}
