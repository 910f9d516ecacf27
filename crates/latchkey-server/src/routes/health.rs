//! `/healthz` (liveness), `/readyz` (read models caught up) and `/metrics` (Prometheus).

use crate::observe::Metrics;
use actix_web::{web, HttpResponse};
use latchkey_actors::Core;
use latchkey_proto::{HealthResponse, HealthStatus};

/// Registers the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/healthz").route(web::get().to(healthz)))
        .service(web::resource("/readyz").route(web::get().to(readyz)))
        .service(web::resource("/metrics").route(web::get().to(metrics)))
        .service(web::resource("/api/openapi.json").route(web::get().to(openapi)));
}

fn health(core: &Core, status: HealthStatus) -> HealthResponse {
    HealthResponse {
        status,
        head: core.store().head(),
        applied: core.applied_seq(),
    }
}

/// Liveness.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = HealthResponse)))]
async fn healthz(core: web::Data<Core>) -> HttpResponse {
    HttpResponse::Ok().json(health(&core, HealthStatus::Ok))
}

/// Readiness: 200 only while the read models are caught up with the log.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, body = HealthResponse), (status = 503, body = HealthResponse)))]
async fn readyz(core: web::Data<Core>) -> HttpResponse {
    if core.applied_seq() >= core.store().head() {
        HttpResponse::Ok().json(health(&core, HealthStatus::Ok))
    } else {
        crate::error::not_ready(&health(&core, HealthStatus::CatchingUp))
    }
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, content_type = "text/plain")))]
async fn metrics(core: web::Data<Core>, m: web::Data<Metrics>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(m.render(&core))
}

async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(crate::openapi::json())
}
