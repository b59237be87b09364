//! Payment and refund requests, validated at the edge, and what their Idempotency-Key
//! fingerprints cover.

use minipay_core::payment::{DESCRIPTION_LEN_MAX, OrderId, REASON_LEN_MAX};
use minipay_core::request::bounded_text;
use minipay_core::{Amount, UserId};
use minipay_services::{ServiceError, ServiceResult};
use serde::Serialize;

/// `POST /v1/biz/payments`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewPayment {
    pub user_id: UserId,
    pub amount: Amount,
    pub order_id: OrderId,
    pub description: Option<String>,
}

impl NewPayment {
    pub fn parse(user_id: UserId, amount: i64, order_id: &str, description: Option<&str>) -> ServiceResult<Self> {
        Ok(Self {
            user_id,
            amount: Amount::parse(amount).map_err(ServiceError::validation)?,
            order_id: OrderId::parse(order_id).map_err(ServiceError::validation)?,
            description: description
                .map(|d| bounded_text("description", d, DESCRIPTION_LEN_MAX))
                .transpose()
                .map_err(ServiceError::validation)?,
        })
    }
}

/// `POST /v1/biz/payments/{id}/refunds`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewRefund {
    pub amount: Amount,
    pub reason: Option<String>,
}

impl NewRefund {
    pub fn parse(amount: i64, reason: Option<&str>) -> ServiceResult<Self> {
        Ok(Self {
            amount: Amount::parse(amount).map_err(ServiceError::validation)?,
            reason: reason
                .map(|r| bounded_text("reason", r, REASON_LEN_MAX))
                .transpose()
                .map_err(ServiceError::validation)?,
        })
    }
}
