//! Field formats (kind, length, padding, justification) and fixed-length positional layouts.
//!
//! A field's value in a [`Message`] is text: digits for `n`, ASCII for `an`/`ans`, any string
//! EUC-KR can carry for `text` (lengths count EUC-KR bytes), uppercase hex for `b`. Fixed fields
//! are padded with their pad byte on the side away from their justification; padding is stripped
//! on decode, so a value never starts (right-justified) or ends (left-justified) with its pad
//! byte. A zero-padded numeric field reads back as its minimal digits (`"0"` when all zeros).
//! A field declared `pad = "none"` must be filled exactly and reads back verbatim.

use crate::message::{DecodeError, EncodeError, Message};

/// The largest positional message a dialect may declare, in bytes.
pub(crate) const POSITIONAL_LEN_MAX: usize = 4096;

/// What a field may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// ASCII digits.
    N,
    /// ASCII letters, digits and space.
    An,
    /// Printable ASCII.
    Ans,
    /// EUC-KR text (Hangul allowed), no control characters.
    Text,
    /// Bytes, carried as uppercase hex in our messages.
    B,
}

/// How a field's length is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Var {
    /// Exactly `len` bytes.
    Fixed,
    /// Two ASCII digits of length, then up to `len` bytes.
    Ll,
    /// Three ASCII digits of length, then up to `len` bytes.
    Lll,
}

/// Where a field's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    /// One of our message's fields.
    Our(String),
    /// A constant of the dialect, checked on decode.
    Const(String),
    /// The message code (the first field of an in-band positional layout).
    Code,
}

/// One field of a layout.
#[derive(Debug, Clone)]
pub(crate) struct Field {
    /// The dialect's own name for the field.
    pub name: String,
    pub source: Source,
    pub kind: Kind,
    /// Fixed length, or the maximum for variable fields; in bytes.
    pub len: usize,
    pub var: Var,
    /// ISO 8583 bit number; 0 in positional layouts.
    pub bit: u8,
    /// Byte offset in a positional layout; 0 in ISO 8583 layouts.
    pub offset: usize,
    /// Pad byte of a fixed field; `None` when the value must fill the field.
    pub pad: Option<u8>,
    pub right_justified: bool,
    pub optional: bool,
}

impl Field {
    /// The name used in encode errors: ours when the field maps one of ours.
    fn our_label(&self) -> &str {
        match &self.source {
            Source::Our(name) => name,
            _ => &self.name,
        }
    }

    pub(crate) fn encode_error(&self, reason: impl Into<String>) -> EncodeError {
        EncodeError::Field {
            field: self.our_label().to_owned(),
            reason: reason.into(),
        }
    }

    pub(crate) fn decode_error(&self, reason: impl Into<String>) -> DecodeError {
        DecodeError::Field {
            field: self.name.clone(),
            reason: reason.into(),
        }
    }

    /// The byte an absent optional positional field is filled with.
    fn absent_byte(&self) -> u8 {
        match self.kind {
            Kind::N => b'0',
            Kind::B => 0,
            _ => b' ',
        }
    }
}

/// One message layout of a transaction type.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub code: String,
    /// The code of a repeated send (ISO 8583 `0401`); decoded into our field `repeat`.
    pub repeat_code: Option<String>,
    /// In declaration order (positional) or bit order (ISO 8583).
    pub fields: Vec<Field>,
}

impl Layout {
    /// The total length of a positional layout.
    pub(crate) fn fixed_len(&self) -> usize {
        self.fields.iter().map(|f| f.len).sum()
    }

    pub(crate) fn has_code(&self, code: &str) -> bool {
        self.code == code || self.repeat_code.as_deref() == Some(code)
    }
}

/// The value to write for `field`, or `None` for an absent optional field.
pub(crate) fn value_of<'a>(field: &'a Field, code: &'a str, msg: &'a Message) -> Result<Option<&'a str>, EncodeError> {
    match &field.source {
        Source::Code => Ok(Some(code)),
        Source::Const(value) => Ok(Some(value)),
        Source::Our(name) => match msg.get(name) {
            Some(value) => Ok(Some(value)),
            None if field.optional => Ok(None),
            None => Err(field.encode_error("missing")),
        },
    }
}

/// Puts a decoded value where it belongs: our field, or a check against the constant.
pub(crate) fn store(field: &Field, value: String, msg: &mut Message) -> Result<(), DecodeError> {
    match &field.source {
        Source::Our(name) => msg.set(name, value),
        Source::Const(want) if *want != value => {
            return Err(field.decode_error(format!("{value:?} where {want:?} is required")));
        }
        Source::Const(_) | Source::Code => {}
    }
    Ok(())
}

