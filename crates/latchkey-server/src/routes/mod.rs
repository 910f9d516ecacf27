//! Route families. Each handler extracts, calls `Core` once, and converts the answer.

pub mod admin;
pub mod credentials;
pub mod device;
pub mod device_page;
pub mod health;
pub mod native;
pub mod pairing_codes;
pub mod rooms;
pub mod testclock;
pub mod ws;

use actix_web::web;

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    health::configure(cfg);
    native::configure(cfg);
    credentials::configure(cfg);
    device::configure(cfg);
    device_page::configure(cfg);
    pairing_codes::configure(cfg);
    rooms::configure(cfg);
    ws::configure(cfg);
    admin::configure(cfg);
}

/// A UUID path segment; anything else names no resource (404 with `what`).
pub fn path_uuid(s: &str, what: &'static str) -> Result<uuid::Uuid, crate::error::ApiError> {
    uuid::Uuid::parse_str(s).map_err(|_| crate::error::ApiError::not_found(what))
}
