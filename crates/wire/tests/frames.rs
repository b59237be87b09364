//! Property and example tests of the POS header, the sealed POS frame and the link codecs.

use std::io::{Read, Write};

use bytes::{Bytes, BytesMut};
use flate2::Compression;
use flate2::read::DeflateDecoder;
use flate2::write::DeflateEncoder;
use minipay_wire::header::SEQ_NO_MAX;
use minipay_wire::{
    Flags, FrameError, Framing, HEADER_LEN, HeaderError, LinkCodec, PosFrame, PosHeader, SealError, TerminalKey,
    decode_pos_frame, encode_pos_frame,
};
use proptest::prelude::*;
use tokio_util::codec::{Decoder, Encoder};

const BODY_MAX: usize = 8192;
const KEY: TerminalKey = TerminalKey([7; 32]);

fn flags(bits: u8) -> Flags {
    Flags::from_bits(bits).expect("bits 0..=3")
}

fn header_strategy() -> impl Strategy<Value = PosHeader> {
    (
        0u8..=99,
        "[0-9]{4}",
        "[A-Za-z0-9]{8}",
        0..=SEQ_NO_MAX,
        "[0-9]{14}",
        0u8..=3,
        any::<[u8; 12]>(),
        any::<[u8; 12]>(),
    )
        .prop_map(
            |(version, tx_code, terminal_id, seq_no, sent_at, bits, nonce, reserved)| PosHeader {
                version,
                tx_code,
                terminal_id,
                seq_no,
                sent_at,
                flags: flags(bits),
                nonce,
                reserved,
            },
        )
}

fn sample_header(bits: u8) -> PosHeader {
    PosHeader {
        version: 1,
        tx_code: "0100".into(),
        terminal_id: "T0001234".into(),
        seq_no: 42,
        sent_at: "20260315093000".into(),
        flags: flags(bits),
        nonce: *b"nonce-012345",
        reserved: [b' '; 12],
    }
}

fn sample_frame(bits: u8) -> PosFrame {
    PosFrame {
        header: sample_header(bits),
        body: b"card approval body, 1000 won, twice: card approval body, 1000 won".to_vec(),
    }
}

fn decode_with(payload: &[u8], key: Option<TerminalKey>) -> Result<PosFrame, SealError> {
    decode_pos_frame(payload, BODY_MAX, |_| key)
}

/// Every frame the codec yields from `buf` until it wants more bytes or fails.
fn decode_all(codec: &mut LinkCodec, buf: &mut BytesMut) -> Result<Vec<Vec<u8>>, FrameError> {
    let mut frames = Vec::new();
    while let Some(frame) = codec.decode(buf)? {
        frames.push(frame.to_vec());
    }
    Ok(frames)
}

fn framing_strategy() -> impl Strategy<Value = Framing> {
    prop_oneof![Just(Framing::Ascii4), Just(Framing::Binary2)]
}

