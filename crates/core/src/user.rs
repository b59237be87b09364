//! Users: email addresses, display names and password rules.

use crate::request::{RequestError, bounded_text};
use serde::{Deserialize, Serialize};

/// An email address, stored trimmed and lower-cased so that lookups and the uniqueness
/// check agree.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Email(String);

pub const EMAIL_LEN_MAX: usize = 254;
pub const NAME_LEN_MAX: usize = 50;
pub const PASSWORD_LEN_MIN: usize = 8;
/// Long enough for any passphrase; bounded so hashing cost is bounded.
pub const PASSWORD_LEN_MAX: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    #[error("email is not a valid address")]
    Email,
    #[error("password must be {PASSWORD_LEN_MIN} to {PASSWORD_LEN_MAX} characters")]
    Password,
    #[error(transparent)]
    Text(#[from] RequestError),
}

impl Email {
    pub fn parse(raw: &str) -> Result<Self, UserError> {
        let email = raw.trim().to_lowercase();
        let valid = email.len() <= EMAIL_LEN_MAX
            && !email.chars().any(|c| c.is_whitespace() || c.is_control())
            && match email.split_once('@') {
                Some((local, domain)) => {
                    !local.is_empty()
                        && !domain.contains('@')
                        && domain.contains('.')
                        && !domain.starts_with('.')
                        && !domain.ends_with('.')
                }
                None => false,
            };
        if valid { Ok(Self(email)) } else { Err(UserError::Email) }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The name a user is shown by (also the default `display_name` of their transfers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserName(String);

impl UserName {
    pub fn parse(raw: &str) -> Result<Self, UserError> {
        Ok(Self(bounded_text("name", raw, NAME_LEN_MAX)?))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn into_string(self) -> String {
        self.0
    }
}

/// Checks a new password against the length rule (characters, not bytes).
pub fn check_password(raw: &str) -> Result<(), UserError> {
    let n = raw.chars().count();
    if (PASSWORD_LEN_MIN..=PASSWORD_LEN_MAX).contains(&n) {
        Ok(())
    } else {
        Err(UserError::Password)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(Email::parse(" Kim@Example.COM ").unwrap().as_str(), "kim@example.com");
        for bad in [
            "",
            "kim",
            "kim@",
            "@example.com",
            "kim@example",
            "k m@example.com",
            "a@b@c.com",
            "kim@.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords() {
        assert!(check_password("1234567").is_err());
        assert!(check_password("12345678").is_ok());
        assert!(check_password("비밀번호비밀번호").is_ok());
        assert!(check_password(&"x".repeat(129)).is_err());
    }

    #[test]
    fn names() {
        assert_eq!(UserName::parse(" 김민수 ").unwrap().as_str(), "김민수");
        assert!(UserName::parse(" ").is_err());
        assert!(UserName::parse(&"가".repeat(51)).is_err());
    }
}
