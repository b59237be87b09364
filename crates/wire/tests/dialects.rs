//! Dialects as data: the shipped dialects, round trips for every field kind and transaction
//! type, EUC-KR text, rejections of malformed input, spec checks and data-only extensions.

mod dialect_gen;

use minipay_wire::dialect::OUR_FIELDS;
use minipay_wire::{DecodeError, Dialect, Direction, EncodeError, Framing, Message, shipped};
use proptest::prelude::*;

const POS: &str = include_str!("../../../specs/pos.toml");
const KSNET: &str = include_str!("../../../specs/ksnet.toml");
const ISO8583: &str = include_str!("../../../specs/iso8583.toml");
const EXTRA_TX: &str = include_str!("data/extra_tx.toml");

/// Every field kind, fixed and justified both ways, in a positional layout.
const KINDS_POSITIONAL: &str = r#"
name = "kinds-positional"
kind = "positional"
framing = "ascii4"
encoding = "euc-kr"

[tx.probe.request]
code = "K1"
fields = [
  { name = "code", code = true, len = 2, kind = "an", pad = "none" },
  { name = "n", our = "x_n", len = 9, kind = "n" },
  { name = "n_opt", our = "x_n_opt", len = 5, kind = "n", optional = true },
  { name = "n_exact", our = "x_n_exact", len = 4, kind = "n", pad = "none" },
  { name = "an", our = "x_an", len = 10, kind = "an" },
  { name = "an_right", our = "x_an_right", len = 6, kind = "an", justify = "right" },
  { name = "ans", our = "x_ans", len = 12, kind = "ans", optional = true },
  { name = "text", our = "x_text", len = 30, kind = "text" },
  { name = "text_right", our = "x_text_right", len = 11, kind = "text", justify = "right", optional = true },
  { name = "b", our = "x_b", len = 4, kind = "b" },
  { name = "b_opt", our = "x_b_opt", len = 3, kind = "b", optional = true },
  { name = "constant", value = "MP", len = 4, kind = "an" },
]

[tx.probe.answer]
code = "K2"
fields = [
  { name = "code", code = true, len = 2, kind = "an", pad = "none" },
  { name = "text", our = "x_text", len = 1, kind = "text" },
]
"#;

/// Every field kind, fixed / LL / LLL, primary and secondary bitmap, in an ISO 8583 layout.
const KINDS_ISO: &str = r#"
name = "kinds-iso"
kind = "iso8583"
framing = "binary2"
encoding = "euc-kr"

[tx.probe.request]
code = "0800"
repeat_code = "0801"
fields = [
  { bit = 2, name = "n_ll", our = "x_n_ll", var = "ll", len = 19, kind = "n" },
  { bit = 4, name = "n", our = "x_n", len = 12, kind = "n", optional = true },
  { bit = 7, name = "n_exact", our = "x_n_exact", len = 10, kind = "n", pad = "none", optional = true },
  { bit = 37, name = "an", our = "x_an", len = 12, kind = "an", optional = true },
  { bit = 44, name = "ans_ll", our = "x_ans_ll", var = "ll", len = 25, kind = "ans", optional = true },
  { bit = 52, name = "b", our = "x_b", len = 8, kind = "b", optional = true },
  { bit = 55, name = "b_lll", our = "x_b_lll", var = "lll", len = 255, kind = "b", optional = true },
  { bit = 63, name = "text_lll", our = "x_text_lll", var = "lll", len = 120, kind = "text", optional = true },
  { bit = 64, name = "text", our = "x_text", len = 20, kind = "text", optional = true },
  { bit = 70, name = "network_code", value = "301", len = 3, kind = "n", pad = "none" },
  { bit = 102, name = "ans_ll_2", our = "x_ans_ll_2", var = "ll", len = 28, kind = "ans", optional = true },
  { bit = 128, name = "text_ll", our = "x_text_ll", var = "ll", len = 40, kind = "text", optional = true },
]

