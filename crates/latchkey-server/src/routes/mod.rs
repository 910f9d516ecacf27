//! Route families. Each handler extracts, calls `Core` once, and converts the answer.

pub mod health;
pub mod native;

use actix_web::web;

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    health::configure(cfg);
    native::configure(cfg);
}
