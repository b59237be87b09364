//! P2P transfers between users' main accounts, with auto-charge of the shortfall.

use crate::Wallet;
use crate::charges::{ChargeOutcome, failure_code, settled_elsewhere};
use crate::error::{ServiceError, ServiceResult};
use crate::idempotency::{IdempotentRequest, Reply, claim, conclude};
use crate::notify;
use crate::pagination::{decode_cursor, page_of, rows_for};
use crate::views::{Page, SettlementView, TransferView};
use anyhow::Context;
use jiff::Timestamp;
use minipay_core::charge::{ChargePurpose, ChargeStatus, auto_charge_amount};
use minipay_core::ledger::{
    AccountKind, EntryKind, LedgerError, LockedAccounts, Party, PostedJournal, SystemAccount, transfer_journal,
};
use minipay_core::request::{PageLimit, bounded_text};
use minipay_core::transfer::{TransferMode, TransferStatus, pending_expires_at};
use minipay_core::user::NAME_LEN_MAX;
use minipay_core::{AccountId, Amount, JournalId, TransferId, UserId};
use minipay_store::{Charge, Direction, Notification, Session, Transfer, User};
use serde::Serialize;
use std::sync::Arc;
use uuid::Uuid;

/// Memos are short notes shown to both sides.
pub const MEMO_LEN_MAX: usize = 200;

/// Who receives a transfer.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferRecipient {
    User(UserId),
    /// Must be a user's main account.
    Account(AccountId),
}

/// A transfer, validated at the edge.
#[derive(Debug, Clone, Serialize)]
pub struct TransferRequest {
    pub recipient: TransferRecipient,
    pub amount: Amount,
    pub display_name: Option<String>,
    pub memo: Option<String>,
    pub mode: Option<TransferMode>,
}

impl TransferRequest {
    pub fn parse(
        to_user_id: Option<UserId>,
        to_account_id: Option<AccountId>,
        amount: i64,
        display_name: Option<&str>,
        memo: Option<&str>,
        mode: Option<&str>,
    ) -> ServiceResult<Self> {
        let recipient = match (to_user_id, to_account_id) {
            (Some(u), None) => TransferRecipient::User(u),
            (None, Some(a)) => TransferRecipient::Account(a),
            _ => {
                return Err(ServiceError::validation(
                    "give exactly one of to_user_id and to_account_id",
                ));
            }
        };
        let amount = Amount::parse(amount).map_err(ServiceError::validation)?;
        let display_name = display_name
            .map(|n| bounded_text("display_name", n, NAME_LEN_MAX))
            .transpose()
            .map_err(ServiceError::validation)?;
        let memo = match memo.map(str::trim) {
            None | Some("") => None,
            Some(m) => Some(bounded_text("memo", m, MEMO_LEN_MAX).map_err(ServiceError::validation)?),
        };
        let mode = mode
            .map(|m| {
                TransferMode::parse(m)
                    .ok_or_else(|| ServiceError::validation("mode must be \"immediate\" or \"pending\""))
            })
            .transpose()?;
        Ok(Self {
            recipient,
            amount,
            display_name,
            memo,
            mode,
        })
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct TransferListFilter {
    pub direction: Option<Direction>,
    pub status: Option<TransferStatus>,
}

/// What a payment is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PaymentPurpose {
    /// `POST /v1/transfers`.
    Transfer,
    /// A participant's share of a split bill: the share is marked paid in the transaction
    /// that moves the money.
    SettlementShare(Uuid),
}

/// What a completed payment answers with: the transfer, or the settlement whose share it paid.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub(crate) enum PaymentView {
    Transfer(TransferView),
    Settlement(SettlementView),
}

/// How one attempt at a payment ended.
#[allow(clippy::large_enum_variant)] // returned once per request, never stored
enum Attempt {
    Done(Reply<PaymentView>),
    /// Its auto-charge was completed by the recovery step: try again from the money now there.
    FundedElsewhere,
}

/// Sender and receiver of a payment being made, and how it is made.
pub(crate) struct Sides {
    pub(crate) sender: User,
    pub(crate) receiver: User,
    pub(crate) mode: TransferMode,
}

