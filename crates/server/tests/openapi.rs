//! The OpenAPI document, generated from the handlers, kept as a snapshot so every API change shows

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed step should panic with its location
//! up in review. Update with `cargo insta review` (or `INSTA_UPDATE=always cargo test`).

use runtools_test_support::TestServer;

#[test]
fn openapi_document_snapshot() {
    let document = serde_json::to_value(runtools_server::openapi()).unwrap();
    insta::assert_json_snapshot!("openapi", document);
}

#[tokio::test]
async fn the_served_document_is_the_generated_one() {
    let server = TestServer::start().await;
    let served = server.client(None).openapi().await.unwrap();
    assert_eq!(served, serde_json::to_value(runtools_server::openapi()).unwrap());
    for path in ["/v1/keys", "/v1/keys/{id}", "/v1/me", "/v1/secrets/{name}", "/healthz", "/readyz", "/metrics"] {
        assert!(served["paths"].get(path).is_some(), "{path} is documented");
    }
}
