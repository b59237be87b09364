//! Reconciliation (대사) of one upstream's business day: the records we believe it settled
//! against the lines of its settlement file, matched by record type and the original request's
//! keys (terminal, sequence number, `sent_at`) — matched, missing here, missing there, or
//! matched with another amount.

use std::collections::HashMap;
use thiserror::Error;

/// The settlement file's header line (the simulators' format, API-gateway.md).
pub const SETTLEMENT_FILE_HEADER: &str =
    "record_type,approval_no,terminal_id,seq_no,sent_at,amount,approved_at,canceled_at";
/// Lines a settlement file may have (a day of a busy upstream, with room).
pub const SETTLEMENT_FILE_LINES_MAX: usize = 10_000_000;

/// An approval line, or a cancel line (which repeats its approval's keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RecordType {
    Approval,
    Cancel,
}

impl RecordType {
    pub fn name(self) -> &'static str {
        match self {
            Self::Approval => "approval",
            Self::Cancel => "cancel",
        }
    }
}

/// One settled record: ours, or a line of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettledRecord {
    pub record_type: RecordType,
    pub terminal_id: String,
    pub seq_no: i64,
    /// The original request's `sent_at`, `YYYYMMDDhhmmss`.
    pub sent_at: String,
    pub amount: i64,
    pub approval_no: Option<String>,
}

impl SettledRecord {
    fn key(&self) -> (RecordType, &str, i64, &str) {
        (self.record_type, &self.terminal_id, self.seq_no, &self.sent_at)
    }
}

/// Why a settlement file cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FileError {
    #[error("the first line must be the header {SETTLEMENT_FILE_HEADER:?}")]
    Header,
    #[error("line {line}: {why}")]
    Line { line: usize, why: String },
    #[error("more than {SETTLEMENT_FILE_LINES_MAX} lines")]
    TooLong,
}

/// Reads a settlement file: the header, then one record per line (blank lines ignored).
pub fn parse_settlement_file(text: &str) -> Result<Vec<SettledRecord>, FileError> {
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, header)) if header.trim_end_matches('\r') == SETTLEMENT_FILE_HEADER => {}
        _ => return Err(FileError::Header),
    }
    let mut records = Vec::new();
    for (i, line) in lines {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        if records.len() == SETTLEMENT_FILE_LINES_MAX {
            return Err(FileError::TooLong);
        }
        records.push(parse_line(line).map_err(|why| FileError::Line { line: i + 1, why })?);
    }
    Ok(records)
}

fn parse_line(line: &str) -> Result<SettledRecord, String> {
    let fields: Vec<&str> = line.split(',').collect();
    let [
        record_type,
        approval_no,
        terminal_id,
        seq_no,
        sent_at,
        amount,
        _approved_at,
        _canceled_at,
    ] = fields[..]
    else {
        return Err(format!("8 fields expected, {} found", fields.len()));
    };
    let record_type = match record_type {
        "approval" => RecordType::Approval,
        "cancel" => RecordType::Cancel,
        other => return Err(format!("record_type must be approval or cancel, not {other:?}")),
    };
    let number = |name: &str, v: &str| {
        v.parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| format!("{name} must be a whole number, not {v:?}"))
    };
    if terminal_id.is_empty() || sent_at.len() != 14 || !sent_at.bytes().all(|b| b.is_ascii_digit()) {
        return Err("terminal_id and a 14-digit sent_at are required".into());
    }
    Ok(SettledRecord {
        record_type,
        terminal_id: terminal_id.to_owned(),
        seq_no: number("seq_no", seq_no)?,
        sent_at: sent_at.to_owned(),
        amount: number("amount", amount)?,
        approval_no: Some(approval_no.to_owned()).filter(|n| !n.is_empty()),
    })
}

/// How one record came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Finding {
    Matched,
    /// In the file, not ours: the upstream settled something we do not know as settled.
    MissingHere,
    /// Ours, not in the file: the upstream does not know what we think it approved.
    MissingThere,
    /// Both, with different amounts.
    AmountMismatch,
}

