//! Pending transfers: accept, cancel, the 72-hour expiry and the 24-hours-left reminder.
//! Exactly one of accept, cancel and expire wins: each is a conditional state change in the
//! transaction that releases the hold.

use crate::Wallet;
use crate::error::{ServiceError, ServiceResult};
use crate::idempotency::{IdempotentRequest, Reply, claim, conclude};
use crate::notify;
use crate::transfers::party;
use crate::views::TransferView;
use anyhow::Context;
use jiff::Timestamp;
use minipay_core::ledger::transfer_journal;
use minipay_core::transfer::{TransferStatus, reminder_due_until};
use minipay_core::{JournalId, TransferId, UserId};
use minipay_store::{Session, Transfer};

/// Pending transfers handled per transaction by the expiry and reminder jobs.
const PENDING_BATCH_MAX: u32 = 500;

/// Who may resolve a pending transfer by hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PendingAction {
    /// The receiver takes the money.
    Accept,
    /// The sender takes it back.
    Cancel,
}

impl Wallet {
    /// `POST /v1/transfers/{id}/accept` (receiver) or `/cancel` (sender).
    #[tracing::instrument(name = "minipay.transfers.resolve", skip(self, idem), err(level = "debug"))]
    pub async fn resolve_pending(
        &self,
        me: UserId,
        id: TransferId,
        action: PendingAction,
        idem: Option<IdempotentRequest>,
    ) -> ServiceResult<Reply<TransferView>> {
        // A transfer whose time is up though the expiry job has not run yet is expired first,
        // in its own transaction: that stands whatever becomes of this request (refused).
        let now = self.clock.now();
        // Its own statement: the read connection goes back to the pool before another is taken.
        let current = self.store.read().await?.transfer(id).await?;
        if let Some(t) = current
            && t.status == TransferStatus::Pending
            && t.expires_at.is_some_and(|e| e <= now)
        {
            let mut tx = self.store.begin().await?;
            let mut locked = tx.lock_accounts([t.from_account_id]).await?;
            self.expire_locked(&mut tx, &mut locked, std::slice::from_ref(&t.id), now)
                .await?;
            tx.commit().await?;
        }
        let mut tx = self.store.begin().await?;
        if let Some(stored) = claim(&mut tx, me, idem.as_ref(), self.clock.now()).await? {
            return Ok(Reply::Replayed(stored));
        }
        let result = self.resolve_pending_in(&mut tx, me, id, action).await;
        conclude(tx, me, idem.as_ref(), 200, result).await
    }

    async fn resolve_pending_in(
        &self,
        tx: &mut Session,
        me: UserId,
        id: TransferId,
        action: PendingAction,
    ) -> ServiceResult<TransferView> {
        // Someone else's transfer does not exist for the caller (404, like any id of someone
        // else's); the other party of it may see it but not do this (403), whatever its state.
        let t = tx.transfer(id).await?;
        let t = t
            .filter(|t| t.from_user_id == me || t.to_user_id == me)
            .ok_or(ServiceError::NotFound("transfer"))?;
        match action {
            PendingAction::Accept if t.to_user_id != me => {
                return Err(ServiceError::Forbidden("only the receiver can accept a transfer"));
            }
            PendingAction::Cancel if t.from_user_id != me => {
                return Err(ServiceError::Forbidden("only the sender can cancel a transfer"));
            }
            _ => {}
        }
        let already = |status: TransferStatus| {
            ServiceError::InvalidState(format!("the transfer is {} and can no longer change", status.as_str()))
        };
        if t.status != TransferStatus::Pending {
            return Err(already(t.status));
        }
        let mut locked = tx.lock_accounts([t.from_account_id, t.to_account_id]).await?;
        let now = self.clock.now();
        if t.expires_at.is_some_and(|e| e <= now) {
            return Err(already(TransferStatus::Expired));
        }
        // The state change comes first: under the account locks, it sees whatever a competing
        // accept/cancel/expire committed, and only the winner goes on to move money.
        let (status, journal_id) = match action {
            PendingAction::Cancel => (TransferStatus::Canceled, None),
            PendingAction::Accept => (TransferStatus::Completed, Some(JournalId::new())),
        };
        if !tx.resolve_pending_transfer(t.id, status, journal_id, now).await? {
            let current = tx.transfer(t.id).await?.map_or(TransferStatus::Expired, |t| t.status);
            return Err(already(current));
        }
        locked.release(t.from_account_id, t.amount);
        let journal = match journal_id {
            None => None,
            Some(journal_id) => {
                let sender = tx.user(t.from_user_id).await?.context("sender exists")?;
                let receiver = tx.user(t.to_user_id).await?.context("receiver exists")?;
                let draft = transfer_journal(
                    t.kind,
                    &party(&sender),
                    &party(&receiver),
                    &t.display_name,
                    t.memo.clone(),
                    t.amount,
                );
                Some(
                    locked
                        .post(&draft, journal_id, now)
                        .expect("the held money is there to post"),
                )
            }
        };
        tx.write_postings(&locked, journal.as_slice()).await?;
        let resolved = tx.transfer(t.id).await?.context("transfer exists")?;
        Ok(TransferView::from(&resolved))
    }