proptest! {
    #[test]
    fn header_round_trips(header in header_strategy()) {
        let bytes = header.encode().unwrap();
        prop_assert_eq!(PosHeader::decode(&bytes).unwrap(), header);
    }

    #[test]
    fn frame_round_trips(
        header in header_strategy(),
        body in proptest::collection::vec(any::<u8>(), 0..4000),
        key in any::<[u8; 32]>(),
    ) {
        let frame = PosFrame { header, body };
        let key = TerminalKey(key);
        let bytes = encode_pos_frame(&frame, Some(&key)).unwrap();
        prop_assert_eq!(&bytes[..HEADER_LEN], &frame.header.encode().unwrap()[..]);
        let decoded = decode_pos_frame(&bytes, 4000, |h| {
            assert_eq!(h, &frame.header);
            Some(key)
        });
        prop_assert_eq!(decoded.unwrap(), frame);
    }

    #[test]
    fn link_codec_round_trips(
        framing in framing_strategy(),
        payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..600), 1..8),
    ) {
        let mut codec = LinkCodec::new(framing, 600);
        let mut wire = BytesMut::new();
        for payload in &payloads {
            codec.encode(Bytes::from(payload.clone()), &mut wire).unwrap();
        }
        let mut stream = wire.clone();
        prop_assert_eq!(&decode_all(&mut codec, &mut stream).unwrap(), &payloads);
        prop_assert!(stream.is_empty());

        let mut trickle = BytesMut::new();
        let mut frames = Vec::new();
        for byte in wire.iter() {
            trickle.extend_from_slice(&[*byte]);
            frames.extend(decode_all(&mut codec, &mut trickle).unwrap());
        }
        prop_assert_eq!(&frames, &payloads);
        prop_assert!(trickle.is_empty());
    }

    #[test]
    fn header_decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
        if let Ok(header) = PosHeader::decode(&bytes) {
            prop_assert_eq!(&header.encode().unwrap()[..], &bytes[..HEADER_LEN]);
        }
    }

    #[test]
    fn header_decode_of_near_valid_bytes_never_panics(
        header in header_strategy(),
        at in 0..HEADER_LEN,
        byte in any::<u8>(),
    ) {
        let mut bytes = header.encode().unwrap();
        bytes[at] = byte;
        if let Ok(decoded) = PosHeader::decode(&bytes) {
            prop_assert_eq!(decoded.encode().unwrap(), bytes);
        }
    }

    #[test]
    fn pos_frame_decode_never_panics(
        header in header_strategy(),
        tail in proptest::collection::vec(any::<u8>(), 0..300),
        junk in proptest::collection::vec(any::<u8>(), 0..100),
    ) {
        let mut bytes = header.encode().unwrap().to_vec();
        bytes.extend_from_slice(&tail);
        let _ = decode_pos_frame(&bytes, 256, |_| Some(KEY));
        let _ = decode_pos_frame(&bytes, 256, |_| None);
        let _ = decode_pos_frame(&junk, 256, |_| Some(KEY));
    }

    #[test]
    fn link_codec_decode_never_panics(
        framing in framing_strategy(),
        max_len in 0usize..70_000,
        bytes in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut codec = LinkCodec::new(framing, max_len);
        let mut buf = BytesMut::from(&bytes[..]);
        if let Ok(frames) = decode_all(&mut codec, &mut buf) {
            prop_assert!(frames.iter().all(|f| !f.is_empty() && f.len() <= max_len));
        }
    }
}

#[test]
fn header_layout_is_the_documented_one() {
    let bytes = sample_header(3).encode().unwrap();
    assert_eq!(&bytes[..40], b"010100T000123400000000422026031509300003");
    assert_eq!(&bytes[40..52], b"nonce-012345");
    assert_eq!(&bytes[52..], &[b' '; 12]);
}

