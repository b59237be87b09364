//! Checks shared by the fuzz targets: what a decoder accepts, its encoder writes back.

#![forbid(unsafe_code)]

use minipay_wire::{Dialect, Message};

/// A shipped dialect, loaded once per process by the caller.
pub fn dialect(name: &str) -> Dialect {
    minipay_wire::shipped(name).unwrap_or_else(|| panic!("dialect {name} is shipped"))
}

/// A decoded message encodes, and its encoding decodes to the same message. `code` is the
/// out-of-band code (the POS header's) for dialects that do not carry it.
pub fn assert_round_trip(dialect: &Dialect, code: Option<&str>, msg: &Message) {
    let bytes = dialect
        .encode(msg)
        .unwrap_or_else(|e| panic!("{msg:?} was decoded but does not encode: {e}"));
    let again = match code {
        Some(code) => dialect.decode_with_code(code, &bytes),
        None => dialect.decode(&bytes),
    };
    assert_eq!(again.as_ref(), Ok(msg), "re-encoded as {bytes:?}");
}
