//! Taking money out of a business's balance on the ledger (a refund, a payout), for the
//! business-side systems: one posting under the accounts' locks, refused with
//! `insufficient_funds` — changing nothing — when the balance is short.

use crate::{ServiceError, ServiceResult};
use jiff::Timestamp;
use minipay_core::ledger::{BalancePosting, LedgerError, balance_journal, business_account};
use minipay_core::{Amount, BusinessId, JournalId};
use minipay_store::Session;

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
    let account = business_account(business);
    let journal = balance_journal(posting, account, counterparty, amount);
    let mut locked = tx.lock_accounts(journal.accounts()).await?;
    let posted = match locked.post(&journal, JournalId::new(), now) {
        Ok(posted) => posted,
        Err(LedgerError::InsufficientFunds(_)) => {
            let balance = locked.get(account).map_or(0, |a| a.available());
            return Err(ServiceError::InsufficientFunds(format!(
                "the business's balance ({balance} won) is short of the {what} ({} won)",
                amount.won()
            )));
        }
    };
    tx.write_postings(&locked, &[posted]).await?;
    Ok(())
}
