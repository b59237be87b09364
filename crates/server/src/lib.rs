//! minipay's HTTP server: thin handlers that parse, authenticate, authorize, call a
//! service and map its errors; the OpenAPI document; metrics and health.

mod app;
pub mod config;
mod console;
mod error;
mod extract;
mod openapi;
mod routes;
mod state;

pub use app::{Application, Core, REQUEST_BODY_BYTES_MAX, rebuild_read_side, redact_url, router};
pub use config::{ClockKind, RunMode, Settings};
pub use state::{AppContext, AppState};