[tx.probe.answer]
code = "0810"
fields = [
  { bit = 39, name = "response_code", our = "response_code", len = 2, kind = "an" },
]
"#;

fn dialect(text: &str) -> Dialect {
    Dialect::from_toml(text).expect("the spec is valid")
}

/// Decodes the way a receiver would: in-band, or with the code the POS header carried.
fn decode_back(d: &Dialect, msg: &Message, bytes: &[u8]) -> Result<Message, DecodeError> {
    match d.code_in_band() {
        true => d.decode(bytes),
        false => d.decode_with_code(d.code_of(&msg.tx_type, msg.direction).unwrap(), bytes),
    }
}

fn assert_round_trip(d: &Dialect, msg: &Message) {
    let bytes = d.encode(msg).unwrap_or_else(|e| panic!("encode {msg:?}: {e}"));
    let back = decode_back(d, msg, &bytes).unwrap_or_else(|e| panic!("decode {msg:?}: {e}"));
    assert_eq!(back, *msg, "bytes {:?}", String::from_utf8_lossy(&bytes));
}

fn card_approval_answer(message: &str) -> Message {
    Message::new("card_approval", Direction::Answer)
        .with("response_code", "00")
        .with("approval_no", "12345678")
        .with("approved_at", "20250102030405")
        .with("message", message)
        .with("transaction_id", "0190a5c4-7c1e-7d4e-9b6a-1f2e3d4c5b6a")
        .with("result", "approved")
}

fn iso_approval_request() -> Message {
    Message::new("card_approval", Direction::Request)
        .with("pan", "9410123456780001")
        .with("expiry", "2712")
        .with("amount", "15000")
        .with("seq_no", "42")
        .with("sent_at", "20250102030405")
        .with("upstream_ref", "000000000123")
        .with("terminal_id", "T0000001")
        .with("installment_months", "0")
}

// ---- shipped dialects -------------------------------------------------------------------

#[test]
fn shipped_dialects_load_with_their_framing_and_codes() {
    let pos = shipped("pos").unwrap();
    let ksnet = shipped("ksnet").unwrap();
    let iso = shipped("iso8583").unwrap();
    assert!(shipped("nope").is_none());
    assert_eq!((pos.name(), pos.framing()), ("pos", Framing::Ascii4));
    assert_eq!((ksnet.name(), ksnet.framing()), ("ksnet", Framing::Ascii4));
    assert_eq!((iso.name(), iso.framing()), ("iso8583", Framing::Binary2));
    let four = ["card_approval", "card_cancel", "cash_receipt", "cash_receipt_cancel"];
    assert_eq!(pos.tx_types(), four);
    for d in [&ksnet, &iso] {
        assert_eq!(d.tx_types(), [&four[..], &["network_cancel"]].concat());
    }
    let codes = [("card_approval", "0100", "0110"), ("card_cancel", "0420", "0430")];
    let codes = codes.into_iter().chain([
        ("cash_receipt", "0200", "0210"),
        ("cash_receipt_cancel", "0220", "0230"),
    ]);
    for (tx, request, answer) in codes {
        for d in [&pos, &ksnet, &iso] {
            assert_eq!(d.code_of(tx, Direction::Request), Some(request));
            assert_eq!(d.code_of(tx, Direction::Answer), Some(answer));
        }
    }
    assert_eq!(iso.code_of("network_cancel", Direction::Request), Some("0400"));
    assert_eq!(iso.repeat_code_of("network_cancel", Direction::Request), Some("0401"));
    assert_eq!(iso.lookup_code("0401"), [("network_cancel", Direction::Request)]);
    assert!(!pos.code_in_band() && ksnet.code_in_band() && iso.code_in_band());
}

#[test]
fn pos_body_decodes_with_the_header_code_only() {
    let pos = shipped("pos").unwrap();
    let msg = card_approval_answer("OK");
    let bytes = pos.encode(&msg).unwrap();
    assert_eq!(bytes.len(), 2 + 8 + 14 + 40 + 20 + 36 + 16 + 8);
    assert_eq!(pos.decode_with_code("0110", &bytes).unwrap(), msg);
    assert!(pos.decode(&bytes).is_err());
    assert_eq!(
        pos.decode_with_code("0999", &bytes),
        Err(DecodeError::UnknownCode("0999".into()))
    );
}

