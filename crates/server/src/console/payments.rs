//! The console's customer-support view of payments (API-business.md, "Payments and refunds"):
//! find payments by user, business and order id, and open one to see every refund and every
//! call made to the bank for it — what `GET /v1/admin/payments` answers, for a person.

use super::Operator;
use super::pages::{api_name, refused, render, seoul, seoul_or_blank};
use crate::state::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use minipay_core::payment::OrderId;
use minipay_core::request::PageLimit;
use minipay_core::{BusinessId, PaymentId, UserId};
use minipay_payments::views::{PaymentHistoryView, PaymentView};
use minipay_services::ServiceError;
use minipay_store::PaymentFilter;
use serde::Deserialize;

/// Payments per page.
const PAGE_ROWS: u32 = 50;

/// A payment as a row.
struct PaymentRow {
    id: String,
    created_at: String,
    status: String,
    amount: i64,
    refunded: i64,
    business_id: String,
    user_id: String,
    order_id: String,
    bank_transaction_id: String,
    failure: String,
    paid_at: String,
}

impl From<&PaymentView> for PaymentRow {
    fn from(p: &PaymentView) -> Self {
        Self {
            id: p.id.to_string(),
            created_at: seoul(p.created_at),
            status: api_name(&p.status),
            amount: p.amount,
            refunded: p.refunded_amount,
            business_id: p.business_id.to_string(),
            user_id: p.user_id.to_string(),
            order_id: p.order_id.clone(),
            bank_transaction_id: p.bank_transaction_id.clone(),
            failure: p
                .failure
                .as_ref()
                .map(|f| format!("{}: {}", f.code, f.message))
                .unwrap_or_default(),
            paid_at: seoul_or_blank(p.paid_at),
        }
    }
}

#[derive(Template)]
#[template(path = "console/payments.html")]
struct PaymentsPage {
    csrf: String,
    user_id: String,
    business_id: String,
    order_id: String,
    rows: Vec<PaymentRow>,
    next_url: Option<String>,
}

#[derive(Deserialize)]
pub struct PaymentsQuery {
    user_id: Option<String>,
    business_id: Option<String>,
    order_id: Option<String>,
    cursor: Option<String>,
}

/// The query string of a search (and a page).
fn payments_url(user_id: &str, business_id: &str, order_id: &str, cursor: Option<&str>) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in [
        ("user_id", user_id),
        ("business_id", business_id),
        ("order_id", order_id),
    ] {
        if !value.is_empty() {
            q.append_pair(name, value);
        }
    }
    if let Some(c) = cursor {
        q.append_pair("cursor", c);
    }
    format!("/console/payments?{}", q.finish())
}

/// A search field: empty, or what it must parse as (`400` otherwise, like the API).
fn field<T>(raw: &str, parse: impl FnOnce(&str) -> Option<T>, name: &str) -> Result<Option<T>, ServiceError> {
    if raw.is_empty() {
        return Ok(None);
    }
    parse(raw)
        .map(Some)
        .ok_or_else(|| ServiceError::validation(format!("{name} {raw:?} is not well formed")))
}

pub async fn payments(State(app): State<AppState>, op: Operator, Query(q): Query<PaymentsQuery>) -> Response {
    let text = |v: Option<String>| v.map(|s| s.trim().to_owned()).unwrap_or_default();
    let (user_id, business_id, order_id) = (text(q.user_id), text(q.business_id), text(q.order_id));
    let filter = (|| {
        Ok::<_, ServiceError>(PaymentFilter {
            user: field(&user_id, |s| s.parse::<UserId>().ok(), "user_id")?,
            business: field(&business_id, |s| s.parse::<BusinessId>().ok(), "business_id")?,
            order_id: field(&order_id, |s| OrderId::parse(s).ok(), "order_id")?.map(|o| o.as_str().to_owned()),
            status: None,
        })
    })();
    let filter = match filter {
        Ok(f) => f,
        Err(e) => return refused(e),
    };
    let limit = PageLimit::parse(Some(PAGE_ROWS)).expect("a valid page size");
    let page = match app.payments.payments(&filter, limit, q.cursor.as_deref()).await {
        Ok(p) => p,
        Err(e) => return refused(e),
    };
    render(&PaymentsPage {
        csrf: op.csrf,
        next_url: page
            .next_cursor
            .as_deref()
            .map(|c| payments_url(&user_id, &business_id, &order_id, Some(c))),
        user_id,
        business_id,
        order_id,
        rows: page.items.iter().map(PaymentRow::from).collect(),
    })
}

struct RefundRow {
    created_at: String,
    amount: i64,
    status: String,
    reason: String,
    bank_transaction_id: String,
    failure: String,
    finished_at: String,
}

struct CallRow {
    started_at: String,
    kind: String,
    refund_id: String,
    tran_id: String,
    outcome: String,
    bank_tran_id: String,
    error: String,
    finished_at: String,
}

#[derive(Template)]
#[template(path = "console/payment.html")]
struct PaymentPage {
    csrf: String,
    p: PaymentRow,
    description: String,
    refunds: Vec<RefundRow>,
    calls: Vec<CallRow>,
}

pub async fn payment(State(app): State<AppState>, op: Operator, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<PaymentId>() else {
        return refused(ServiceError::NotFound("payment"));
    };
    let h: PaymentHistoryView = match app.payments.payment_history(id).await {
        Ok(h) => h,
        Err(e) => return refused(e),
    };
    render(&PaymentPage {
        csrf: op.csrf,
        description: h.payment.description.clone().unwrap_or_default(),
        p: PaymentRow::from(&h.payment),
        refunds: h
            .refunds
            .iter()
            .map(|r| RefundRow {
                created_at: seoul(r.created_at),
                amount: r.amount,
                status: api_name(&r.status),
                reason: r.reason.clone().unwrap_or_default(),
                bank_transaction_id: r.bank_transaction_id.clone(),
                failure: r
                    .failure
                    .as_ref()
                    .map(|f| format!("{}: {}", f.code, f.message))
                    .unwrap_or_default(),
                finished_at: seoul_or_blank(r.finished_at),
            })
            .collect(),
        calls: h
            .bank_calls
            .iter()
            .map(|c| CallRow {
                started_at: seoul(c.started_at),
                kind: api_name(&c.kind),
                refund_id: c.refund_id.map(|r| r.to_string()).unwrap_or_default(),
                tran_id: c.tran_id.clone(),
                outcome: api_name(&c.outcome),
                bank_tran_id: c.bank_tran_id.clone().unwrap_or_default(),
                error: c.error.clone().unwrap_or_default(),
                finished_at: seoul_or_blank(c.finished_at),
            })
            .collect(),
    })
}