impl Finding {
    pub fn name(self) -> &'static str {
        match self {
            Self::Matched => "matched",
            Self::MissingHere => "missing_here",
            Self::MissingThere => "missing_there",
            Self::AmountMismatch => "amount_mismatch",
        }
    }
}

/// A record that did not match, with what each side says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discrepancy {
    pub finding: Finding,
    pub record_type: RecordType,
    pub terminal_id: String,
    pub seq_no: i64,
    pub sent_at: String,
    pub ours: Option<i64>,
    pub theirs: Option<i64>,
    pub approval_no: Option<String>,
}

/// The day's outcome: a count per finding, and every record that did not match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconciliation {
    pub matched: u64,
    pub missing_here: u64,
    pub missing_there: u64,
    pub amount_mismatch: u64,
    pub discrepancies: Vec<Discrepancy>,
}

impl Reconciliation {
    pub fn is_clean(&self) -> bool {
        self.discrepancies.is_empty()
    }

    fn add(&mut self, finding: Finding, record: &SettledRecord, ours: Option<i64>, theirs: Option<i64>) {
        match finding {
            Finding::Matched => {
                self.matched += 1;
                return;
            }
            Finding::MissingHere => self.missing_here += 1,
            Finding::MissingThere => self.missing_there += 1,
            Finding::AmountMismatch => self.amount_mismatch += 1,
        }
        self.discrepancies.push(Discrepancy {
            finding,
            record_type: record.record_type,
            terminal_id: record.terminal_id.clone(),
            seq_no: record.seq_no,
            sent_at: record.sent_at.clone(),
            ours,
            theirs,
            approval_no: record.approval_no.clone(),
        });
    }
}

