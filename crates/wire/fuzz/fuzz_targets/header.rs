//! The POS header: a header that decodes encodes back to the same 64 bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use minipay_wire::{HEADER_LEN, PosHeader};

fuzz_target!(|data: &[u8]| {
    if let Ok(header) = PosHeader::decode(data) {
        let bytes = header.encode().expect("a decoded header encodes");
        assert_eq!(&bytes[..], &data[..HEADER_LEN]);
    }
});
