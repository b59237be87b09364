//! API keys and webhook secrets: random, shown once; a key is stored only as its SHA-256.
//!
//! Why SHA-256 and not argon2 (which the wallet uses for passwords): a slow, salted hash exists
//! to make guessing a low-entropy password expensive. An API key is 256 bits from the system's
//! CSPRNG, so no amount of guessing finds one, salted or not, fast hash or slow. An unsalted
//! hash also lets a request find its business with one unique-index lookup, and keeps business
//! authentication, which runs on every request, cheap.

use aws_lc_rs::digest::{SHA256, digest};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use minipay_services::{ServiceError, ServiceResult};

/// Every API key starts with this, so a leaked one is recognisable (by people and by secret
/// scanners) and a bearer value that is not a key is told apart without a database lookup.
pub const API_KEY_PREFIX: &str = "mpk_";
/// Every webhook secret starts with this.
pub const WEBHOOK_SECRET_PREFIX: &str = "whsec_";
/// Random bytes in a key and in a webhook secret (256 bits).
pub const SECRET_RANDOM_BYTES: usize = 32;
/// Length of a key: the prefix and 32 bytes in unpadded base64url (43 characters).
pub const API_KEY_LEN: usize = API_KEY_PREFIX.len() + (SECRET_RANDOM_BYTES * 4).div_ceil(3);
/// SHA-256 digest size: what the store keeps per key.
pub const API_KEY_HASH_BYTES: usize = 32;

/// A freshly generated API key, before it is shown (once) to the operator.
pub struct ApiKey(String);

impl ApiKey {
    pub fn generate() -> ServiceResult<Self> {
        Ok(Self(random_token(API_KEY_PREFIX)?))
    }
    pub fn hash(&self) -> [u8; API_KEY_HASH_BYTES] {
        hash_api_key(&self.0)
    }
    /// Hands the key over to be shown; after that the platform keeps only its hash.
    pub fn reveal(self) -> String {
        self.0
    }
}

/// A freshly generated webhook secret. Stored, because the platform signs webhooks with it.
pub struct WebhookSecret(String);

impl WebhookSecret {
    pub fn generate() -> ServiceResult<Self> {
        Ok(Self(random_token(WEBHOOK_SECRET_PREFIX)?))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether a bearer value has the shape of an API key (the prefix, then base64url of the
/// right length). Anything else cannot be one and is refused before hashing.
pub fn looks_like_api_key(candidate: &str) -> bool {
    candidate.len() == API_KEY_LEN
        && candidate.strip_prefix(API_KEY_PREFIX).is_some_and(|rest| {
            rest.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// SHA-256 of the key's text: what the store keeps and matches.
pub fn hash_api_key(key: &str) -> [u8; API_KEY_HASH_BYTES] {
    let mut out = [0; API_KEY_HASH_BYTES];
    out.copy_from_slice(digest(&SHA256, key.as_bytes()).as_ref());
    out
}

fn random_token(prefix: &str) -> ServiceResult<String> {
    let mut bytes = [0u8; SECRET_RANDOM_BYTES];
    aws_lc_rs::rand::fill(&mut bytes)
        .map_err(|_| ServiceError::Internal(anyhow::anyhow!("the system random number generator failed")))?;
    Ok(format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_prefixed_and_recognisable() {
        let (a, b) = (ApiKey::generate().unwrap(), ApiKey::generate().unwrap());
        assert_ne!(a.hash(), b.hash());
        let a = a.reveal();
        assert_eq!(a.len(), API_KEY_LEN);
        assert!(a.starts_with(API_KEY_PREFIX));
        assert!(looks_like_api_key(&a));
        assert!(!looks_like_api_key(&a[1..]));
        assert!(!looks_like_api_key(&format!("{a}x")));
        assert!(!looks_like_api_key(&a.replacen(API_KEY_PREFIX, "mpx_", 1)));
        assert!(!looks_like_api_key(&format!("{}=", &a[..API_KEY_LEN - 1])));
        assert!(!looks_like_api_key("eyJhbGciOiJIUzI1NiJ9.e30.sig"));
    }

    #[test]
    fn the_hash_is_sha256_of_the_key_text() {
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        let expected = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        let hex: String = hash_api_key("abc").iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, expected);
    }

    #[test]
    fn webhook_secrets_are_random_and_prefixed() {
        let (a, b) = (WebhookSecret::generate().unwrap(), WebhookSecret::generate().unwrap());
        assert_ne!(a.as_str(), b.as_str());
        assert!(a.as_str().starts_with(WEBHOOK_SECRET_PREFIX));
    }
}
