//! Business remittance (A → platform → B): its statuses, the step each status waits for, what
//! a step's outcome leads to, and where the money is in each status. Pure: the services run
//! the steps and record what this module decides.
//!
//! ```text
//! requested ──collect──► collected ──credit_float──► credited ──debit_float──► debited ──payout──► completed
//!     │ declined                                                                  │ refused
//!     ▼                                                                           ▼
//! collect_failed                                                             refunding ──refund──► refunded
//!
//! any unfinished status ──retries exhausted──► needs_attention ──retry by an operator──► the status it held
//! ```

use serde::{Deserialize, Serialize};

/// A business's own reference for a remittance (an invoice number...), at most this long.
pub const REFERENCE_LEN_MAX: usize = 100;

/// A remittance's status. Each says where the money is ([`RemittanceStatus::money_at`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemittanceStatus {
    Requested,
    Collected,
    Credited,
    Debited,
    Completed,
    CollectFailed,
    Refunding,
    Refunded,
    NeedsAttention,
}

/// One step of the way. The bank steps call the bank (outside any transaction); the float
/// steps post to the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Pull the amount from A's bank account into the platform's.
    Collect,
    /// Ledger: bank settlement → remittance float.
    CreditFloat,
    /// Ledger: remittance float → payout in transit.
    DebitFloat,
    /// Push the amount from the platform's bank account to B's.
    Payout,
    /// Push it back to A when B could not be paid.
    Refund,
}

/// How a step ended, when it ended for good (a transient failure is retried, not an outcome).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepOutcome {
    Succeeded,
    /// The bank processed the call and said no (declined, closed account, holder mismatch).
    Refused,
}

/// How one attempt at a step ended, as recorded in its history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    Succeeded,
    /// The bank said no: the step ended for good.
    Refused,
    /// Nothing happened (the bank was unavailable, a write failed): tried again.
    Failed,
    /// No answer, and the status inquiry could not tell: tried again under the same transfer id.
    Unknown,
}

impl AttemptOutcome {
    pub const ALL: [Self; 4] = [Self::Succeeded, Self::Refused, Self::Failed, Self::Unknown];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Refused => "refused",
            Self::Failed => "failed",
            Self::Unknown => "unknown",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == s)
    }
}

/// Where a remittance's money comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemittanceSource {
    /// A's bank account: collected by a pull (a remittance between businesses).
    Bank,
    /// A's balance on the platform (payments taken in): a payout to A's own bank account. It
    /// starts `credited` (taken from the balance into the float when requested), and a payout
    /// the bank refuses goes back into the balance — no bank call.
    Balance,
}

impl RemittanceSource {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Bank => "bank",
            Self::Balance => "balance",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Bank, Self::Balance].into_iter().find(|v| v.as_str() == s)
    }
}

/// Where a remittance's money is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MoneyPlace {
    /// Still in A's bank account.
    SenderBank,
    /// In the platform's bank account, not yet in the ledger's float.
    PlatformBank,
    /// In the ledger's remittance float.
    Float,
    /// Out of the float, on its way to B (or back to A).
    InTransit,
    /// In B's bank account.
    ReceiverBank,
    /// Back in A's bank account.
    BackAtSender,
    /// Back in A's balance on the platform (a payout its bank refused).
    BackInBalance,
}

/// A step outcome the status does not allow (a bug, or a stale worker: never applied).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a remittance that is {status:?} cannot take {step:?} {outcome:?}")]
pub struct TransitionError {
    pub status: RemittanceStatus,
    pub step: Step,
    pub outcome: StepOutcome,
}

