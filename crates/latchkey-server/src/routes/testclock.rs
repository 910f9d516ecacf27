//! `POST /api/test/clock`: moves the manual clock of `latchkey serve --test-clock`, then
//! runs what time drives (a sweep; WebSockets whose credential lapsed close with 4001 as
//! their loops see the clock move; rate limiters read the same clock). Mounted only in
//! that mode: without the flag the route does not exist (404), and it is never in the
//! OpenAPI document.

use crate::convert::rfc3339;
use crate::error::ApiError;
use actix_web::{web, HttpResponse};
use latchkey_actors::clock::ManualClock;
use latchkey_actors::Core;
use latchkey_proto::native::{ClockAdvanceRequest, ClockResponse};
use std::sync::Arc;
use std::time::Duration;

/// Registers the route, for a server whose core runs on `clock`.
pub fn configure(cfg: &mut web::ServiceConfig, clock: Arc<ManualClock>) {
    cfg.app_data(web::Data::from(clock))
        .service(web::resource("/api/test/clock").route(web::post().to(advance)));
}

async fn advance(
    core: web::Data<Core>,
    clock: web::Data<ManualClock>,
    body: web::Json<ClockAdvanceRequest>,
) -> Result<HttpResponse, ApiError> {
    let by = Duration::from_secs(body.advance_secs) + Duration::from_millis(body.advance_ms);
    clock.advance(by);
    tracing::info!(by_ms = by.as_millis() as u64, "test clock moved");
    latchkey_actors::sweeper::sweep(&core).await?;
    Ok(HttpResponse::Ok().json(ClockResponse {
        now: rfc3339(core.now()),
    }))
}
