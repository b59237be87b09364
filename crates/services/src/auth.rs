//! Authentication: argon2id password hashes, signed access tokens checked against the
//! injected clock, and the login throttle.

use crate::error::{ServiceError, ServiceResult};
use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use jiff::Timestamp;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use minipay_core::UserId;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

/// A secret that never prints (`Debug` and logs show `[redacted]`).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// A fresh random secret (32 bytes, hex) for dev mode.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        aws_lc_rs::rand::fill(&mut bytes).expect("the system RNG works");
        Self(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }
    /// Compares in time independent of where the inputs differ.
    pub fn matches(&self, candidate: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), candidate.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// Hashes a password with argon2id (default parameters: 19 MiB, 2 passes). CPU-heavy:
/// call from a blocking thread.
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let hash = Argon2::default()
        .hash_password(password.as_bytes())
        .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))?;
    Ok(hash.to_string())
}

/// Checks a password against a stored PHC hash. CPU-heavy: call from a blocking thread.
pub fn verify_password(password: &str, stored: &str) -> bool {
    match PasswordHash::new(stored) {
        Ok(parsed) => Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

/// Verifying against this when the email is unknown makes a wrong email cost as much as a
/// wrong password, so response times do not reveal who has an account.
pub static DUMMY_PASSWORD_HASH: LazyLock<String> =
    LazyLock::new(|| hash_password("not a real password").expect("hashing works"));

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    iat: i64,
    exp: i64,
}

/// Issues and checks access tokens (HS256). Expiry is checked against the injected clock,
/// not the OS clock, so the manual clock governs tokens too.
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl_secs: i64,
}

/// Access tokens are valid for one hour of the server's clock.
pub const ACCESS_TOKEN_TTL_SECS: i64 = 3_600;

impl Tokens {
    pub fn new(secret: &Secret) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_exp = false; // checked against our clock below
        validation.required_spec_claims = ["sub".to_owned(), "exp".to_owned()].into();
        Self {
            encoding: EncodingKey::from_secret(secret.expose().as_bytes()),
            decoding: DecodingKey::from_secret(secret.expose().as_bytes()),
            validation,
            ttl_secs: ACCESS_TOKEN_TTL_SECS,
        }
    }

    pub fn ttl_secs(&self) -> i64 {
        self.ttl_secs
    }

    pub fn issue(&self, user: UserId, now: Timestamp) -> ServiceResult<String> {
        let claims = Claims {
            sub: user.to_string(),
            iat: now.as_second(),
            exp: now.as_second() + self.ttl_secs,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| ServiceError::Internal(anyhow::Error::new(e).context("signing a token")))
    }

    /// The user a token was issued to, if it is genuine and unexpired at `now`.
    pub fn verify(&self, token: &str, now: Timestamp) -> ServiceResult<UserId> {
        let invalid = ServiceError::Unauthorized("the access token is invalid or expired");
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).map_err(|_| invalid)?;
        if data.claims.exp <= now.as_second() {
            return Err(ServiceError::Unauthorized("the access token is invalid or expired"));
        }
        data.claims
            .sub
            .parse()
            .map_err(|_| ServiceError::Unauthorized("the access token is invalid or expired"))
    }
}

/// Limits login attempts per email address: `attempts_max` per `window`. In memory, per
/// instance (N instances allow N times as many; a shared store would be needed to be exact).
pub struct LoginThrottle {
    attempts_max: u32,
    window: Duration,
    seen: Mutex<HashMap<String, (Instant, u32)>>,
}

/// Login attempts allowed per email address per window.
pub const LOGIN_ATTEMPTS_MAX: u32 = 10;
pub const LOGIN_WINDOW_SECS: u64 = 60;
/// Bound on remembered addresses, so a flood of random emails cannot exhaust memory.
const LOGIN_THROTTLE_KEYS_MAX: usize = 100_000;

impl Default for LoginThrottle {
    fn default() -> Self {
        Self::new(LOGIN_ATTEMPTS_MAX, Duration::from_secs(LOGIN_WINDOW_SECS))
    }
}

impl LoginThrottle {
    pub fn new(attempts_max: u32, window: Duration) -> Self {
        Self {
            attempts_max,
            window,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Counts an attempt for `email`; `Err(RateLimited)` once the window's budget is spent.
    pub fn attempt(&self, email: &str) -> ServiceResult<()> {
        let now = Instant::now();
        let mut seen = self.seen.lock().expect("throttle lock");
        if seen.len() >= LOGIN_THROTTLE_KEYS_MAX {
            seen.retain(|_, (start, _)| now.duration_since(*start) < self.window);
        }
        let slot = seen.entry(email.to_owned()).or_insert((now, 0));
        if now.duration_since(slot.0) >= self.window {
            *slot = (now, 0);
        }
        slot.1 += 1;
        if slot.1 > self.attempts_max {
            Err(ServiceError::RateLimited)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_round_trip() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong horse", &h));
        assert!(!verify_password("x", "not a hash"));
    }

    #[test]
    fn tokens_expire_by_the_injected_clock() {
        let tokens = Tokens::new(&Secret::new("s3cret"));
        let user = UserId::new();
        let t0: Timestamp = "2026-11-21T00:00:00Z".parse().unwrap();
        let tok = tokens.issue(user, t0).unwrap();
        assert_eq!(tokens.verify(&tok, t0).unwrap(), user);
        let almost = t0 + jiff::SignedDuration::from_secs(3_599);
        assert!(tokens.verify(&tok, almost).is_ok());
        let expired = t0 + jiff::SignedDuration::from_secs(3_600);
        assert!(tokens.verify(&tok, expired).is_err());
        let other = Tokens::new(&Secret::new("other"));
        assert!(other.verify(&tok, t0).is_err());
    }

    #[test]
    fn throttle_counts_per_email() {
        let t = LoginThrottle::new(2, Duration::from_secs(60));
        assert!(t.attempt("a").is_ok());
        assert!(t.attempt("a").is_ok());
        assert!(t.attempt("a").is_err());
        assert!(t.attempt("b").is_ok());
    }

    #[test]
    fn secrets_compare_and_never_print() {
        let s = Secret::new("abc");
        assert!(s.matches("abc"));
        assert!(!s.matches("abd"));
        assert!(!s.matches("ab"));
        assert_eq!(format!("{s:?}"), "Secret([redacted])");
        assert_eq!(Secret::generate().expose().len(), 64);
    }
}
