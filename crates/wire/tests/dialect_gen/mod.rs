//! Valid-message generators read from a dialect file, for the round-trip property tests.
//!
//! This reads the file independently of the crate (with `toml`), following the rules of
//! `specs/README.md`, so the tests also check the crate against its documentation.

use minipay_wire::{Direction, Message};
use proptest::prelude::*;
use proptest::strategy::Union;

/// One field as the generator needs it.
struct Gen {
    our: String,
    kind: String,
    len: usize,
    variable: bool,
    unpadded: bool,
    right: bool,
    optional: bool,
}

/// Every valid message of every layout of the file.
pub fn messages(spec: &str) -> BoxedStrategy<Message> {
    let file: toml::Table = toml::from_str(spec).expect("spec parses");
    let positional = file["kind"].as_str() == Some("positional");
    let mut layouts = Vec::new();
    for (tx_type, tx) in file["tx"].as_table().expect("tx table") {
        for (key, direction) in [("request", Direction::Request), ("answer", Direction::Answer)] {
            let layout = tx[key].as_table().expect("layout");
            layouts.push(layout_messages(tx_type, direction, layout, positional));
        }
    }
    Union::new(layouts).boxed()
}

fn layout_messages(
    tx_type: &str,
    direction: Direction,
    layout: &toml::Table,
    positional: bool,
) -> BoxedStrategy<Message> {
    let gens: Vec<Gen> = layout["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .filter_map(|f| field_gen(f.as_table().expect("field"), positional))
        .collect();
    let repeat = layout.contains_key("repeat_code");
    let values: Vec<BoxedStrategy<Option<(String, String)>>> = gens.into_iter().map(entry).collect();
    let tx_type = tx_type.to_owned();
    (values, any::<bool>())
        .prop_map(move |(entries, repeated)| {
            let mut msg = Message::new(tx_type.clone(), direction);
            for (name, value) in entries.into_iter().flatten() {
                msg.set(&name, value);
            }
            if repeat {
                msg.set("repeat", if repeated { "1" } else { "0" });
            }
            msg
        })
        .boxed()
}

fn field_gen(f: &toml::Table, positional: bool) -> Option<Gen> {
    let our = f.get("our")?.as_str()?.to_owned();
    let kind = f["kind"].as_str().unwrap().to_owned();
    let variable = f.get("var").and_then(|v| v.as_str()).unwrap_or("fixed") != "fixed";
    let justify = f.get("justify").and_then(|v| v.as_str());
    Some(Gen {
        right: justify.map_or(kind == "n", |j| j == "right"),
        unpadded: f.get("pad").and_then(|v| v.as_str()) == Some("none") || kind == "b",
        optional: f.get("optional").and_then(|v| v.as_bool()) == Some(true),
        len: usize::try_from(f["len"].as_integer().unwrap()).unwrap(),
        variable: variable && !positional,
        our,
        kind,
    })
}

/// The field's name and a valid value, or `None` when an optional field is left out.
fn entry(g: Gen) -> BoxedStrategy<Option<(String, String)>> {
    let our = g.our.clone();
    let value = value(&g).prop_map(move |v| Some((our.clone(), v)));
    match g.optional {
        true => prop_oneof![1 => Just(None), 3 => value].boxed(),
        false => value.boxed(),
    }
}

fn value(g: &Gen) -> BoxedStrategy<String> {
    match g.kind.as_str() {
        "n" => numeric(g),
        "b" => binary(g),
        kind => {
            let chars = chars_of(kind);
            let len = g.len;
            let value = proptest::collection::vec(chars, 1..=len)
                .prop_map(|cs| cs.into_iter().collect::<String>())
                .prop_filter("fits in bytes", move |s| euc_kr_len(s) <= len);
            let (unpadded, variable, right) = (g.unpadded, g.variable, g.right);
            let value = value.prop_filter("padding-free at its ends", move |s| {
                variable || unpadded || !edge_is_space(s, right)
            });
            match g.unpadded && !g.variable {
                true => value
                    .prop_filter("fills the field", move |s| euc_kr_len(s) == len)
                    .boxed(),
                false => value.boxed(),
            }
        }
    }
}

fn edge_is_space(s: &str, right: bool) -> bool {
    match right {
        true => s.starts_with(' '),
        false => s.ends_with(' '),
    }
}

fn chars_of(kind: &str) -> BoxedStrategy<char> {
    let alnum = prop_oneof![
        proptest::char::range('0', '9'),
        proptest::char::range('A', 'Z'),
        proptest::char::range('a', 'z'),
    ];
    match kind {
        "an" => prop_oneof![8 => alnum, 1 => Just(' ')].boxed(),
        "ans" => proptest::char::range(' ', '~').boxed(),
        "text" => prop_oneof![
            2 => proptest::char::range('가', '힣'),
            1 => proptest::char::range(' ', '~'),
        ]
        .boxed(),
        other => panic!("kind {other}"),
    }
}

fn euc_kr_len(s: &str) -> usize {
    encoding_rs::EUC_KR.encode(s).0.len()
}

fn numeric(g: &Gen) -> BoxedStrategy<String> {
    let len = g.len;
    if g.variable || g.unpadded {
        let min = if g.variable { 1 } else { len };
        let optional = g.optional && !g.variable;
        return regex(&format!("[0-9]{{{min},{len}}}"))
            .prop_filter("not all zeros when optional", move |s| {
                !optional || !s.bytes().all(|b| b == b'0')
            })
            .boxed();
    }
    // Zero-padded: minimal digits; an optional field's zero reads as absent.
    let minimal = regex(&format!("[1-9][0-9]{{0,{}}}", len - 1));
    match g.optional {
        true => minimal.boxed(),
        false => prop_oneof![Just("0".to_owned()), minimal].boxed(),
    }
}

fn binary(g: &Gen) -> BoxedStrategy<String> {
    let len = g.len;
    let min = if g.variable { 0 } else { len };
    let optional = g.optional && !g.variable;
    proptest::collection::vec(any::<u8>(), min..=len)
        .prop_filter("not all zero when optional", move |b| {
            !optional || b.iter().any(|&x| x != 0)
        })
        .prop_map(|bytes| bytes.iter().map(|b| format!("{b:02X}")).collect())
        .boxed()
}

fn regex(pattern: &str) -> BoxedStrategy<String> {
    proptest::string::string_regex(pattern).expect("regex").boxed()
}