#[test]
fn ksnet_approval_is_fixed_length_with_code_first() {
    let ksnet = shipped("ksnet").unwrap();
    let msg = Message::new("card_approval", Direction::Request)
        .with("terminal_id", "T0000001")
        .with("seq_no", "7")
        .with("sent_at", "20250102030405")
        .with("upstream_ref", "000000000001")
        .with("amount", "1004")
        .with("track2", "9410123456780001=2712")
        .with("installment_months", "3");
    let bytes = ksnet.encode(&msg).unwrap();
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(text.starts_with("010001T0000001  "), "{text}");
    assert_eq!(&text[31..41], "0000000007");
    assert_eq!(ksnet.decode(&bytes).unwrap(), msg);
    assert_eq!(ksnet.decode_with_code("0100", &bytes).unwrap(), msg);
    assert!(ksnet.decode_with_code("0110", &bytes).is_err());
}

#[test]
fn iso_network_cancel_repeat_travels_in_the_mti() {
    let iso = shipped("iso8583").unwrap();
    let mut msg = iso_approval_request();
    msg.tx_type = "network_cancel".into();
    msg.set("repeat", "1");
    let bytes = iso.encode(&msg).unwrap();
    assert!(bytes.starts_with(b"0401"));
    assert_eq!(iso.decode(&bytes).unwrap(), msg);
    msg.set("repeat", "0");
    assert!(iso.encode(&msg).unwrap().starts_with(b"0400"));
    msg.set("repeat", "2");
    assert!(matches!(iso.encode(&msg), Err(EncodeError::Field { field, .. }) if field == "repeat"));
}

#[test]
fn iso_approval_bytes_are_mti_bitmap_then_fields() {
    let iso = shipped("iso8583").unwrap();
    let bytes = iso.encode(&iso_approval_request()).unwrap();
    let text = String::from_utf8(bytes).unwrap();
    // Bits 2, 3, 4, 11, 12, 14, 22, 37, 41, 48, 49: no secondary bitmap.
    assert!(text.starts_with("01007034040008818000"), "{text}");
    assert!(text[20..].starts_with("169410123456780001000000000000015000"), "{text}");
}

#[test]
fn iso_cancel_uses_the_secondary_bitmap_for_bit_90() {
    let iso = shipped("iso8583").unwrap();
    let mut msg = iso_approval_request();
    msg.tx_type = "card_cancel".into();
    msg.set("original_approval_no", "AB12CD34");
    msg.set("original_approved_at", "20250101000000");
    let bytes = iso.encode(&msg).unwrap();
    assert_eq!(bytes[4], b'F', "bit 1 announces the secondary bitmap");
    assert_eq!(&bytes[20..36], b"0000004000000000", "bit 90");
    assert_eq!(iso.decode(&bytes).unwrap(), msg);
}

#[test]
fn encode_refuses_missing_fields_and_unknown_tx_types() {
    let iso = shipped("iso8583").unwrap();
    let mut msg = iso_approval_request();
    msg.fields.remove("amount");
    assert!(matches!(iso.encode(&msg), Err(EncodeError::Field { field, .. }) if field == "amount"));
    let other = Message::new("refund", Direction::Request);
    assert!(matches!(iso.encode(&other), Err(EncodeError::UnknownTxType { .. })));
}

// ---- EUC-KR text --------------------------------------------------------------------------

