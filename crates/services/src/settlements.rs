//! Split bills: a requester asks participants for shares that sum exactly to the total;
//! each participant pays their share with a normal immediate transfer.

use crate::Wallet;
use crate::error::{ServiceError, ServiceResult};
use crate::idempotency::{IdempotentRequest, Reply, claim, conclude};
use crate::notify;
use crate::pagination::{decode_cursor, page_of, rows_for};
use crate::transfers::{PaymentPurpose, PaymentView, TransferRecipient, TransferRequest};
use crate::views::{Page, SettlementView};
use jiff::Timestamp;
use minipay_core::request::{PageLimit, bounded_text};
use minipay_core::split::{PARTICIPANTS_MAX, SeededRng, SplitError, SplitMethod, split};
use minipay_core::transfer::TransferMode;
use minipay_core::{Amount, UserId};
use minipay_store::{Session, Settlement, SettlementRole, Share, ShareStatus};
use serde::Serialize;
use uuid::Uuid;

/// A new split bill, validated at the edge.
#[derive(Debug, Clone, Serialize)]
pub struct NewSettlementRequest {
    pub total: Amount,
    pub method: SplitMethod,
    pub participants: Vec<UserId>,
    pub memo: Option<String>,
}

impl NewSettlementRequest {
    pub fn parse(total: i64, method: &str, participants: Vec<UserId>, memo: Option<&str>) -> ServiceResult<Self> {
        let total = Amount::parse(total).map_err(ServiceError::validation)?;
        let method = SplitMethod::parse(method)
            .ok_or_else(|| ServiceError::validation("method must be \"equal\" or \"random\""))?;
        if participants.is_empty() || participants.len() > PARTICIPANTS_MAX {
            return Err(ServiceError::validation(format!(
                "give 1 to {PARTICIPANTS_MAX} participant_user_ids"
            )));
        }
        let mut distinct = participants.clone();
        distinct.sort();
        distinct.dedup();
        if distinct.len() != participants.len() {
            return Err(ServiceError::validation("participant_user_ids must not repeat"));
        }
        if total.won() < participants.len() as i64 {
            return Err(ServiceError::validation(
                "total_amount must be at least 1 won per participant",
            ));
        }
        let memo = match memo.map(str::trim) {
            None | Some("") => None,
            Some(m) => Some(bounded_text("memo", m, crate::transfers::MEMO_LEN_MAX).map_err(ServiceError::validation)?),
        };
        Ok(Self {
            total,
            method,
            participants,
            memo,
        })
    }
}

/// A random seed from the OS for each split, so shares cannot be predicted.
fn os_seed() -> u64 {
    let mut bytes = [0u8; 8];
    aws_lc_rs::rand::fill(&mut bytes).expect("the system RNG works");
    u64::from_le_bytes(bytes)
}

impl Wallet {
    /// `POST /v1/settlements`. The requester's own share (if they take part) is paid at once.
    #[tracing::instrument(name = "minipay.settlements.create", skip_all, err(level = "debug"))]
    pub async fn create_settlement(
        &self,
        me: UserId,
        req: NewSettlementRequest,
        idem: Option<IdempotentRequest>,
    ) -> ServiceResult<Reply<SettlementView>> {
        let mut tx = self.store.begin().await?;
        let now = self.clock.now();
        if let Some(stored) = claim(&mut tx, me, idem.as_ref(), now).await? {
            return Ok(Reply::Replayed(stored));
        }
        let result = self.create_settlement_in(&mut tx, me, &req, now).await;
        conclude(tx, me, idem.as_ref(), 201, result).await
    }

    async fn create_settlement_in(
        &self,
        tx: &mut Session,
        me: UserId,
        req: &NewSettlementRequest,
        now: Timestamp,
    ) -> ServiceResult<SettlementView> {
        for user in &req.participants {
            tx.user(*user).await?.ok_or(ServiceError::NotFound("participant"))?;
        }
        let amounts = split(
            req.total,
            req.participants.len(),
            req.method,
            &mut SeededRng::new(os_seed()),
        )
        .map_err(|e: SplitError| ServiceError::validation(format!("{e:?}")))?;
        let shares: Vec<Share> = req
            .participants
            .iter()
            .zip(amounts)
            .map(|(&user_id, amount)| {
                let own = user_id == me;
                Share {
                    user_id,
                    amount,
                    status: if own { ShareStatus::Paid } else { ShareStatus::Requested },
                    transfer_id: None,
                    paid_at: own.then_some(now),
                }
            })
            .collect();
        let completed = shares.iter().all(|s| s.status == ShareStatus::Paid);
        let settlement = Settlement {
            id: Uuid::now_v7(),
            requester_user_id: me,
            total_amount: req.total.won(),
            method: req.method,
            memo: req.memo.clone(),
            completed,
            created_at: now,
            completed_at: completed.then_some(now),
            shares,
        };
        tx.insert_settlement(&settlement).await?;
        let notes: Vec<_> = settlement
            .shares
            .iter()
            .filter(|s| s.user_id != me)
            .map(|s| notify::settlement_requested(s.user_id, settlement.id, now))
            .collect();
        tx.insert_notifications(&notes).await?;
        Ok(SettlementView::from(&settlement))
    }