impl Sides {
    pub(crate) fn accounts(&self) -> [AccountId; 2] {
        [self.sender.main_account_id, self.receiver.main_account_id]
    }
}

impl Wallet {
    /// `POST /v1/transfers`. If the sender's available balance is short, the shortfall is
    /// charged from their bank in whole 10,000-won units under the daily limit first; if that
    /// is not allowed or fails, nothing moves. In `pending` mode the money is held out of the
    /// sender's available balance until the receiver accepts (or it is canceled or expires).
    /// Concurrent transfers are grouped into one transaction (see `batch`); a transfer that
    /// needs an auto-charge runs on its own.
    #[tracing::instrument(name = "minipay.transfers.create", skip_all, err(level = "debug"))]
    pub async fn transfer(
        self: &Arc<Self>,
        me: UserId,
        req: TransferRequest,
        idem: Option<IdempotentRequest>,
    ) -> ServiceResult<Reply<TransferView>> {
        if self.batching.enabled()
            && let Some(answer) = self.transfer_in_batch(me, &req, idem.as_ref()).await
        {
            return answer;
        }
        match self.pay(me, &req, idem.as_ref(), PaymentPurpose::Transfer, 201).await? {
            Reply::Fresh(PaymentView::Transfer(view)) => Ok(Reply::Fresh(view)),
            Reply::Fresh(PaymentView::Settlement(_)) => unreachable!("a transfer answers with the transfer"),
            Reply::Replayed(stored) => Ok(Reply::Replayed(stored)),
        }
    }

    /// Makes a payment (a transfer, or a settlement share) and answers with `success_status`.
    pub(crate) async fn pay(
        &self,
        me: UserId,
        req: &TransferRequest,
        idem: Option<&IdempotentRequest>,
        purpose: PaymentPurpose,
        success_status: u16,
    ) -> ServiceResult<Reply<PaymentView>> {
        match self.try_pay(me, req, idem, purpose, success_status).await? {
            Attempt::Done(reply) => Ok(reply),
            // The auto-charge landed in the main account through the recovery step, which
            // released the key: the payment is made from that money (no second charge).
            Attempt::FundedElsewhere => match self.try_pay(me, req, idem, purpose, success_status).await? {
                Attempt::Done(reply) => Ok(reply),
                Attempt::FundedElsewhere => Err(settled_elsewhere()),
            },
        }
    }

