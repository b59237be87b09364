//! P2P transfers between users' main accounts, with auto-charge of the shortfall.

use crate::Wallet;
use crate::charges::{ChargeOutcome, failure_code, settled_elsewhere};
use crate::error::{ServiceError, ServiceResult};
use crate::idempotency::{IdempotentRequest, Reply, claim, conclude};
use crate::pagination::{decode_cursor, encode_cursor};
use crate::views::{Page, TransferView};
use anyhow::Context;
use minipay_core::charge::{ChargePurpose, ChargeStatus, auto_charge_amount};
use minipay_core::ledger::PostedJournal;
use minipay_core::ledger::{AccountKind, LedgerError, LockedAccounts, Party, SystemAccount, transfer_journal};
use minipay_core::request::{PageLimit, bounded_text};
use minipay_core::transfer::{TransferMode, TransferStatus};
use minipay_core::user::NAME_LEN_MAX;
use minipay_core::{AccountId, Amount, JournalId, TransferId, UserId};
use minipay_store::{Charge, Direction, Session, Transfer, User};
use serde::Serialize;

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

/// How one attempt at a transfer ended.
#[allow(clippy::large_enum_variant)] // returned once per request, never stored
enum Attempt {
    Done(Reply<TransferView>),
    /// Its auto-charge was completed by the recovery step: try again from the money now there.
    FundedElsewhere,
}

/// Sender and receiver of a transfer being made.
struct Sides {
    sender: User,
    receiver: User,
}

impl Sides {
    fn accounts(&self) -> [AccountId; 2] {
        [self.sender.main_account_id, self.receiver.main_account_id]
    }
}

impl Wallet {
    /// `POST /v1/transfers`. If the sender's available balance is short, the shortfall is
    /// charged from their bank in whole 10,000-won units under the daily limit first; if that
    /// is not allowed or fails, nothing moves.
    #[tracing::instrument(name = "minipay.transfers.create", skip_all, err)]
    pub async fn transfer(
        &self,
        me: UserId,
        req: TransferRequest,
        idem: Option<IdempotentRequest>,
    ) -> ServiceResult<Reply<TransferView>> {
        match self.try_transfer(me, &req, idem.as_ref()).await? {
            Attempt::Done(reply) => Ok(reply),
            // The auto-charge landed in the main account through the recovery step, which
            // released the key: the transfer is made from that money (no second charge).
            Attempt::FundedElsewhere => match self.try_transfer(me, &req, idem.as_ref()).await? {
                Attempt::Done(reply) => Ok(reply),
                Attempt::FundedElsewhere => Err(settled_elsewhere()),
            },
        }
    }

    async fn try_transfer(
        &self,
        me: UserId,
        req: &TransferRequest,
        idem: Option<&IdempotentRequest>,
    ) -> ServiceResult<Attempt> {
        let reply = |r: ServiceResult<Reply<TransferView>>| r.map(Attempt::Done);
        let mut tx = self.store.begin().await?;
        if let Some(stored) = claim(&mut tx, me, idem, self.clock.now()).await? {
            return Ok(Attempt::Done(Reply::Replayed(stored)));
        }
        let sides = match self.transfer_sides(&mut tx, me, req).await {
            Ok(sides) => sides,
            Err(e) => return reply(conclude(tx, me, idem, 201, Err(e)).await),
        };
        let mut locked = tx.lock_accounts(sides.accounts()).await?;
        let available = locked
            .get(sides.sender.main_account_id)
            .context("sender account locked")?
            .available();
        let Some(shortfall) = auto_charge_amount(available, req.amount) else {
            // Enough money: the whole transfer is this one transaction.
            let posted = self
                .apply_transfer(&mut locked, &sides, req)
                .expect("available covers the amount");
            let view = self
                .write_transfer(&mut tx, &locked, &sides, req, &[posted], None)
                .await?;
            return reply(conclude(tx, me, idem, 201, Ok(view)).await);
        };

        // Short: record an auto-charge of the rounded shortfall, then call the bank outside
        // any transaction.
        let started = match tx.charging_bank_account(me).await? {
            None => Err(ServiceError::InsufficientFunds(
                "not enough available money, and no registered bank account to charge the shortfall from".into(),
            )),
            Some(bank) => {
                self.start_charge_in(&mut tx, &sides.sender, bank, shortfall, ChargePurpose::AutoCharge)
                    .await
            }
        };
        let started = match started {
            Ok(started) => started,
            Err(e) => return reply(conclude(tx, me, idem, 201, Err(e)).await),
        };
        self.commit_intent(tx, me, idem, &started).await?;

        let outcome = self.pull(&started).await;

        let charge = &started.charge;
        let mut tx = self.store.begin().await?;
        match outcome {
            ChargeOutcome::Taken => {
                let accounts = [
                    sides.sender.main_account_id,
                    sides.receiver.main_account_id,
                    SystemAccount::BankSettlement.id(),
                ];
                let mut locked = tx.lock_accounts(accounts).await?;
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
                let result = match self.apply_transfer(&mut locked, &sides, req) {
                    Ok(posted) => {
                        let journals = [charge_posted, posted];
                        Ok(self
                            .write_transfer(&mut tx, &locked, &sides, req, &journals, Some(charge))
                            .await?)
                    }
                    Err(LedgerError::InsufficientFunds(_)) => {
                        // The charge landed but another payment spent the money meanwhile: the
                        // charge stands as a normal charge in the sender's main account.
                        tx.write_postings(&locked, std::slice::from_ref(&charge_posted)).await?;
                        Err(ServiceError::InsufficientFunds(format!(
                            "{} won was charged from your bank account and is in your main account, but another \
                             payment used the money meanwhile, so the transfer was not made",
                            charge.amount.won()
                        )))
                    }
                };
                reply(conclude(tx, me, idem, 201, result).await)
            }
            ChargeOutcome::NotTaken(e) => {
                self.fail_charge_in(&mut tx, charge, failure_code(&e)).await?;
                reply(self.finish_not_taken(tx, me, idem, e).await)
            }
            ChargeOutcome::Unknown => reply(self.leave_unknown(tx, charge).await),
        }
    }

