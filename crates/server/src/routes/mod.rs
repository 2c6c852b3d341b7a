//! Every HTTP route, declared with its OpenAPI description. [`openapi_router`] is the single list
//! of routes: the served router and the published OpenAPI document are both generated from it, so
//! they cannot drift apart.

mod health;
mod identity;
mod keys;
mod sandbox_files;
mod sandbox_stream;
mod sandboxes;
mod secrets;

pub(crate) use sandbox_stream::{proxy_port, proxy_port_root};

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "RunTools API",
        description = "Control plane of RunTools: sandboxes, agent runtimes, deployments and runners. \
                       Authenticate with `Authorization: Bearer <key>`; errors are `{\"error\": {\"code\", \"message\", \"request_id\"}}`.",
        license(name = "Apache-2.0")
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "health", description = "Probes for supervisors and load balancers (no key needed)"),
        (name = "identity", description = "Who a key is, and the environments it may act in"),
        (name = "keys", description = "API key management (admin key)"),
        (name = "secrets", description = "Environment secrets (environment keys)"),
        (name = "sandboxes", description = "Isolated Linux sandboxes: lifecycle, commands, volumes (environment keys)"),
        (name = "files", description = "A sandbox's filesystem (environment keys)"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "`rt_admin_…` (workspace admin), `pk_test_…` (development) or `sk_live_…` (production)",
                    ))
                    .build(),
            ),
        );
    }
}

/// Routes that need no key.
pub(crate) fn public_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(health::metrics))
}

/// `/v1` routes; every one of them sits behind the authentication layer.
pub(crate) fn authenticated_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(identity::me))
        .routes(routes!(identity::environments))
        .routes(routes!(keys::create_key, keys::list_keys))
        .routes(routes!(keys::get_key, keys::revoke_key))
        .routes(routes!(secrets::list_secrets))
        .routes(routes!(secrets::put_secret, secrets::get_secret, secrets::delete_secret))
        .routes(routes!(sandboxes::create_sandbox, sandboxes::list_sandboxes))
        .routes(routes!(sandboxes::get_sandbox, sandboxes::delete_sandbox))
        .routes(routes!(sandboxes::pause_sandbox))
        .routes(routes!(sandboxes::resume_sandbox))
        .routes(routes!(sandboxes::set_sandbox_timeout))
        .routes(routes!(sandboxes::exec_in_sandbox))
        .routes(routes!(sandbox_stream::exec_stream))
        .routes(routes!(sandboxes::list_volumes))
        .routes(routes!(sandboxes::delete_volume))
        .routes(routes!(sandbox_files::download_file, sandbox_files::upload_file, sandbox_files::remove_file))
        .routes(routes!(sandbox_files::stat_file))
        .routes(routes!(sandbox_files::list_files))
        .routes(routes!(sandbox_files::make_directory))
        .routes(routes!(sandbox_files::move_file))
}

/// The OpenAPI document of every route, as served at `/v1/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut document = public_routes().merge(authenticated_routes()).into_openapi();
    document.paths.paths.insert(
        "/v1/openapi.json".to_owned(),
        utoipa::openapi::PathItem::new(
            utoipa::openapi::HttpMethod::Get,
            utoipa::openapi::path::OperationBuilder::new()
                .tag("health")
                .summary(Some("This document"))
                .operation_id(Some("openapi"))
                .response("200", utoipa::openapi::Response::new("The OpenAPI 3.1 document")),
        ),
    );
    document
}