    /// A settlement the caller requested or takes part in; anyone else's is `not_found`.
    pub async fn settlement_of(&self, me: UserId, id: Uuid) -> ServiceResult<SettlementView> {
        let s = self.store.read().await?.settlement(id).await?;
        let s = s
            .filter(|s| visible_to(s, me))
            .ok_or(ServiceError::NotFound("settlement"))?;
        Ok(SettlementView::from(&s))
    }

    pub async fn settlements(
        &self,
        me: UserId,
        role: SettlementRole,
        limit: PageLimit,
        cursor: Option<&str>,
    ) -> ServiceResult<Page<SettlementView>> {
        let after = cursor.map(decode_cursor).transpose()?;
        let rows = self
            .store
            .read()
            .await?
            .settlements_of(me, role, after, rows_for(limit))
            .await?;
        Ok(page_of(
            rows,
            limit,
            |s| (s.created_at, s.id),
            |s| SettlementView::from(&s),
        ))
    }

    /// `POST /v1/settlements/{id}/pay`: the caller pays their share to the requester with a
    /// normal immediate transfer (auto-charge applies) and gets the updated settlement.
    #[tracing::instrument(name = "minipay.settlements.pay", skip(self, idem), err(level = "debug"))]
    pub async fn pay_settlement(
        &self,
        me: UserId,
        id: Uuid,
        idem: Option<IdempotentRequest>,
    ) -> ServiceResult<Reply<SettlementView>> {
        let settlement = self.store.read().await?.settlement(id).await?;
        let settlement = settlement
            .filter(|s| visible_to(s, me))
            .ok_or(ServiceError::NotFound("settlement"))?;
        let share = settlement
            .shares
            .iter()
            .find(|s| s.user_id == me)
            .ok_or_else(|| ServiceError::InvalidState("only participants pay a settlement".into()))?;
        let req = TransferRequest {
            recipient: TransferRecipient::User(settlement.requester_user_id),
            amount: Amount::parse(share.amount).map_err(|e| ServiceError::Internal(anyhow::Error::new(e)))?,
            display_name: None,
            memo: settlement.memo.clone(),
            mode: Some(TransferMode::Immediate),
        };
        match self
            .pay(me, &req, idem.as_ref(), PaymentPurpose::SettlementShare(id), 200)
            .await?
        {
            Reply::Fresh(PaymentView::Settlement(view)) => Ok(Reply::Fresh(view)),
            Reply::Fresh(PaymentView::Transfer(_)) => unreachable!("a share payment answers with the settlement"),
            Reply::Replayed(stored) => Ok(Reply::Replayed(stored)),
        }
    }

    /// Refuses a share that is not the caller's to pay (checked again when it is marked paid).
    pub(crate) async fn check_share_payable(&self, tx: &mut Session, id: Uuid, me: UserId) -> ServiceResult<()> {
        let settlement = tx.settlement(id).await?.ok_or(ServiceError::NotFound("settlement"))?;
        match settlement.shares.iter().find(|s| s.user_id == me) {
            None => Err(ServiceError::InvalidState("only participants pay a settlement".into())),
            Some(s) if s.status == ShareStatus::Paid => Err(ServiceError::InvalidState(
                "your share of this settlement is already paid".into(),
            )),
            Some(_) => Ok(()),
        }
    }

    /// After a share was paid in this transaction: completes the settlement if it was the
    /// last one, and returns it.
    pub(crate) async fn settlement_after_payment(
        &self,
        tx: &mut Session,
        id: Uuid,
        at: Timestamp,
    ) -> ServiceResult<SettlementView> {
        tx.complete_settlement_if_paid(id, at).await?;
        let settlement = tx.settlement(id).await?.ok_or(ServiceError::NotFound("settlement"))?;
        Ok(SettlementView::from(&settlement))
    }
}

fn visible_to(s: &Settlement, me: UserId) -> bool {
    s.requester_user_id == me || s.shares.iter().any(|sh| sh.user_id == me)
}