impl RemittanceStatus {
    pub const ALL: [Self; 9] = [
        Self::Requested,
        Self::Collected,
        Self::Credited,
        Self::Debited,
        Self::Completed,
        Self::CollectFailed,
        Self::Refunding,
        Self::Refunded,
        Self::NeedsAttention,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Requested => "requested",
            Self::Collected => "collected",
            Self::Credited => "credited",
            Self::Debited => "debited",
            Self::Completed => "completed",
            Self::CollectFailed => "collect_failed",
            Self::Refunding => "refunding",
            Self::Refunded => "refunded",
            Self::NeedsAttention => "needs_attention",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Ended for good: nothing more happens to the money.
    pub const fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::CollectFailed | Self::Refunded)
    }

    /// The step this status waits for; `None` when final or waiting for a person.
    pub const fn next_step(self) -> Option<Step> {
        match self {
            Self::Requested => Some(Step::Collect),
            Self::Collected => Some(Step::CreditFloat),
            Self::Credited => Some(Step::DebitFloat),
            Self::Debited => Some(Step::Payout),
            Self::Refunding => Some(Step::Refund),
            Self::Completed | Self::CollectFailed | Self::Refunded | Self::NeedsAttention => None,
        }
    }

    /// The status after `step` ended with `outcome`.
    pub fn after(self, step: Step, outcome: StepOutcome) -> Result<Self, TransitionError> {
        use RemittanceStatus as S;
        use StepOutcome::{Refused, Succeeded};
        let next = match (self, step, outcome) {
            (S::Requested, Step::Collect, Succeeded) => S::Collected,
            (S::Requested, Step::Collect, Refused) => S::CollectFailed,
            (S::Collected, Step::CreditFloat, Succeeded) => S::Credited,
            (S::Credited, Step::DebitFloat, Succeeded) => S::Debited,
            (S::Debited, Step::Payout, Succeeded) => S::Completed,
            (S::Debited, Step::Payout, Refused) => S::Refunding,
            (S::Refunding, Step::Refund, Succeeded) => S::Refunded,
            // A's bank refuses the money back: only a person can decide where it goes.
            (S::Refunding, Step::Refund, Refused) => S::NeedsAttention,
            _ => {
                return Err(TransitionError {
                    status: self,
                    step,
                    outcome,
                });
            }
        };
        Ok(next)
    }

    /// Where the money is in this status. A remittance that needs attention holds it where
    /// the status it stopped in held it (`held`).
    pub fn money_at(self, held: Option<Self>) -> MoneyPlace {
        match self {
            Self::Requested | Self::CollectFailed => MoneyPlace::SenderBank,
            Self::Collected => MoneyPlace::PlatformBank,
            Self::Credited => MoneyPlace::Float,
            Self::Debited | Self::Refunding => MoneyPlace::InTransit,
            Self::Completed => MoneyPlace::ReceiverBank,
            Self::Refunded => MoneyPlace::BackAtSender,
            Self::NeedsAttention => match held {
                Some(h) if h != Self::NeedsAttention => h.money_at(None),
                // The refund was refused: the money is still out of the float, in transit.
                _ => MoneyPlace::InTransit,
            },
        }
    }

    /// [`Self::money_at`] for a remittance from `source`: a refunded payout is back in the
    /// balance it came from.
    pub fn money_at_from(self, held: Option<Self>, source: RemittanceSource) -> MoneyPlace {
        match (self.money_at(held), source) {
            (MoneyPlace::BackAtSender, RemittanceSource::Balance) => MoneyPlace::BackInBalance,
            (place, _) => place,
        }
    }

    /// Whether retries may give up on this status (it moves to `needs_attention`, holding it).
    pub const fn may_need_attention(self) -> bool {
        self.next_step().is_some()
    }
}

