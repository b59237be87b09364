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
use minipay_core::AccountId;
use minipay_core::charge::ChargeStatus;
use minipay_core::charge::{ChargePurpose, auto_charge_amount};
use minipay_core::interest::{accrue_day, annual_rate_bp};
use minipay_core::ledger::{EntryKind, LedgerError, PostedJournal, SystemAccount, interest_journal};
use minipay_core::ledger::{LockedAccounts, savings_deposit_journal};
use minipay_core::schedule::Schedule;
use minipay_core::{Amount, BusinessDate, JournalId};
use minipay_store::{Account, AutoDebitStatus, Charge, InterestPaid, InterestState, Session, User};
use serde::Serialize;
use std::collections::HashMap;

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
    #[tracing::instrument(name = "minipay.jobs.savings_interest", skip(self), err(level = "debug"))]
    pub async fn pay_interest(&self, at: Timestamp) -> ServiceResult<InterestReport> {
        // The date of the latest 04:00 at or before `at`: a run by hand at 02:00 is still the
        // previous day's run.
        let date = BusinessDate::containing(daily_slot(INTEREST_TIME, at));
        let mut report = InterestReport::default();
        let mut cursor = None;
        loop {
            let mut tx = self.store.begin().await?;
            let (mut locked, states) = tx.lock_savings_for_interest(date, cursor, INTEREST_BATCH_MAX).await?;
            let Some(last) = states.last() else { break };
            cursor = Some(last.account_id);
            let added = self.principal_added_on_missed_days(&mut tx, &states, date).await?;
            let mut payments = Vec::with_capacity(states.len());
            let mut paid_state = Vec::with_capacity(states.len());
            for s in &states {
                let (paid, carry) = interest_owed(s, date, added.get(&s.account_id).map_or(&[][..], Vec::as_slice));
                payments.push((s.account_id, paid));
                paid_state.push(InterestPaid {
                    account_id: s.account_id,
                    carry,
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
    #[tracing::instrument(name = "minipay.jobs.savings_auto_debit", skip(self), err(level = "debug"))]
    pub async fn run_auto_debits(&self, at: Timestamp) -> ServiceResult<AutoDebitReport> {
        // The latest 08:00 at or before `at`: a run by hand at 07:00 is the previous day's.
        let slot = daily_slot(AUTO_DEBIT_TIME, at);
        let date = BusinessDate::containing(slot);
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

        let Some(shortfall) = auto_charge_amount(available, amount) else {
            let status = self
                .settle_debit_in(&mut tx, &mut locked, &user, savings, date, Vec::new(), "")
                .await?;
            tx.commit().await?;
            return Ok(status);
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
                let status = self.fail_debit(&mut tx, savings, date, &e.to_string()).await?;
                tx.commit().await?;
                return Ok(status);
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
                let charged: Vec<PostedJournal> = self
                    .complete_charge_in(&mut tx, &mut locked, charge, &user.name, &label)
                    .await?
                    .into_iter()
                    .collect();
                let short = "another payment used the charged money first";
                self.settle_debit_in(&mut tx, &mut locked, &user, savings, date, charged, short)
                    .await?
            }
            ChargeOutcome::NotTaken(e) => {
                self.fail_charge_in(&mut tx, charge, crate::charges::failure_code(&e))
                    .await?;
                self.fail_debit(&mut tx, savings, date, &format!("the bank did not pay: {e}"))
                    .await?
            }
            ChargeOutcome::Unknown => {
                // The day's debit stays open, waiting on the charge: when the recovery step
                // settles it, the debit is made from the money or the day fails.
                tx.mark_charge_unknown(charge.id).await?;
                tracing::warn!(account = %savings.id, charge = %charge.id, "auto-debit waits for the bank");
                None
            }
        };
        tx.commit().await?;
        Ok(status)
    }

    /// For accounts owed more than one date: the principal added (deposits and auto-debits)
    /// since the earliest owed date's 04:00, by account.
    async fn principal_added_on_missed_days(
        &self,
        tx: &mut Session,
        states: &[InterestState],
        date: BusinessDate,
    ) -> ServiceResult<HashMap<AccountId, Vec<(Timestamp, i64)>>> {
        let behind: Vec<&InterestState> = states.iter().filter(|s| owed_dates(s, date).len() > 1).collect();
        let Some(since) = behind
            .iter()
            .filter_map(|s| owed_dates(s, date).first().map(|d| d.at(INTEREST_TIME)))
            .min()
        else {
            return Ok(HashMap::new());
        };
        let ids: Vec<AccountId> = behind.iter().map(|s| s.account_id).collect();
        let mut added: HashMap<AccountId, Vec<(Timestamp, i64)>> = HashMap::new();
        for (account, at, won) in tx.principal_added_since(&ids, since).await? {
            added.entry(account).or_default().push((at, won));
        }
        Ok(added)
    }

    /// Makes the day's debit from the money in the main account (`charged`: the journal of a
    /// charge this transaction posted to fund it, if any), or fails the day whole (`short`: why)
    /// — only if the day's debit is still open. `None` if someone else finished it first (the
    /// funding charge is written all the same). The main and savings accounts are locked.
    #[allow(clippy::too_many_arguments)]
    async fn settle_debit_in(
        &self,
        tx: &mut Session,
        locked: &mut LockedAccounts,
        user: &User,
        savings: &Account,
        date: BusinessDate,
        mut charged: Vec<PostedJournal>,
        short: &str,
    ) -> ServiceResult<Option<AutoDebitStatus>> {
        let amount = Amount::parse(savings.daily_amount.context("fixed accounts have a daily amount")?)
            .map_err(anyhow::Error::from)?;
        let now = self.clock.now();
        let charged_only = locked.clone();
        let draft = savings_deposit_journal(EntryKind::AutoDebit, &party(user), savings.id, amount);
        match locked.post(&draft, JournalId::new(), now) {
            Ok(debit) => {
                let completed = AutoDebitStatus::Completed;
                if !tx
                    .finish_auto_debit(savings.id, date, completed, Some(debit.id), None, now)
                    .await?
                {
                    tx.write_postings(&charged_only, &charged).await?;
                    return Ok(None);
                }
                charged.push(debit);
                tx.write_postings(locked, &charged).await?;
                tx.add_principal(savings.id, amount).await?;
                Ok(Some(completed))
            }
            Err(LedgerError::InsufficientFunds(_)) => {
                tx.write_postings(&charged_only, &charged).await?;
                self.fail_debit(tx, savings, date, short).await
            }
        }
    }

    /// Fails the day's debit (if still open) and tells the owner why.
    async fn fail_debit(
        &self,
        tx: &mut Session,
        savings: &Account,
        date: BusinessDate,
        reason: &str,
    ) -> ServiceResult<Option<AutoDebitStatus>> {
        let owner = savings.owner.context("savings accounts have owners")?;
        let now = self.clock.now();
        let failed = AutoDebitStatus::Failed;
        if !tx
            .finish_auto_debit(savings.id, date, failed, None, Some(reason), now)
            .await?
        {
            return Ok(None);
        }
        let note = notify::auto_debit_failed(owner, savings.id, date, reason, now);
        tx.insert_notifications(std::slice::from_ref(&note)).await?;
        Ok(Some(failed))
    }

    /// After the recovery step settled a charge that funded an auto-debit whose request died:
    /// finishes that day's debit from the money now in the main account, or fails it.
    pub(crate) async fn finish_auto_debit_after_recovery(&self, charge: &Charge) -> ServiceResult<()> {
        let Some((savings_id, date)) = self.store.read().await?.auto_debit_waiting_on(charge.id).await? else {
            return Ok(());
        };
        let mut tx = self.store.begin().await?;
        let savings = tx.account(savings_id).await?.context("auto-debited account exists")?;
        let user = tx.user(charge.user_id).await?.context("owner exists")?;
        let landed = tx
            .charge(charge.id)
            .await?
            .is_some_and(|c| c.status == ChargeStatus::Completed);
        if landed {
            let mut locked = tx.lock_accounts([user.main_account_id, savings.id]).await?;
            let short = "the charged money was used by another payment first";
            self.settle_debit_in(&mut tx, &mut locked, &user, &savings, date, Vec::new(), short)
                .await?;
        } else {
            self.fail_debit(&mut tx, &savings, date, "the bank did not pay").await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// The latest daily `time` (Seoul) at or before `at`.
fn daily_slot(time: Time, at: Timestamp) -> Timestamp {
    Schedule::Daily {
        hour: time.hour(),
        minute: time.minute(),
    }
    .slot_at_or_before(at)
}

/// The business dates an interest run for `date` pays an account for: each date after the
/// one it was last paid through, up to `date` (usually just `date`). An account with no record
/// (which migrations prevent) is paid for `date` alone.
fn owed_dates(s: &InterestState, date: BusinessDate) -> Vec<BusinessDate> {
    let mut day = match s.paid_through {
        Some(paid) => paid.next(),
        None => date,
    };
    let mut dates = Vec::new();
    while day <= date {
        dates.push(day);
        day = day.next();
    }
    dates
}

/// The interest owed for each owed date, each on the principal the account held at that
/// date's 04:00: its principal now, less what was added at or after that instant (`added`:
/// `(when, won)`). Returns the whole won to pay and the fraction carried, exactly.
fn interest_owed(s: &InterestState, date: BusinessDate, added: &[(Timestamp, i64)]) -> (i64, i64) {
    let rate = annual_rate_bp(s.product);
    let (mut paid, mut carry) = (0, s.carry);
    for day in owed_dates(s, date) {
        let slot = day.at(INTEREST_TIME);
        let later: i64 = added.iter().filter(|(at, _)| *at >= slot).map(|(_, won)| won).sum();
        let accrued = accrue_day((s.principal - later).max(0), rate, carry);
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

    fn date(s: &str) -> BusinessDate {
        BusinessDate::from_date(s.parse().unwrap())
    }

    fn state(principal: i64, paid_through: &str) -> InterestState {
        InterestState {
            account_id: AccountId::new(),
            product: SavingsProduct::Fixed,
            principal,
            carry: 0,
            paid_through: Some(date(paid_through)),
        }
    }

    #[test]
    fn one_day_pays_the_principal() {
        assert_eq!(
            interest_owed(&state(1_000_000, "2026-11-21"), date("2026-11-22"), &[]).0,
            136
        );
        assert_eq!(
            interest_owed(&state(1_000_000, "2026-11-22"), date("2026-11-22"), &[]).0,
            0,
            "paid already"
        );
    }

    #[test]
    fn missed_days_are_paid_on_each_days_principal() {
        // Ten days unpaid on 1,000,000 that was there all along: exactly ten days' interest.
        assert_eq!(
            interest_owed(&state(1_000_000, "2026-11-12"), date("2026-11-22"), &[]).0,
            1_369
        );
        // 1,000,000 more arrived on the 21st at 10:00 (after that day's 04:00): it earns only
        // the 22nd; the first million earns the 20th, 21st and 22nd.
        let added = [("2026-11-21T01:00:00Z".parse().unwrap(), 1_000_000)];
        let (paid, _) = interest_owed(&state(2_000_000, "2026-11-19"), date("2026-11-22"), &added);
        assert_eq!(paid, (3 * 1_000_000 * 500 + 1_000_000 * 500) / 3_650_000);
    }

    #[test]
    fn daily_slots_are_the_latest_at_or_before() {
        let seven_am: Timestamp = "2026-11-21T22:00:00Z".parse().unwrap(); // 07:00 on the 22nd in Seoul
        assert_eq!(
            BusinessDate::containing(daily_slot(AUTO_DEBIT_TIME, seven_am)),
            date("2026-11-21")
        );
        assert_eq!(
            BusinessDate::containing(daily_slot(INTEREST_TIME, seven_am)),
            date("2026-11-22")
        );
    }
}
