//! The double-entry ledger's rules: account kinds, the postings of each journal kind, and
//! applying a journal to locked balances (every journal sums to zero; user accounts never go
//! below zero available).

use crate::ids::{AccountId, EntryId, JournalId, UserId};
use crate::money::Amount;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountKind {
    Main,
    Savings,
    /// The platform's side of money entering or leaving users' accounts. May go negative.
    System,
    /// A business's balance on the platform (payments in, refunds and payouts out); its id is
    /// the business's id. Never below zero, like a user's.
    Business,
}

impl AccountKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Main => "main",
            Self::Savings => "savings",
            Self::System => "system",
            Self::Business => "business",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "main" => Self::Main,
            "savings" => Self::Savings,
            "system" => Self::System,
            "business" => Self::Business,
            _ => return None,
        })
    }
    /// A user's account (main or savings): the only kind that holds pending transfers.
    pub const fn is_user(self) -> bool {
        matches!(self, Self::Main | Self::Savings)
    }
    /// User and business accounts must never go below zero available; system accounts may.
    pub const fn never_negative(self) -> bool {
        !matches!(self, Self::System)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SavingsProduct {
    /// Deposits any time; 3% a year simple interest.
    Free,
    /// A fixed `daily_amount` auto-debited at 08:00; no manual deposits; 5% a year.
    Fixed,
}

impl SavingsProduct {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Free => "free",
            Self::Fixed => "fixed",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "free" => Some(Self::Free),
            "fixed" => Some(Self::Fixed),
            _ => None,
        }
    }
}

/// The platform's own accounts. Their ids are fixed so every instance and both backends
/// agree on them; the migrations create them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SystemAccount {
    /// Money pulled from (or pushed to) users' banks passes through here.
    BankSettlement,
    /// Interest paid to savings accounts is drawn from here.
    InterestExpense,
    /// Business remittances collected and credited, waiting to be paid out: its balance is
    /// the sum of the `credited` remittances (invariant 7).
    RemittanceFloat,
    /// Remittances debited from the float, on their way to B (or back to A): its balance is
    /// the sum of the `debited` and `refunding` ones.
    PayoutInTransit,
    /// Refunds taken from a business's balance, on their way to the user's bank: its balance
    /// is the sum of the refunds not yet finished (invariant 8).
    RefundsInTransit,
}

impl SystemAccount {
    pub const ALL: [SystemAccount; 5] = [
        Self::BankSettlement,
        Self::InterestExpense,
        Self::RemittanceFloat,
        Self::PayoutInTransit,
        Self::RefundsInTransit,
    ];

    pub const fn id(self) -> AccountId {
        AccountId::from_uuid(Uuid::from_u128(match self {
            Self::BankSettlement => 0x0000_0000_0000_7000_8000_0000_0000_0001,
            Self::InterestExpense => 0x0000_0000_0000_7000_8000_0000_0000_0002,
            Self::RemittanceFloat => 0x0000_0000_0000_7000_8000_0000_0000_0003,
            Self::PayoutInTransit => 0x0000_0000_0000_7000_8000_0000_0000_0004,
            Self::RefundsInTransit => 0x0000_0000_0000_7000_8000_0000_0000_0005,
        }))
    }
    pub const fn code(self) -> &'static str {
        match self {
            Self::BankSettlement => "bank_settlement",
            Self::InterestExpense => "interest_expense",
            Self::RemittanceFloat => "remittance_float",
            Self::PayoutInTransit => "payout_in_transit",
            Self::RefundsInTransit => "refunds_in_transit",
        }
    }
}

/// What a journal (and each of its entries) records, as shown in history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    Charge,
    Transfer,
    SavingsDeposit,
    /// The 08:00 debit from the main account into a fixed savings account.
    AutoDebit,
    /// The 04:00 daily interest credited to a savings account.
    Interest,
    /// A participant paying their share of a split bill.
    SettlementPayment,
    /// A business remittance passing through the platform's accounts.
    Remittance,
    /// A wallet user's payment to a business, from the user's bank into the business's balance.
    Payment,
    /// A payment given back: out of the business's balance, to the user's bank.
    Refund,
}

