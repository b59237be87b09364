//! The POS frame's fixed 64-byte header: `version(2) tx_type(4) terminal_id(8) seq_no(10)
//! sent_at(14) flags(2) nonce(12, binary) reserved(12)`.

use std::ops::Range;

pub const HEADER_LEN: usize = 64;

// Field offsets (API-gateway.md "Terminal intake").
const VERSION: Range<usize> = 0..2;
const TX_CODE: Range<usize> = 2..6;
const TERMINAL_ID: Range<usize> = 6..14;
const SEQ_NO: Range<usize> = 14..24;
const SENT_AT: Range<usize> = 24..38;
const FLAGS: Range<usize> = 38..40;
const NONCE: Range<usize> = 40..52;
const RESERVED: Range<usize> = 52..64;

/// The largest `seq_no` that 10 digits hold.
pub const SEQ_NO_MAX: u64 = 9_999_999_999;

/// The body's treatment: `flags` is 2 ASCII digits holding the bits as a decimal number
/// (`00`–`03`): bit 0 deflate, bit 1 AES-256-GCM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags {
    pub deflate: bool,
    pub encrypted: bool,
}

impl Flags {
    const DEFLATE: u8 = 0b01;
    const ENCRYPTED: u8 = 0b10;

    /// The bits as a number (`0`–`3`).
    pub fn bits(self) -> u8 {
        let deflate = if self.deflate { Self::DEFLATE } else { 0 };
        let encrypted = if self.encrypted { Self::ENCRYPTED } else { 0 };
        deflate | encrypted
    }

    /// The flags of `bits`, or `None` when an unknown bit is set.
    pub fn from_bits(bits: u8) -> Option<Self> {
        (bits <= Self::DEFLATE | Self::ENCRYPTED).then_some(Self {
            deflate: bits & Self::DEFLATE != 0,
            encrypted: bits & Self::ENCRYPTED != 0,
        })
    }
}

/// A POS header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PosHeader {
    /// `01` today.
    pub version: u8,
    /// The message code, 4 digits (`0100`, `0110`, ...).
    pub tx_code: String,
    /// 8 characters (ASCII alphanumeric).
    pub terminal_id: String,
    /// At most 10 digits.
    pub seq_no: u64,
    /// `YYYYMMDDhhmmss`, digits only (not checked as a date here).
    pub sent_at: String,
    pub flags: Flags,
    pub nonce: [u8; 12],
    pub reserved: [u8; 12],
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("the header is {0} bytes, not 64")]
    Length(usize),
    #[error("header field {0} is malformed")]
    Field(&'static str),
}

impl PosHeader {
    /// The 64 bytes of this header, refusing a field that the wire format cannot carry.
    pub fn encode(&self) -> Result<[u8; HEADER_LEN], HeaderError> {
        let mut out = [0u8; HEADER_LEN];
        put_number(&mut out[VERSION], u64::from(self.version), "version")?;
        put_text(&mut out[TX_CODE], &self.tx_code, is_digits, "tx_code")?;
        put_text(&mut out[TERMINAL_ID], &self.terminal_id, is_alphanumeric, "terminal_id")?;
        put_number(&mut out[SEQ_NO], self.seq_no, "seq_no")?;
        put_text(&mut out[SENT_AT], &self.sent_at, is_digits, "sent_at")?;
        put_number(&mut out[FLAGS], u64::from(self.flags.bits()), "flags")?;
        out[NONCE].copy_from_slice(&self.nonce);
        out[RESERVED].copy_from_slice(&self.reserved);
        Ok(out)
    }

    /// Reads the first 64 bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, HeaderError> {
        let bytes = bytes.get(..HEADER_LEN).ok_or(HeaderError::Length(bytes.len()))?;
        let flags = number(&bytes[FLAGS], "flags")?;
        Ok(Self {
            version: small(number(&bytes[VERSION], "version")?, "version")?,
            tx_code: text(&bytes[TX_CODE], is_digits, "tx_code")?,
            terminal_id: text(&bytes[TERMINAL_ID], is_alphanumeric, "terminal_id")?,
            seq_no: number(&bytes[SEQ_NO], "seq_no")?,
            sent_at: text(&bytes[SENT_AT], is_digits, "sent_at")?,
            flags: small(flags, "flags")
                .map(Flags::from_bits)?
                .ok_or(HeaderError::Field("flags"))?,
            nonce: array(&bytes[NONCE]),
            reserved: array(&bytes[RESERVED]),
        })
    }
}

fn is_digits(field: &[u8]) -> bool {
    field.iter().all(u8::is_ascii_digit)
}

fn is_alphanumeric(field: &[u8]) -> bool {
    field.iter().all(u8::is_ascii_alphanumeric)
}

/// Writes `value` as zero-padded decimal filling `out`, refusing a value with too many digits.
fn put_number(out: &mut [u8], value: u64, name: &'static str) -> Result<(), HeaderError> {
    let digits = format!("{value:0width$}", width = out.len());
    put_text(out, &digits, is_digits, name)
}

/// Copies `value` into `out`: exactly `out.len()` bytes, each accepted by `valid`.
fn put_text(out: &mut [u8], value: &str, valid: fn(&[u8]) -> bool, name: &'static str) -> Result<(), HeaderError> {
    let bytes = value.as_bytes();
    if bytes.len() != out.len() || !valid(bytes) {
        return Err(HeaderError::Field(name));
    }
    out.copy_from_slice(bytes);
    Ok(())
}

fn text(field: &[u8], valid: fn(&[u8]) -> bool, name: &'static str) -> Result<String, HeaderError> {
    if !valid(field) {
        return Err(HeaderError::Field(name));
    }
    // Valid fields are ASCII, hence UTF-8.
    String::from_utf8(field.to_vec()).map_err(|_| HeaderError::Field(name))
}

/// A field of ASCII digits as a number (at most 14 digits here, so no overflow).
fn number(field: &[u8], name: &'static str) -> Result<u64, HeaderError> {
    if !is_digits(field) {
        return Err(HeaderError::Field(name));
    }
    Ok(field.iter().fold(0, |acc, digit| acc * 10 + u64::from(digit - b'0')))
}

fn small(value: u64, name: &'static str) -> Result<u8, HeaderError> {
    u8::try_from(value).map_err(|_| HeaderError::Field(name))
}

fn array(field: &[u8]) -> [u8; 12] {
    let mut out = [0u8; 12];
    out.copy_from_slice(field);
    out
}
