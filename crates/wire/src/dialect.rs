//! Dialects: a data file (TOML) per upstream or terminal format that describes, per transaction
//! type, the request and answer layouts and the mapping between our fields and theirs.
//!
//! The file format is described in `specs/README.md`. Encoding writes only the fields a layout
//! maps (other fields of the message are ignored); decoding yields exactly the layout's fields
//! that are present, plus `repeat` (`"0"`/`"1"`) for layouts with a `repeat_code`.

mod spec;

use std::collections::BTreeMap;

use crate::frame::Framing;
use crate::iso8583;
use crate::layout::{self, Layout, Source};
use crate::message::{DecodeError, Direction, EncodeError, Message};

use spec::{CodePlace, Format, Shape, Tx};

pub use spec::OUR_FIELDS;

/// Our field carrying a network cancel's repeat flag.
const REPEAT: &str = "repeat";

/// A loaded dialect.
#[derive(Debug, Clone)]
pub struct Dialect {
    name: String,
    framing: Framing,
    shape: Shape,
    txs: BTreeMap<String, Tx>,
}

/// A dialect file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("dialect spec: {0}")]
pub struct SpecError(pub String);

/// One layout that answers to a code.
struct Candidate<'a> {
    tx_type: &'a str,
    direction: Direction,
    layout: &'a Layout,
}

impl Dialect {
    /// Parses and checks a dialect file.
    pub fn from_toml(text: &str) -> Result<Self, SpecError> {
        let (name, shape, txs) = spec::parse(text)?;
        let dialect = Self {
            name,
            framing: shape.framing,
            shape,
            txs,
        };
        dialect.check_codes()?;
        Ok(dialect)
    }

    /// Adds the transaction types of another file (same `kind`, `framing`, `encoding`), so a
    /// new transaction type is a data change.
    pub fn extend_toml(&mut self, text: &str) -> Result<(), SpecError> {
        let (name, shape, txs) = spec::parse(text)?;
        if shape != self.shape {
            return Err(SpecError(format!(
                "{name}: kind, framing or code place differ from {}",
                self.name
            )));
        }
        let mut merged = self.clone();
        for (tx_type, tx) in txs {
            if merged.txs.insert(tx_type.clone(), tx).is_some() {
                return Err(SpecError(format!("{name}: tx type {tx_type} already exists")));
            }
        }
        merged.check_codes()?;
        *self = merged;
        Ok(())
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// The transaction types this dialect knows.
    pub fn tx_types(&self) -> Vec<&str> {
        self.txs.keys().map(String::as_str).collect()
    }

    /// The message code (e.g. `0100`, `0110`) of a transaction type's request or answer.
    pub fn code_of(&self, tx_type: &str, direction: Direction) -> Option<&str> {
        self.layout(tx_type, direction).map(|l| l.code.as_str())
    }

    /// The code of a repeated send of a transaction type's request or answer (ISO 8583 `0401`
    /// for a network cancel), when the dialect declares one.
    pub fn repeat_code_of(&self, tx_type: &str, direction: Direction) -> Option<&str> {
        self.layout(tx_type, direction)?.repeat_code.as_deref()
    }

    /// The transaction types and directions whose code (or repeat code) is `code`: one, or
    /// several told apart by a constant field (ISO 8583 processing code).
    pub fn lookup_code(&self, code: &str) -> Vec<(&str, Direction)> {
        let candidates = self.candidates(code);
        candidates.iter().map(|c| (c.tx_type, c.direction)).collect()
    }

    /// Whether the code travels in the message (`false`: in the POS header).
    pub fn code_in_band(&self) -> bool {
        self.shape.code == CodePlace::InBand
    }

    /// The message's bytes (without link framing). The code is in-band for dialects that carry
    /// it (ISO 8583 MTI, a positional code field); for `code = "header"` dialects (the POS body)
    /// it is not written: the caller puts [`Dialect::code_of`] in its header.
    pub fn encode(&self, msg: &Message) -> Result<Vec<u8>, EncodeError> {
        let layout = self
            .layout(&msg.tx_type, msg.direction)
            .ok_or_else(|| EncodeError::UnknownTxType {
                tx_type: msg.tx_type.clone(),
                direction: msg.direction,
            })?;
        let code = code_for(layout, msg)?;
        match self.shape.format {
            Format::Positional => layout::encode(layout, code, msg),
            Format::Iso8583 => iso8583::encode(layout, code, msg),
        }
    }

    /// Reads a message whose code is in-band.
    pub fn decode(&self, bytes: &[u8]) -> Result<Message, DecodeError> {
        let code = self.in_band_code(bytes)?;
        self.decode_as(code, bytes)
    }

    /// Reads a message whose code came out of band (the POS header's `tx_type`). For an
    /// in-band dialect the message's own code must be `code`.
    pub fn decode_with_code(&self, code: &str, bytes: &[u8]) -> Result<Message, DecodeError> {
        if self.code_in_band() {
            let in_band = self.in_band_code(bytes)?;
            if in_band != code {
                return Err(DecodeError::Field {
                    field: "code".to_owned(),
                    reason: format!("{in_band:?} in the message, {code:?} outside"),
                });
            }
        }
        self.decode_as(code, bytes)
    }

    fn layout(&self, tx_type: &str, direction: Direction) -> Option<&Layout> {
        let tx = self.txs.get(tx_type)?;
        Some(match direction {
            Direction::Request => &tx.request,
            Direction::Answer => &tx.answer,
        })
    }

    fn layouts(&self) -> impl Iterator<Item = Candidate<'_>> {
        self.txs.iter().flat_map(|(tx_type, tx)| {
            [(Direction::Request, &tx.request), (Direction::Answer, &tx.answer)].map(|(direction, layout)| Candidate {
                tx_type,
                direction,
                layout,
            })
        })
    }