/// A field name and a way to spoil that field.
type Spoil = (&'static str, fn(&mut PosHeader));

#[test]
fn header_encode_refuses_what_the_wire_cannot_carry() {
    let cases: [Spoil; 7] = [
        ("version", |h| h.version = 100),
        ("tx_code", |h| h.tx_code = "010".into()),
        ("tx_code", |h| h.tx_code = "01a0".into()),
        ("terminal_id", |h| h.terminal_id = "T000-234".into()),
        ("terminal_id", |h| h.terminal_id = "단말기12".into()),
        ("seq_no", |h| h.seq_no = SEQ_NO_MAX + 1),
        ("sent_at", |h| h.sent_at = "2026031509300".into()),
    ];
    for (field, spoil) in cases {
        let mut header = sample_header(0);
        spoil(&mut header);
        assert_eq!(header.encode(), Err(HeaderError::Field(field)), "{field}");
    }
}

#[test]
fn header_decode_refuses_malformed_fields() {
    let good = sample_header(0).encode().unwrap();
    assert_eq!(PosHeader::decode(&good[..63]), Err(HeaderError::Length(63)));
    let cases: [(usize, u8, &str); 6] = [
        (1, b' ', "version"),
        (5, b'x', "tx_code"),
        (13, b'-', "terminal_id"),
        (23, b' ', "seq_no"),
        (37, b':', "sent_at"),
        (39, b'4', "flags"),
    ];
    for (at, byte, field) in cases {
        let mut bytes = good;
        bytes[at] = byte;
        assert_eq!(PosHeader::decode(&bytes), Err(HeaderError::Field(field)), "{field}");
    }
}

#[test]
fn flags_above_three_are_refused() {
    for flags in [b"04", b"10", b"99"] {
        let mut bytes = sample_header(0).encode().unwrap();
        bytes[38..40].copy_from_slice(flags);
        assert_eq!(PosHeader::decode(&bytes), Err(HeaderError::Field("flags")));
    }
}

#[test]
fn every_flipped_bit_of_the_ciphertext_fails_authentication() {
    for bits in [2, 3] {
        let sealed = encode_pos_frame(&sample_frame(bits), Some(&KEY)).unwrap();
        for bit in HEADER_LEN * 8..sealed.len() * 8 {
            let mut tampered = sealed.clone();
            tampered[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(decode_with(&tampered, Some(KEY)), Err(SealError::Authentication));
        }
    }
}

/// The header is associated data: a tampered header that still reads as an encrypted frame
/// fails authentication; one that does not read fails as a header.
#[test]
fn every_flipped_bit_of_the_header_is_refused() {
    let frame = sample_frame(3);
    let sealed = encode_pos_frame(&frame, Some(&KEY)).unwrap();
    let mut authentication_failures = 0;
    for bit in 0..HEADER_LEN * 8 {
        let mut tampered = sealed.clone();
        tampered[bit / 8] ^= 1 << (bit % 8);
        let result = decode_with(&tampered, Some(KEY));
        match PosHeader::decode(&tampered) {
            Err(e) => assert_eq!(result, Err(SealError::Header(e))),
            Ok(h) if h.flags.encrypted => {
                assert_eq!(result, Err(SealError::Authentication), "bit {bit}");
                authentication_failures += 1;
            }
            // Clearing the encrypted bit is a downgrade the caller's policy must refuse.
            Ok(_) => assert_ne!(result.map(|f| f.body), Ok(frame.body.clone())),
        }
    }
    // At least every bit of the nonce and the reserved bytes.
    assert!(authentication_failures >= 24 * 8, "{authentication_failures}");
}

#[test]
fn a_digit_changed_in_the_header_fails_authentication() {
    let sealed = encode_pos_frame(&sample_frame(2), Some(&KEY)).unwrap();
    for at in 0..38 {
        let mut tampered = sealed.clone();
        tampered[at] = if tampered[at] == b'1' { b'2' } else { b'1' };
        assert_eq!(
            decode_with(&tampered, Some(KEY)),
            Err(SealError::Authentication),
            "{at}"
        );
    }
}

#[test]
fn a_wrong_key_fails_authentication() {
    let sealed = encode_pos_frame(&sample_frame(3), Some(&KEY)).unwrap();
    let wrong = TerminalKey([8; 32]);
    assert_eq!(decode_with(&sealed, Some(wrong)), Err(SealError::Authentication));
}

#[test]
fn an_encrypted_frame_without_a_key_is_refused() {
    let sealed = encode_pos_frame(&sample_frame(2), Some(&KEY)).unwrap();
    assert_eq!(decode_with(&sealed, None), Err(SealError::NoKey));
    assert_eq!(encode_pos_frame(&sample_frame(2), None), Err(SealError::NoKey));
}

#[test]
fn a_clear_frame_does_not_ask_for_a_key() {
    let bytes = encode_pos_frame(&sample_frame(1), None).unwrap();
    let decoded = decode_pos_frame(&bytes, BODY_MAX, |_| panic!("no key needed"));
    assert_eq!(decoded, Ok(sample_frame(1)));
}

#[test]
fn a_truncated_frame_is_refused() {
    for bits in [2, 3] {
        let sealed = encode_pos_frame(&sample_frame(bits), Some(&KEY)).unwrap();
        for len in 0..sealed.len() {
            let expected = if len < HEADER_LEN {
                SealError::Header(HeaderError::Length(len))
            } else {
                SealError::Authentication
            };
            assert_eq!(decode_with(&sealed[..len], Some(KEY)), Err(expected), "{len}");
        }
    }
    let deflated = encode_pos_frame(&sample_frame(1), None).unwrap();
    let cut = &deflated[..deflated.len() - 3];
    assert_eq!(decode_with(cut, None), Err(SealError::Inflate));
}

#[test]
fn the_body_is_raw_deflate_then_aes_256_gcm_over_the_header() {
    use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
    let frame = sample_frame(3);
    let mut sealed = encode_pos_frame(&frame, Some(&KEY)).unwrap();
    let (header, body) = sealed.split_at_mut(HEADER_LEN);
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &KEY.0).unwrap());
    let nonce = Nonce::assume_unique_for_key(frame.header.nonce);
    let deflated = key.open_in_place(nonce, Aad::from(&*header), body).unwrap();
    let mut clear = Vec::new();
    DeflateDecoder::new(&*deflated).read_to_end(&mut clear).unwrap();
    assert_eq!(clear, frame.body);
}