#[test]
fn hangul_message_encodes_to_exact_euc_kr_bytes() {
    let pos = shipped("pos").unwrap();
    let msg = card_approval_answer("승인되었습니다").with("issuer", "신한카드");
    let bytes = pos.encode(&msg).unwrap();
    let approved = [
        0xBD, 0xC2, 0xC0, 0xCE, 0xB5, 0xC7, 0xBE, 0xFA, 0xBD, 0xC0, 0xB4, 0xCF, 0xB4, 0xD9,
    ];
    let message = &bytes[24..64];
    assert_eq!(&message[..14], approved);
    assert!(message[14..].iter().all(|&b| b == b' '));
    assert_eq!(&bytes[64..72], [0xBD, 0xC5, 0xC7, 0xD1, 0xC4, 0xAB, 0xB5, 0xE5]);
    assert_eq!(pos.decode_with_code("0110", &bytes).unwrap(), msg);
}

#[test]
fn text_longer_than_its_field_in_euc_kr_bytes_is_refused() {
    let pos = shipped("pos").unwrap();
    let fits = "가".repeat(20);
    assert!(pos.encode(&card_approval_answer(&fits)).is_ok());
    // 20 characters but 41 bytes: the last Hangul character would be split.
    for too_long in [format!("a{fits}"), "가".repeat(21)] {
        let got = pos.encode(&card_approval_answer(&too_long));
        assert!(matches!(got, Err(EncodeError::Field { field, .. }) if field == "message"));
    }
}

#[test]
fn characters_euc_kr_cannot_carry_are_refused() {
    let pos = shipped("pos").unwrap();
    for bad in ["승인 😀", "tab\there"] {
        let got = pos.encode(&card_approval_answer(bad));
        assert!(matches!(got, Err(EncodeError::Field { field, .. }) if field == "message"));
    }
}

#[test]
fn a_split_hangul_character_does_not_decode() {
    let pos = shipped("pos").unwrap();
    let mut bytes = pos.encode(&card_approval_answer("가")).unwrap();
    bytes[24] = b'a'; // "a" + trail byte 0xA1 + spaces
    assert!(matches!(
        pos.decode_with_code("0110", &bytes),
        Err(DecodeError::Field { field, .. }) if field == "message"
    ));
}

// ---- rejections -------------------------------------------------------------------------

#[test]
fn iso_rejects_malformed_messages() {
    let iso = shipped("iso8583").unwrap();
    let good = iso.encode(&iso_approval_request()).unwrap();
    let with = |at: usize, b: u8| {
        let mut bytes = good.clone();
        bytes[at] = b;
        bytes
    };
    let field_of = |bytes: &[u8]| match iso.decode(bytes) {
        Err(DecodeError::Field { field, .. }) => field,
        other => panic!("{other:?}"),
    };
    assert_eq!(field_of(&with(1, b'X')), "mti");
    assert_eq!(field_of(&with(7, b'G')), "bitmap");
    assert_eq!(field_of(&with(20, b'9')), "pan", "LL 96 is over the maximum 19");
    assert_eq!(field_of(&with(21, b'a')), "pan", "LL prefix not digits");
    assert_eq!(field_of(&with(24, b'x')), "pan", "not digits in an n field");
    assert_eq!(
        field_of(&with(19, b'1')),
        "bit 64",
        "bitmap names a field not in the layout"
    );
    assert_eq!(iso.decode(b"0999"), Err(DecodeError::UnknownCode("0999".into())));
    let mut trailing = good.clone();
    trailing.push(b'0');
    let want = good.len();
    assert_eq!(iso.decode(&trailing), Err(DecodeError::Length { got: want + 1, want }));
}

#[test]
fn iso_rejects_lengths_beyond_the_data() {
    let iso = shipped("iso8583").unwrap();
    let good = iso.encode(&iso_approval_request()).unwrap();
    // Bits 2 (LL) and 3..: cut inside the PAN.
    assert!(matches!(iso.decode(&good[..30]), Err(DecodeError::Field { field, .. }) if field == "pan"));
    assert!(iso.decode(&good[..good.len() - 1]).is_err());
    assert!(matches!(
        iso.decode(b"01"),
        Err(DecodeError::Length { got: 2, want: 4 })
    ));
    let msg = b"0100C000000000000000";
    assert!(matches!(iso.decode(msg), Err(DecodeError::Field { field, .. }) if field == "secondary bitmap"));
}