    /// Expires, at `at`, the given pending transfers whose time is up, in the caller's
    /// transaction with their senders' accounts locked: releases each hold and tells the
    /// sender. Returns how many this call expired.
    async fn expire_locked(
        &self,
        tx: &mut Session,
        locked: &mut minipay_core::ledger::LockedAccounts,
        ids: &[TransferId],
        at: Timestamp,
    ) -> ServiceResult<usize> {
        let expired = tx.expire_pending_transfers(ids, at).await?;
        for t in &expired {
            locked.release(t.from_account_id, t.amount);
        }
        tx.write_postings(locked, &[]).await?;
        let notes: Vec<_> = expired.iter().map(|t| notify::pending_expired(t, at)).collect();
        tx.insert_notifications(&notes).await?;
        Ok(expired.len())
    }

    /// The `pending-expiry` job: every pending transfer whose 72 hours are up at `at` is
    /// expired and its money released to the sender — in batches, however many share the
    /// same instant.
    #[tracing::instrument(name = "minipay.jobs.pending_expiry", skip(self), err(level = "debug"))]
    pub async fn expire_pending_transfers(&self, at: Timestamp) -> ServiceResult<u64> {
        let mut cursor = None;
        let mut total = 0u64;
        loop {
            let batch: Vec<Transfer> = self
                .store
                .read()
                .await?
                .expiring_transfers(at, cursor, PENDING_BATCH_MAX)
                .await?;
            let Some(last) = batch.last() else { break };
            cursor = Some((last.expires_at.context("pending transfers expire")?, last.id));
            let mut tx = self.store.begin().await?;
            let mut locked = tx.lock_accounts(batch.iter().map(|t| t.from_account_id)).await?;
            let ids: Vec<_> = batch.iter().map(|t| t.id).collect();
            total += self.expire_locked(&mut tx, &mut locked, &ids, at).await? as u64;
            tx.commit().await?;
            if batch.len() < PENDING_BATCH_MAX as usize {
                break;
            }
        }
        Ok(total)
    }

    /// The `pending-reminders` job: each pending transfer with 24 hours or less left at `at`
    /// gets its one reminder to the receiver.
    #[tracing::instrument(name = "minipay.jobs.pending_reminders", skip(self), err(level = "debug"))]
    pub async fn remind_pending_transfers(&self, at: Timestamp) -> ServiceResult<u64> {
        let mut total = 0u64;
        loop {
            let mut tx = self.store.begin().await?;
            let reminded = tx.mark_reminded(reminder_due_until(at), at, PENDING_BATCH_MAX).await?;
            let notes: Vec<_> = reminded.iter().map(|t| notify::pending_reminder(t, at)).collect();
            tx.insert_notifications(&notes).await?;
            tx.commit().await?;
            total += reminded.len() as u64;
            if reminded.len() < PENDING_BATCH_MAX as usize {
                return Ok(total);
            }
        }
    }
}
