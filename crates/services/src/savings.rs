//! Savings products: the 04:00 interest run (set-based, in batches) and the 08:00 auto-debit
//! into fixed savings accounts (charging the shortfall from the bank when allowed).

use crate::Wallet;
use crate::charges::ChargeOutcome;
use crate::error::{ServiceError, ServiceResult};
use crate::notify;
use crate::transfers::party;
use anyhow::Context;
use jiff::Timestamp;
use jiff::civil::Time;
use minipay_core::charge::{ChargePurpose, auto_charge_amount};
use minipay_core::interest::{accrue_day, annual_rate_bp};
use minipay_core::ledger::{EntryKind, LedgerError, PostedJournal, SystemAccount, interest_journal};
use minipay_core::{Amount, BusinessDate, JournalId};
use minipay_store::{Account, AutoDebitStatus, InterestPaid, InterestState, Session};
use serde::Serialize;

/// Savings accounts paid interest per transaction (one journal, a handful of statements).
const INTEREST_BATCH_MAX: u32 = 10_000;
/// Fixed savings accounts read per batch by the auto-debit run.
const AUTO_DEBIT_BATCH_MAX: u32 = 200;
/// The daily slots, in Asia/Seoul.
pub const INTEREST_TIME: Time = Time::constant(4, 0, 0, 0);
pub const AUTO_DEBIT_TIME: Time = Time::constant(8, 0, 0, 0);

/// What an interest run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct InterestReport {
    /// Savings accounts brought up to date (paid or not).
    pub accounts: u64,
    /// Accounts that received at least 1 won.
    pub paid_accounts: u64,
    pub won_paid: i64,
}

/// What an auto-debit run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct AutoDebitReport {
    pub completed: u64,
    pub failed: u64,
}

impl Wallet {
    /// The `savings-interest` job for the business date containing `at`: every savings
    /// account not yet paid through that date gets one day of simple interest on its
    /// principal per unpaid day, in exact arithmetic (whole won paid, the fraction carried).
    /// A rerun for the same date pays nothing.
    #[tracing::instrument(name = "minipay.jobs.savings_interest", skip(self), err)]
    pub async fn pay_interest(&self, at: Timestamp) -> ServiceResult<InterestReport> {
        let date = BusinessDate::containing(at);
        let mut report = InterestReport::default();
        let mut cursor = None;
        loop {
            let mut tx = self.store.begin().await?;
            let (mut locked, states) = tx.lock_savings_for_interest(date, cursor, INTEREST_BATCH_MAX).await?;
            let Some(last) = states.last() else { break };
            cursor = Some(last.account_id);
            let mut payments = Vec::with_capacity(states.len());
            let mut paid_state = Vec::with_capacity(states.len());
            for s in &states {
                let from = s
                    .paid_through
                    .context("savings accounts record when interest was last paid")?;
                let days = date.date().since(from.date()).map_err(anyhow::Error::from)?.get_days();
                let (paid, carry) = interest_for_days(s, days);
                payments.push((s.account_id, paid));
                paid_state.push(InterestPaid {
                    account_id: s.account_id,
                    carry,
                    basis: s.principal,
                });
            }
            let posted: Vec<PostedJournal> = match interest_journal(&payments) {
                Some(draft) => vec![
                    locked
                        .post(&draft, JournalId::new(), self.clock.now())
                        .expect("credits only"),
                ],
                None => Vec::new(),
            };
            tx.write_interest_postings(&locked, &posted, date, &paid_state).await?;
            tx.commit().await?;
            report.accounts += states.len() as u64;
            report.paid_accounts += payments.iter().filter(|(_, won)| *won > 0).count() as u64;
            report.won_paid += payments.iter().map(|(_, won)| won).sum::<i64>();
            if states.len() < INTEREST_BATCH_MAX as usize {
                break;
            }
        }
        Ok(report)
    }