impl EntryKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Charge => "charge",
            Self::Transfer => "transfer",
            Self::SavingsDeposit => "savings_deposit",
            Self::AutoDebit => "auto_debit",
            Self::Interest => "interest",
            Self::SettlementPayment => "settlement_payment",
            Self::Remittance => "remittance",
            Self::Payment => "payment",
            Self::Refund => "refund",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "charge" => Self::Charge,
            "transfer" => Self::Transfer,
            "savings_deposit" => Self::SavingsDeposit,
            "auto_debit" => Self::AutoDebit,
            "interest" => Self::Interest,
            "settlement_payment" => Self::SettlementPayment,
            "remittance" => Self::Remittance,
            "payment" => Self::Payment,
            "refund" => Self::Refund,
            _ => return None,
        })
    }
}

/// Who is on the other side of an entry, with the name that side is shown as — fixed when
/// the entry is written, so a later rename never rewrites history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counterparty {
    pub name: String,
    pub user_id: Option<UserId>,
    pub account_id: Option<AccountId>,
}

/// A user's account taking part in a journal, with the name the user is known by.
#[derive(Debug, Clone)]
pub struct Party {
    pub user_id: UserId,
    pub account_id: AccountId,
    pub name: String,
}

impl Party {
    fn as_counterparty(&self, shown_as: &str) -> Counterparty {
        Counterparty {
            name: shown_as.to_owned(),
            user_id: Some(self.user_id),
            account_id: Some(self.account_id),
        }
    }
}

/// One side of a journal before it is applied: the signed change to an account's posted
/// balance (positive = money in, negative = money out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posting {
    pub account_id: AccountId,
    pub delta: i64,
    pub counterparty: Counterparty,
}

/// A journal that balances: its postings sum to zero and touch distinct accounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalDraft {
    kind: EntryKind,
    memo: Option<String>,
    postings: Vec<Posting>,
}

impl JournalDraft {
    fn balanced(kind: EntryKind, memo: Option<String>, postings: Vec<Posting>) -> Self {
        assert!(postings.len() >= 2, "a journal touches at least two accounts");
        assert_eq!(postings.iter().map(|p| p.delta).sum::<i64>(), 0, "journal must balance");
        assert!(postings.iter().all(|p| p.delta != 0), "no zero postings");
        let mut ids: Vec<_> = postings.iter().map(|p| p.account_id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), postings.len(), "one posting per account");
        Self { kind, memo, postings }
    }

    pub fn kind(&self) -> EntryKind {
        self.kind
    }
    pub fn postings(&self) -> &[Posting] {
        &self.postings
    }
    /// The accounts this journal touches, for locking in ascending id order.
    pub fn accounts(&self) -> impl Iterator<Item = AccountId> + '_ {
        self.postings.iter().map(|p| p.account_id)
    }
}

/// Money pulled from the user's bank into their main account; the bank settlement
/// account holds the other side.
pub fn charge_journal(owner: &Party, bank_label: &str, amount: Amount) -> JournalDraft {
    let bank = Counterparty {
        name: bank_label.to_owned(),
        user_id: None,
        account_id: None,
    };
    JournalDraft::balanced(
        EntryKind::Charge,
        None,
        vec![
            Posting {
                account_id: owner.account_id,
                delta: amount.won(),
                counterparty: bank,
            },
            Posting {
                account_id: SystemAccount::BankSettlement.id(),
                delta: -amount.won(),
                counterparty: owner.as_counterparty(&owner.name),
            },
        ],
    )
}

/// A remittance's money moving between the platform's own accounts: into the float when
/// collected, out of it for the payout, out of transit once the bank paid B (or A back).
/// `step` is the memo; `counterparty` names the business on the other side.
pub fn remittance_journal(step: crate::remittance::Step, counterparty: &str, amount: Amount) -> JournalDraft {
    use crate::remittance::Step;
    let (from, to) = match step {
        Step::CreditFloat => (SystemAccount::BankSettlement, SystemAccount::RemittanceFloat),
        Step::DebitFloat => (SystemAccount::RemittanceFloat, SystemAccount::PayoutInTransit),
        Step::Payout | Step::Refund => (SystemAccount::PayoutInTransit, SystemAccount::BankSettlement),
        Step::Collect => unreachable!("collecting moves money at the bank, not in the ledger"),
    };
    let side = |account: SystemAccount, delta: i64| Posting {
        account_id: account.id(),
        delta,
        counterparty: Counterparty {
            name: counterparty.to_owned(),
            user_id: None,
            account_id: None,
        },
    };
    JournalDraft::balanced(
        EntryKind::Remittance,
        Some(step.as_str().to_owned()),
        vec![side(from, -amount.won()), side(to, amount.won())],
    )
}

