//! Admin and operations: running jobs by hand, the manual clock, the bank simulator's fault
//! knobs and the ledger audit. All need the admin token.

use crate::error::{ApiError, ApiResult};
use crate::extract::{Admin, ApiJson, ApiPath, body_rejection, json_object};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use jiff::{SignedDuration, Timestamp};
use minipay_bank::{
    AccountFault, AccountFaultsChange, BankSimulator, OperationFault, SimAccountView, SimFaults, SimStats,
};
use minipay_core::time::plausible_instant;
use minipay_jobs::RunError;
use minipay_services::{ServiceError, schema};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;
use utoipa::openapi::schema::{Object, ObjectBuilder, Type};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunJobBody {
    /// Run as of this instant (default: now). Not in the future.
    #[schema(value_type = Option<String>, format = DateTime)]
    at: Option<Timestamp>,
}

/// One run of a job, as `POST .../run` answers and the run history lists it.
#[derive(Serialize, ToSchema)]
pub struct JobRunView {
    job: String,
    /// The scheduled slot, or the "as of" time of a run by hand.
    #[schema(value_type = String, format = DateTime)]
    at: Timestamp,
    /// How many items the run changed.
    processed: u64,
    #[schema(value_type = Object)]
    details: serde_json::Value,
    /// Why the run failed (it is recorded either way); `null` when it succeeded.
    #[schema(required = true)]
    error: Option<String>,
}

/// Runs a job as of `at` (default now; not in the future) and records the run. The jobs are
/// the examples of `name`.
#[utoipa::path(post, path = "/v1/admin/jobs/{name}/run", tag = "admin", security(("admin" = [])),
    params(("name" = inline(schema::JobName), Path)), request_body(content = Option<RunJobBody>, description = "optional"),
    responses((status = 200, body = JobRunView),
              (status = 400, description = "validation_failed: a bad body, or `at` in the future"),
              (status = 500, body = JobRunView, description = "the job failed (recorded; `error` says why)"),
              (status = 404, description = "not_found: unknown job")))]
pub async fn run_job(
    State(app): State<AppState>,
    _admin: Admin,
    ApiPath(name): ApiPath<String>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<Response> {
    let body = match body {
        Ok(body) => body,
        Err(r) => return Ok(body_rejection(&r)),
    };
    // The body is optional: none means "now".
    let at = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        json_object::<RunJobBody>(&body)?.at
    };
    let now = app.wallet.clock().now();
    let at = match at {
        None => now,
        Some(at) => {
            let at = plausible_instant(at, "at").map_err(ServiceError::validation)?;
            if at > now {
                return Err(ServiceError::validation("at must not be in the future").into());
            }
            at
        }
    };
    let report = app.jobs.run_by_hand(&name, at).await.map_err(|e| match e {
        RunError::UnknownJob(_) => ServiceError::NotFound("job"),
        RunError::Store(e) => ServiceError::from(e),
    })?;
    // A run that failed is recorded either way; its answer says it failed (500, with why).
    let status = if report.error.is_some() {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    let view = JobRunView {
        job: report.job,
        at: report.at,
        processed: report.processed,
        details: report.details,
        error: report.error,
    };
    Ok((status, Json(view)).into_response())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RunsQuery {
    /// Only this job's runs.
    #[param(value_type = Option<schema::JobName>, inline)]
    job: Option<String>,
    #[param(value_type = Option<schema::PageLimit>, inline)]
    limit: Option<u32>,
    /// The previous page's `next_cursor`.
    cursor: Option<String>,
}

/// A run in the history.
#[derive(Serialize, ToSchema)]
pub struct JobRunRecord {
    id: uuid::Uuid,
    job: String,
    #[schema(value_type = String, format = DateTime)]
    slot: Timestamp,
    /// `scheduled` or `manual`.
    trigger: String,
    instance: String,
    #[schema(value_type = String, format = DateTime)]
    started: Timestamp,
    /// `null` while the run is going on, and for a run that died unfinished.
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    finished: Option<Timestamp>,
    #[schema(required = true)]
    processed: Option<i64>,
    #[schema(value_type = Option<Object>, required = true)]
    details: Option<serde_json::Value>,
    #[schema(required = true)]
    error: Option<String>,
}

/// The run history, newest first: scheduled runs (one per slot across instances) and runs by hand.
#[utoipa::path(get, path = "/v1/admin/jobs/runs", tag = "admin", security(("admin" = [])), params(RunsQuery),
    responses((status = 200, body = minipay_services::views::Page<JobRunRecord>)))]
