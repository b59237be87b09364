//! The ISO 8583 dialect `shipped("iso8583")`: what decodes encodes back to the same message.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use minipay_wire::Dialect;
use minipay_wire_fuzz::{assert_round_trip, dialect};

static DIALECT: LazyLock<Dialect> = LazyLock::new(|| dialect("iso8583"));

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = DIALECT.decode(data) {
        assert_round_trip(&DIALECT, None, &msg);
    }
});