    async fn try_pay(
        &self,
        me: UserId,
        req: &TransferRequest,
        idem: Option<&IdempotentRequest>,
        purpose: PaymentPurpose,
        status: u16,
    ) -> ServiceResult<Attempt> {
        let reply = |r: ServiceResult<Reply<PaymentView>>| r.map(Attempt::Done);
        let mut tx = self.store.begin().await?;
        let now = self.clock.now();
        if let Some(stored) = claim(&mut tx, me, idem, now).await? {
            return Ok(Attempt::Done(Reply::Replayed(stored)));
        }
        let sides = match self.payment_sides(&mut tx, me, req, purpose, &KnownUsers::new()).await {
            Ok(sides) => sides,
            Err(e) => return reply(conclude(tx, me, idem, status, Err(e)).await),
        };
        let mut locked = tx.lock_accounts(sides.accounts()).await?;
        let available = locked
            .get(sides.sender.main_account_id)
            .context("sender account locked")?
            .available();
        let Some(shortfall) = auto_charge_amount(available, req.amount) else {
            // Enough money: the whole payment is this one transaction.
            let applied = self
                .apply_payment(&mut locked, &sides, req, now)
                .expect("available covers the amount");
            let transfer_id = TransferId::new();
            if !self.claim_share(&mut tx, purpose, me, transfer_id).await? {
                let paid = ServiceError::AlreadyPaid("your share of this settlement is already paid".into());
                return reply(conclude(tx, me, idem, status, Err(paid)).await);
            }
            let view = self
                .write_payment(&mut tx, &locked, &sides, req, purpose, transfer_id, now, applied, None)
                .await?;
            return reply(conclude(tx, me, idem, status, Ok(view)).await);
        };

        // Short: record an auto-charge of the rounded shortfall, then call the bank outside
        // any transaction.
        let started = match tx.charging_bank_account(me).await? {
            None => Err(nothing_to_charge_from()),
            Some(bank) => {
                self.start_charge_in(&mut tx, &sides.sender, bank, shortfall, ChargePurpose::AutoCharge)
                    .await
            }
        };
        let started = match started {
            Ok(started) => started,
            Err(e) => return reply(conclude(tx, me, idem, status, Err(e)).await),
        };
        self.commit_intent(tx, me, idem, &started).await?;

        let outcome = self.pull(&started).await;

        let charge = &started.charge;
        let mut tx = self.store.begin().await?;
        match outcome {
            ChargeOutcome::Taken => {
                // The payment takes effect now, after the bank call.
                let now = self.clock.now();
                let [sender, receiver] = sides.accounts();
                let mut locked = tx
                    .lock_accounts([sender, receiver, SystemAccount::BankSettlement.id()])
                    .await?;
                let label = started.bank_account.label();
                let Some(charge_posted) = self
                    .complete_charge_in(&mut tx, &mut locked, charge, &sides.sender.name, &label)
                    .await?
                else {
                    tx.rollback().await?;
                    let status = self.store.read().await?.charge(charge.id).await?.map(|c| c.status);
                    return match status {
                        Some(ChargeStatus::Completed) => Ok(Attempt::FundedElsewhere),
                        _ => Err(settled_elsewhere()),
                    };
                };
                let charged = |why: &str| {
                    format!(
                        "{} won was charged from your bank account and is in your main account, but {why}, so the \
                         payment was not made",
                        charge.amount.won()
                    )
                };
                // Whatever stops the payment now, the charge landed and stands as a normal charge:
                // each refusal is decided before anything is written, then the charge alone is.
                let charged_only = locked.clone();
                let transfer_id = TransferId::new();
                let result = match self.apply_payment(&mut locked, &sides, req, now) {
                    Err(LedgerError::InsufficientFunds(_)) => {
                        tx.write_postings(&charged_only, std::slice::from_ref(&charge_posted))
                            .await?;
                        Err(ServiceError::InsufficientFunds(charged(
                            "another payment used the money meanwhile",
                        )))
                    }
                    Ok(applied) => match self.claim_share(&mut tx, purpose, me, transfer_id).await? {
                        false => {
                            tx.write_postings(&charged_only, std::slice::from_ref(&charge_posted))
                                .await?;
                            Err(ServiceError::AlreadyPaid(charged("your share was paid meanwhile")))
                        }
                        true => {
                            let funded = Some((charge, charge_posted));
                            let written = self
                                .write_payment(
                                    &mut tx,
                                    &locked,
                                    &sides,
                                    req,
                                    purpose,
                                    transfer_id,
                                    now,
                                    applied,
                                    funded,
                                )
                                .await?;
                            Ok(written)
                        }
                    },
                };
                reply(conclude(tx, me, idem, status, result).await)
            }
            ChargeOutcome::NotTaken(e) => {
                self.fail_charge_in(&mut tx, charge, failure_code(&e)).await?;
                reply(self.finish_not_taken(tx, me, idem, e).await)
            }
            ChargeOutcome::Unknown => reply(self.leave_unknown(tx, charge).await),
        }
    }

    /// Resolves and checks both sides of a payment (read in the transaction). Users already
    /// read in this transaction are taken from `known`.
    pub(crate) async fn payment_sides(
        &self,
        tx: &mut Session,
        me: UserId,
        req: &TransferRequest,
        purpose: PaymentPurpose,
        known: &KnownUsers,
    ) -> ServiceResult<Sides> {
        let sender = known_user(tx, known, me)
            .await?
            .ok_or(ServiceError::Unauthorized("the user no longer exists"))?;
        let receiver = match req.recipient {
            TransferRecipient::User(id) => known_user(tx, known, id).await?.ok_or(ServiceError::NotFound("user"))?,
            TransferRecipient::Account(id) => {
                let account = tx.account(id).await?.ok_or(ServiceError::NotFound("account"))?;
                let owner = match (account.kind, account.owner) {
                    (AccountKind::Main, Some(owner)) => owner,
                    _ => return Err(ServiceError::validation("to_account_id must be a user's main account")),
                };
                tx.user(owner).await?.context("account owner exists")?
            }
        };
        // A share is checked first: the requester's own share is paid already (409), not a
        // transfer to themselves (400).
        if let PaymentPurpose::SettlementShare(settlement) = purpose {
            self.check_share_payable(tx, settlement, me).await?;
        }
        if receiver.id == sender.id {
            return Err(ServiceError::validation("you cannot send money to yourself"));
        }
        let mode = match purpose {
            PaymentPurpose::Transfer => req.mode.unwrap_or(sender.transfer_mode),
            // A share is paid with a normal immediate transfer.
            PaymentPurpose::SettlementShare(_) => TransferMode::Immediate,
        };
        Ok(Sides { sender, receiver, mode })
    }

