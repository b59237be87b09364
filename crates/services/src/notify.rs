//! What users are told, and when: one builder per notification kind (API.md "Notifications").

use jiff::Timestamp;
use minipay_core::{AccountId, BusinessDate, UserId};
use minipay_store::{Notification, Transfer};
use serde_json::json;
use uuid::Uuid;

/// To the receiver: a pending transfer waits for them.
pub const PENDING_TRANSFER_RECEIVED: &str = "pending_transfer_received";
/// To the receiver, once, when 24 hours remain.
pub const PENDING_TRANSFER_REMINDER: &str = "pending_transfer_reminder";
/// To the sender: nobody accepted in 72 hours; the money is back.
pub const PENDING_TRANSFER_EXPIRED: &str = "pending_transfer_expired";
/// To each participant (but the requester) of a new split bill.
pub const SETTLEMENT_REQUESTED: &str = "settlement_requested";
/// To the owner: the 08:00 debit into a fixed savings account could not be made.
pub const SAVINGS_AUTO_DEBIT_FAILED: &str = "savings_auto_debit_failed";

pub(crate) fn pending_received(t: &Transfer, at: Timestamp) -> Notification {
    Notification::new(
        t.to_user_id,
        PENDING_TRANSFER_RECEIVED,
        json!({"transfer_id": t.id}),
        at,
    )
}

pub(crate) fn pending_reminder(t: &Transfer, at: Timestamp) -> Notification {
    let data = json!({"transfer_id": t.id, "expires_at": t.expires_at});
    Notification::new(t.to_user_id, PENDING_TRANSFER_REMINDER, data, at)
}

pub(crate) fn pending_expired(t: &Transfer, at: Timestamp) -> Notification {
    Notification::new(
        t.from_user_id,
        PENDING_TRANSFER_EXPIRED,
        json!({"transfer_id": t.id}),
        at,
    )
}

pub(crate) fn settlement_requested(user: UserId, settlement: Uuid, at: Timestamp) -> Notification {
    Notification::new(user, SETTLEMENT_REQUESTED, json!({"settlement_id": settlement}), at)
}

pub(crate) fn auto_debit_failed(
    user: UserId,
    account: AccountId,
    date: BusinessDate,
    reason: &str,
    at: Timestamp,
) -> Notification {
    let data = json!({"account_id": account, "business_date": date, "reason": reason});
    Notification::new(user, SAVINGS_AUTO_DEBIT_FAILED, data, at)
}

impl crate::Wallet {
    /// The caller's notifications, newest first.
    pub async fn notifications(
        &self,
        me: UserId,
        limit: minipay_core::request::PageLimit,
        cursor: Option<&str>,
    ) -> crate::ServiceResult<crate::views::Page<crate::views::NotificationView>> {
        let after = cursor.map(crate::pagination::decode_cursor).transpose()?;
        let rows = self
            .store()
            .read()
            .await?
            .notifications_of(me, after, crate::pagination::rows_for(limit))
            .await?;
        Ok(crate::pagination::page_of(
            rows,
            limit,
            |n| (n.created_at, n.id),
            |n| (&n).into(),
        ))
    }
}