/// Our value as the field's bytes, before padding.
pub(crate) fn value_bytes(field: &Field, value: &str) -> Result<Vec<u8>, String> {
    match field.kind {
        Kind::N if value.is_empty() => Err("empty numeric value".to_owned()),
        Kind::N => ascii_bytes(value, |b| b.is_ascii_digit(), "digits"),
        Kind::An => ascii_bytes(value, is_an, "letters, digits and spaces"),
        Kind::Ans => ascii_bytes(value, is_ans, "printable ASCII"),
        Kind::Text => euc_kr_bytes(value),
        Kind::B => hex_bytes(value),
    }
}

/// The field's bytes (padding removed) as our value.
pub(crate) fn bytes_value(field: &Field, bytes: &[u8]) -> Result<String, String> {
    match field.kind {
        Kind::N if bytes.is_empty() => Err("empty numeric value".to_owned()),
        Kind::N => ascii_value(bytes, |b| b.is_ascii_digit(), "digits"),
        Kind::An => ascii_value(bytes, is_an, "letters, digits and spaces"),
        Kind::Ans => ascii_value(bytes, is_ans, "printable ASCII"),
        Kind::Text => euc_kr_value(bytes),
        Kind::B => Ok(to_hex(bytes)),
    }
}

fn is_an(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b' '
}

fn is_ans(b: u8) -> bool {
    (0x20..=0x7e).contains(&b)
}

fn ascii_bytes(value: &str, ok: fn(u8) -> bool, what: &str) -> Result<Vec<u8>, String> {
    match value.bytes().all(ok) {
        true => Ok(value.as_bytes().to_vec()),
        false => Err(format!("{value:?} is not {what}")),
    }
}

fn ascii_value(bytes: &[u8], ok: fn(u8) -> bool, what: &str) -> Result<String, String> {
    match bytes.iter().all(|&b| ok(b)) {
        // Every accepted byte is ASCII, so this is one byte per char.
        true => Ok(bytes.iter().map(|&b| char::from(b)).collect()),
        false => Err(format!("bytes {bytes:02X?} are not {what}")),
    }
}

fn euc_kr_bytes(value: &str) -> Result<Vec<u8>, String> {
    if value.chars().any(char::is_control) {
        return Err("control characters are not allowed in text".to_owned());
    }
    let (bytes, _, unmappable) = encoding_rs::EUC_KR.encode(value);
    match unmappable {
        true => Err(format!("{value:?} has characters EUC-KR cannot carry")),
        false => Ok(bytes.into_owned()),
    }
}

fn euc_kr_value(bytes: &[u8]) -> Result<String, String> {
    let text = encoding_rs::EUC_KR
        .decode_without_bom_handling_and_without_replacement(bytes)
        .ok_or_else(|| "not EUC-KR text".to_owned())?;
    match text.chars().any(char::is_control) {
        true => Err("control characters are not allowed in text".to_owned()),
        false => Ok(text.into_owned()),
    }
}

fn hex_bytes(value: &str) -> Result<Vec<u8>, String> {
    let digits = value.as_bytes();
    if !digits.len().is_multiple_of(2) {
        return Err("hex value of odd length".to_owned());
    }
    digits
        .chunks_exact(2)
        .map(|pair| match pair {
            [hi, lo] => match (hex_digit(*hi), hex_digit(*lo)) {
                (Some(hi), Some(lo)) => Ok(hi << 4 | lo),
                _ => Err(format!("{value:?} is not hex")),
            },
            _ => Err("hex value of odd length".to_owned()),
        })
        .collect()
}

