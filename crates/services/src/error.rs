//! Service errors and their stable API codes; the one place an error becomes a status and a body.

use minipay_core::charge::ChargeLimit;
use minipay_store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

/// The stable `code` clients program against (see API.md "Errors").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    ValidationFailed,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Conflict,
    InvalidState,
    PayloadTooLarge,
    UnsupportedMediaType,
    IdempotencyKeyReused,
    InsufficientFunds,
    RefundExceedsPayment,
    DailyLimitExceeded,
    BankDeclined,
    RateLimited,
    Internal,
    BankUnavailable,
    Unavailable,
}

impl ErrorCode {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ValidationFailed => "validation_failed",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Conflict => "conflict",
            Self::InvalidState => "invalid_state",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::IdempotencyKeyReused => "idempotency_key_reused",
            Self::InsufficientFunds => "insufficient_funds",
            Self::RefundExceedsPayment => "refund_exceeds_payment",
            Self::DailyLimitExceeded => "daily_limit_exceeded",
            Self::BankDeclined => "bank_declined",
            Self::RateLimited => "rate_limited",
            Self::Internal => "internal",
            Self::BankUnavailable => "bank_unavailable",
            Self::Unavailable => "unavailable",
        }
    }

    pub const fn status(self) -> u16 {
        match self {
            Self::ValidationFailed => 400,
            Self::Unauthorized => 401,
            Self::Forbidden => 403,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::Conflict | Self::InvalidState => 409,
            Self::PayloadTooLarge => 413,
            Self::UnsupportedMediaType => 415,
            Self::IdempotencyKeyReused
            | Self::InsufficientFunds
            | Self::RefundExceedsPayment
            | Self::DailyLimitExceeded
            | Self::BankDeclined => 422,
            Self::RateLimited => 429,
            Self::Internal => 500,
            Self::BankUnavailable | Self::Unavailable => 503,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{0}")]
    Validation(String),
    #[error("{0}")]
    Unauthorized(&'static str),
    /// The caller is known and may see the thing, but not do this to it.
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    InvalidState(String),
    #[error("this Idempotency-Key was already used for a different request")]
    IdempotencyKeyReused,
    #[error("{0}")]
    InsufficientFunds(String),
    /// Refunds of a payment would add up to more than it.
    #[error("{0}")]
    RefundExceedsPayment(String),
    /// A settlement share that was paid meanwhile (`409 invalid_state`, and a decided answer).
    #[error("{0}")]
    AlreadyPaid(String),
    #[error("the daily charge limit would be exceeded ({} of {} won left today)", .0.remaining(), .0.limit)]
    DailyLimitExceeded(ChargeLimit),
    #[error("the bank declined: {0}")]
    BankDeclined(String),
    #[error("{0}")]
    BankUnavailable(String),
    /// Another outside system (a VAN's settlement file server...) did not answer usefully.
    #[error("{0}")]
    UpstreamUnavailable(String),
    #[error("too many attempts; try again later")]
    RateLimited,
    #[error("the request body is too large")]
    PayloadTooLarge,
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl ServiceError {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Validation(_) => ErrorCode::ValidationFailed,
            Self::Unauthorized(_) => ErrorCode::Unauthorized,
            Self::Forbidden(_) => ErrorCode::Forbidden,
            Self::NotFound(_) => ErrorCode::NotFound,
            Self::Conflict(_) => ErrorCode::Conflict,
            Self::InvalidState(_) => ErrorCode::InvalidState,
            Self::IdempotencyKeyReused => ErrorCode::IdempotencyKeyReused,
            Self::InsufficientFunds(_) => ErrorCode::InsufficientFunds,
            Self::RefundExceedsPayment(_) => ErrorCode::RefundExceedsPayment,
            Self::AlreadyPaid(_) => ErrorCode::InvalidState,
            Self::DailyLimitExceeded(_) => ErrorCode::DailyLimitExceeded,
            Self::BankDeclined(_) => ErrorCode::BankDeclined,
            Self::BankUnavailable(_) => ErrorCode::BankUnavailable,
            Self::UpstreamUnavailable(_) => ErrorCode::Unavailable,
            Self::RateLimited => ErrorCode::RateLimited,
            Self::PayloadTooLarge => ErrorCode::PayloadTooLarge,
            Self::Internal(_) => ErrorCode::Internal,
        }
    }

    /// Whether a request that ended with this error has a final answer worth replaying
    /// under its idempotency key.
    ///
    /// Stored: the refusals of a money decision (`insufficient_funds`, `daily_limit_exceeded`,
    /// `bank_declined`, a share already paid). Not stored: bad or unknown input, wrong state,
    /// conflicts and transient failures — a corrected retry under the same key runs afresh.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            Self::InsufficientFunds(_) | Self::DailyLimitExceeded(_) | Self::BankDeclined(_) | Self::AlreadyPaid(_)
        )
    }

    /// The response body, `{"error": {"code", "message"}}`. Internal causes are never shown.
    pub fn body(&self) -> serde_json::Value {
        error_body(self.code(), &self.to_string())
    }

    pub fn validation(msg: impl std::fmt::Display) -> Self {
        Self::Validation(msg.to_string())
    }
}

/// The body of every error answer: `{"error": {"code", "message"}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    /// For people; it may change. Programs read `code`.
    pub message: String,
}

pub fn error_body(code: ErrorCode, message: &str) -> serde_json::Value {
    let body = ErrorBody {
        error: ErrorDetail {
            code,
            message: message.to_owned(),
        },
    };
    serde_json::to_value(body).expect("an error body is plain JSON")
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        Self::Internal(anyhow::Error::new(e).context("store"))
    }
}

pub type ServiceResult<T> = Result<T, ServiceError>;
