//! The dialect file format (TOML) and its checks, turning a file into checked layouts.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use super::SpecError;
use crate::frame::Framing;
use crate::layout::{Field, Kind, Layout, POSITIONAL_LEN_MAX, Source, Var};

/// Our field names (message.rs, plus the terminal answer's `result` and `upstream`). A data
/// file may add its own with the `x_` prefix.
pub const OUR_FIELDS: &[&str] = &[
    "terminal_id",
    "merchant_id",
    "seq_no",
    "sent_at",
    "amount",
    "pan",
    "expiry",
    "track2",
    "installment_months",
    "approval_no",
    "approved_at",
    "original_approval_no",
    "original_approved_at",
    "cash_receipt_id_type",
    "cash_receipt_id_number",
    "response_code",
    "message",
    "issuer",
    "upstream_ref",
    "repeat",
    "transaction_id",
    "result",
    "upstream",
];

/// The prefix of a data file's own field names.
const EXTENSION_PREFIX: &str = "x_";
/// The longest message a 4-digit ASCII length can announce.
const ASCII4_LEN_MAX: usize = 9999;
/// The longest ISO 8583 LL / LLL field.
const LL_LEN_MAX: usize = 99;
const LLL_LEN_MAX: usize = 999;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileSpec {
    pub name: String,
    pub kind: Format,
    pub framing: FramingSpec,
    pub encoding: String,
    #[serde(default)]
    pub code: CodePlace,
    #[serde(default)]
    pub tx: BTreeMap<String, TxSpec>,
}

/// The message format of a dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Format {
    Positional,
    Iso8583,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum FramingSpec {
    Ascii4,
    Binary2,
}

impl From<FramingSpec> for Framing {
    fn from(spec: FramingSpec) -> Self {
        match spec {
            FramingSpec::Ascii4 => Framing::Ascii4,
            FramingSpec::Binary2 => Framing::Binary2,
        }
    }
}