#[test]
fn iso_rejects_missing_mandatory_fields_and_wrong_constants() {
    let iso = shipped("iso8583").unwrap();
    // Only bit 4 set: the mandatory processing code (bit 3) is missing.
    let only_amount = b"01001000000000000000000000015000";
    assert!(iso.decode(only_amount).is_err());
    let good = iso.encode(&iso_approval_request()).unwrap();
    let at = good.windows(6).position(|w| w == b"000000").unwrap();
    let mut wrong = good.clone();
    wrong[at] = b'9';
    assert!(iso.decode(&wrong).is_err());
}

#[test]
fn positional_rejects_wrong_length_and_unknown_code() {
    let ksnet = shipped("ksnet").unwrap();
    let msg = Message::new("network_cancel", Direction::Answer)
        .with("terminal_id", "T1")
        .with("seq_no", "1")
        .with("sent_at", "20250102030405")
        .with("upstream_ref", "123456789012")
        .with("response_code", "0000")
        .with("message", "정상");
    let bytes = ksnet.encode(&msg).unwrap();
    assert_eq!(ksnet.decode(&bytes).unwrap(), msg);
    let want = bytes.len();
    assert_eq!(
        ksnet.decode(&bytes[..want - 1]),
        Err(DecodeError::Length { got: want - 1, want })
    );
    let mut longer = bytes.clone();
    longer.push(b' ');
    assert_eq!(ksnet.decode(&longer), Err(DecodeError::Length { got: want + 1, want }));
    let mut unknown = bytes.clone();
    unknown[..4].copy_from_slice(b"9999");
    assert_eq!(ksnet.decode(&unknown), Err(DecodeError::UnknownCode("9999".into())));
    assert!(matches!(
        ksnet.decode(b"04"),
        Err(DecodeError::Length { got: 2, want: 4 })
    ));
    let pos = shipped("pos").unwrap();
    assert!(matches!(
        pos.decode_with_code("0110", b"00"),
        Err(DecodeError::Length { .. })
    ));
}

