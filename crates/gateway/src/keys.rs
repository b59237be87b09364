//! Terminal keys: generated, sealed at rest under the server's secret, opened for HMAC and frames.
//!
//! A terminal's key cannot be hashed like a business's API key: the gateway needs the key
//! itself to check a request's HMAC and to open its encrypted POS frame. So it is stored
//! sealed with AES-256-GCM under a key derived from the server's `terminal_key_secret`; a
//! copy of the database alone does not give the keys away.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use minipay_wire::TerminalKey;

/// Bytes in a terminal key (256 bits).
pub const TERMINAL_KEY_BYTES: usize = 32;
/// Bytes of the AES-GCM tag at the end of a sealed key.
const TAG_BYTES: usize = 16;
/// Bytes of a sealed key: nonce ‖ ciphertext ‖ tag.
pub const SEALED_KEY_BYTES: usize = NONCE_LEN + TERMINAL_KEY_BYTES + TAG_BYTES;
/// Binds a sealed blob to its purpose: a blob sealed for anything else does not open as a key.
const AAD: &[u8] = b"minipay terminal key v1";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("a sealed terminal key is {SEALED_KEY_BYTES} bytes, not {0}")]
    Length(usize),
    #[error("the sealed terminal key does not open (another secret, or altered)")]
    Authentication,
}

/// Seals and opens terminal keys under one secret. Never printed.
pub struct KeySealer {
    key: LessSafeKey,
}

impl std::fmt::Debug for KeySealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeySealer(..)")
    }
}

impl KeySealer {
    /// The sealing key is SHA-256 of the secret: the secret is configured text of any length,
    /// and the production refusal of the development default guards its strength.
    pub fn new(secret: &str) -> Self {
        let derived = digest(&SHA256, secret.as_bytes());
        let unbound = UnboundKey::new(&AES_256_GCM, derived.as_ref()).expect("SHA-256 gives an AES-256 key's length");
        Self {
            key: LessSafeKey::new(unbound),
        }
    }

    /// `nonce ‖ ciphertext ‖ tag`, under a fresh random nonce (so the same key seals
    /// differently every time).
    pub fn seal(&self, key: &TerminalKey) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce);
        let mut in_out = key.0.to_vec();
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(AAD), &mut in_out)
            .expect("a 32-byte plaintext always seals");
        let mut sealed = Vec::with_capacity(SEALED_KEY_BYTES);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&in_out);
        sealed
    }

    /// The key a [`Self::seal`] blob holds, if it was sealed under this secret and is intact.
    pub fn open(&self, sealed: &[u8]) -> Result<TerminalKey, KeyError> {
        if sealed.len() != SEALED_KEY_BYTES {
            return Err(KeyError::Length(sealed.len()));
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| KeyError::Length(sealed.len()))?;
        let mut in_out = body.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(AAD), &mut in_out)
            .map_err(|_| KeyError::Authentication)?;
        let mut key = [0u8; TERMINAL_KEY_BYTES];
        key.copy_from_slice(plain);
        Ok(TerminalKey(key))
    }
}

/// A new terminal key: 256 bits from the system's CSPRNG.
pub fn generate() -> TerminalKey {
    let mut key = [0u8; TERMINAL_KEY_BYTES];
    fill_random(&mut key);
    TerminalKey(key)
}

/// Fills `out` from the system's CSPRNG. Its failure means the operating system cannot give
/// randomness at all; nothing safe can be done then, so it is not an error to handle.
fn fill_random(out: &mut [u8]) {
    SystemRandom::new()
        .fill(out)
        .expect("the system random number generator failed");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_key_opens_to_itself() {
        let sealer = KeySealer::new("one secret");
        let key = generate();
        let sealed = sealer.seal(&key);
        assert_eq!(sealed.len(), SEALED_KEY_BYTES);
        assert_eq!(sealer.open(&sealed).unwrap(), key);
        assert!(
            !sealed.windows(TERMINAL_KEY_BYTES).any(|w| w == key.0),
            "the key is in the clear"
        );
    }

    #[test]
    fn another_secret_does_not_open_it() {
        let sealed = KeySealer::new("one secret").seal(&generate());
        assert_eq!(
            KeySealer::new("another secret").open(&sealed),
            Err(KeyError::Authentication)
        );
    }

    #[test]
    fn an_altered_blob_does_not_open() {
        let sealer = KeySealer::new("one secret");
        let sealed = sealer.seal(&generate());
        for i in [0, NONCE_LEN, SEALED_KEY_BYTES - 1] {
            let mut altered = sealed.clone();
            altered[i] ^= 0x01;
            assert_eq!(sealer.open(&altered), Err(KeyError::Authentication), "byte {i}");
        }
        assert_eq!(sealer.open(&sealed[1..]), Err(KeyError::Length(SEALED_KEY_BYTES - 1)));
        assert_eq!(sealer.open(&[]), Err(KeyError::Length(0)));
    }

    #[test]
    fn sealing_twice_differs_and_keys_are_random() {
        let sealer = KeySealer::new("one secret");
        let key = generate();
        assert_ne!(sealer.seal(&key), sealer.seal(&key));
        assert_ne!(generate(), key);
    }
}
