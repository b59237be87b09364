//! The POS body's treatment: deflate (raw, RFC 1951) then AES-256-GCM under the terminal's key,
//! with the header's nonce and the header's 64 bytes as associated data; and a whole POS frame
//! (header + body, without the link's length prefix).

use std::io::{Read, Write};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use flate2::Compression;
use flate2::read::DeflateDecoder;
use flate2::write::DeflateEncoder;

use crate::header::{HEADER_LEN, HeaderError, PosHeader};

/// A terminal's 256-bit key. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct TerminalKey(pub [u8; 32]);

impl std::fmt::Debug for TerminalKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TerminalKey(..)")
    }
}

impl TerminalKey {
    fn cipher(&self) -> LessSafeKey {
        let key = UnboundKey::new(&AES_256_GCM, &self.0).expect("32 bytes is the length of an AES-256 key");
        LessSafeKey::new(key)
    }
}

/// A POS frame with its body in the clear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PosFrame {
    pub header: PosHeader,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error(transparent)]
    Header(#[from] HeaderError),
    #[error("the body is encrypted and the terminal has no key")]
    NoKey,
    #[error("the body does not authenticate (wrong key or tampered)")]
    Authentication,
    #[error("the body does not inflate")]
    Inflate,
    #[error("the body is over {0} bytes")]
    TooLong(usize),
}

/// Header bytes followed by the body, compressed and/or encrypted as `frame.header.flags` say.
/// The nonce is the header's: the caller never reuses one under the same key.
pub fn encode_pos_frame(frame: &PosFrame, key: Option<&TerminalKey>) -> Result<Vec<u8>, SealError> {
    let flags = frame.header.flags;
    let header = frame.header.encode()?;
    let mut body = if flags.deflate {
        deflate(&frame.body)
    } else {
        frame.body.clone()
    };
    if flags.encrypted {
        let key = key.ok_or(SealError::NoKey)?;
        seal(key, &header, &mut body)?;
    }
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&header);
    out.extend_from_slice(&body);
    Ok(out)
}

/// Reads a frame; `key_for` gives the key of the header's terminal (looked up by the caller).
/// The clear body is at most `body_max` bytes: a longer one (e.g. a decompression bomb) is
/// refused without inflating more than `body_max + 1` bytes.
///
/// `key_for` is asked only when the header's encrypted flag is set. That flag is not protected
/// when cleared (a clear frame has no tag), so whether a terminal may send clear frames is the
/// caller's policy: check `frame.header.flags.encrypted` against it.
pub fn decode_pos_frame(
    payload: &[u8],
    body_max: usize,
    key_for: impl FnOnce(&PosHeader) -> Option<TerminalKey>,
) -> Result<PosFrame, SealError> {
    let header = PosHeader::decode(payload)?;
    // The associated data is the header exactly as received.
    let (header_bytes, body) = payload.split_at(HEADER_LEN);
    let mut body = body.to_vec();
    if header.flags.encrypted {
        let key = key_for(&header).ok_or(SealError::NoKey)?;
        open(&key, header_bytes, &mut body)?;
    }
    if header.flags.deflate {
        body = inflate(&body, body_max)?;
    }
    if body.len() > body_max {
        return Err(SealError::TooLong(body_max));
    }
    Ok(PosFrame { header, body })
}

fn nonce_of(header: &[u8]) -> Nonce {
    let mut nonce = [0u8; 12];
    nonce.copy_from_slice(&header[40..52]);
    Nonce::assume_unique_for_key(nonce)
}

/// Encrypts `body` in place and appends the 16-byte tag.
fn seal(key: &TerminalKey, header: &[u8; HEADER_LEN], body: &mut Vec<u8>) -> Result<(), SealError> {
    key.cipher()
        .seal_in_place_append_tag(nonce_of(header), Aad::from(&header[..]), body)
        // GCM refuses only inputs of tens of gigabytes.
        .map_err(|_| SealError::TooLong(body.len()))
}

/// Decrypts `body` in place (ciphertext then tag) and drops the tag.
fn open(key: &TerminalKey, header: &[u8], body: &mut Vec<u8>) -> Result<(), SealError> {
    let clear_len = key
        .cipher()
        .open_in_place(nonce_of(header), Aad::from(header), body)
        .map_err(|_| SealError::Authentication)?
        .len();
    body.truncate(clear_len);
    Ok(())
}

fn deflate(body: &[u8]) -> Vec<u8> {
    let mut encoder = DeflateEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(body).expect("writing to a Vec cannot fail");
    encoder.finish().expect("writing to a Vec cannot fail")
}

/// Inflates `body`, reading at most one byte past `body_max` to tell a body that is too long.
fn inflate(body: &[u8], body_max: usize) -> Result<Vec<u8>, SealError> {
    let limit = u64::try_from(body_max).unwrap_or(u64::MAX).saturating_add(1);
    let mut out = Vec::new();
    DeflateDecoder::new(body)
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|_| SealError::Inflate)?;
    if out.len() > body_max {
        return Err(SealError::TooLong(body_max));
    }
    Ok(out)
}