/// A business's ledger account (its balance on the platform): its id is the business's id.
pub fn business_account(business: crate::ids::BusinessId) -> AccountId {
    AccountId::from_uuid(business.as_uuid())
}

/// The movements of a business's balance (payments in; refunds and payouts out, and back when
/// the bank refuses them) against the platform's accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BalancePosting {
    /// Bank settlement → the business's balance: a payment pulled from the user's bank.
    PaymentPaid,
    /// The business's balance → refunds in transit, when a refund is accepted.
    RefundTaken,
    /// Refunds in transit → bank settlement, once the user's bank has it.
    RefundPaid,
    /// Refunds in transit → the business's balance, when the bank refused the push.
    RefundReturned,
    /// The business's balance → the remittance float, when a payout is accepted.
    PayoutTaken,
    /// Payout in transit → the business's balance, when its bank refused the payout.
    PayoutReturned,
}

impl BalancePosting {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::PaymentPaid => "payment_paid",
            Self::RefundTaken => "refund_taken",
            Self::RefundPaid => "refund_paid",
            Self::RefundReturned => "refund_returned",
            Self::PayoutTaken => "payout_taken",
            Self::PayoutReturned => "payout_returned",
        }
    }
}

/// Money moving between a business's balance (`business`, its ledger account) and the
/// platform's accounts; `counterparty` is what both entries show (the order, the payout).
pub fn balance_journal(
    posting: BalancePosting,
    business: AccountId,
    counterparty: &str,
    amount: Amount,
) -> JournalDraft {
    use BalancePosting as B;
    let settlement = SystemAccount::BankSettlement.id();
    let refunds = SystemAccount::RefundsInTransit.id();
    let float = SystemAccount::RemittanceFloat.id();
    let payouts = SystemAccount::PayoutInTransit.id();
    let (kind, from, to) = match posting {
        B::PaymentPaid => (EntryKind::Payment, settlement, business),
        B::RefundTaken => (EntryKind::Refund, business, refunds),
        B::RefundPaid => (EntryKind::Refund, refunds, settlement),
        B::RefundReturned => (EntryKind::Refund, refunds, business),
        B::PayoutTaken => (EntryKind::Remittance, business, float),
        B::PayoutReturned => (EntryKind::Remittance, payouts, business),
    };
    let side = |account_id: AccountId, delta: i64| Posting {
        account_id,
        delta,
        counterparty: Counterparty {
            name: counterparty.to_owned(),
            user_id: None,
            account_id: None,
        },
    };
    JournalDraft::balanced(
        kind,
        Some(posting.as_str().to_owned()),
        vec![side(from, -amount.won()), side(to, amount.won())],
    )
}

/// A P2P transfer (`Transfer` or `SettlementPayment`). The receiver sees the sender as `display_name`; the sender's own entry
/// shows the receiver's real name.
pub fn transfer_journal(
    kind: EntryKind,
    from: &Party,
    to: &Party,
    display_name: &str,
    memo: Option<String>,
    amount: Amount,
) -> JournalDraft {
    JournalDraft::balanced(
        kind,
        memo,
        vec![
            Posting {
                account_id: from.account_id,
                delta: -amount.won(),
                counterparty: to.as_counterparty(&to.name),
            },
            Posting {
                account_id: to.account_id,
                delta: amount.won(),
                counterparty: from.as_counterparty(display_name),
            },
        ],
    )
}