    fn candidates(&self, code: &str) -> Vec<Candidate<'_>> {
        self.layouts().filter(|c| c.layout.has_code(code)).collect()
    }

    fn in_band_code<'b>(&self, bytes: &'b [u8]) -> Result<&'b str, DecodeError> {
        match (self.shape.code, self.shape.format) {
            (CodePlace::Header, _) => Err(DecodeError::Field {
                field: "code".to_owned(),
                reason: format!("{} carries its code out of band: use decode_with_code", self.name),
            }),
            (CodePlace::InBand, Format::Iso8583) => iso8583::read_mti(bytes),
            (CodePlace::InBand, Format::Positional) => layout::read_code(bytes, self.code_len()),
        }
    }

    /// The length of the code field of in-band positional layouts (all the same, checked).
    fn code_len(&self) -> usize {
        self.layouts()
            .find_map(|c| c.layout.fields.first().map(|f| f.len))
            .unwrap_or(0)
    }

    /// Decodes with the layouts answering to `code`, the first that reads the bytes wins.
    fn decode_as(&self, code: &str, bytes: &[u8]) -> Result<Message, DecodeError> {
        let mut first_error = None;
        for candidate in self.candidates(code) {
            match self.decode_layout(&candidate, code, bytes) {
                Ok(msg) => return Ok(msg),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        Err(first_error.unwrap_or_else(|| DecodeError::UnknownCode(code.to_owned())))
    }

    fn decode_layout(&self, candidate: &Candidate<'_>, code: &str, bytes: &[u8]) -> Result<Message, DecodeError> {
        let mut msg = Message::new(candidate.tx_type, candidate.direction);
        match self.shape.format {
            Format::Positional => layout::decode(candidate.layout, bytes, &mut msg)?,
            Format::Iso8583 => iso8583::decode(candidate.layout, bytes, &mut msg)?,
        }
        if let Some(repeat_code) = &candidate.layout.repeat_code {
            msg.set(REPEAT, if repeat_code == code { "1" } else { "0" });
        }
        Ok(msg)
    }

    /// Dialect-wide code checks: in-band code fields agree in length, and layouts sharing a
    /// code are told apart by a constant at the same place.
    fn check_codes(&self) -> Result<(), SpecError> {
        let all: Vec<Candidate<'_>> = self.layouts().collect();
        if self.shape.format == Format::Positional && self.code_in_band() {
            let len = self.code_len();
            if let Some(c) = all.iter().find(|c| c.layout.fields.first().map(|f| f.len) != Some(len)) {
                return Err(SpecError(format!("tx.{}: code field length differs", c.tx_type)));
            }
        }
        for (i, a) in all.iter().enumerate() {
            for b in all.iter().skip(i + 1) {
                if shares_code(a.layout, b.layout) && !told_apart(a.layout, b.layout) {
                    return Err(SpecError(format!(
                        "tx.{} {:?} and tx.{} {:?} share a code and no constant tells them apart",
                        a.tx_type, a.direction, b.tx_type, b.direction
                    )));
                }
            }
        }
        Ok(())
    }
}

/// The code to write: the repeat code when the message says `repeat = "1"`.
fn code_for<'a>(layout: &'a Layout, msg: &Message) -> Result<&'a str, EncodeError> {
    let Some(repeat_code) = &layout.repeat_code else {
        return Ok(&layout.code);
    };
    match msg.get(REPEAT) {
        None | Some("0") => Ok(&layout.code),
        Some("1") => Ok(repeat_code),
        Some(other) => Err(EncodeError::Field {
            field: REPEAT.to_owned(),
            reason: format!("{other:?} is not \"0\" or \"1\""),
        }),
    }
}

fn shares_code(a: &Layout, b: &Layout) -> bool {
    a.has_code(&b.code) || b.repeat_code.as_deref().is_some_and(|c| a.has_code(c))
}

/// A constant field at the same place (bit, or offset and length) with different values.
fn told_apart(a: &Layout, b: &Layout) -> bool {
    a.fields.iter().any(|fa| {
        b.fields.iter().any(|fb| match (&fa.source, &fb.source) {
            (Source::Const(va), Source::Const(vb)) => {
                (fa.bit, fa.offset, fa.len) == (fb.bit, fb.offset, fb.len) && va != vb
            }
            _ => false,
        })
    })
}

/// The dialects shipped in `specs/`: `pos` (the terminal body layouts), `ksnet` (KSNET-style
/// positional VAN layout), `iso8583` (ISO 8583:1987 ASCII, for a direct card company).
pub fn shipped(name: &str) -> Option<Dialect> {
    let text = match name {
        "pos" => include_str!("../../../specs/pos.toml"),
        "ksnet" => include_str!("../../../specs/ksnet.toml"),
        "iso8583" => include_str!("../../../specs/iso8583.toml"),
        _ => return None,
    };
    // The shipped files are part of the build and checked by the tests.
    Some(Dialect::from_toml(text).unwrap_or_else(|e| panic!("shipped dialect {name}: {e}")))
}