/// Where the message code travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum CodePlace {
    /// In the message: the ISO 8583 MTI, or a positional layout's `code = true` field.
    #[default]
    InBand,
    /// Outside the message (the POS header's `tx_type`).
    Header,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TxSpec {
    request: LayoutSpec,
    answer: LayoutSpec,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LayoutSpec {
    code: String,
    repeat_code: Option<String>,
    fields: Vec<FieldSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldSpec {
    name: String,
    our: Option<String>,
    value: Option<String>,
    #[serde(default)]
    code: bool,
    bit: Option<u32>,
    len: usize,
    #[serde(default)]
    var: VarSpec,
    kind: KindSpec,
    pad: Option<String>,
    justify: Option<Justify>,
    #[serde(default)]
    optional: bool,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
enum VarSpec {
    #[default]
    Fixed,
    Ll,
    Lll,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum KindSpec {
    N,
    An,
    Ans,
    Text,
    B,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Justify {
    Left,
    Right,
}

/// A transaction type's two checked layouts.
#[derive(Debug, Clone)]
pub(crate) struct Tx {
    pub request: Layout,
    pub answer: Layout,
}

/// The file-level settings two files must share to be merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shape {
    pub format: Format,
    pub framing: Framing,
    pub code: CodePlace,
}

fn err(text: impl Into<String>) -> SpecError {
    SpecError(text.into())
}

/// Parses a file into its name, shape and checked transaction types.
pub(super) fn parse(text: &str) -> Result<(String, Shape, BTreeMap<String, Tx>), SpecError> {
    let file: FileSpec = toml::from_str(text).map_err(|e| err(e.to_string()))?;
    if !file.encoding.eq_ignore_ascii_case("euc-kr") {
        return Err(err(format!(
            "encoding {:?}: only \"euc-kr\" is supported",
            file.encoding
        )));
    }
    if file.kind == Format::Iso8583 && file.code == CodePlace::Header {
        return Err(err("an iso8583 dialect carries its code in band (the MTI)"));
    }
    let shape = Shape {
        format: file.kind,
        framing: file.framing.into(),
        code: file.code,
    };
    let mut txs = BTreeMap::new();
    for (name, tx) in file.tx {
        let checked = check_tx(shape, &tx).map_err(|e| err(format!("tx.{name}.{}", e.0)))?;
        txs.insert(name, checked);
    }
    Ok((file.name, shape, txs))
}

fn check_tx(shape: Shape, tx: &TxSpec) -> Result<Tx, SpecError> {
    let request = check_layout(shape, &tx.request).map_err(|e| err(format!("request: {}", e.0)))?;
    let answer = check_layout(shape, &tx.answer).map_err(|e| err(format!("answer: {}", e.0)))?;
    Ok(Tx { request, answer })
}

fn check_layout(shape: Shape, spec: &LayoutSpec) -> Result<Layout, SpecError> {
    if spec.fields.is_empty() {
        return Err(err("no fields"));
    }
    let mut fields = Vec::with_capacity(spec.fields.len());
    let mut offset = 0usize;
    for field in &spec.fields {
        let mut checked = check_field(shape.format, field).map_err(|e| err(format!("{}: {}", field.name, e.0)))?;
        checked.offset = if shape.format == Format::Positional { offset } else { 0 };
        offset = offset.saturating_add(checked.len);
        fields.push(checked);
    }
    fields.sort_by_key(|f| f.bit);
    let layout = Layout {
        code: spec.code.clone(),
        repeat_code: spec.repeat_code.clone(),
        fields,
    };
    check_names(&layout)?;
    check_codes(shape, &layout)?;
    check_size(shape, &layout)?;
    Ok(layout)
}

fn check_field(format: Format, spec: &FieldSpec) -> Result<Field, SpecError> {
    let kind = match spec.kind {
        KindSpec::N => Kind::N,
        KindSpec::An => Kind::An,
        KindSpec::Ans => Kind::Ans,
        KindSpec::Text => Kind::Text,
        KindSpec::B => Kind::B,
    };
    let var = match spec.var {
        VarSpec::Fixed => Var::Fixed,
        VarSpec::Ll => Var::Ll,
        VarSpec::Lll => Var::Lll,
    };
    let (pad, right_justified) = padding(kind, var, spec)?;
    let field = Field {
        name: spec.name.clone(),
        source: source(spec)?,
        kind,
        len: spec.len,
        var,
        bit: bit(format, spec)?,
        offset: 0,
        pad,
        right_justified,
        optional: spec.optional,
    };
    check_len(format, &field)?;
    check_constant(&field)?;
    Ok(field)
}

fn source(spec: &FieldSpec) -> Result<Source, SpecError> {
    match (&spec.our, &spec.value, spec.code) {
        (Some(our), None, false) if is_our(our) => Ok(Source::Our(our.clone())),
        (Some(our), None, false) => Err(err(format!(
            "{our:?} is not one of our fields (nor an {EXTENSION_PREFIX}name)"
        ))),
        (None, Some(value), false) => Ok(Source::Const(value.clone())),
        (None, None, true) => Ok(Source::Code),
        _ => Err(err("give exactly one of `our`, `value`, `code = true`")),
    }
}

fn is_our(name: &str) -> bool {
    OUR_FIELDS.contains(&name) || name.strip_prefix(EXTENSION_PREFIX).is_some_and(|rest| !rest.is_empty())
}

fn bit(format: Format, spec: &FieldSpec) -> Result<u8, SpecError> {
    match (format, spec.bit, spec.var) {
        (Format::Positional, None, VarSpec::Fixed) => Ok(0),
        (Format::Positional, _, _) => Err(err("positional fields are fixed and have no `bit`")),
        (Format::Iso8583, Some(bit @ 2..=128), _) => Ok(u8::try_from(bit).unwrap_or(0)),
        (Format::Iso8583, Some(bit), _) => Err(err(format!("bit {bit} is not in 2..=128"))),
        (Format::Iso8583, None, _) => Err(err("an iso8583 field needs its `bit`")),
    }
}

/// The pad byte (`None`: must fill) and justification of a field.
fn padding(kind: Kind, var: Var, spec: &FieldSpec) -> Result<(Option<u8>, bool), SpecError> {
    let numeric = kind == Kind::N;
    let right = spec.justify.map_or(numeric, |j| j == Justify::Right);
    if var != Var::Fixed || kind == Kind::B {
        return match (&spec.pad, spec.justify) {
            (None, None) => Ok((None, right)),
            _ => Err(err("variable and binary fields have no `pad` or `justify`")),
        };
    }
    let pad = match spec.pad.as_deref() {
        None if numeric => Some(b'0'),
        None | Some(" ") => Some(b' '),
        Some("0") if numeric && right => Some(b'0'),
        Some("0") => Err(err("`pad = \"0\"` is for right-justified numeric fields"))?,
        Some("none") => None,
        Some(other) => Err(err(format!("pad {other:?}: use \"0\", \" \" or \"none\"")))?,
    };
    Ok((pad, right))
}

fn check_len(format: Format, field: &Field) -> Result<(), SpecError> {
    let max = match (format, field.var) {
        (Format::Positional, _) => POSITIONAL_LEN_MAX,
        (Format::Iso8583, Var::Fixed) => LLL_LEN_MAX,
        (Format::Iso8583, Var::Ll) => LL_LEN_MAX,
        (Format::Iso8583, Var::Lll) => LLL_LEN_MAX,
    };
    match (1..=max).contains(&field.len) {
        true => Ok(()),
        false => Err(err(format!("len {} is not in 1..={max}", field.len))),
    }
}

/// A constant must fit its field, and is always present.
fn check_constant(field: &Field) -> Result<(), SpecError> {
    let Source::Const(value) = &field.source else {
        return Ok(());
    };
    if field.optional {
        return Err(err("a constant cannot be optional"));
    }
    let fits = match field.var {
        Var::Fixed => crate::layout::fixed_bytes(field, value).map(|_| ()),
        Var::Ll | Var::Lll => crate::layout::value_bytes(field, value).and_then(|b| {
            (b.len() <= field.len)
                .then_some(())
                .ok_or_else(|| "too long".to_owned())
        }),
    };
    fits.map_err(|e| err(format!("constant {value:?}: {e}")))
}

/// Names, our fields and bits are each used once.
fn check_names(layout: &Layout) -> Result<(), SpecError> {
    let mut names = BTreeSet::new();
    let mut ours = BTreeSet::new();
    let mut bits = BTreeSet::new();
    for field in &layout.fields {
        if !names.insert(field.name.as_str()) {
            return Err(err(format!("field name {:?} used twice", field.name)));
        }
        if let Source::Our(our) = &field.source
            && !ours.insert(our.as_str())
        {
            return Err(err(format!("our field {our:?} mapped twice")));
        }
        if field.bit != 0 && !bits.insert(field.bit) {
            return Err(err(format!("bit {} defined twice", field.bit)));
        }
    }
    if layout.repeat_code.is_some() && ours.contains("repeat") {
        return Err(err("`repeat` is either a field or a `repeat_code`, not both"));
    }
    Ok(())
}

/// Codes are well formed, and in-band positional layouts start with their code field.
fn check_codes(shape: Shape, layout: &Layout) -> Result<(), SpecError> {
    let codes = std::iter::once(&layout.code).chain(layout.repeat_code.as_ref());
    for code in codes {
        if code.is_empty() || !code.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(err(format!("code {code:?} is not letters and digits")));
        }
        if shape.format == Format::Iso8583
            && (code.len() != crate::iso8583::MTI_LEN || !code.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(err(format!("MTI {code:?} is not 4 digits")));
        }
    }
    let code_fields = layout.fields.iter().filter(|f| f.source == Source::Code).count();
    match (shape.format, shape.code) {
        (Format::Positional, CodePlace::InBand) => check_code_field(layout, code_fields),
        _ if code_fields > 0 => Err(err("only in-band positional layouts have a code field")),
        _ => Ok(()),
    }
}

fn check_code_field(layout: &Layout, code_fields: usize) -> Result<(), SpecError> {
    let first = layout.fields.first().filter(|f| f.source == Source::Code);
    let Some(field) = first.filter(|_| code_fields == 1) else {
        return Err(err("the first field, and only it, must be the `code = true` field"));
    };
    let codes = std::iter::once(&layout.code).chain(layout.repeat_code.as_ref());
    for code in codes {
        let bytes = crate::layout::fixed_bytes(field, code);
        if bytes.as_deref() != Ok(code.as_bytes()) {
            return Err(err(format!("code {code:?} does not fill the code field exactly")));
        }
    }
    Ok(())
}

/// A message fits the limits: 4096 bytes positional, and what the framing can announce.
fn check_size(shape: Shape, layout: &Layout) -> Result<(), SpecError> {
    let (len, max) = match shape.format {
        Format::Positional => (layout.fixed_len(), POSITIONAL_LEN_MAX),
        Format::Iso8583 => (crate::iso8583::max_len(layout), framing_max(shape.framing)),
    };
    match len <= max {
        true => Ok(()),
        false => Err(err(format!("a message may be {len} bytes, over the limit of {max}"))),
    }
}

fn framing_max(framing: Framing) -> usize {
    match framing {
        Framing::Ascii4 => ASCII4_LEN_MAX,
        Framing::Binary2 => usize::from(u16::MAX),
    }
}