/// A move from the owner's main account into one of their savings accounts: a manual deposit
/// (`SavingsDeposit`) or the fixed product's daily debit (`AutoDebit`).
pub fn savings_deposit_journal(kind: EntryKind, main: &Party, savings: AccountId, amount: Amount) -> JournalDraft {
    assert!(
        matches!(kind, EntryKind::SavingsDeposit | EntryKind::AutoDebit),
        "not a savings deposit: {kind:?}"
    );
    JournalDraft::balanced(
        kind,
        None,
        vec![
            Posting {
                account_id: main.account_id,
                delta: -amount.won(),
                counterparty: Counterparty {
                    name: main.name.clone(),
                    user_id: Some(main.user_id),
                    account_id: Some(savings),
                },
            },
            Posting {
                account_id: savings,
                delta: amount.won(),
                counterparty: main.as_counterparty(&main.name),
            },
        ],
    )
}

/// One interest run over a batch of savings accounts: each account's interest, all drawn from
/// the interest expense account. `None` when nothing is paid (every amount is zero).
pub fn interest_journal(payments: &[(AccountId, i64)]) -> Option<JournalDraft> {
    let paying: Vec<_> = payments.iter().filter(|(_, won)| *won > 0).collect();
    if paying.is_empty() {
        return None;
    }
    assert!(payments.iter().all(|(_, won)| *won >= 0), "interest is never negative");
    let total: i64 = paying.iter().map(|(_, won)| won).sum();
    let interest = |name: &str| Counterparty {
        name: name.to_owned(),
        user_id: None,
        account_id: None,
    };
    let mut postings: Vec<Posting> = paying
        .iter()
        .map(|&&(account_id, won)| Posting {
            account_id,
            delta: won,
            counterparty: interest("Interest"),
        })
        .collect();
    postings.push(Posting {
        account_id: SystemAccount::InterestExpense.id(),
        delta: -total,
        counterparty: interest("Savings interest"),
    });
    Some(JournalDraft::balanced(EntryKind::Interest, None, postings))
}

/// An account's balances as read under its row lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountBalance {
    pub id: AccountId,
    pub owner: Option<UserId>,
    pub kind: AccountKind,
    /// Money that has settled into the account.
    pub posted: i64,
    /// Money held by open pending transfers out of the account.
    pub pending_out: i64,
    /// When the account's latest entry happened: a new entry is never earlier.
    pub last_entry_at: Option<Timestamp>,
}

impl AccountBalance {
    pub fn available(&self) -> i64 {
        self.posted - self.pending_out
    }
}

/// One applied line of a journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: EntryId,
    pub account_id: AccountId,
    pub owner: Option<UserId>,
    pub delta: i64,
    pub balance_after: i64,
    pub counterparty: Counterparty,
}

/// A journal applied to balances, ready to be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostedJournal {
    pub id: JournalId,
    pub kind: EntryKind,
    pub memo: Option<String>,
    pub occurred_at: Timestamp,
    pub entries: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    #[error("account {0} does not have enough available money")]
    InsufficientFunds(AccountId),
}

/// A balance that changed while locked: what to write back, with the value read under the
/// lock so the write can assert nothing else changed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BalanceChange {
    pub before: AccountBalance,
    pub after: AccountBalance,
}

/// The accounts a database transaction has locked, with their balances as money moves
/// through them. Journals are applied here, in memory and in order, under the locks; each
/// either applies whole or fails alone (a batch of journals can share one set of locks).
#[derive(Debug, Default, Clone)]
pub struct LockedAccounts {
    accounts: BTreeMap<AccountId, (AccountBalance, AccountBalance)>,
}

impl LockedAccounts {
    pub fn new(rows: impl IntoIterator<Item = AccountBalance>) -> Self {
        Self {
            accounts: rows.into_iter().map(|a| (a.id, (a, a))).collect(),
        }
    }

    /// The account's current balance inside this transaction.
    pub fn get(&self, id: AccountId) -> Option<&AccountBalance> {
        self.accounts.get(&id).map(|(_, now)| now)
    }

