//! A whole POS frame under a fixed key: what decodes re-seals and decodes to the same frame,
//! and its body goes through the POS dialect with the header's code.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use minipay_wire::{Dialect, TerminalKey, decode_pos_frame, encode_pos_frame};
use minipay_wire_fuzz::{assert_round_trip, dialect};

/// The key of `corpus/pos_frame/seed-encrypted`.
const KEY: TerminalKey = TerminalKey([0x42; 32]);
const BODY_MAX: usize = 8192;

static POS: LazyLock<Dialect> = LazyLock::new(|| dialect("pos"));

fuzz_target!(|data: &[u8]| {
    let Ok(frame) = decode_pos_frame(data, BODY_MAX, |_| Some(KEY)) else {
        return;
    };
    assert!(frame.body.len() <= BODY_MAX);
    let sealed = encode_pos_frame(&frame, Some(&KEY)).expect("a decoded frame encodes");
    assert_eq!(decode_pos_frame(&sealed, BODY_MAX, |_| Some(KEY)).as_ref(), Ok(&frame));
    let code = frame.header.tx_code.as_str();
    if let Ok(msg) = POS.decode_with_code(code, &frame.body) {
        assert_round_trip(&POS, Some(code), &msg);
    }
});
