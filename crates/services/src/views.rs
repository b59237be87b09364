//! The JSON shapes of the API (API.md): what responses look like, built from store records.

use crate::schema;
use jiff::Timestamp;
use minipay_core::charge::ChargeLimit;
use minipay_core::ledger::{AccountKind, SavingsProduct};
use minipay_core::transfer::{TransferMode, TransferStatus};
use minipay_core::{AccountId, BankAccountId, BusinessDate, ChargeId, JournalId, TransferId, UserId};
use minipay_store::{Account, BankAccount, Notification, Settlement, ShareStatus, Transfer, User};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UserView {
    #[schema(value_type = String, format = Uuid)]
    pub id: UserId,
    pub email: String,
    pub name: String,
    #[schema(value_type = String, format = Uuid)]
    pub main_account_id: AccountId,
    #[schema(value_type = schema::TransferMode)]
    pub transfer_mode: TransferMode,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        Self {
            id: u.id,
            email: u.email.clone(),
            name: u.name.clone(),
            main_account_id: u.main_account_id,
            transfer_mode: u.transfer_mode,
            created_at: u.created_at,
        }
    }
}

/// A user as seen by another user looking for someone to pay.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UserLookupView {
    #[schema(value_type = String, format = Uuid)]
    pub id: UserId,
    pub name: String,
    #[schema(value_type = String, format = Uuid)]
    pub main_account_id: AccountId,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenView {
    pub access_token: String,
    pub token_type: String,
    /// Seconds until the token expires (by the server's clock).
    pub expires_in: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AccountView {
    #[schema(value_type = String, format = Uuid)]
    pub id: AccountId,
    #[schema(value_type = schema::AccountKind)]
    pub kind: AccountKind,
    /// The savings product; `null` for the main account.
    #[schema(value_type = Option<schema::SavingsProduct>, required = true)]
    pub product: Option<SavingsProduct>,
    /// Posted balance in won.
    pub balance: i64,
    /// Held by open pending transfers out of this account.
    pub pending_out: i64,
    /// `balance - pending_out`: what can be spent now.
    pub available: i64,
    /// What a `fixed` savings account auto-debits every day; `null` otherwise.
    #[schema(required = true)]
    pub daily_amount: Option<i64>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

impl From<&Account> for AccountView {
    fn from(a: &Account) -> Self {
        Self {
            id: a.id,
            kind: a.kind,
            product: a.product,
            balance: a.posted,
            pending_out: a.pending_out,
            available: a.available(),
            daily_amount: a.daily_amount,
            created_at: a.created_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChargeLimitView {
    #[schema(value_type = String, format = Date)]
    pub date: BusinessDate,
    pub limit: i64,
    pub used: i64,
    pub remaining: i64,
    #[schema(value_type = String, format = DateTime)]
    pub resets_at: Timestamp,
}

impl From<ChargeLimit> for ChargeLimitView {
    fn from(l: ChargeLimit) -> Self {
        Self {
            date: l.date,
            limit: l.limit,
            used: l.used,
            remaining: l.remaining(),
            resets_at: l.resets_at(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChargeView {
    #[schema(value_type = String, format = Uuid)]
    pub id: ChargeId,
    pub amount: i64,
    /// Always `completed` in a 201 answer.
    #[schema(value_type = schema::ChargeStatus)]
    pub status: String,
    pub account: AccountView,
    pub limit: ChargeLimitView,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DepositView {
    #[schema(value_type = String, format = Uuid)]
    pub id: JournalId,
    pub amount: i64,
    pub account: AccountView,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TransferView {
    #[schema(value_type = String, format = Uuid)]
    pub id: TransferId,
    #[schema(value_type = schema::TransferStatus)]
    pub status: TransferStatus,
    pub amount: i64,
    #[schema(value_type = String, format = Uuid)]
    pub from_account_id: AccountId,
    #[schema(value_type = String, format = Uuid)]
    pub to_account_id: AccountId,
    #[schema(value_type = String, format = Uuid)]
    pub from_user_id: UserId,
    #[schema(value_type = String, format = Uuid)]
    pub to_user_id: UserId,
    /// The sender's real name when the transfer was made.
    pub from_name: String,
    /// The name the receiver sees.
    pub display_name: String,
    #[schema(required = true)]
    pub memo: Option<String>,
    /// Won charged from the sender's bank to cover this transfer (0 if none).
    pub auto_charged: i64,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// When a pending transfer expires; `null` for an immediate one.
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub expires_at: Option<Timestamp>,
    /// When it was accepted, canceled or expired; `null` otherwise.
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub resolved_at: Option<Timestamp>,
}

impl From<&Transfer> for TransferView {
    fn from(t: &Transfer) -> Self {
        Self {
            id: t.id,
            status: t.status,
            amount: t.amount.won(),
            from_account_id: t.from_account_id,
            to_account_id: t.to_account_id,
            from_user_id: t.from_user_id,
            to_user_id: t.to_user_id,
            from_name: t.from_name.clone(),
            display_name: t.display_name.clone(),
            memo: t.memo.clone(),
            auto_charged: t.auto_charged,
            created_at: t.created_at,
            expires_at: t.expires_at,
            resolved_at: t.resolved_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BankAccountView {
    #[schema(value_type = String, format = Uuid)]
    pub id: BankAccountId,
    pub bank_code: String,
    pub account_number_masked: String,
    pub holder_name: String,
    /// `registered`.
    #[schema(value_type = schema::BankAccountStatus)]
    pub status: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

impl From<&BankAccount> for BankAccountView {
    fn from(b: &BankAccount) -> Self {
        Self {
            id: b.id,
            bank_code: b.bank_code.clone(),
            account_number_masked: b.account_number_masked.clone(),
            holder_name: b.holder_name.clone(),
            status: b.status.clone(),
            created_at: b.created_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BankBalanceView {
    pub balance: i64,
    /// When the bank reported this balance.
    #[schema(value_type = String, format = DateTime)]
    pub as_of: Timestamp,
    /// True when the bank was slow or down and this is the last known value.
    pub stale: bool,
}

/// A page of a cursor-paginated list.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `?cursor=` for the next page; `null` on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// A list that is not paginated (it is small by construction).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Items<T> {
    pub items: Vec<T>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ShareView {
    #[schema(value_type = String, format = Uuid)]
    pub user_id: UserId,
    pub amount: i64,
    #[schema(value_type = schema::ShareStatus)]
    pub status: String,
    /// The transfer that paid the share; `null` until paid (and for the requester's own share).
    #[schema(value_type = Option<String>, format = Uuid, required = true)]
    pub transfer_id: Option<TransferId>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SettlementView {
    pub id: uuid::Uuid,
    #[schema(value_type = String, format = Uuid)]
    pub requester_user_id: UserId,
    pub total_amount: i64,
    #[schema(value_type = schema::SplitMethod)]
    pub method: String,
    #[schema(required = true)]
    pub memo: Option<String>,
    /// `open` until every share is paid, then `completed`.
    #[schema(value_type = schema::SettlementStatus)]
    pub status: String,
    pub shares: Vec<ShareView>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

impl From<&Settlement> for SettlementView {
    fn from(s: &Settlement) -> Self {
        Self {
            id: s.id,
            requester_user_id: s.requester_user_id,
            total_amount: s.total_amount,
            method: s.method.as_str().to_owned(),
            memo: s.memo.clone(),
            status: if s.completed { "completed" } else { "open" }.to_owned(),
            shares: s
                .shares
                .iter()
                .map(|sh| ShareView {
                    user_id: sh.user_id,
                    amount: sh.amount,
                    status: match sh.status {
                        ShareStatus::Requested => "requested",
                        ShareStatus::Paid => "paid",
                    }
                    .to_owned(),
                    transfer_id: sh.transfer_id,
                })
                .collect(),
            created_at: s.created_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NotificationView {
    pub id: uuid::Uuid,
    pub kind: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// The ids of the related objects (`transfer_id`, `settlement_id`, `account_id`).
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

impl From<&Notification> for NotificationView {
    fn from(n: &Notification) -> Self {
        Self {
            id: n.id,
            kind: n.kind.clone(),
            created_at: n.created_at,
            data: n.data.clone(),
        }
    }
}

/// One line of an account's history (API.md "History").
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EntryView {
    #[schema(value_type = String, format = Uuid)]
    pub id: minipay_core::EntryId,
    #[schema(value_type = String, format = DateTime)]
    pub occurred_at: Timestamp,
    #[schema(value_type = schema::EntryKind)]
    pub kind: String,
    #[schema(value_type = schema::EntryDirection)]
    pub direction: String,
    /// Always positive; `direction` says which way.
    pub amount: i64,
    pub balance_after: i64,
    pub counterparty: CounterpartyView,
    #[schema(required = true)]
    pub memo: Option<String>,
    #[schema(value_type = String, format = Uuid)]
    pub journal_id: JournalId,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CounterpartyView {
    /// For an incoming transfer, the name the sender chose to show; otherwise the other side's
    /// name when the entry was written.
    pub name: String,
    /// `null` when the other side is not a user (the bank, interest).
    #[schema(value_type = Option<String>, format = Uuid, required = true)]
    pub user_id: Option<UserId>,
    #[schema(value_type = Option<String>, format = Uuid, required = true)]
    pub account_id: Option<AccountId>,
}

impl From<&minipay_store::HistoryEntry> for EntryView {
    fn from(e: &minipay_store::HistoryEntry) -> Self {
        Self {
            id: e.id,
            occurred_at: e.occurred_at,
            kind: e.kind.as_str().to_owned(),
            direction: if e.amount > 0 { "in" } else { "out" }.to_owned(),
            amount: e.amount.abs(),
            balance_after: e.balance_after,
            counterparty: CounterpartyView {
                name: e.counterparty_name.clone(),
                user_id: e.counterparty_user_id,
                account_id: e.counterparty_account_id,
            },
            memo: e.memo.clone(),
            journal_id: e.journal_id,
        }
    }
}

/// An account's month: `closing_balance = opening_balance + total_in - total_out`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StatementView {
    /// `YYYY-MM` (a calendar month in Asia/Seoul).
    pub month: String,
    pub opening_balance: i64,
    pub closing_balance: i64,
    pub total_in: i64,
    pub total_out: i64,
    /// Entries in the month.
    pub count: i64,
}