    /// Applies `draft` if every user account it touches stays at or above zero available.
    /// Panics if the caller did not lock an account the journal touches (a programming error).
    ///
    /// The journal happens at `now`, or just after the latest entry of any account it touches
    /// if that is later (another instance's clock may run ahead of ours), so each account's
    /// entries are strictly ordered in time in the order its balance changed.
    pub fn post(&mut self, draft: &JournalDraft, id: JournalId, now: Timestamp) -> Result<PostedJournal, LedgerError> {
        // Check every posting first so that a failure leaves the balances untouched.
        for p in draft.postings() {
            let acct = self.locked(p.account_id);
            let after = acct.posted.checked_add(p.delta).expect("balance overflow");
            if acct.kind.never_negative() && after - acct.pending_out < 0 {
                return Err(LedgerError::InsufficientFunds(p.account_id));
            }
        }
        let at = draft
            .postings()
            .iter()
            .filter_map(|p| self.locked(p.account_id).last_entry_at)
            .map(|last| last + SignedDuration::from_micros(1))
            .fold(now, Timestamp::max);
        let entries = draft
            .postings()
            .iter()
            .map(|p| {
                let acct = &mut self.accounts.get_mut(&p.account_id).expect("checked").1;
                acct.posted += p.delta;
                acct.last_entry_at = Some(at);
                Entry {
                    id: EntryId::new(),
                    account_id: p.account_id,
                    owner: acct.owner,
                    delta: p.delta,
                    balance_after: acct.posted,
                    counterparty: p.counterparty.clone(),
                }
            })
            .collect();
        Ok(PostedJournal {
            id,
            kind: draft.kind(),
            memo: draft.memo.clone(),
            occurred_at: at,
            entries,
        })
    }

    fn locked(&self, id: AccountId) -> &AccountBalance {
        self.get(id)
            .unwrap_or_else(|| panic!("account {id} was not locked before posting"))
    }

    /// Holds `amount` out of a user account's available balance (a pending transfer): the
    /// money stays posted but cannot be spent. Fails, changing nothing, if it is not there.
    pub fn hold(&mut self, account: AccountId, amount: Amount) -> Result<(), LedgerError> {
        let acct = self.locked(account);
        assert!(acct.kind.is_user(), "holds are on user accounts");
        if acct.available() < amount.won() {
            return Err(LedgerError::InsufficientFunds(account));
        }
        self.accounts.get_mut(&account).expect("locked").1.pending_out += amount.won();
        Ok(())
    }

    /// Releases a hold made by `hold` (the pending transfer was accepted, canceled or expired).
    pub fn release(&mut self, account: AccountId, amount: Amount) {
        let acct = &mut self
            .accounts
            .get_mut(&account)
            .unwrap_or_else(|| panic!("account {account} not locked"))
            .1;
        assert!(
            acct.pending_out >= amount.won(),
            "releasing more than is held on {account}"
        );
        acct.pending_out -= amount.won();
    }