    /// Applies the payment to the locked balances, in memory: an immediate transfer is posted
    /// (its journal returned); a pending one only holds the money. On `InsufficientFunds` the
    /// balances are untouched. `now` is the request's time (its entries may be stamped a few
    /// microseconds later, after the accounts' latest entries: see `LockedAccounts::post`).
    pub(crate) fn apply_payment(
        &self,
        locked: &mut LockedAccounts,
        sides: &Sides,
        req: &TransferRequest,
        now: Timestamp,
    ) -> Result<Option<PostedJournal>, LedgerError> {
        match sides.mode {
            TransferMode::Pending => {
                locked.hold(sides.sender.main_account_id, req.amount)?;
                Ok(None)
            }
            TransferMode::Immediate => {
                let (sender, receiver) = (&sides.sender, &sides.receiver);
                let display_name = req.display_name.as_deref().unwrap_or(&sender.name);
                let journal = transfer_journal(
                    EntryKind::Transfer,
                    &party(sender),
                    &party(receiver),
                    display_name,
                    req.memo.clone(),
                    req.amount,
                );
                locked.post(&journal, JournalId::new(), now).map(Some)
            }
        }
    }

    /// Marks the settlement share a payment is for as paid by `transfer` (exactly once across
    /// racing payers); `true` for a plain transfer. Nothing else is written by it.
    async fn claim_share(
        &self,
        tx: &mut Session,
        purpose: PaymentPurpose,
        me: UserId,
        transfer: TransferId,
    ) -> ServiceResult<bool> {
        match purpose {
            PaymentPurpose::Transfer => Ok(true),
            PaymentPurpose::SettlementShare(settlement) => Ok(tx
                .mark_share_paid(settlement, me, Some(transfer), self.clock.now())
                .await?),
        }
    }

    /// Writes an applied payment: the balances and journals (the funding charge's first), the
    /// transfer row and what it tells people. A settlement share is claimed beforehand.
    #[allow(clippy::too_many_arguments)]
    async fn write_payment(
        &self,
        tx: &mut Session,
        locked: &LockedAccounts,
        sides: &Sides,
        req: &TransferRequest,
        purpose: PaymentPurpose,
        transfer_id: TransferId,
        now: Timestamp,
        transfer_journal: Option<PostedJournal>,
        funded_by: Option<(&Charge, PostedJournal)>,
    ) -> ServiceResult<PaymentView> {
        let charge = funded_by.as_ref().map(|(c, _)| *c);
        let transfer = self.transfer_row(
            sides,
            req,
            purpose,
            (transfer_id, now),
            transfer_journal.as_ref(),
            charge,
        );
        let mut journals: Vec<PostedJournal> = funded_by.map(|(_, j)| j).into_iter().collect();
        journals.extend(transfer_journal);
        tx.write_postings(locked, &journals).await?;
        tx.insert_transfer(&transfer).await?;
        tx.insert_notifications(&announce(&transfer)).await?;
        let label = if charge.is_some() { "yes" } else { "no" };
        metrics::counter!("minipay_transfers_total", "mode" => sides.mode.as_str(), "auto_charged" => label)
            .increment(1);
        match purpose {
            PaymentPurpose::Transfer => Ok(PaymentView::Transfer(TransferView::from(&transfer))),
            PaymentPurpose::SettlementShare(settlement) => Ok(PaymentView::Settlement(
                self.settlement_after_payment(tx, settlement, transfer.created_at)
                    .await?,
            )),
        }
    }