    /// Resolves and checks both sides of a transfer (read in the transaction).
    async fn transfer_sides(&self, tx: &mut Session, me: UserId, req: &TransferRequest) -> ServiceResult<Sides> {
        let sender = tx
            .user(me)
            .await?
            .ok_or(ServiceError::Unauthorized("the user no longer exists"))?;
        let receiver = match req.recipient {
            TransferRecipient::User(id) => tx.user(id).await?.ok_or(ServiceError::NotFound("user"))?,
            TransferRecipient::Account(id) => {
                let account = tx.account(id).await?.ok_or(ServiceError::NotFound("account"))?;
                let owner = match (account.kind, account.owner) {
                    (AccountKind::Main, Some(owner)) => owner,
                    _ => return Err(ServiceError::validation("to_account_id must be a user's main account")),
                };
                tx.user(owner).await?.context("account owner exists")?
            }
        };
        if receiver.id == sender.id {
            return Err(ServiceError::validation("you cannot send money to yourself"));
        }
        if req.mode.unwrap_or(sender.transfer_mode) == TransferMode::Pending {
            return Err(ServiceError::InvalidState(
                "pending transfers are not available yet; send with mode \"immediate\"".into(),
            ));
        }
        Ok(Sides { sender, receiver })
    }

    /// Applies the transfer to the locked balances, in memory; on `InsufficientFunds` the
    /// balances are untouched and nothing has been written.
    fn apply_transfer(
        &self,
        locked: &mut LockedAccounts,
        sides: &Sides,
        req: &TransferRequest,
    ) -> Result<PostedJournal, LedgerError> {
        let (sender, receiver) = (&sides.sender, &sides.receiver);
        let display_name = req.display_name.as_deref().unwrap_or(&sender.name);
        let from = Party {
            user_id: sender.id,
            account_id: sender.main_account_id,
            name: sender.name.clone(),
        };
        let to = Party {
            user_id: receiver.id,
            account_id: receiver.main_account_id,
            name: receiver.name.clone(),
        };
        let journal = transfer_journal(&from, &to, display_name, req.memo.clone(), req.amount);
        locked.post(&journal, JournalId::new(), self.clock.now())
    }

    /// Writes an applied transfer: the balances, its journal (last in `journals`, after the
    /// charge that funded it, if any) and the transfer row.
    async fn write_transfer(
        &self,
        tx: &mut Session,
        locked: &LockedAccounts,
        sides: &Sides,
        req: &TransferRequest,
        journals: &[PostedJournal],
        funded_by: Option<&Charge>,
    ) -> ServiceResult<TransferView> {
        let (sender, receiver) = (&sides.sender, &sides.receiver);
        let journal = journals.last().expect("the transfer's journal");
        tx.write_postings(locked, journals).await?;
        let transfer = Transfer {
            id: TransferId::new(),
            status: TransferStatus::Completed,
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
            journal_id: Some(journal.id),
            created_at: journal.occurred_at,
            expires_at: None,
            resolved_at: Some(journal.occurred_at),
        };
        tx.insert_transfer(&transfer).await?;
        let label = if funded_by.is_some() { "yes" } else { "no" };
        metrics::counter!("minipay_transfers_total", "auto_charged" => label).increment(1);
        Ok(TransferView::from(&transfer))
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
        let mut rows = self
            .store
            .read()
            .await?
            .transfers_of(me, filter.direction, filter.status, after, limit.get() + 1)
            .await?;
        let next_cursor = if rows.len() > limit.get() as usize {
            rows.truncate(limit.get() as usize);
            rows.last().map(|t| encode_cursor(t.created_at, t.id.as_uuid()))
        } else {
            None
        };
        Ok(Page {
            items: rows.iter().map(TransferView::from).collect(),
            next_cursor,
        })
    }
}