    /// The balances that changed, in ascending id order, for writing back.
    pub fn changes(&self) -> Vec<BalanceChange> {
        self.accounts
            .values()
            .filter(|(before, after)| before != after)
            .map(|&(before, after)| BalanceChange { before, after })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn user_account(posted: i64, pending_out: i64) -> AccountBalance {
        AccountBalance {
            id: AccountId::new(),
            owner: Some(UserId::new()),
            kind: AccountKind::Main,
            posted,
            pending_out,
            last_entry_at: None,
        }
    }

    fn party(a: &AccountBalance, name: &str) -> Party {
        Party {
            user_id: a.owner.unwrap(),
            account_id: a.id,
            name: name.into(),
        }
    }

    fn amt(w: i64) -> Amount {
        Amount::parse(w).unwrap()
    }

    fn now() -> Timestamp {
        "2026-11-21T00:00:00Z".parse().unwrap()
    }

    #[test]
    fn a_remittance_goes_float_then_transit_then_out_and_nets_to_zero() {
        use crate::remittance::Step;
        let amount = Amount::parse(70_000).unwrap();
        let mut net: std::collections::HashMap<AccountId, i64> = std::collections::HashMap::new();
        for step in [Step::CreditFloat, Step::DebitFloat, Step::Payout] {
            let j = remittance_journal(step, "B Corp", amount);
            assert_eq!(j.kind(), EntryKind::Remittance);
            assert_eq!(j.memo.as_deref(), Some(step.as_str()));
            for p in j.postings() {
                *net.entry(p.account_id).or_default() += p.delta;
            }
        }
        assert!(
            net.values().all(|v| *v == 0),
            "a completed remittance leaves nothing behind: {net:?}"
        );
        let credit = remittance_journal(Step::CreditFloat, "A Corp", amount);
        let float = credit
            .postings()
            .iter()
            .find(|p| p.account_id == SystemAccount::RemittanceFloat.id())
            .unwrap();
        assert_eq!(float.delta, 70_000, "the float grows when a remittance is credited");
        let refund = remittance_journal(Step::Refund, "A Corp", amount);
        assert_eq!(
            refund.postings(),
            remittance_journal(Step::Payout, "A Corp", amount).postings()
        );
    }

    #[test]
    fn transfer_moves_money_and_records_names() {
        let (a, b) = (user_account(30_000, 0), user_account(0, 0));
        let mut locked = LockedAccounts::new([a, b]);
        let j = transfer_journal(
            EntryKind::Transfer,
            &party(&a, "Kim"),
            &party(&b, "Lee"),
            "K",
            None,
            amt(10_000),
        );
        let posted = locked.post(&j, JournalId::new(), now()).unwrap();
        assert_eq!(posted.entries.iter().map(|e| e.delta).sum::<i64>(), 0);
        let out = &posted.entries[0];
        assert_eq!(
            (out.delta, out.balance_after, out.counterparty.name.as_str()),
            (-10_000, 20_000, "Lee")
        );
        let inn = &posted.entries[1];
        assert_eq!(
            (inn.delta, inn.balance_after, inn.counterparty.name.as_str()),
            (10_000, 10_000, "K")
        );
        assert_eq!(locked.changes().len(), 2);
    }

    #[test]
    fn pending_money_is_not_available() {
        // 30,000 posted with 20,000 held: 10,000 can go, 10,001 cannot.
        let (a, b) = (user_account(30_000, 20_000), user_account(0, 0));
        let mut locked = LockedAccounts::new([a, b]);
        let too_much = transfer_journal(
            EntryKind::Transfer,
            &party(&a, "A"),
            &party(&b, "B"),
            "A",
            None,
            amt(10_001),
        );
        assert_eq!(
            locked.post(&too_much, JournalId::new(), now()),
            Err(LedgerError::InsufficientFunds(a.id))
        );
        assert!(locked.changes().is_empty(), "a failed journal changes nothing");
        let ok = transfer_journal(
            EntryKind::Transfer,
            &party(&a, "A"),
            &party(&b, "B"),
            "A",
            None,
            amt(10_000),
        );
        locked.post(&ok, JournalId::new(), now()).unwrap();
        assert_eq!(locked.get(a.id).unwrap().available(), 0);
    }

    #[test]
    fn system_accounts_may_go_negative() {
        let a = user_account(0, 0);
        let settlement = AccountBalance {
            id: SystemAccount::BankSettlement.id(),
            owner: None,
            kind: AccountKind::System,
            posted: 0,
            pending_out: 0,
            last_entry_at: None,
        };
        let mut locked = LockedAccounts::new([a, settlement]);
        locked
            .post(
                &charge_journal(&party(&a, "A"), "bank 004", amt(5)),
                JournalId::new(),
                now(),
            )
            .unwrap();
        assert_eq!(locked.get(settlement.id).unwrap().posted, -5);
        assert_eq!(locked.get(a.id).unwrap().posted, 5);
    }

    #[test]
    #[should_panic(expected = "was not locked")]
    fn posting_to_an_unlocked_account_is_a_bug() {
        let (a, b) = (user_account(10, 0), user_account(0, 0));
        let mut locked = LockedAccounts::new([a]);
        let j = transfer_journal(EntryKind::Transfer, &party(&a, "A"), &party(&b, "B"), "A", None, amt(1));
        let _ = locked.post(&j, JournalId::new(), now());
    }

    #[test]
    fn holds_reduce_available_until_released() {
        let a = user_account(30_000, 0);
        let mut locked = LockedAccounts::new([a]);
        locked.hold(a.id, amt(20_000)).unwrap();
        assert_eq!(locked.get(a.id).unwrap().available(), 10_000);
        assert_eq!(
            locked.hold(a.id, amt(10_001)),
            Err(LedgerError::InsufficientFunds(a.id))
        );
        assert_eq!(
            locked.get(a.id).unwrap().pending_out,
            20_000,
            "a refused hold changes nothing"
        );
        locked.release(a.id, amt(20_000));
        assert_eq!(locked.get(a.id).unwrap().available(), 30_000);
    }

    #[test]
    fn interest_is_drawn_from_the_interest_expense_account() {
        let (s1, s2, s3) = (AccountId::new(), AccountId::new(), AccountId::new());
        assert_eq!(interest_journal(&[(s1, 0)]), None);
        let j = interest_journal(&[(s1, 136), (s2, 0), (s3, 82)]).unwrap();
        assert_eq!(j.kind(), EntryKind::Interest);
        assert_eq!(j.postings().len(), 3);
        assert_eq!(
            j.postings().last().unwrap().account_id,
            SystemAccount::InterestExpense.id()
        );
        assert_eq!(j.postings().last().unwrap().delta, -218);
    }

    #[test]
    fn entries_never_go_back_in_time_on_an_account() {
        // Another instance wrote the receiver's last entry with a clock 5 ms ahead of ours.
        let ahead: Timestamp = "2026-11-21T00:00:00.005Z".parse().unwrap();
        let a = user_account(10, 0);
        let b = AccountBalance {
            last_entry_at: Some(ahead),
            ..user_account(0, 0)
        };
        let mut locked = LockedAccounts::new([a, b]);
        let j = transfer_journal(EntryKind::Transfer, &party(&a, "A"), &party(&b, "B"), "A", None, amt(1));
        let first = locked.post(&j, JournalId::new(), now()).unwrap();
        assert_eq!(first.occurred_at, "2026-11-21T00:00:00.005001Z".parse().unwrap());
        let second = locked.post(&j, JournalId::new(), now()).unwrap();
        assert!(
            second.occurred_at > first.occurred_at,
            "strictly after the previous entry"
        );
        assert_eq!(locked.get(a.id).unwrap().last_entry_at, Some(second.occurred_at));
    }

    #[test]
    fn system_account_ids_are_distinct_and_stable() {
        assert_ne!(SystemAccount::BankSettlement.id(), SystemAccount::InterestExpense.id());
        let mut ids: Vec<_> = SystemAccount::ALL.iter().map(|s| s.id()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), SystemAccount::ALL.len(), "system account ids are distinct");
        assert_eq!(
            SystemAccount::BankSettlement.id().to_string(),
            "00000000-0000-7000-8000-000000000001"
        );
    }

