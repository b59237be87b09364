//! Taking money out of businesses' balances on the ledger (refunds, a payout), for the
//! business-side systems: postings under the accounts' locks, refused with
//! `insufficient_funds` — changing nothing — when a balance is short.

use crate::{ServiceError, ServiceResult};
use jiff::Timestamp;
use minipay_core::ledger::{BalancePosting, LedgerError, balance_journal, business_account};
use minipay_core::{Amount, BusinessId, JournalId};
use minipay_store::Session;

/// Money one request takes out of a business's balance.
pub struct BalanceTake<'a> {
    /// A posting that takes money out of the balance.
    pub posting: BalancePosting,
    pub business: BusinessId,
    /// Who the ledger's entries name on the other side (an order, a payout).
    pub counterparty: &'a str,
    pub amount: Amount,
}

/// A take a business's balance is short of (nothing was written).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShortBalance {
    pub business: BusinessId,
    /// What the balance held for it, after the takes before it.
    pub available: i64,
    pub amount: Amount,
}

/// Posts `posting` (one that takes `amount` out of `business`'s balance) in the caller's
/// transaction; `what` names the money for the refusal ("refund", "payout").
pub async fn take_from_balance(
    tx: &mut Session,
    posting: BalancePosting,
    business: BusinessId,
    counterparty: &str,
    amount: Amount,
    what: &str,
    now: Timestamp,
) -> ServiceResult<()> {
    let take = BalanceTake {
        posting,
        business,
        counterparty,
        amount,
    };
    take_all_from_balances(tx, &[take], now).await?.map_err(|short| {
        ServiceError::InsufficientFunds(format!(
            "the business's balance ({} won) is short of the {what} ({} won)",
            short.available,
            short.amount.won()
        ))
    })
}

/// Posts every take in the caller's transaction under one set of locks (every account they
/// touch, locked once, in the store's order). When a balance is short of a take (after the
/// takes before it), nothing is written and that take is told.
pub async fn take_all_from_balances(
    tx: &mut Session,
    takes: &[BalanceTake<'_>],
    now: Timestamp,
) -> ServiceResult<Result<(), ShortBalance>> {
    if takes.is_empty() {
        return Ok(Ok(()));
    }
    let journals: Vec<_> = takes
        .iter()
        .map(|t| balance_journal(t.posting, business_account(t.business), t.counterparty, t.amount))
        .collect();
    let mut locked = tx.lock_accounts(journals.iter().flat_map(|j| j.accounts())).await?;
    let mut posted = Vec::with_capacity(journals.len());
    for (take, journal) in takes.iter().zip(&journals) {
        match locked.post(journal, JournalId::new(), now) {
            Ok(p) => posted.push(p),
            Err(LedgerError::InsufficientFunds(_)) => {
                return Ok(Err(ShortBalance {
                    business: take.business,
                    available: locked.get(business_account(take.business)).map_or(0, |a| a.available()),
                    amount: take.amount,
                }));
            }
        }
    }
    tx.write_postings(&locked, &posted).await?;
    Ok(Ok(()))
}
