//! Model references resolved and connected end to end: the seed's model strings and a custom
//! endpoint reach the local wire-format model server through the adapter their protocol names,
//! with the key and base URL from the environment or the definition.

#![allow(clippy::unwrap_used)]

use runtools_agent::{ModelRef, ModelRequest, ProvidersConfig};
use runtools_model_server::{Api, ModelServer, Turn};
use runtools_protocol::agent::Message;

fn request(model: String) -> ModelRequest {
    ModelRequest {
        model,
        system: None,
        messages: std::sync::Arc::new(vec![Message::user("hi")]),
        tools: std::sync::Arc::default(),
        max_tokens: 64,
        temperature: None,
        thinking: None,
    }
}

async fn ask(config: &ProvidersConfig, model: ModelRef) -> String {
    let (model, id) = config.resolve(&model).unwrap().connect(reqwest::Client::new());
    model.stream(&request(id), &mut |_| {}).await.unwrap().text()
}

#[tokio::test]
async fn model_strings_reach_their_provider_through_base_urls_from_the_environment() {
    let server = ModelServer::start().await.unwrap();
    let (base, openai_base) = (server.url(), server.openai_url());
    let config = ProvidersConfig::default().with_env(|name| match name {
        "ANTHROPIC_BASE_URL" | "GEMINI_BASE_URL" => Some(base.clone()),
        "OPENAI_BASE_URL" | "OPENAI_COMPATIBLE_BASE_URL" => Some(openai_base.clone()),
        "ANTHROPIC_API_KEY" => Some("sk-ant".into()),
        "OPENAI_API_KEY" => Some("sk-openai".into()),
        "GEMINI_API_KEY" => Some("g-key".into()),
        _ => None,
    });
    let cases = [
        ("claude-sonnet-4-20250514", Api::Anthropic),
        ("gpt-5.2", Api::OpenaiResponses),
        ("openai-chat/gpt-4.1", Api::OpenaiChat),
        ("gemini-3-pro", Api::Gemini),
        ("llama-4-scout", Api::OpenaiChat),
    ];
    for (index, (name, _)) in cases.iter().enumerate() {
        server.push(Turn::text(format!("answer {index}")));
        assert_eq!(ask(&config, ModelRef::Name((*name).into())).await, format!("answer {index}"), "{name}");
    }
    let requests = server.requests();
    for ((name, api), request) in cases.iter().zip(&requests) {
        assert_eq!(request.api, *api, "{name} went to the wrong API");
    }
    assert_eq!(requests[0].header("x-api-key"), Some("sk-ant"));
    assert_eq!(requests[0].body["model"], "claude-sonnet-4-20250514");
    assert_eq!(requests[1].header("authorization"), Some("Bearer sk-openai"));
    assert_eq!(requests[2].body["model"], "gpt-4.1", "the provider prefix is not sent");
    assert_eq!(requests[3].header("x-goog-api-key"), Some("g-key"));
    assert!(requests[3].path.contains("gemini-3-pro:streamGenerateContent"));
    assert_eq!(requests[4].header("authorization"), None, "an OpenAI-compatible server needs no key");
}

#[tokio::test]
async fn a_custom_endpoint_is_called_as_written() {
    let server = ModelServer::start().await.unwrap();
    server.push(Turn::text("custom answer"));
    let custom: ModelRef = serde_json::from_value(serde_json::json!({
        "provider": "custom",
        "endpoint": format!("{}/chat/completions", server.openai_url()),
        "apiKey": "my-model-key",
        "model": "my-model",
    }))
    .unwrap();
    assert_eq!(ask(&ProvidersConfig::default(), custom).await, "custom answer");
    let request = &server.requests()[0];
    assert_eq!(request.path, "/v1/chat/completions");
    assert_eq!(request.header("authorization"), Some("Bearer my-model-key"));
    assert_eq!(request.body["model"], "my-model");
}
