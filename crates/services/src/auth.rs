//! Authentication: argon2id password hashes, signed access tokens checked against the
//! injected clock, and the login throttle.

use crate::error::{ServiceError, ServiceResult};
use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use jiff::{SignedDuration, Timestamp};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use minipay_core::UserId;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;
use std::sync::{LazyLock, Mutex};

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

/// Limits failed logins per email address: after `failures_max` wrong passwords within
/// `window` of the server's clock (the injected one, so the manual clock governs it too), every
/// attempt at that address is refused until the window that began with the first failure has
/// passed. Successful logins are not counted, and one clears the address's failures: a client
/// that logs in again after each token expiry is never throttled. In memory, per instance (N
/// instances allow N times as many; a shared store would be needed to be exact).
pub struct LoginThrottle {
    failures_max: u32,
    window: SignedDuration,
    failures: Mutex<HashMap<String, FailedLogins>>,
}

/// Failed logins at one address since `since`.
#[derive(Clone, Copy)]
struct FailedLogins {
    since: Timestamp,
    count: u32,
}

/// Failed logins allowed per email address per window.
pub const LOGIN_FAILURES_MAX: u32 = 10;
pub const LOGIN_WINDOW_SECS: i64 = 60;
/// Bound on remembered addresses, so a flood of random emails cannot exhaust memory.
const LOGIN_THROTTLE_KEYS_MAX: usize = 100_000;

impl Default for LoginThrottle {
    fn default() -> Self {
        Self::new(LOGIN_FAILURES_MAX, SignedDuration::from_secs(LOGIN_WINDOW_SECS))
    }
}

impl LoginThrottle {
    pub fn new(failures_max: u32, window: SignedDuration) -> Self {
        assert!(
            failures_max > 0 && window.is_positive(),
            "a throttle that can let someone in"
        );
        Self {
            failures_max,
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn guard(&self) -> std::sync::MutexGuard<'_, HashMap<String, FailedLogins>> {
        // Plain counters: a panic elsewhere cannot leave one half-written.
        self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn current(&self, seen: FailedLogins, now: Timestamp) -> bool {
        now < seen.since + self.window
    }

    /// `Err(RateLimited)` while `email` has used up its failures in the current window. Checked
    /// before the password, so a locked address cannot be used to try passwords.
    pub fn check(&self, email: &str, now: Timestamp) -> ServiceResult<()> {
        match self.guard().get(email) {
            Some(&seen) if self.current(seen, now) && seen.count >= self.failures_max => Err(ServiceError::RateLimited),
            _ => Ok(()),
        }
    }

    /// Counts a wrong password for `email`.
    pub fn failed(&self, email: &str, now: Timestamp) {
        let mut failures = self.guard();
        if failures.len() >= LOGIN_THROTTLE_KEYS_MAX {
            failures.retain(|_, seen| self.current(*seen, now));
        }
        let seen = failures
            .entry(email.to_owned())
            .or_insert(FailedLogins { since: now, count: 0 });
        if !self.current(*seen, now) {
            *seen = FailedLogins { since: now, count: 0 };
        }
        seen.count += 1;
    }

    /// A successful login clears the address's failures.
    pub fn succeeded(&self, email: &str) {
        self.guard().remove(email);
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
    fn throttle_counts_failures_per_email_on_the_given_clock() {
        let t = LoginThrottle::new(2, SignedDuration::from_secs(60));
        let t0: Timestamp = "2026-11-21T00:00:00Z".parse().unwrap();
        t.failed("a", t0);
        t.failed("a", t0);
        assert!(t.check("a", t0).is_err(), "two failures use up the window");
        assert!(t.check("b", t0).is_ok(), "other addresses are not affected");
        let almost = t0 + SignedDuration::from_secs(59);
        assert!(t.check("a", almost).is_err(), "still inside the window");
        let later = t0 + SignedDuration::from_secs(60);
        assert!(t.check("a", later).is_ok(), "the window has passed on the given clock");
        t.failed("a", later);
        assert!(t.check("a", later).is_ok(), "a new window counts afresh");
    }

    #[test]
    fn successes_are_not_counted_and_clear_failures() {
        let t = LoginThrottle::new(2, SignedDuration::from_secs(60));
        let t0: Timestamp = "2026-11-21T00:00:00Z".parse().unwrap();
        t.failed("a", t0);
        t.succeeded("a");
        t.failed("a", t0);
        assert!(t.check("a", t0).is_ok(), "the success cleared the first failure");
        for _ in 0..100 {
            t.succeeded("b");
            assert!(t.check("b", t0).is_ok());
        }
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