    proptest! {
        /// Any sequence of transfers among a few accounts conserves money and never leaves a
        /// user account below zero available; failed transfers change nothing.
        #[test]
        fn transfers_conserve_money(
            starts in proptest::collection::vec(0i64..100_000, 2..6),
            moves in proptest::collection::vec((0usize..6, 0usize..6, 1i64..60_000), 0..60),
        ) {
            let accounts: Vec<_> = starts.iter().map(|&s| user_account(s, 0)).collect();
            let total: i64 = starts.iter().sum();
            let mut locked = LockedAccounts::new(accounts.clone());
            for (from, to, won) in moves {
                let (from, to) = (from % accounts.len(), to % accounts.len());
                if from == to { continue; }
                let before = locked.get(accounts[from].id).unwrap().available();
                let j = transfer_journal(EntryKind::Transfer, &party(&accounts[from], "f"), &party(&accounts[to], "t"), "f", None, amt(won));
                let res = locked.post(&j, JournalId::new(), now());
                prop_assert_eq!(res.is_ok(), before >= won);
            }
            let after: i64 = accounts.iter().map(|a| locked.get(a.id).unwrap().posted).sum();
            prop_assert_eq!(after, total);
            prop_assert!(accounts.iter().all(|a| locked.get(a.id).unwrap().available() >= 0));
        }
    }
}