pub(crate) fn hex_digit(b: u8) -> Option<u8> {
    char::from(b).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

pub(crate) fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// A fixed field's bytes: the value padded to the field's length.
pub(crate) fn fixed_bytes(field: &Field, value: &str) -> Result<Vec<u8>, String> {
    let mut bytes = value_bytes(field, value)?;
    let short = field
        .len
        .checked_sub(bytes.len())
        .ok_or_else(|| format!("{} bytes where the field holds {}", bytes.len(), field.len))?;
    match field.pad {
        None if short > 0 => Err(format!("{} bytes where {} are required", bytes.len(), field.len)),
        None => Ok(bytes),
        Some(pad) if field.right_justified => {
            let mut out = vec![pad; short];
            out.append(&mut bytes);
            Ok(out)
        }
        Some(pad) => {
            bytes.resize(field.len, pad);
            Ok(bytes)
        }
    }
}

/// A fixed field's value: the bytes with padding stripped.
pub(crate) fn fixed_value(field: &Field, bytes: &[u8]) -> Result<String, String> {
    let Some(pad) = field.pad else {
        return bytes_value(field, bytes);
    };
    let kept = match field.right_justified {
        true => bytes.iter().position(|&b| b != pad).map_or(&[][..], |i| &bytes[i..]),
        false => bytes.iter().rposition(|&b| b != pad).map_or(&[][..], |i| &bytes[..=i]),
    };
    match (field.kind, kept.is_empty(), pad) {
        (Kind::N, true, b'0') => Ok("0".to_owned()),
        _ => bytes_value(field, kept),
    }
}

/// A positional message of `layout` whose code field holds `code`.
pub(crate) fn encode(layout: &Layout, code: &str, msg: &Message) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::with_capacity(layout.fixed_len());
    for field in &layout.fields {
        match value_of(field, code, msg)? {
            Some(value) => {
                let bytes = fixed_bytes(field, value).map_err(|e| field.encode_error(e))?;
                out.extend_from_slice(&bytes);
            }
            None => out.resize(out.len() + field.len, field.absent_byte()),
        }
    }
    Ok(out)
}

/// Reads a positional message of `layout` into `msg`; the length must be exact.
pub(crate) fn decode(layout: &Layout, bytes: &[u8], msg: &mut Message) -> Result<(), DecodeError> {
    let want = layout.fixed_len();
    if bytes.len() != want {
        return Err(DecodeError::Length { got: bytes.len(), want });
    }
    for field in &layout.fields {
        let end = field.offset.saturating_add(field.len);
        let chunk = bytes.get(field.offset..end).ok_or(DecodeError::Length {
            got: bytes.len(),
            want: end,
        })?;
        if field.optional && is_blank(field, chunk) {
            continue;
        }
        let value = fixed_value(field, chunk).map_err(|e| field.decode_error(e))?;
        store(field, value, msg)?;
    }
    Ok(())
}

/// An absent optional positional field: all spaces, or all its absent byte.
fn is_blank(field: &Field, chunk: &[u8]) -> bool {
    chunk.iter().all(|&b| b == b' ') || chunk.iter().all(|&b| b == field.absent_byte())
}

/// The in-band code at the start of a positional message.
pub(crate) fn read_code(bytes: &[u8], code_len: usize) -> Result<&str, DecodeError> {
    let head = bytes.get(..code_len).ok_or(DecodeError::Length {
        got: bytes.len(),
        want: code_len,
    })?;
    std::str::from_utf8(head).map_err(|_| DecodeError::UnknownCode(format!("{head:02X?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(kind: Kind, len: usize, pad: Option<u8>, right: bool) -> Field {
        Field {
            name: "f".into(),
            source: Source::Our("f".into()),
            kind,
            len,
            var: Var::Fixed,
            bit: 0,
            offset: 0,
            pad,
            right_justified: right,
            optional: false,
        }
    }

    #[test]
    fn numeric_is_zero_padded_and_read_back_minimal() {
        let f = field(Kind::N, 6, Some(b'0'), true);
        assert_eq!(fixed_bytes(&f, "1200").unwrap(), b"001200");
        assert_eq!(fixed_value(&f, b"001200").unwrap(), "1200");
        assert_eq!(fixed_value(&f, b"000000").unwrap(), "0");
        assert!(fixed_bytes(&f, "1234567").is_err());
        assert!(fixed_bytes(&f, "12a").is_err());
    }

    #[test]
    fn unpadded_fields_must_fill_exactly() {
        let f = field(Kind::N, 4, None, true);
        assert_eq!(fixed_value(&f, b"0912").unwrap(), "0912");
        assert!(fixed_bytes(&f, "912").is_err());
    }

    #[test]
    fn text_never_splits_a_hangul_character() {
        let f = field(Kind::Text, 3, Some(b' '), false);
        assert_eq!(fixed_bytes(&f, "가").unwrap(), [0xB0, 0xA1, b' ']);
        assert!(fixed_bytes(&f, "가나").is_err());
        assert!(fixed_value(&f, &[b'a', 0xB0, b' ']).is_err());
    }

    #[test]
    fn binary_is_uppercase_hex() {
        let f = field(Kind::B, 2, None, false);
        assert_eq!(fixed_bytes(&f, "0aFf").unwrap(), [0x0A, 0xFF]);
        assert_eq!(fixed_value(&f, &[0x0A, 0xFF]).unwrap(), "0AFF");
        assert!(fixed_bytes(&f, "0G00").is_err());
    }
}
