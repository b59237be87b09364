//! Link framing: every frame of the input under both framings; a decoded payload re-encodes to
//! exactly the bytes it came from, and feeding the input in pieces yields the same frames.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use minipay_wire::{Framing, LinkCodec};
use tokio_util::codec::{Decoder, Encoder};

const MAX_LEN: usize = 4096;
const PIECE_LEN: usize = 7;

fuzz_target!(|data: &[u8]| {
    for framing in [Framing::Ascii4, Framing::Binary2] {
        let whole = frames(framing, &[data]);
        let pieces: Vec<&[u8]> = data.chunks(PIECE_LEN).collect();
        assert_eq!(frames(framing, &pieces), whole);
        assert_reencodes(framing, data, &whole.0);
    }
});

/// The frames decoded from `pieces` fed in turn, and whether decoding failed.
fn frames(framing: Framing, pieces: &[&[u8]]) -> (Vec<BytesMut>, bool) {
    let mut codec = LinkCodec::new(framing, MAX_LEN);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for piece in pieces {
        buf.extend_from_slice(piece);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => out.push(frame),
                Ok(None) => break,
                Err(_) => return (out, true),
            }
        }
    }
    (out, false)
}

fn assert_reencodes(framing: Framing, data: &[u8], frames: &[BytesMut]) {
    let mut codec = LinkCodec::new(framing, MAX_LEN);
    let mut wire = BytesMut::new();
    for frame in frames {
        assert!(!frame.is_empty() && frame.len() <= MAX_LEN);
        codec
            .encode(frame.clone().freeze(), &mut wire)
            .expect("a decoded frame encodes");
    }
    assert_eq!(&wire[..], &data[..wire.len()]);
}
