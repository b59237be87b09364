//! Request-level value types: idempotency keys, page limits and free-text fields.

use serde::{Deserialize, Serialize};

/// A client's `Idempotency-Key`: 1–255 visible ASCII characters, scoped to the caller.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IdempotencyKey(String);

/// How long a stored idempotent response is kept (the contract says at least 24 hours).
pub const IDEMPOTENCY_KEY_TTL_HOURS: i64 = 48;
pub const IDEMPOTENCY_KEY_LEN_MAX: usize = 255;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_LEN_MAX} visible ASCII characters")]
    IdempotencyKey,
    #[error("limit must be between 1 and {PAGE_LIMIT_MAX}")]
    PageLimit,
    #[error("{field} must be at most {max} characters")]
    TooLong { field: &'static str, max: usize },
    #[error("{field} must not be empty")]
    Empty { field: &'static str },
    #[error("{field} must not contain control characters")]
    Control { field: &'static str },
}

impl IdempotencyKey {
    pub fn parse(raw: &str) -> Result<Self, RequestError> {
        let ok = (1..=IDEMPOTENCY_KEY_LEN_MAX).contains(&raw.len())
            && raw.bytes().all(|b| b.is_ascii_graphic() || b == b' ');
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(RequestError::IdempotencyKey)
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

pub const PAGE_LIMIT_DEFAULT: u32 = 50;
pub const PAGE_LIMIT_MAX: u32 = 200;

/// A validated `?limit=` for cursor-paginated lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageLimit(u32);

impl PageLimit {
    pub fn parse(raw: Option<u32>) -> Result<Self, RequestError> {
        match raw {
            None => Ok(Self(PAGE_LIMIT_DEFAULT)),
            Some(n) if (1..=PAGE_LIMIT_MAX).contains(&n) => Ok(Self(n)),
            Some(_) => Err(RequestError::PageLimit),
        }
    }
    pub const fn get(self) -> u32 {
        self.0
    }
}

/// Trims `raw` and checks it is non-empty, at most `max` characters and free of control
/// characters (text shown to people has no use for them, and PostgreSQL refuses NUL in text).
pub fn bounded_text(field: &'static str, raw: &str, max: usize) -> Result<String, RequestError> {
    let text = raw.trim();
    if text.is_empty() {
        return Err(RequestError::Empty { field });
    }
    if text.chars().any(char::is_control) {
        return Err(RequestError::Control { field });
    }
    if text.chars().count() > max {
        return Err(RequestError::TooLong { field, max });
    }
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_key_bounds() {
        assert!(IdempotencyKey::parse("").is_err());
        assert!(IdempotencyKey::parse("a").is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(255)).is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(256)).is_err());
        assert!(IdempotencyKey::parse("tab\there").is_err());
        assert!(IdempotencyKey::parse("한글").is_err());
    }

    #[test]
    fn page_limit_bounds() {
        assert_eq!(PageLimit::parse(None).unwrap().get(), 50);
        assert!(PageLimit::parse(Some(0)).is_err());
        assert_eq!(PageLimit::parse(Some(200)).unwrap().get(), 200);
        assert!(PageLimit::parse(Some(201)).is_err());
    }

    #[test]
    fn bounded_text_trims_and_counts_characters() {
        assert_eq!(bounded_text("name", "  김민수 ", 3).unwrap(), "김민수");
        assert!(bounded_text("name", "   ", 3).is_err());
        assert!(bounded_text("name", "김민수입니다", 3).is_err());
    }

    #[test]
    fn bounded_text_refuses_control_characters() {
        assert_eq!(bounded_text("memo", " lunch\n", 10).unwrap(), "lunch");
        for bad in ["a\0b", "a\nb", "a\u{7f}", "a\u{9c}b"] {
            assert_eq!(
                bounded_text("memo", bad, 10),
                Err(RequestError::Control { field: "memo" }),
                "{bad:?}"
            );
        }
    }
}