    /// The `savings-auto-debit` job for the business date containing `at`: every fixed
    /// savings account opened before that day's 08:00 gets its `daily_amount` from the main
    /// account, once per date. A shortfall is charged from the bank in 10,000-won units under
    /// the daily limit; if that is not allowed nothing is debited, the owner is told, and the
    /// run goes on with the next account.
    #[tracing::instrument(name = "minipay.jobs.savings_auto_debit", skip(self), err)]
    pub async fn run_auto_debits(&self, at: Timestamp) -> ServiceResult<AutoDebitReport> {
        let date = BusinessDate::containing(at);
        let slot = date.at(AUTO_DEBIT_TIME);
        let mut report = AutoDebitReport::default();
        let mut cursor = None;
        loop {
            let batch = self
                .store
                .read()
                .await?
                .fixed_savings_due(date, slot, cursor, AUTO_DEBIT_BATCH_MAX)
                .await?;
            let Some(last) = batch.last() else { break };
            cursor = Some(last.id);
            for account in &batch {
                match self.auto_debit(account, date).await {
                    Ok(Some(AutoDebitStatus::Completed)) => report.completed += 1,
                    Ok(Some(AutoDebitStatus::Failed)) => report.failed += 1,
                    Ok(None) => {}
                    Err(e) => {
                        // One account's trouble must not stop the others; its row stays
                        // `processing` and the day's debit is not retried automatically.
                        metrics::counter!("minipay_auto_debit_errors_total").increment(1);
                        tracing::error!(account = %account.id, error = ?e, "auto-debit failed");
                    }
                }
            }
            if batch.len() < AUTO_DEBIT_BATCH_MAX as usize {
                break;
            }
        }
        Ok(report)
    }

    /// One account's auto-debit for `date`; `None` if another run already handled it.
    async fn auto_debit(&self, savings: &Account, date: BusinessDate) -> ServiceResult<Option<AutoDebitStatus>> {
        let owner = savings.owner.context("savings accounts have owners")?;
        let amount = Amount::parse(savings.daily_amount.context("fixed accounts have a daily amount")?)
            .map_err(anyhow::Error::from)?;
        let mut tx = self.store.begin().await?;
        if !tx
            .claim_auto_debit(savings.id, date, owner, amount, self.clock.now())
            .await?
        {
            return Ok(None);
        }
        let user = tx.user(owner).await?.context("owner exists")?;
        let mut locked = tx.lock_accounts([user.main_account_id, savings.id]).await?;
        let available = locked
            .get(user.main_account_id)
            .context("main account locked")?
            .available();
        let draft =
            || minipay_core::ledger::savings_deposit_journal(EntryKind::AutoDebit, &party(&user), savings.id, amount);
        let Some(shortfall) = auto_charge_amount(available, amount) else {
            let posted = locked
                .post(&draft(), JournalId::new(), self.clock.now())
                .expect("available covers it");
            self.finish_debit(&mut tx, savings, date, &locked, vec![posted], amount)
                .await?;
            tx.commit().await?;
            return Ok(Some(AutoDebitStatus::Completed));
        };
        let started = match tx.charging_bank_account(owner).await? {
            None => Err(ServiceError::InsufficientFunds(
                "no registered bank account to charge".into(),
            )),
            Some(bank) => {
                self.start_charge_in(&mut tx, &user, bank, shortfall, ChargePurpose::AutoCharge)
                    .await
            }
        };
        let started = match started {
            Ok(started) => started,
            Err(e) => {
                self.fail_debit(&mut tx, savings, date, &e.to_string()).await?;
                tx.commit().await?;
                return Ok(Some(AutoDebitStatus::Failed));
            }
        };
        tx.attach_charge_to_auto_debit(savings.id, date, started.charge.id)
            .await?;
        tx.commit().await?;

        let outcome = self.pull(&started).await;

        let charge = &started.charge;
        let mut tx = self.store.begin().await?;
        let status = match outcome {
            ChargeOutcome::Taken => {
                let accounts = [user.main_account_id, savings.id, SystemAccount::BankSettlement.id()];
                let mut locked = tx.lock_accounts(accounts).await?;
                let label = started.bank_account.label();
                // If recovery posted the charge meanwhile, the money is in the main account all the same.
                let mut journals: Vec<PostedJournal> = self
                    .complete_charge_in(&mut tx, &mut locked, charge, &user.name, &label)
                    .await?
                    .into_iter()
                    .collect();
                match locked.post(&draft(), JournalId::new(), self.clock.now()) {
                    Ok(posted) => {
                        journals.push(posted);
                        self.finish_debit(&mut tx, savings, date, &locked, journals, amount)
                            .await?;
                        AutoDebitStatus::Completed
                    }
                    Err(LedgerError::InsufficientFunds(_)) => {
                        tx.write_postings(&locked, &journals).await?;
                        let reason = "another payment used the charged money first";
                        self.fail_debit(&mut tx, savings, date, reason).await?;
                        AutoDebitStatus::Failed
                    }
                }
            }
            ChargeOutcome::NotTaken(e) => {
                self.fail_charge_in(&mut tx, charge, crate::charges::failure_code(&e))
                    .await?;
                self.fail_debit(&mut tx, savings, date, &format!("the bank did not pay: {e}"))
                    .await?;
                AutoDebitStatus::Failed
            }
            ChargeOutcome::Unknown => {
                tx.mark_charge_unknown(charge.id).await?;
                let reason = "the bank did not confirm the charge in time; it will be settled, never charged twice";
                self.fail_debit(&mut tx, savings, date, reason).await?;
                AutoDebitStatus::Failed
            }
        };
        tx.commit().await?;
        Ok(Some(status))
    }