#[test]
fn a_deflate_bomb_is_refused() {
    let mut encoder = DeflateEncoder::new(Vec::new(), Compression::best());
    encoder.write_all(&vec![0u8; 10 * 1024 * 1024]).unwrap();
    let bomb = encoder.finish().unwrap();
    let mut payload = sample_header(1).encode().unwrap().to_vec();
    payload.extend_from_slice(&bomb);
    assert!(payload.len() < 20_000);
    assert_eq!(decode_with(&payload, None), Err(SealError::TooLong(BODY_MAX)));
}

#[test]
fn a_clear_body_over_the_limit_is_refused() {
    let frame = PosFrame {
        header: sample_header(0),
        body: vec![b'x'; 101],
    };
    let bytes = encode_pos_frame(&frame, None).unwrap();
    assert_eq!(decode_pos_frame(&bytes, 100, |_| None), Err(SealError::TooLong(100)));
    assert!(decode_pos_frame(&bytes, 101, |_| None).is_ok());
}

#[test]
fn a_bad_length_prefix_is_refused() {
    let mut codec = LinkCodec::new(Framing::Ascii4, 4096);
    let mut buf = BytesMut::from(&b"12a4abcdef"[..]);
    assert!(matches!(codec.decode(&mut buf), Err(FrameError::BadLength(p)) if p == b"12a4"));
    for zero in [&b"0000x"[..], &[0, 0, 1][..]] {
        let framing = if zero.len() == 5 {
            Framing::Ascii4
        } else {
            Framing::Binary2
        };
        let mut buf = BytesMut::from(zero);
        let result = LinkCodec::new(framing, 4096).decode(&mut buf);
        assert!(matches!(result, Err(FrameError::BadLength(_))), "{zero:?}");
    }
}

#[test]
fn a_length_over_the_limit_is_refused_before_the_body_arrives() {
    let mut codec = LinkCodec::new(Framing::Ascii4, 100);
    let mut buf = BytesMut::from(&b"0101"[..]);
    let result = codec.decode(&mut buf);
    assert!(matches!(result, Err(FrameError::TooLong { got: 101, max: 100 })));
    assert!(buf.capacity() < 101);

    let mut codec = LinkCodec::new(Framing::Binary2, 1000);
    let mut buf = BytesMut::from(&[0xff, 0xff][..]);
    let result = codec.decode(&mut buf);
    assert!(matches!(result, Err(FrameError::TooLong { got: 65535, max: 1000 })));
}

#[test]
fn an_incomplete_frame_waits_and_reserves_what_is_missing() {
    let mut codec = LinkCodec::new(Framing::Ascii4, 4096);
    let mut buf = BytesMut::from(&b"01"[..]);
    assert!(codec.decode(&mut buf).unwrap().is_none());
    buf.extend_from_slice(b"00abc");
    assert!(codec.decode(&mut buf).unwrap().is_none());
    assert!(buf.capacity() >= 104);
    assert_eq!(buf.len(), 7);
}

#[test]
fn a_frame_cut_by_the_end_of_the_stream_is_an_error() {
    let mut codec = LinkCodec::new(Framing::Binary2, 4096);
    let mut buf = BytesMut::from(&[0, 5, b'a', b'b'][..]);
    assert!(matches!(codec.decode_eof(&mut buf), Err(FrameError::Io(_))));
}

#[test]
fn the_encoder_refuses_what_the_prefix_or_the_limit_cannot_carry() {
    let mut dst = BytesMut::new();
    let mut ascii = LinkCodec::new(Framing::Ascii4, 100_000);
    assert_eq!(ascii.max_len(), 9999);
    let result = ascii.encode(Bytes::from(vec![0; 10_000]), &mut dst);
    assert!(matches!(result, Err(FrameError::TooLong { got: 10_000, max: 9999 })));
    let mut binary = LinkCodec::new(Framing::Binary2, 100);
    let result = binary.encode(Bytes::from(vec![0; 101]), &mut dst);
    assert!(matches!(result, Err(FrameError::TooLong { got: 101, max: 100 })));
    let result = binary.encode(Bytes::new(), &mut dst);
    assert!(matches!(result, Err(FrameError::BadLength(_))));
    assert!(dst.is_empty());
}

#[test]
fn the_prefixes_are_the_documented_ones() {
    let mut dst = BytesMut::new();
    let payload = Bytes::from_static(b"hello");
    LinkCodec::new(Framing::Ascii4, 9999)
        .encode(payload.clone(), &mut dst)
        .unwrap();
    LinkCodec::new(Framing::Binary2, 9999)
        .encode(payload, &mut dst)
        .unwrap();
    assert_eq!(&dst[..], b"0005hello\x00\x05hello");
}