impl Step {
    pub const ALL: [Self; 5] = [
        Self::Collect,
        Self::CreditFloat,
        Self::DebitFloat,
        Self::Payout,
        Self::Refund,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Collect => "collect",
            Self::CreditFloat => "credit_float",
            Self::DebitFloat => "debit_float",
            Self::Payout => "payout",
            Self::Refund => "refund",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Whether the step calls the bank (and so can end `Refused` or unknown).
    pub const fn calls_the_bank(self) -> bool {
        matches!(self, Self::Collect | Self::Payout | Self::Refund)
    }

    /// Whether the step calls the bank for a remittance from `source`: a payout from the
    /// balance is refunded on the ledger, back into the balance.
    pub const fn calls_the_bank_from(self, source: RemittanceSource) -> bool {
        match (self, source) {
            (Self::Refund, RemittanceSource::Balance) => false,
            _ => self.calls_the_bank(),
        }
    }

    /// The suffix of the bank transfer id of this step: one id per step of a remittance, so
    /// a retry (or a second instance, or a restart) can never move the money twice.
    pub const fn tran_suffix(self) -> &'static str {
        match self {
            Self::Collect => "C",
            Self::CreditFloat => "CF",
            Self::DebitFloat => "DF",
            Self::Payout => "P",
            Self::Refund => "R",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refunded_payout_is_back_in_the_balance_without_a_bank_call() {
        use RemittanceSource::{Balance, Bank};
        let r = RemittanceStatus::Refunded;
        assert_eq!(r.money_at_from(None, Bank), MoneyPlace::BackAtSender);
        assert_eq!(r.money_at_from(None, Balance), MoneyPlace::BackInBalance);
        for s in RemittanceStatus::ALL.into_iter().filter(|s| *s != r) {
            assert_eq!(s.money_at_from(None, Balance), s.money_at(None), "{s:?}");
        }
        assert!(Step::Refund.calls_the_bank_from(Bank));
        assert!(!Step::Refund.calls_the_bank_from(Balance));
        assert!(Step::Payout.calls_the_bank_from(Balance));
        assert_eq!(RemittanceSource::parse("balance"), Some(Balance));
        assert_eq!(RemittanceSource::parse(Bank.as_str()), Some(Bank));
    }
    use RemittanceStatus as S;
    use StepOutcome::{Refused, Succeeded};

    #[test]
    fn the_happy_path_walks_four_steps_to_completed() {
        let mut status = S::Requested;
        let mut steps = Vec::new();
        while let Some(step) = status.next_step() {
            steps.push(step);
            status = status.after(step, Succeeded).unwrap();
        }
        assert_eq!(
            steps,
            [Step::Collect, Step::CreditFloat, Step::DebitFloat, Step::Payout]
        );
        assert_eq!(status, S::Completed);
    }

    #[test]
    fn requested_collect_succeeded_is_collected() {
        assert_eq!(S::Requested.after(Step::Collect, Succeeded), Ok(S::Collected));
    }

    #[test]
    fn requested_collect_refused_is_collect_failed() {
        assert_eq!(S::Requested.after(Step::Collect, Refused), Ok(S::CollectFailed));
    }

    #[test]
    fn collected_credit_float_succeeded_is_credited() {
        assert_eq!(S::Collected.after(Step::CreditFloat, Succeeded), Ok(S::Credited));
    }

    #[test]
    fn credited_debit_float_succeeded_is_debited() {
        assert_eq!(S::Credited.after(Step::DebitFloat, Succeeded), Ok(S::Debited));
    }

    #[test]
    fn debited_payout_succeeded_is_completed() {
        assert_eq!(S::Debited.after(Step::Payout, Succeeded), Ok(S::Completed));
    }

    #[test]
    fn debited_payout_refused_is_refunding() {
        assert_eq!(S::Debited.after(Step::Payout, Refused), Ok(S::Refunding));
    }

    #[test]
    fn refunding_refund_succeeded_is_refunded() {
        assert_eq!(S::Refunding.after(Step::Refund, Succeeded), Ok(S::Refunded));
    }

    #[test]
    fn refunding_refund_refused_needs_attention() {
        assert_eq!(S::Refunding.after(Step::Refund, Refused), Ok(S::NeedsAttention));
    }

    #[test]
    fn the_ledger_steps_are_never_refused() {
        for (status, step) in [(S::Collected, Step::CreditFloat), (S::Credited, Step::DebitFloat)] {
            assert!(status.after(step, Refused).is_err(), "{status:?} {step:?}");
        }
    }

    #[test]
    fn every_other_pair_is_refused_as_a_transition() {
        let allowed = [
            (S::Requested, Step::Collect),
            (S::Collected, Step::CreditFloat),
            (S::Credited, Step::DebitFloat),
            (S::Debited, Step::Payout),
            (S::Refunding, Step::Refund),
        ];
        for status in S::ALL {
            for step in Step::ALL {
                if !allowed.contains(&(status, step)) {
                    for outcome in [Succeeded, Refused] {
                        assert_eq!(
                            status.after(step, outcome),
                            Err(TransitionError { status, step, outcome }),
                            "{status:?} {step:?} {outcome:?}"
                        );
                    }
                }
            }
            // A status takes exactly the step it waits for.
            if let Some(step) = status.next_step() {
                assert!(allowed.contains(&(status, step)));
            }
        }
    }

    #[test]
    fn final_statuses_wait_for_nothing_and_may_not_need_attention() {
        for status in [S::Completed, S::CollectFailed, S::Refunded] {
            assert!(status.is_final());
            assert_eq!(status.next_step(), None);
            assert!(!status.may_need_attention());
        }
        assert!(!S::NeedsAttention.is_final(), "a person still has to decide");
        assert!(!S::NeedsAttention.may_need_attention());
        for status in [S::Requested, S::Collected, S::Credited, S::Debited, S::Refunding] {
            assert!(!status.is_final());
            assert!(status.may_need_attention());
        }
    }

    #[test]
    fn every_status_says_where_the_money_is() {
        use MoneyPlace as M;
        let expected = [
            (S::Requested, M::SenderBank),
            (S::Collected, M::PlatformBank),
            (S::Credited, M::Float),
            (S::Debited, M::InTransit),
            (S::Completed, M::ReceiverBank),
            (S::CollectFailed, M::SenderBank),
            (S::Refunding, M::InTransit),
            (S::Refunded, M::BackAtSender),
        ];
        for (status, place) in expected {
            assert_eq!(status.money_at(None), place, "{status:?}");
            assert_eq!(
                S::NeedsAttention.money_at(Some(status)),
                place,
                "needs attention held at {status:?}"
            );
        }
        assert_eq!(S::NeedsAttention.money_at(None), M::InTransit);
    }

    #[test]
    fn names_round_trip_and_transfer_ids_differ_per_step() {
        for status in S::ALL {
            assert_eq!(S::parse(status.as_str()), Some(status));
        }
        for step in Step::ALL {
            assert_eq!(Step::parse(step.as_str()), Some(step));
        }
        let mut suffixes: Vec<_> = Step::ALL.iter().map(|s| s.tran_suffix()).collect();
        suffixes.sort();
        suffixes.dedup();
        assert_eq!(suffixes.len(), Step::ALL.len());
        assert_eq!(S::parse("lost"), None);
        assert_eq!(Step::parse("teleport"), None);
    }
}
