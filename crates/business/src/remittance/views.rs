//! The JSON shapes of remittances (API-business.md "Remittance"): the remittance with its
//! steps as a business sees it, and every attempt for operators. A step's view is derived
//! from its attempts, so there is one record of what happened.

use jiff::Timestamp;
use minipay_core::remittance::{AttemptOutcome, RemittanceSource, RemittanceStatus, Step};
use minipay_core::{BusinessId, RemittanceId};
use minipay_store::{Remittance, RemittanceAttempt};
use serde::Serialize;
use utoipa::ToSchema;

/// Who is paid.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RecipientView {
    /// B, when B is a business on the platform.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub business_id: Option<BusinessId>,
    pub bank_code: String,
    pub account_number_masked: String,
    pub holder_name: String,
}

/// One step of the way, from its attempts.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StepView {
    /// `collect`, `credit_float`, `debit_float`, `payout` (and `refund` when B could not be paid).
    pub name: &'static str,
    /// `pending`, `succeeded` or `failed`.
    pub status: &'static str,
    pub attempts: u32,
    pub last_error: Option<String>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub started_at: Option<Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<Timestamp>,
}

/// Why the remittance did not end as asked, and at which step.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FailureView {
    pub step: &'static str,
    pub code: String,
    pub message: String,
    pub attempts: i32,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RemittanceView {
    #[schema(value_type = String, format = Uuid)]
    pub id: RemittanceId,
    /// `requested`, `collected`, `credited`, `debited`, `completed`, `collect_failed`,
    /// `refunding`, `refunded` or `needs_attention`.
    #[schema(value_type = String)]
    pub status: RemittanceStatus,
    pub amount: i64,
    #[schema(value_type = String, format = Uuid)]
    pub from_business_id: BusinessId,
    pub to: RecipientView,
    pub memo: Option<String>,
    pub reference: Option<String>,
    pub steps: Vec<StepView>,
    pub failure: Option<FailureView>,
    /// `bank`: a remittance, collected from A's bank account; `balance`: a payout of A's
    /// balance on the platform to A's own bank account.
    #[schema(value_type = String)]
    pub source: RemittanceSource,
    /// Where the money is now (`sender_bank`, `platform_bank`, `float`, `in_transit`,
    /// `receiver_bank`, `back_at_sender`, `back_in_balance`).
    #[schema(value_type = String)]
    pub money_at: minipay_core::remittance::MoneyPlace,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub completed_at: Option<Timestamp>,
}

/// One attempt at one step (the operator's view of the history).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AttemptView {
    pub step: &'static str,
    /// `succeeded`, `refused`, `failed` or `unknown`.
    pub outcome: &'static str,
    pub error: Option<String>,
    pub bank_tran_id: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub started_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub finished_at: Timestamp,
}

/// A remittance with every attempt of every step (admin).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RemittanceDetailView {
    #[serde(flatten)]
    pub remittance: RemittanceView,
    pub attempts: Vec<AttemptView>,
}

/// The steps shown: the four of the way, and the refund once there is one.
fn shown_steps(r: &Remittance, attempts: &[&RemittanceAttempt]) -> Vec<Step> {
    let refund = matches!(r.status, RemittanceStatus::Refunding | RemittanceStatus::Refunded)
        || r.held_status == Some(RemittanceStatus::Refunding)
        || attempts.iter().any(|a| a.step == Step::Refund);
    // A payout from the balance starts in the float: it has no collect or credit step.
    let mut steps = match r.source {
        RemittanceSource::Bank => vec![Step::Collect, Step::CreditFloat, Step::DebitFloat, Step::Payout],
        RemittanceSource::Balance => vec![Step::DebitFloat, Step::Payout],
    };
    if refund {
        steps.push(Step::Refund);
    }
    steps
}

fn step_view(r: &Remittance, step: Step, attempts: &[&RemittanceAttempt]) -> StepView {
    let of_step: Vec<&&RemittanceAttempt> = attempts.iter().filter(|a| a.step == step).collect();
    // The latest attempt that ended the step: a refund the bank refused can be retried by an
    // operator and succeed.
    let ended = of_step
        .iter()
        .rev()
        .find(|a| matches!(a.outcome, AttemptOutcome::Succeeded | AttemptOutcome::Refused));
    let gave_up = r.status == RemittanceStatus::NeedsAttention && r.failure.as_ref().is_some_and(|f| f.step == step);
    let status = match ended.map(|a| a.outcome) {
        Some(AttemptOutcome::Succeeded) => "succeeded",
        Some(_) => "failed",
        None if gave_up => "failed",
        None => "pending",
    };
    StepView {
        name: step.as_str(),
        status,
        attempts: of_step.len() as u32,
        last_error: of_step.iter().rev().find_map(|a| a.error.clone()),
        started_at: of_step.first().map(|a| a.started_at),
        finished_at: ended.map(|a| a.finished_at),
    }
}

impl RemittanceView {
    /// The view of `r`, its steps taken from `attempts` (any remittance's; only its own count).
    pub fn new(r: &Remittance, attempts: &[RemittanceAttempt]) -> Self {
        let own: Vec<&RemittanceAttempt> = attempts.iter().filter(|a| a.remittance_id == r.id).collect();
        Self {
            id: r.id,
            status: r.status,
            amount: r.amount,
            from_business_id: r.from_business_id,
            to: RecipientView {
                business_id: r.to_business_id,
                bank_code: r.to_bank_code.clone(),
                account_number_masked: r.to_account_number_masked.clone(),
                holder_name: r.to_holder_name.clone(),
            },
            memo: r.memo.clone(),
            reference: r.reference.clone(),
            steps: shown_steps(r, &own)
                .into_iter()
                .map(|s| step_view(r, s, &own))
                .collect(),
            failure: r.failure.as_ref().map(|f| FailureView {
                step: f.step.as_str(),
                code: f.code.clone(),
                message: f.message.clone(),
                attempts: f.attempts,
            }),
            money_at: r.status.money_at_from(r.held_status, r.source),
            source: r.source,
            created_at: r.created_at,
            updated_at: r.updated_at,
            completed_at: r.completed_at,
        }
    }
}

impl RemittanceDetailView {
    pub fn new(r: &Remittance, attempts: &[RemittanceAttempt]) -> Self {
        Self {
            remittance: RemittanceView::new(r, attempts),
            attempts: attempts
                .iter()
                .filter(|a| a.remittance_id == r.id)
                .map(|a| AttemptView {
                    step: a.step.as_str(),
                    outcome: a.outcome.as_str(),
                    error: a.error.clone(),
                    bank_tran_id: a.bank_tran_id.clone(),
                    started_at: a.started_at,
                    finished_at: a.finished_at,
                })
                .collect(),
        }
    }
}
