//! The positional dialect `shipped("ksnet")`: what decodes encodes back to the same message.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use minipay_wire::Dialect;
use minipay_wire_fuzz::{assert_round_trip, dialect};

static DIALECT: LazyLock<Dialect> = LazyLock::new(|| dialect("ksnet"));

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = DIALECT.decode(data) {
        assert_round_trip(&DIALECT, None, &msg);
    }
});
