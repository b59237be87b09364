//! The console's session: a cookie signed with a key derived from the admin token (so rotating
//! the token ends every session), expiring after a working day, and the CSRF token every form
//! and htmx request of that session must carry.

use aws_lc_rs::{constant_time, hmac, rand};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::{SignedDuration, Timestamp};

/// The cookie's name.
pub const COOKIE: &str = "minipay_console";
/// How long a session lasts after login.
pub const SESSION_HOURS: i64 = 8;
/// What the key derivation binds the key to.
const KEY_LABEL: &[u8] = b"minipay console session v1";

/// A logged-in console session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub expires_at: Timestamp,
    nonce: String,
}

fn key(admin_token: &str) -> hmac::Key {
    let derived = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, admin_token.as_bytes()), KEY_LABEL);
    hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref())
}

fn mac(key: &hmac::Key, parts: &[&str]) -> String {
    URL_SAFE_NO_PAD.encode(hmac::sign(key, parts.join("|").as_bytes()).as_ref())
}

impl Session {
    /// A new session from `now`.
    pub fn start(now: Timestamp) -> Self {
        let mut bytes = [0u8; 16];
        rand::fill(&mut bytes).expect("the system RNG works");
        Self {
            expires_at: now + SignedDuration::from_hours(SESSION_HOURS),
            nonce: URL_SAFE_NO_PAD.encode(bytes),
        }
    }

    /// The cookie's value: expiry, nonce and their MAC.
    pub fn cookie_value(&self, admin_token: &str) -> String {
        let expiry = self.expires_at.as_second().to_string();
        let tag = mac(&key(admin_token), &["session", &expiry, &self.nonce]);
        format!("{expiry}.{}.{tag}", self.nonce)
    }

    /// The session a cookie value names, if its MAC is right and it has not expired at `now`.
    pub fn verify(value: &str, admin_token: &str, now: Timestamp) -> Option<Self> {
        let mut parts = value.split('.');
        let (expiry, nonce, tag) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let expected = mac(&key(admin_token), &["session", expiry, nonce]);
        constant_time::verify_slices_are_equal(expected.as_bytes(), tag.as_bytes()).ok()?;
        let expires_at = Timestamp::from_second(expiry.parse().ok()?).ok()?;
        (now < expires_at).then(|| Self {
            expires_at,
            nonce: nonce.to_owned(),
        })
    }

    /// The session's CSRF token (bound to the session, so another session's is refused).
    pub fn csrf(&self, admin_token: &str) -> String {
        mac(&key(admin_token), &["csrf", &self.nonce])
    }

    /// Whether `token` is this session's CSRF token.
    pub fn csrf_matches(&self, admin_token: &str, token: &str) -> bool {
        constant_time::verify_slices_are_equal(self.csrf(admin_token).as_bytes(), token.as_bytes()).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn a_session_cookie_verifies_until_it_expires_and_only_under_its_token() {
        let now = t("2026-12-05T00:00:00Z");
        let s = Session::start(now);
        let cookie = s.cookie_value("admin-token");
        assert_eq!(Session::verify(&cookie, "admin-token", now), Some(s.clone()));
        assert_eq!(Session::verify(&cookie, "another-token", now), None);
        assert_eq!(Session::verify(&cookie, "admin-token", s.expires_at), None);
        let forged = cookie.replacen(&s.expires_at.as_second().to_string(), "9999999999", 1);
        assert_eq!(Session::verify(&forged, "admin-token", now), None);
        assert_eq!(Session::verify("garbage", "admin-token", now), None);
    }

    #[test]
    fn a_csrf_token_belongs_to_its_session() {
        let now = t("2026-12-05T00:00:00Z");
        let (a, b) = (Session::start(now), Session::start(now));
        assert!(a.csrf_matches("admin-token", &a.csrf("admin-token")));
        assert!(!a.csrf_matches("admin-token", &b.csrf("admin-token")));
        assert!(!a.csrf_matches("admin-token", ""));
    }
}
