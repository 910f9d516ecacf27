//! The OpenAPI 3.1 document, generated from the handlers' annotations, with a security
//! scheme per credential kind so each route states which credentials it accepts.

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// Adds the four bearer schemes: session, personal, device and admin.
struct Credentials;

impl Modify for Credentials {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = |format: &str, description: &str| {
            let mut http = Http::new(HttpAuthScheme::Bearer);
            http.bearer_format = Some(format.into());
            http.description = Some(description.into());
            SecurityScheme::Http(http)
        };
        components.add_security_scheme(
            "session",
            bearer(
                "lks_",
                "A session token from an SSH challenge sign-in: the only interactive credential.",
            ),
        );
        components.add_security_scheme(
            "pat",
            bearer(
                "lkp_",
                "A personal access token, with the scopes it was given.",
            ),
        );
        components.add_security_scheme(
            "device",
            bearer(
                "lkd_",
                "A device token from device pairing, with the scopes it was given.",
            ),
        );
        components
            .add_security_scheme("admin", bearer("lks_", "A session token of an admin user."));
    }
}

/// latchkey's HTTP API.
#[derive(OpenApi)]
#[openapi(
    info(title = "latchkey", description = "SSH-key sign-in, tokens, rooms and live events for native chat clients. Errors are {\"error\": code, \"message\": text}."),
    paths(
        crate::routes::native::info,
        crate::routes::native::challenge,
        crate::routes::native::token,
        crate::routes::native::me,
        crate::routes::native::ping,
        crate::routes::native::logout,
        crate::routes::credentials::list_tokens,
        crate::routes::credentials::create_token,
        crate::routes::credentials::revoke_token,
        crate::routes::credentials::revoke_all,
        crate::routes::credentials::list_keys,
        crate::routes::credentials::key_challenge,
        crate::routes::credentials::add_key,
        crate::routes::credentials::remove_key,
        crate::routes::credentials::ws_ticket,
        crate::routes::device::device_code,
        crate::routes::device::device_token,
        crate::routes::device::device_cancel,
        crate::routes::device::device_prove,
        crate::routes::device::lookup,
        crate::routes::device::approve,
        crate::routes::device::deny,
        crate::routes::pairing_codes::create,
        crate::routes::pairing_codes::list,
        crate::routes::pairing_codes::revoke,
        crate::routes::pairing_codes::pair,
        crate::routes::rooms::create_room,
        crate::routes::rooms::list_rooms,
        crate::routes::rooms::get_room,
        crate::routes::rooms::join,
        crate::routes::rooms::leave,
        crate::routes::rooms::add_member,
        crate::routes::rooms::remove_member,
        crate::routes::rooms::post_message,
        crate::routes::rooms::history,
        crate::routes::admin::events,
        crate::routes::admin::stream,
        crate::routes::admin::stats,
        crate::routes::admin::verify,
        crate::routes::admin::backup,
        crate::routes::admin::state,
        crate::routes::admin::add_user,
        crate::routes::admin::disable,
        crate::routes::admin::enable,
        crate::routes::admin::revoke,
        crate::routes::health::healthz,
        crate::routes::health::readyz,
        crate::routes::health::metrics,
    ),
    modifiers(&Credentials)
)]
pub struct ApiDoc;

/// The document as pretty JSON (what `/api/openapi.json` serves and proto-docs keeps).
pub fn json() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}
