//! Black-box API tests: each starts the real server on a random port with a fresh database
//! and talks HTTP; every scenario runs on SQLite and on PostgreSQL, and the ledger audit
//! (DESIGN.md invariants) runs after each one.

mod helpers;

mod accounts;
mod audit;
mod bank_faults;
mod batching;
mod binary;
mod businesses;
mod charges;
mod concurrency;
mod console;
mod console_browser;
mod gateway;
mod gateway_admin;
mod history;
mod loadtest;
mod openapi_fuzz;
mod operations;
mod payments;
mod pending;
mod readside;
mod remittance_faults;
mod remittance_stream;
mod remittances;
mod savings;
mod scheduler;
mod settlements;
mod transfers;
mod users;
mod validation;
mod webhooks;