#[test]
fn positional_rejects_bad_field_contents() {
    let ksnet = shipped("ksnet").unwrap();
    let msg = Message::new("network_cancel", Direction::Answer)
        .with("terminal_id", "T1")
        .with("seq_no", "1")
        .with("sent_at", "20250102030405")
        .with("upstream_ref", "123456789012")
        .with("response_code", "0000")
        .with("message", "");
    let good = ksnet.encode(&msg).unwrap();
    let field_of = |at: usize, b: u8| {
        let mut bytes = good.clone();
        bytes[at] = b;
        match ksnet.decode(&bytes) {
            Err(DecodeError::Field { field, .. }) => field,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(field_of(4, b'2'), "version");
    assert_eq!(field_of(40, b'x'), "seq_no");
    assert_eq!(field_of(10, 0x01), "terminal_no");
}

// ---- data-only extension ----------------------------------------------------------------

#[test]
fn a_new_transaction_type_is_a_data_file() {
    let mut iso = shipped("iso8583").unwrap();
    iso.extend_toml(EXTRA_TX).unwrap();
    assert!(iso.tx_types().contains(&"balance_inquiry"));
    let request = Message::new("balance_inquiry", Direction::Request)
        .with("pan", "9410123456780001")
        .with("seq_no", "5")
        .with("sent_at", "20250102030405")
        .with("upstream_ref", "000000000777")
        .with("terminal_id", "T0000001");
    let bytes = iso.encode(&request).unwrap();
    assert!(bytes.starts_with(b"0100"), "shares the MTI with card_approval");
    assert_eq!(iso.decode(&bytes).unwrap(), request);
    let answer = Message::new("balance_inquiry", Direction::Answer)
        .with("x_balance", "1250000")
        .with("seq_no", "5")
        .with("sent_at", "20250102030405")
        .with("upstream_ref", "000000000777")
        .with("response_code", "00")
        .with("terminal_id", "T0000001")
        .with("message", "잔액 조회");
    assert_round_trip(&iso, &answer);
    // The processing code tells the two 0100 layouts apart.
    let approval = iso.encode(&iso_approval_request()).unwrap();
    assert_eq!(iso.decode(&approval).unwrap(), iso_approval_request());
    assert_eq!(
        iso.lookup_code("0110"),
        [
            ("balance_inquiry", Direction::Answer),
            ("card_approval", Direction::Answer)
        ]
    );
}

#[test]
fn extending_refuses_existing_types_and_other_shapes() {
    let mut iso = shipped("iso8583").unwrap();
    iso.extend_toml(EXTRA_TX).unwrap();
    assert!(iso.extend_toml(EXTRA_TX).unwrap_err().0.contains("already exists"));
    let binary_positional = KINDS_POSITIONAL.replace("ascii4", "binary2");
    assert!(iso.extend_toml(&binary_positional).is_err());
    let mut ksnet = shipped("ksnet").unwrap();
    assert!(
        ksnet.extend_toml(KINDS_POSITIONAL).is_err(),
        "code field is 2, not 4, bytes"
    );
    let ksnet_before = ksnet.tx_types().len();
    assert_eq!(
        ksnet.tx_types().len(),
        ksnet_before,
        "a refused extension changes nothing"
    );
}

// ---- spec checks --------------------------------------------------------------------------

fn spec_error(text: &str) -> String {
    match Dialect::from_toml(text) {
        Err(e) => e.0,
        Ok(_) => panic!("accepted:\n{text}"),
    }
}

#[test]
fn bad_spec_files_are_reported() {
    let iso = |from: &str, to: &str| spec_error(&KINDS_ISO.replacen(from, to, 1));
    let pos = |from: &str, to: &str| spec_error(&KINDS_POSITIONAL.replacen(from, to, 1));
    assert!(iso("bit = 4,", "bit = 2,").contains("bit 2 defined twice"));
    assert!(iso("bit = 4,", "bit = 1,").contains("not in 2..=128"));
    assert!(iso("bit = 4,", "bit = 129,").contains("not in 2..=128"));
    assert!(iso("len = 19", "len = 100").contains("len 100"));
    assert!(iso("kind = \"n\"", "kind = \"z\"").contains("unknown variant"));
    assert!(iso("kind = \"iso8583\"", "kind = \"xml\"").contains("unknown variant"));
    assert!(iso("code = \"0800\"", "code = \"800\"").contains("not 4 digits"));
    assert!(iso("encoding = \"euc-kr\"", "encoding = \"utf-8\"").contains("euc-kr"));
    assert!(iso("our = \"x_n\"", "our = \"amout\"").contains("not one of our fields"));
    assert!(iso("value = \"301\"", "value = \"30\"").contains("constant"));
    assert!(pos("code = true, ", "our = \"x_code\", ").contains("code = true"));
    assert!(
        pos(
            "{ name = \"n\", our = \"x_n\", len = 9,",
            "{ name = \"n\", our = \"x_n\", len = 5000,"
        )
        .contains("4096")
    );
    assert!(pos("len = 9, kind = \"n\"", "len = 9, var = \"ll\", kind = \"n\"").contains("fixed"));
    assert!(pos("code = \"K2\"", "code = \"K12\"").contains("code field"));
    assert!(pos("name = \"an\",", "name = \"n\",").contains("used twice"));
    assert!(pos("our = \"x_an\"", "our = \"x_n\"").contains("mapped twice"));
    assert!(pos("kind = \"b\"", "kind = \"b\", pad = \" \"").contains("pad"));
    assert!(pos("len = 4, kind = \"an\" }", "len = 4, kind = \"an\", optional = true }").contains("optional"));
    assert!(pos("fields = [", "fieldz = [").contains("unknown field"));
    let shared = KINDS_ISO.replace("code = \"0810\"", "code = \"0800\"");
    assert!(spec_error(&shared).contains("share a code"));
}

#[test]
fn our_field_list_covers_the_message_contract() {
    for name in [
        "upstream_ref",
        "repeat",
        "transaction_id",
        "result",
        "upstream",
        "message",
    ] {
        assert!(OUR_FIELDS.contains(&name), "{name}");
    }
}

#[test]
fn kind_specs_load_and_zero_reads_as_absent_in_optional_numeric() {
    let d = dialect(KINDS_POSITIONAL);
    let msg = Message::new("probe", Direction::Request)
        .with("x_n", "0")
        .with("x_n_exact", "0007")
        .with("x_an", "")
        .with("x_an_right", "ab")
        .with("x_text", "가나 다")
        .with("x_b", "00ff10AB");
    let bytes = d.encode(&msg).unwrap();
    let back = d.decode(&bytes).unwrap();
    assert_eq!(back.get("x_b"), Some("00FF10AB"), "binary reads back as uppercase hex");
    assert_eq!(back.get("x_n"), Some("0"));
    assert_eq!(back.get("x_n_exact"), Some("0007"));
    assert_eq!(back.get("x_an_right"), Some("ab"));
    assert_eq!(back.get("x_n_opt"), None);
    assert_eq!(&bytes[..2], b"K1");
    assert_eq!(&bytes[11..16], b"00000", "an absent numeric field is zero-filled");
    assert_eq!(&bytes[30..36], b"    ab");
}

// ---- properties ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn positional_kinds_round_trip(msg in dialect_gen::messages(KINDS_POSITIONAL)) {
        assert_round_trip(&dialect(KINDS_POSITIONAL), &msg);
    }

    #[test]
    fn iso_kinds_round_trip(msg in dialect_gen::messages(KINDS_ISO)) {
        assert_round_trip(&dialect(KINDS_ISO), &msg);
    }

    #[test]
    fn pos_round_trips(msg in dialect_gen::messages(POS)) {
        assert_round_trip(&shipped("pos").unwrap(), &msg);
    }

    #[test]
    fn ksnet_round_trips(msg in dialect_gen::messages(KSNET)) {
        assert_round_trip(&shipped("ksnet").unwrap(), &msg);
    }

    #[test]
    fn iso8583_round_trips(msg in dialect_gen::messages(ISO8583)) {
        assert_round_trip(&shipped("iso8583").unwrap(), &msg);
    }

    #[test]
    fn extra_tx_round_trips(msg in dialect_gen::messages(EXTRA_TX)) {
        let mut iso = shipped("iso8583").unwrap();
        iso.extend_toml(EXTRA_TX).unwrap();
        assert_round_trip(&iso, &msg);
    }

    #[test]
    fn decode_never_panics_on_arbitrary_bytes(
        bytes in proptest::collection::vec(any::<u8>(), 0..600),
        code in prop_oneof![Just("0100".to_owned()), Just("0430".to_owned()), "[0-9]{0,5}"],
    ) {
        for d in [shipped("ksnet").unwrap(), shipped("iso8583").unwrap(), shipped("pos").unwrap()] {
            let _ = d.decode(&bytes);
            let _ = d.decode_with_code(&code, &bytes);
        }
    }

    #[test]
    fn decode_never_panics_on_mutated_messages(
        msg in dialect_gen::messages(ISO8583),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let iso = shipped("iso8583").unwrap();
        let mut bytes = iso.encode(&msg).unwrap();
        for (at, b) in edits {
            let i = at.index(bytes.len());
            bytes[i] = b;
        }
        let _ = iso.decode(&bytes);
        let _ = iso.decode(&bytes[..cut.index(bytes.len() + 1)]);
    }

    #[test]
    fn positional_decode_never_panics_on_mutated_messages(
        msg in dialect_gen::messages(KSNET),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let ksnet = shipped("ksnet").unwrap();
        let mut bytes = ksnet.encode(&msg).unwrap();
        for (at, b) in edits {
            let i = at.index(bytes.len());
            bytes[i] = b;
        }
        let _ = ksnet.decode(&bytes);
    }
}
