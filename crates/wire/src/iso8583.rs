//! ISO 8583 (1987, ASCII): MTI, primary and secondary bitmap (hex), fixed / LL / LLL fields.
//!
//! A message is the 4-digit MTI, the primary bitmap as 16 hex digits, the secondary bitmap
//! (16 more) when bit 1 is set — set exactly when a field 65..=128 is present — then the
//! present fields in bit order. Variable fields carry their length as 2 (LL) or 3 (LLL) ASCII
//! digits counting bytes. Decoding checks every length against the field's maximum and the
//! bytes left before reading, so any input is safe.

use crate::layout::{self, Field, Layout, Var};
use crate::message::{DecodeError, EncodeError, Message};

/// MTI length in bytes.
pub(crate) const MTI_LEN: usize = 4;
/// One bitmap as hex digits.
const BITMAP_HEX_LEN: usize = 16;
/// The bit that announces the secondary bitmap.
const SECONDARY_BIT: u8 = 1;

/// The longest message a layout can produce, in bytes.
pub(crate) fn max_len(layout: &Layout) -> usize {
    let fields: usize = layout.fields.iter().map(|f| prefix_len(f.var) + f.len).sum();
    MTI_LEN + 2 * BITMAP_HEX_LEN + fields
}

fn prefix_len(var: Var) -> usize {
    match var {
        Var::Fixed => 0,
        Var::Ll => 2,
        Var::Lll => 3,
    }
}

/// The bitmap mask of `bit` (1..=128; bit 1 is the most significant).
fn mask(bit: u8) -> u128 {
    1u128 << (128 - u32::from(bit))
}

/// A message of `layout` with MTI `mti`.
pub(crate) fn encode(layout: &Layout, mti: &str, msg: &Message) -> Result<Vec<u8>, EncodeError> {
    let mut bitmap = 0u128;
    let mut body = Vec::new();
    for field in &layout.fields {
        let Some(value) = layout::value_of(field, mti, msg)? else {
            continue;
        };
        let bytes = field_bytes(field, value).map_err(|e| field.encode_error(e))?;
        body.extend_from_slice(&bytes);
        bitmap |= mask(field.bit);
    }
    let secondary = bitmap & u128::from(u64::MAX) != 0;
    if secondary {
        bitmap |= mask(SECONDARY_BIT);
    }
    let mut out = Vec::with_capacity(MTI_LEN + 2 * BITMAP_HEX_LEN + body.len());
    out.extend_from_slice(mti.as_bytes());
    let hex = format!("{bitmap:032X}");
    let bitmaps = if secondary { &hex[..] } else { &hex[..BITMAP_HEX_LEN] };
    out.extend_from_slice(bitmaps.as_bytes());
    out.append(&mut body);
    Ok(out)
}

/// A field's bytes, with its length prefix when variable.
fn field_bytes(field: &Field, value: &str) -> Result<Vec<u8>, String> {
    let digits = prefix_len(field.var);
    if digits == 0 {
        return layout::fixed_bytes(field, value);
    }
    let bytes = layout::value_bytes(field, value)?;
    if bytes.len() > field.len {
        return Err(format!("{} bytes where at most {} fit", bytes.len(), field.len));
    }
    let mut out = format!("{:0digits$}", bytes.len()).into_bytes();
    out.extend_from_slice(&bytes);
    Ok(out)
}

/// The MTI at the start of a message.
pub(crate) fn read_mti(bytes: &[u8]) -> Result<&str, DecodeError> {
    let mti = bytes.get(..MTI_LEN).ok_or(DecodeError::Length {
        got: bytes.len(),
        want: MTI_LEN,
    })?;
    match mti.iter().all(u8::is_ascii_digit) {
        // All ASCII digits, hence UTF-8.
        true => std::str::from_utf8(mti).map_err(|_| bad_mti(mti)),
        false => Err(bad_mti(mti)),
    }
}

fn bad_mti(mti: &[u8]) -> DecodeError {
    DecodeError::Field {
        field: "mti".to_owned(),
        reason: format!("{mti:02X?} is not 4 digits"),
    }
}