pub async fn job_runs(
    State(app): State<AppState>,
    _admin: Admin,
    crate::extract::ApiQuery(q): crate::extract::ApiQuery<RunsQuery>,
) -> ApiResult<Json<minipay_services::views::Page<JobRunRecord>>> {
    let limit = minipay_core::request::PageLimit::parse(q.limit).map_err(ServiceError::validation)?;
    let page = app
        .wallet
        .job_runs(q.job.as_deref(), limit, q.cursor.as_deref())
        .await?;
    let items = page
        .items
        .into_iter()
        .map(|r| JobRunRecord {
            id: r.id,
            job: r.job,
            slot: r.slot,
            trigger: r.trigger,
            instance: r.instance,
            started: r.started_at,
            finished: r.finished_at,
            processed: r.processed,
            details: r.details,
            error: r.error,
        })
        .collect();
    Ok(Json(minipay_services::views::Page {
        items,
        next_cursor: page.next_cursor,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct ClockView {
    #[schema(value_type = String, format = DateTime)]
    now: Timestamp,
}

fn manual_clock(app: &AppState) -> Result<&minipay_core::ManualClock, ApiError> {
    app.manual_clock.as_deref().ok_or(ApiError(ServiceError::NotFound(
        "manual clock (start with MINIPAY_CLOCK=manual)",
    )))
}

/// The manual clock's time (404 unless the server runs on the manual clock).
#[utoipa::path(get, path = "/v1/admin/clock", tag = "admin", security(("admin" = [])),
    responses((status = 200, body = ClockView), (status = 404, description = "not_found: not on the manual clock")))]
pub async fn get_clock(State(app): State<AppState>, _admin: Admin) -> ApiResult<Json<ClockView>> {
    use minipay_core::Clock;
    Ok(Json(ClockView {
        now: manual_clock(&app)?.now(),
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetClockBody {
    #[schema(value_type = String, format = DateTime)]
    now: Timestamp,
}

/// Sets the manual clock (404 unless the server runs on it).
#[utoipa::path(put, path = "/v1/admin/clock", tag = "admin", security(("admin" = [])), request_body = SetClockBody,
    responses((status = 200, body = ClockView),
              (status = 400, description = "validation_failed: a bad body, or a time outside the years 2000-2099"),
              (status = 404, description = "not_found: not on the manual clock")))]
pub async fn set_clock(
    State(app): State<AppState>,
    _admin: Admin,
    ApiJson(b): ApiJson<SetClockBody>,
) -> ApiResult<Json<ClockView>> {
    let now = manual_clock(&app)?.set(b.now).map_err(ServiceError::validation)?;
    Ok(Json(ClockView { now }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdvanceClockBody {
    #[schema(schema_with = clock_advance_seconds)]
    seconds: i64,
}

/// Bound on one clock move (ten years), so arithmetic cannot leave the representable range.
const CLOCK_ADVANCE_SECS_MAX: i64 = 10 * 366 * 86_400;

fn clock_advance_seconds() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .description(Some(
            "Forward, or backward when negative; at most ten years either way.",
        ))
        .minimum(Some(-CLOCK_ADVANCE_SECS_MAX))
        .maximum(Some(CLOCK_ADVANCE_SECS_MAX))
        .build()
}

/// Moves the manual clock (404 unless the server runs on it).
#[utoipa::path(post, path = "/v1/admin/clock/advance", tag = "admin", security(("admin" = [])),
    request_body = AdvanceClockBody,
    responses((status = 200, body = ClockView),
              (status = 400, description = "validation_failed: a bad body, or a time outside the years 2000-2099"),
              (status = 404, description = "not_found: not on the manual clock")))]
pub async fn advance_clock(
    State(app): State<AppState>,
    _admin: Admin,
    ApiJson(b): ApiJson<AdvanceClockBody>,
) -> ApiResult<Json<ClockView>> {
    let clock = manual_clock(&app)?;
    if b.seconds.unsigned_abs() > CLOCK_ADVANCE_SECS_MAX.unsigned_abs() {
        return Err(ServiceError::validation("seconds must be within ten years").into());
    }
    let now = clock
        .advance(SignedDuration::from_secs(b.seconds))
        .map_err(ServiceError::validation)?;
    Ok(Json(ClockView { now }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BankSimBody {
    #[schema(schema_with = sim_latency_ms)]
    latency_ms: Option<u64>,
    /// Share of calls that fail with 503, 0.0–1.0.
    #[schema(minimum = 0.0, maximum = 1.0)]
    error_rate: Option<f64>,
    /// Status inquiries fail (with `0005` accounts this leaves a charge's outcome unknown
    /// until recovery runs with inquiries working again).
    inquiries_unavailable: Option<bool>,
    /// Pulls never reach the bank and time out (settled by inquiry and cancel).
    pulls_lost: Option<bool>,
}

#[derive(Serialize, ToSchema)]
pub struct BankSimView {
    latency_ms: u64,
    error_rate: f64,
    inquiries_unavailable: bool,
    pulls_lost: bool,
    /// The platform's own account at the simulated bank, in won (pulls in, pushes out).
    platform_balance: i64,
    #[schema(value_type = Object)]
    stats: SimStats,
}

/// Maximum injected latency (one minute).
const SIM_LATENCY_MS_MAX: u64 = 60_000;

fn sim_latency_ms() -> Object {
    ObjectBuilder::new()
        .schema_type(
            [Type::Integer, Type::Null]
                .into_iter()
                .collect::<utoipa::openapi::schema::SchemaType>(),
        )
        .description(Some("Extra latency added to every bank call, at most a minute."))
        .minimum(Some(0))
        .maximum(Some(SIM_LATENCY_MS_MAX))
        .build()
}

fn sim_view(sim: &minipay_bank::BankSimulator) -> BankSimView {
    let f = sim.faults();
    BankSimView {
        latency_ms: f.latency_ms,
        error_rate: f.error_rate,
        inquiries_unavailable: f.inquiries_unavailable,
        pulls_lost: f.pulls_lost,
        platform_balance: sim.platform_balance(),
        stats: sim.stats(),
    }
}

/// The built-in simulator; with an external bank there is none to adjust (404).
fn bank_sim(app: &AppState) -> Result<&BankSimulator, ApiError> {
    app.bank_sim
        .as_deref()
        .ok_or(ApiError(ServiceError::NotFound("built-in bank simulator")))
}

/// Sets the built-in bank simulator's fault knobs (404 with an external bank).
#[utoipa::path(put, path = "/v1/admin/bank-sim", tag = "admin", security(("admin" = [])), request_body = BankSimBody,
    responses((status = 200, body = BankSimView), (status = 400, description = "validation_failed"),
              (status = 404, description = "not_found: an external bank is configured")))]
pub async fn set_bank_sim(
    State(app): State<AppState>,
    _admin: Admin,
    ApiJson(b): ApiJson<BankSimBody>,
) -> ApiResult<Json<BankSimView>> {
    let sim = bank_sim(&app)?;
    let mut faults: SimFaults = sim.faults();
    if let Some(ms) = b.latency_ms {
        if ms > SIM_LATENCY_MS_MAX {
            return Err(ServiceError::validation("latency_ms must be at most 60000").into());
        }
        faults.latency_ms = ms;
    }
    if let Some(rate) = b.error_rate {
        if !(0.0..=1.0).contains(&rate) {
            return Err(ServiceError::validation("error_rate must be between 0.0 and 1.0").into());
        }
        faults.error_rate = rate;
    }
    if let Some(off) = b.inquiries_unavailable {
        faults.inquiries_unavailable = off;
    }
    if let Some(lost) = b.pulls_lost {
        faults.pulls_lost = lost;
    }
    sim.set_faults(faults);
    Ok(Json(sim_view(sim)))
}

/// The simulator's fault knobs and how many calls it has answered.
#[utoipa::path(get, path = "/v1/admin/bank-sim", tag = "admin", security(("admin" = [])),
    responses((status = 200, body = BankSimView), (status = 404, description = "not_found: an external bank is configured")))]
pub async fn get_bank_sim(State(app): State<AppState>, _admin: Admin) -> ApiResult<Json<BankSimView>> {
    let sim = bank_sim(&app)?;
    Ok(Json(sim_view(sim)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BankSimAccountBody {
    /// The fault for pulls from this account: `ok`, `decline`, `unavailable`,
    /// `timeout_not_executed` or `timeout_executed`.
    #[schema(value_type = Option<String>)]
    pull: Option<AccountFault>,
    /// The fault for pushes into this account (same values).
    #[schema(value_type = Option<String>)]
    push: Option<AccountFault>,
    /// The fault for status inquiries and cancels of this account's transfers (same values;
    /// `decline` answers 503, the `timeout_*` ones time out).
    #[schema(value_type = Option<String>)]
    inquiry: Option<AccountFault>,
    /// The faults named apply to the next `times` calls of each operation, then turn back to
    /// `ok`; without it they stay until replaced. At least 1.
    times: Option<u32>,
}

/// One account number at the built-in simulator: its injected faults and its balances.
#[derive(Serialize, ToSchema)]
pub struct BankSimAccountView {
    account_number: String,
    /// `{fault, times_left}`; `times_left` is null while the fault stays until replaced.
    #[schema(value_type = Object)]
    pull: OperationFault,
    #[schema(value_type = Object)]
    push: OperationFault,
    #[schema(value_type = Object)]
    inquiry: OperationFault,
    /// The balance, in won, of each account the simulated bank holds under this number, by
    /// bank code (empty until the bank has seen the number).
    balances: BTreeMap<String, i64>,
}

impl From<SimAccountView> for BankSimAccountView {
    fn from(v: SimAccountView) -> Self {
        Self {
            account_number: v.account_number,
            pull: v.faults.pull,
            push: v.faults.push,
            inquiry: v.faults.inquiry,
            balances: v.balances,
        }
    }
}

fn sim_account_view(sim: &BankSimulator, account_number: &str) -> ApiResult<Json<BankSimAccountView>> {
    let view = sim.account_view(account_number).map_err(ServiceError::validation)?;
    Ok(Json(view.into()))
}

/// Injects faults into one account number's calls at the built-in simulator (under any bank
/// code), for the next `times` calls or until replaced; operations not named keep theirs.
#[utoipa::path(put, path = "/v1/admin/bank-sim/accounts/{account_number}", tag = "admin", security(("admin" = [])),
    params(("account_number" = String, Path, pattern = "^[0-9]{1,21}$", description = "Up to 21 digits (the simulator takes any account number a bank could)")), request_body = BankSimAccountBody,
    responses((status = 200, body = BankSimAccountView), (status = 400, description = "validation_failed"),
              (status = 404, description = "not_found: an external bank is configured")))]
pub async fn set_bank_sim_account(
    State(app): State<AppState>,
    _admin: Admin,
    ApiPath(account_number): ApiPath<String>,
    ApiJson(b): ApiJson<BankSimAccountBody>,
) -> ApiResult<Json<BankSimAccountView>> {
    let sim = bank_sim(&app)?;
    let change = AccountFaultsChange {
        pull: b.pull,
        push: b.push,
        inquiry: b.inquiry,
        times: b.times,
    };
    sim.change_account_faults(&account_number, change)
        .map_err(ServiceError::validation)?;
    sim_account_view(sim, &account_number)
}

/// One account number's injected faults and balances at the built-in simulator.
#[utoipa::path(get, path = "/v1/admin/bank-sim/accounts/{account_number}", tag = "admin", security(("admin" = [])),
    params(("account_number" = String, Path, pattern = "^[0-9]{1,21}$", description = "Up to 21 digits (the simulator takes any account number a bank could)")),
    responses((status = 200, body = BankSimAccountView), (status = 400, description = "validation_failed"),
              (status = 404, description = "not_found: an external bank is configured")))]
pub async fn get_bank_sim_account(
    State(app): State<AppState>,
    _admin: Admin,
    ApiPath(account_number): ApiPath<String>,
) -> ApiResult<Json<BankSimAccountView>> {
    sim_account_view(bank_sim(&app)?, &account_number)
}

#[derive(Serialize, ToSchema)]
pub struct AuditView {
    /// True when every invariant holds.
    ok: bool,
    violations: Vec<String>,
    /// Counts and sums over everything a money request can change.
    #[schema(value_type = Object)]
    totals: serde_json::Value,
    /// The platform's balance at the bank against the ledger's record (invariant 7); null when
    /// the bank could not be asked.
    #[schema(value_type = Option<Object>)]
    platform_bank: Option<minipay_services::audit::PlatformBankCheck>,
}

/// Checks the ledger invariants over the whole database (an expensive full scan), and the
/// platform's balance at the bank against the ledger.
#[utoipa::path(get, path = "/v1/admin/ledger/audit", tag = "admin", security(("admin" = [])),
    responses((status = 200, body = AuditView)))]