    async fn finish_debit(
        &self,
        tx: &mut Session,
        savings: &Account,
        date: BusinessDate,
        locked: &minipay_core::ledger::LockedAccounts,
        journals: Vec<PostedJournal>,
        amount: Amount,
    ) -> ServiceResult<()> {
        let debit = journals.last().map(|j| j.id);
        tx.write_postings(locked, &journals).await?;
        tx.add_principal(savings.id, amount).await?;
        tx.finish_auto_debit(
            savings.id,
            date,
            AutoDebitStatus::Completed,
            debit,
            None,
            self.clock.now(),
        )
        .await?;
        Ok(())
    }

    async fn fail_debit(
        &self,
        tx: &mut Session,
        savings: &Account,
        date: BusinessDate,
        reason: &str,
    ) -> ServiceResult<()> {
        let owner = savings.owner.context("savings accounts have owners")?;
        let now = self.clock.now();
        tx.finish_auto_debit(savings.id, date, AutoDebitStatus::Failed, None, Some(reason), now)
            .await?;
        let note = notify::auto_debit_failed(owner, savings.id, date, reason, now);
        tx.insert_notifications(std::slice::from_ref(&note)).await?;
        Ok(())
    }
}

/// The interest owed for the `days` business dates since the account was last paid (usually
/// one): the principal it was last paid on earns every one of those days; money deposited
/// since earns only the latest day (it may have arrived on any of them). Returns the whole won
/// to pay and the fraction carried, exactly.
fn interest_for_days(s: &InterestState, days: i32) -> (i64, i64) {
    let rate = annual_rate_bp(s.product);
    let (mut paid, mut carry) = (0, s.carry);
    for day in 1..=days.max(0) {
        let principal = if day == days {
            s.principal
        } else {
            s.basis.min(s.principal)
        };
        let accrued = accrue_day(principal, rate, carry);
        paid += accrued.paid;
        carry = accrued.carry_out;
    }
    (paid, carry)
}

#[cfg(test)]
mod tests {
    use super::*;
    use minipay_core::AccountId;
    use minipay_core::ledger::SavingsProduct;

    fn state(principal: i64, basis: i64) -> InterestState {
        InterestState {
            account_id: AccountId::new(),
            product: SavingsProduct::Fixed,
            principal,
            basis,
            carry: 0,
            paid_through: None,
        }
    }

    #[test]
    fn one_day_pays_the_principal() {
        assert_eq!(interest_for_days(&state(1_000_000, 0), 1).0, 136);
        assert_eq!(interest_for_days(&state(1_000_000, 1_000_000), 1).0, 136);
    }

    #[test]
    fn missed_days_are_paid_on_the_basis_and_new_money_earns_one_day() {
        // Two days owed; 1,000,000 was there at the last run, 1,000,000 more arrived since.
        let (paid, _) = interest_for_days(&state(2_000_000, 1_000_000), 2);
        let exact_units = (1_000_000 * 500) + (2_000_000 * 500);
        assert_eq!(paid, exact_units / 3_650_000);
        // Nothing was there before: only the latest day earns.
        assert_eq!(interest_for_days(&state(1_000_000, 0), 3).0, 136);
        assert_eq!(interest_for_days(&state(1_000_000, 0), 0).0, 0);
    }
}