/// Reads a message of `layout` (its MTI already matched) into `msg`.
pub(crate) fn decode(layout: &Layout, bytes: &[u8], msg: &mut Message) -> Result<(), DecodeError> {
    let mut reader = Reader { bytes, pos: MTI_LEN };
    let bitmap = read_bitmaps(&mut reader)?;
    for bit in 2..=128u8 {
        if bitmap & mask(bit) == 0 {
            continue;
        }
        let field = layout
            .fields
            .iter()
            .find(|f| f.bit == bit)
            .ok_or_else(|| DecodeError::Field {
                field: format!("bit {bit}"),
                reason: "present but not in the layout".to_owned(),
            })?;
        let value = read_field(&mut reader, field)?;
        layout::store(field, value, msg)?;
    }
    check_required(layout, bitmap)?;
    match reader.pos == bytes.len() {
        true => Ok(()),
        false => Err(DecodeError::Length {
            got: bytes.len(),
            want: reader.pos,
        }),
    }
}

/// The primary bitmap, and the secondary one when bit 1 says so, as one 128-bit map.
fn read_bitmaps(reader: &mut Reader<'_>) -> Result<u128, DecodeError> {
    let primary = read_hex64(reader.take(BITMAP_HEX_LEN, "bitmap")?)?;
    let mut bitmap = u128::from(primary) << 64;
    if bitmap & mask(SECONDARY_BIT) != 0 {
        let secondary = read_hex64(reader.take(BITMAP_HEX_LEN, "secondary bitmap")?)?;
        bitmap |= u128::from(secondary);
    }
    Ok(bitmap)
}

fn read_hex64(digits: &[u8]) -> Result<u64, DecodeError> {
    digits.iter().try_fold(0u64, |acc, &b| match layout::hex_digit(b) {
        Some(d) => Ok(acc << 4 | u64::from(d)),
        None => Err(DecodeError::Field {
            field: "bitmap".to_owned(),
            reason: format!("byte {b:#04X} is not a hex digit"),
        }),
    })
}

fn read_field(reader: &mut Reader<'_>, field: &Field) -> Result<String, DecodeError> {
    let len = match field.var {
        Var::Fixed => field.len,
        Var::Ll | Var::Lll => read_len(reader, field)?,
    };
    let bytes = reader.take(len, &field.name)?;
    let value = match field.var {
        Var::Fixed => layout::fixed_value(field, bytes),
        Var::Ll | Var::Lll => layout::bytes_value(field, bytes),
    };
    value.map_err(|e| field.decode_error(e))
}

/// A variable field's length prefix, checked against the field's maximum.
fn read_len(reader: &mut Reader<'_>, field: &Field) -> Result<usize, DecodeError> {
    let digits = reader.take(prefix_len(field.var), &field.name)?;
    let len = digits.iter().try_fold(0usize, |acc, &b| match b.is_ascii_digit() {
        true => Ok(acc * 10 + usize::from(b - b'0')),
        false => Err(field.decode_error(format!("length prefix {digits:02X?} is not digits"))),
    })?;
    match len <= field.len {
        true => Ok(len),
        false => Err(field.decode_error(format!("length {len} over the maximum {}", field.len))),
    }
}

/// Every mandatory field (and every constant) must be present.
fn check_required(layout: &Layout, bitmap: u128) -> Result<(), DecodeError> {
    let missing = layout.fields.iter().find(|f| !f.optional && bitmap & mask(f.bit) == 0);
    match missing {
        Some(field) => Err(field.decode_error("missing")),
        None => Ok(()),
    }
}

/// A bounds-checked cursor over the input.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize, what: &str) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.saturating_add(len);
        let chunk = self.bytes.get(self.pos..end).ok_or_else(|| DecodeError::Field {
            field: what.to_owned(),
            reason: format!("{len} bytes needed, {} left", self.bytes.len().saturating_sub(self.pos)),
        })?;
        self.pos = end;
        Ok(chunk)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_masks_follow_the_bitmap_order() {
        assert_eq!(format!("{:032X}", mask(1)), "80000000000000000000000000000000");
        assert_eq!(format!("{:032X}", mask(64)), "00000000000000010000000000000000");
        assert_eq!(format!("{:032X}", mask(65)), "00000000000000008000000000000000");
        assert_eq!(mask(128), 1);
    }

    #[test]
    fn bitmaps_are_read_from_hex_of_either_case() {
        let mut reader = Reader {
            bytes: b"8000000000000001c000000000000000",
            pos: 0,
        };
        let bitmap = read_bitmaps(&mut reader).unwrap();
        assert_eq!(bitmap, mask(1) | mask(64) | mask(65) | mask(66));
        let mut short = Reader {
            bytes: b"80000000000000010000",
            pos: 0,
        };
        assert!(read_bitmaps(&mut short).is_err());
        assert!(read_hex64(b"+000000000000000").is_err());
    }
}