pub async fn audit(State(app): State<AppState>, _admin: Admin) -> ApiResult<Json<AuditView>> {
    let report = app.wallet.audit().await?;
    Ok(Json(AuditView {
        ok: report.is_ok(),
        violations: report.violations,
        totals: report.totals,
        platform_bank: report.platform_bank,
    }))
}

/// How this instance has grouped ledger writes (transfers and charge postings) into
/// transactions since it started.
#[derive(Serialize, ToSchema)]
pub struct TransferBatchesView {
    /// Batches committed.
    batches: u64,
    /// Commands (transfers and charge postings) answered by a committed batch.
    commands: u64,
    /// Of those, charge postings.
    charges: u64,
    /// The most commands one committed batch answered.
    largest: u64,
    /// Commands that ran on their own instead (auto-charge, a charge resolved elsewhere, or a
    /// failed batch).
    unbatched: u64,
    /// Batches that failed as a whole; their commands ran one by one.
    failed: u64,
    /// Of those, batches that gave way to another party (a key taken by another request, or a
    /// lock held past the batch's lock wait): expected under contention.
    gave_way: u64,
}

/// This instance's ledger batching counters (each instance counts its own).
#[utoipa::path(get, path = "/v1/admin/transfer-batches", tag = "admin", security(("admin" = [])),
    responses((status = 200, body = TransferBatchesView)))]
pub async fn transfer_batches(State(app): State<AppState>, _admin: Admin) -> Json<TransferBatchesView> {
    let s = app.wallet.transfer_batch_stats();
    Json(TransferBatchesView {
        batches: s.batches,
        commands: s.commands,
        charges: s.charges,
        largest: s.largest,
        unbatched: s.unbatched,
        failed: s.failed,
        gave_way: s.gave_way,
    })
}