/// Matches `theirs` against `ours`, each record at most once (a key twice on one side and
/// once on the other leaves one over). Discrepancies come in the file's order, then ours.
pub fn reconcile(ours: &[SettledRecord], theirs: &[SettledRecord]) -> Reconciliation {
    let mut open: HashMap<_, Vec<&SettledRecord>> = HashMap::with_capacity(ours.len());
    for r in ours {
        open.entry(r.key()).or_default().push(r);
    }
    let mut out = Reconciliation::default();
    for t in theirs {
        let candidates = open.get_mut(&t.key()).filter(|c| !c.is_empty());
        match candidates {
            None => out.add(Finding::MissingHere, t, None, Some(t.amount)),
            Some(c) => {
                // The same amount first, so that a mismatch is reported only when none agrees.
                let i = c.iter().position(|o| o.amount == t.amount).unwrap_or(0);
                let o = c.swap_remove(i);
                let finding = if o.amount == t.amount {
                    Finding::Matched
                } else {
                    Finding::AmountMismatch
                };
                out.add(finding, t, Some(o.amount), Some(t.amount));
            }
        }
    }
    let mut left: Vec<&SettledRecord> = open.into_values().flatten().collect();
    left.sort_by(|a, b| a.key().cmp(&b.key()));
    for o in left {
        out.add(Finding::MissingThere, o, Some(o.amount), None);
    }
    debug_assert_eq!(
        out.matched + out.amount_mismatch + out.missing_there,
        ours.len() as u64,
        "every record of ours is accounted for once"
    );
    debug_assert_eq!(
        out.matched + out.amount_mismatch + out.missing_here,
        theirs.len() as u64,
        "every line of the file is accounted for once"
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn record(kind: RecordType, seq_no: i64, amount: i64) -> SettledRecord {
        SettledRecord {
            record_type: kind,
            terminal_id: "T0000001".into(),
            seq_no,
            sent_at: "20261204120000".into(),
            amount,
            approval_no: Some(format!("{:08}", 10_000_000 + seq_no)),
        }
    }

    fn line(r: &SettledRecord) -> String {
        format!(
            "{},{},{},{},{},{},20261204120001,",
            r.record_type.name(),
            r.approval_no.clone().unwrap_or_default(),
            r.terminal_id,
            r.seq_no,
            r.sent_at,
            r.amount
        )
    }

    #[test]
    fn a_file_reads_back_and_bad_lines_are_named() {
        let ours = vec![
            record(RecordType::Approval, 1, 15_000),
            record(RecordType::Cancel, 1, 15_000),
        ];
        let text = format!("{SETTLEMENT_FILE_HEADER}\n{}\n{}\n\n", line(&ours[0]), line(&ours[1]));
        assert_eq!(parse_settlement_file(&text).unwrap(), ours);
        assert_eq!(parse_settlement_file("nope\n"), Err(FileError::Header));
        let bad = format!(
            "{SETTLEMENT_FILE_HEADER}\n{}\nrefund,1,T1,1,20261204120000,5,,\n",
            line(&ours[0])
        );
        assert!(matches!(
            parse_settlement_file(&bad),
            Err(FileError::Line { line: 3, .. })
        ));
        let short = format!("{SETTLEMENT_FILE_HEADER}\napproval,1,T1\n");
        assert!(matches!(
            parse_settlement_file(&short),
            Err(FileError::Line { line: 2, .. })
        ));
    }

    #[test]
    fn an_approval_and_its_cancel_are_different_records() {
        let ours = [record(RecordType::Approval, 1, 100)];
        let theirs = [record(RecordType::Approval, 1, 100), record(RecordType::Cancel, 1, 100)];
        let r = reconcile(&ours, &theirs);
        assert_eq!((r.matched, r.missing_here), (1, 1));
        assert_eq!(r.discrepancies[0].record_type, RecordType::Cancel);
    }

    proptest! {
        /// Mismatches planted in a file are each found once, of the kind planted, and
        /// everything else matches.
        #[test]
        fn planted_mismatches_are_found(
            amounts in prop::collection::vec(1i64..1_000_000, 1..200),
            plants in prop::collection::vec(0u8..4, 1..200),
            extra in prop::collection::vec(1i64..1_000_000, 0..5),
            order in any::<u64>(),
        ) {
            let ours: Vec<SettledRecord> = amounts.iter().enumerate()
                .map(|(i, a)| record(if i % 3 == 0 { RecordType::Cancel } else { RecordType::Approval }, i as i64, *a))
                .collect();
            let mut theirs = Vec::new();
            let (mut dropped, mut changed) = (0u64, 0u64);
            for (i, r) in ours.iter().enumerate() {
                match plants.get(i).copied().unwrap_or(0) {
                    1 => dropped += 1,
                    2 => {
                        changed += 1;
                        theirs.push(SettledRecord { amount: r.amount + 1, ..r.clone() });
                    }
                    _ => theirs.push(r.clone()),
                }
            }
            for (j, a) in extra.iter().enumerate() {
                theirs.push(record(RecordType::Approval, 1_000_000 + j as i64, *a));
            }
            // The file's order is not ours.
            let n = theirs.len();
            theirs.rotate_left((order as usize) % n.max(1));
            let r = reconcile(&ours, &theirs);
            prop_assert_eq!(r.missing_there, dropped);
            prop_assert_eq!(r.amount_mismatch, changed);
            prop_assert_eq!(r.missing_here, extra.len() as u64);
            prop_assert_eq!(r.matched, ours.len() as u64 - dropped - changed);
            prop_assert_eq!(r.discrepancies.len() as u64, dropped + changed + extra.len() as u64);
            // Through the file format and back, the same outcome.
            let text = std::iter::once(SETTLEMENT_FILE_HEADER.to_owned()).chain(theirs.iter().map(line)).collect::<Vec<_>>().join("\n");
            prop_assert_eq!(reconcile(&ours, &parse_settlement_file(&text).unwrap()), r);
        }
    }
}