    /// The transfer row of an applied payment: completed with its journal, or pending (held)
    /// until the receiver accepts. `funded_by` is the auto-charge that paid for part of it.
    /// `(id, now)`: the transfer's id and the request's time, which is what `created_at` says
    /// (the journal's entries may be stamped a few microseconds later to keep each account's
    /// entries strictly ordered; see `LockedAccounts::post`).
    pub(crate) fn transfer_row(
        &self,
        sides: &Sides,
        req: &TransferRequest,
        purpose: PaymentPurpose,
        (id, now): (TransferId, Timestamp),
        journal: Option<&PostedJournal>,
        funded_by: Option<&Charge>,
    ) -> Transfer {
        let (sender, receiver) = (&sides.sender, &sides.receiver);
        let pending = sides.mode == TransferMode::Pending;
        Transfer {
            id,
            status: if pending {
                TransferStatus::Pending
            } else {
                TransferStatus::Completed
            },
            amount: req.amount,
            from_account_id: sender.main_account_id,
            to_account_id: receiver.main_account_id,
            from_user_id: sender.id,
            to_user_id: receiver.id,
            from_name: sender.name.clone(),
            display_name: req.display_name.clone().unwrap_or_else(|| sender.name.clone()),
            memo: req.memo.clone(),
            auto_charged: funded_by.map_or(0, |c| c.amount.won()),
            charge_id: funded_by.map(|c| c.id),
            journal_id: journal.map(|j| j.id),
            created_at: now,
            expires_at: pending.then(|| pending_expires_at(now)),
            resolved_at: (!pending).then_some(now),
            kind: match purpose {
                PaymentPurpose::Transfer => EntryKind::Transfer,
                PaymentPurpose::SettlementShare(_) => EntryKind::SettlementPayment,
            },
            reminded_at: None,
        }
    }

    /// A transfer the caller sent or received; anyone else's is `not_found`.
    pub async fn transfer_of(&self, me: UserId, id: TransferId) -> ServiceResult<TransferView> {
        let t = self.store.read().await?.transfer(id).await?;
        let t = t
            .filter(|t| t.from_user_id == me || t.to_user_id == me)
            .ok_or(ServiceError::NotFound("transfer"))?;
        Ok(TransferView::from(&t))
    }

    pub async fn transfers(
        &self,
        me: UserId,
        filter: TransferListFilter,
        limit: PageLimit,
        cursor: Option<&str>,
    ) -> ServiceResult<Page<TransferView>> {
        let after = cursor
            .map(decode_cursor)
            .transpose()?
            .map(|(at, id)| (at, TransferId::from_uuid(id)));
        let rows = self
            .store
            .read()
            .await?
            .transfers_of(me, filter.direction, filter.status, after, rows_for(limit))
            .await?;
        Ok(page_of(
            rows,
            limit,
            |t| (t.created_at, t.id.as_uuid()),
            |t| TransferView::from(&t),
        ))
    }
}

/// What a new transfer tells people: the receiver of a pending one is asked to accept it.
pub(crate) fn announce(transfer: &Transfer) -> Vec<Notification> {
    match transfer.status {
        TransferStatus::Pending => vec![notify::pending_received(transfer, transfer.created_at)],
        _ => Vec::new(),
    }
}

/// The refusal of a payment that is short with no bank account to charge the shortfall from.
pub(crate) fn nothing_to_charge_from() -> ServiceError {
    ServiceError::InsufficientFunds(
        "not enough available money, and no registered bank account to charge the shortfall from".into(),
    )
}

/// Users read once for a batch of payments, by id.
pub(crate) type KnownUsers = std::collections::HashMap<UserId, User>;

/// The user with `id`: from `known` if there, else read in `tx`.
async fn known_user(tx: &mut Session, known: &KnownUsers, id: UserId) -> ServiceResult<Option<User>> {
    match known.get(&id) {
        Some(user) => Ok(Some(user.clone())),
        None => Ok(tx.user(id).await?),
    }
}

/// A user's main account as a party to a payment, under their current name.
pub(crate) fn party(user: &User) -> Party {
    Party {
        user_id: user.id,
        account_id: user.main_account_id,
        name: user.name.clone(),
    }
}
