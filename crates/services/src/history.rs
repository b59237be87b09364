//! Transaction history: an account's entries and monthly statements, and the 12-month
//! retention — partitions made ahead, old months exported (gzip CSV) and retired.

use crate::Wallet;
use crate::error::{ServiceError, ServiceResult};
use crate::lock_retry::transaction_retried;
use crate::pagination::{decode_cursor, page_of, rows_for};
use crate::views::{EntryView, Page, StatementView};
use crate::wallet_accounts::owned;
use anyhow::Context;
use flate2::Compression;
use flate2::write::GzEncoder;
use jiff::{Timestamp, ToSpan};
use minipay_core::ledger::EntryKind;
use minipay_core::request::PageLimit;
use minipay_core::time::SEOUL;
use minipay_core::{AccountId, BusinessMonth, EntryId, UserId};
use minipay_store::{HistoryEntry, HistoryFilter, Store};
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// History is kept this many months; older months are retired whole.
pub const HISTORY_RETENTION_MONTHS: u32 = 12;
/// Partitions are made this many months ahead of the current one.
const PARTITIONS_AHEAD_MONTHS: u32 = 3;

/// How retention keeps its archive and paces itself.
#[derive(Debug, Clone)]
pub struct HistoryConfig {
    /// Where each month is archived (gzip CSV) before it is retired; `None`: not archived.
    pub archive_dir: Option<PathBuf>,
    /// Entries retired per transaction on SQLite (PostgreSQL drops a month whole).
    pub retire_slice_max: u32,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        Self {
            archive_dir: None,
            retire_slice_max: 10_000,
        }
    }
}

/// An account history query, validated at the edge.
#[derive(Debug, Clone, Copy, Default)]
pub struct HistoryQuery {
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    pub kind: Option<EntryKind>,
}

impl HistoryQuery {
    pub fn parse(from: Option<Timestamp>, to: Option<Timestamp>, kind: Option<&str>) -> ServiceResult<Self> {
        let kind = kind
            .map(|k| EntryKind::parse(k).ok_or_else(|| ServiceError::validation(format!("unknown kind {k:?}"))))
            .transpose()?;
        let check = |t: Option<Timestamp>, what| {
            t.map(|t| minipay_core::time::plausible_instant(t, what))
                .transpose()
                .map_err(ServiceError::validation)
        };
        let (from, to) = (check(from, "from")?, check(to, "to")?);
        if let (Some(f), Some(t)) = (from, to)
            && f >= t
        {
            return Err(ServiceError::validation("from must be before to"));
        }
        Ok(Self { from, to, kind })
    }
}

/// What a retention run did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RetentionReport {
    pub months: Vec<String>,
    pub entries: u64,
    /// Where each retired month was archived, if an archive directory is configured.
    pub archives: Vec<String>,
    /// Time spent archiving.
    pub export_seconds: f64,
    /// Time spent totalling the months per account, outside any lock.
    pub prepare_seconds: f64,
    /// Time spent in the retiring transactions (accounts locked, partitions dropped).
    pub retire_seconds: f64,
}

impl Wallet {
    /// `GET /v1/accounts/{id}/history`: newest first, keyset-paginated.
    pub async fn account_history(
        &self,
        me: UserId,
        account: AccountId,
        query: HistoryQuery,
        limit: PageLimit,
        cursor: Option<&str>,
    ) -> ServiceResult<Page<EntryView>> {
        let mut s = self.store.read().await?;
        owned(s.account(account).await?, me)?;
        let after = cursor
            .map(decode_cursor)
            .transpose()?
            .map(|(at, id)| (at, EntryId::from_uuid(id)));
        let filter = HistoryFilter {
            from: query.from,
            to: query.to,
            kind: query.kind,
        };
        let rows = s.history(account, filter, after, rows_for(limit)).await?;
        Ok(page_of(
            rows,
            limit,
            |e| (e.occurred_at, e.id.as_uuid()),
            |e| EntryView::from(&e),
        ))
    }

    /// `GET /v1/accounts/{id}/statements/{YYYY-MM}`: the month's opening and closing balance
    /// and totals, consistent with its entries. A month retired by retention is `not_found`.
    pub async fn statement(&self, me: UserId, account: AccountId, month: &str) -> ServiceResult<StatementView> {
        let month = BusinessMonth::parse(month).map_err(ServiceError::validation)?;
        if month > BusinessMonth::containing(self.clock.now()) {
            return Err(ServiceError::validation("that month has not begun"));
        }
        let mut s = self.store.read().await?;
        owned(s.account(account).await?, me)?;
        if s.retired_before().await?.is_some_and(|r| month.starts_at() < r) {
            return Err(ServiceError::NotFound("statement (history is kept 12 months)"));
        }
        let t = s.month_totals(account, month).await?;
        Ok(StatementView {
            month: month.to_string(),
            opening_balance: t.opening_balance,
            closing_balance: t.opening_balance + t.total_in - t.total_out,
            total_in: t.total_in,
            total_out: t.total_out,
            count: t.count,
        })
    }

    /// The `history-partitions` job: this month's and the next few months' partitions exist.
    pub async fn make_history_partitions(&self, at: Timestamp) -> ServiceResult<u64> {
        let mut month = BusinessMonth::containing(at);
        for _ in 0..=PARTITIONS_AHEAD_MONTHS {
            self.ensure_history_partition(month).await?;
            month = month.next();
        }
        Ok(u64::from(PARTITIONS_AHEAD_MONTHS) + 1)
    }

    /// `month`'s partitions, made in a transaction of their own (the DDL's locks held no longer
    /// than that), tried again when it loses on a lock. Both history jobs make partitions
    /// through here.
    async fn ensure_history_partition(&self, month: BusinessMonth) -> ServiceResult<()> {
        transaction_retried(&self.store, "history.ensure_partition", |tx| {
            Box::pin(tx.ensure_history_partition(month))
        })
        .await?;
        Ok(())
    }

    /// The `history-retention` job: every month that ended more than 12 months before `at` is
    /// exported (when an archive directory is configured; a failed export keeps the month) and
    /// retired — its balances carried into the accounts' opening balances, its rows dropped.
    /// Each transaction that loses on a lock is tried again (see `lock_retry`).
    pub async fn retire_history(&self, at: Timestamp) -> ServiceResult<RetentionReport> {
        let horizon = at
            .to_zoned(SEOUL.clone())
            .checked_sub((HISTORY_RETENTION_MONTHS as i64).months())
            .context("a date 12 months back")?
            .timestamp();
        let mut report = RetentionReport::default();
        let Some(mut month) = self.store.read().await?.oldest_history_month().await? else {
            return Ok(report);
        };
        while month.ends_at() <= horizon {
            self.archive_month(month, &mut report).await?;
            self.retire_month(month, &mut report).await?;
            month = month.next();
        }
        Ok(report)
    }

    /// Exports `month` into the archive directory, if one is configured.
    async fn archive_month(&self, month: BusinessMonth, report: &mut RetentionReport) -> ServiceResult<()> {
        let started = Instant::now();
        match &self.history.archive_dir {
            Some(dir) => {
                let path = dir.join(format!("entries-{month}.csv.gz"));
                export_month(&self.store, month, &path).await?;
                report.archives.push(path.display().to_string());
            }
            None => {
                tracing::warn!(%month, "retiring history without an archive (MINIPAY_HISTORY_ARCHIVE_DIR is unset)")
            }
        }
        report.export_seconds += started.elapsed().as_secs_f64();
        Ok(())
    }

    /// Carries `month`'s balances, retires it (in slices on SQLite) and prunes what it superseded.
    async fn retire_month(&self, month: BusinessMonth, report: &mut RetentionReport) -> ServiceResult<()> {
        let started = Instant::now();
        self.ensure_history_partition(month).await?;
        let entries = transaction_retried(&self.store, "history.prepare_retirement", |tx| {
            Box::pin(tx.prepare_history_retirement(month))
        })
        .await?;
        report.prepare_seconds += started.elapsed().as_secs_f64();
        let started = Instant::now();
        let slice_max = self.history.retire_slice_max.max(1);
        loop {
            let step = transaction_retried(&self.store, "history.retire_month", |tx| {
                Box::pin(tx.retire_history_month(month, slice_max))
            });
            if step.await?.complete {
                break;
            }
        }
        report.retire_seconds += started.elapsed().as_secs_f64();
        transaction_retried(&self.store, "history.prune_carried_balances", |tx| {
            Box::pin(tx.prune_carried_balances())
        })
        .await?;
        tracing::info!(%month, entries, "retired a month of history");
        report.months.push(month.to_string());
        report.entries += entries;
        Ok(())
    }
}

/// The CSV columns of an export, in order.
pub const EXPORT_COLUMNS: &str = "entry_id,journal_id,occurred_at,account_id,owner_user_id,kind,amount,balance_after,\
counterparty_name,counterparty_user_id,counterparty_account_id,memo";

/// Writes every entry of `month` to `path` as gzip-compressed CSV (for legal archiving before
/// retention drops it), through a temporary file renamed into place only when complete.
/// Returns how many entries were written.
pub async fn export_month(store: &Store, month: BusinessMonth, path: &Path) -> anyhow::Result<u64> {
    if let Some(retired) = store.read().await?.retired_before().await?
        && month.starts_at() < retired
    {
        anyhow::bail!("{month} was retired (history before {retired} is gone); its archive is what remains");
    }
    let partial: PathBuf = path.with_extension("partial");
    let file = std::fs::File::create(&partial).with_context(|| format!("creating {}", partial.display()))?;
    let mut gz = GzEncoder::new(std::io::BufWriter::new(file), Compression::default());
    writeln!(gz, "{EXPORT_COLUMNS}")?;
    let n = store
        .read()
        .await?
        .each_entry_of_month(month, |e: HistoryEntry| writeln!(gz, "{}", csv_line(&e)))
        .await?;
    gz.finish()?.flush()?;
    std::fs::rename(&partial, path).with_context(|| format!("moving the export to {}", path.display()))?;
    Ok(n)
}

fn csv_line(e: &HistoryEntry) -> String {
    let opt = |v: Option<String>| v.unwrap_or_default();
    [
        e.id.to_string(),
        e.journal_id.to_string(),
        e.occurred_at.to_string(),
        e.account_id.to_string(),
        opt(e.owner.map(|u| u.to_string())),
        e.kind.as_str().to_owned(),
        e.amount.to_string(),
        e.balance_after.to_string(),
        csv_field(&e.counterparty_name),
        opt(e.counterparty_user_id.map(|u| u.to_string())),
        opt(e.counterparty_account_id.map(|a| a.to_string())),
        csv_field(e.memo.as_deref().unwrap_or("")),
    ]
    .join(",")
}

/// RFC 4180: quote a field holding a comma, quote or line break, doubling its quotes.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_only_when_needed() {
        assert_eq!(csv_field("Kim"), "Kim");
        assert_eq!(csv_field("Kim, Minsu"), "\"Kim, Minsu\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
    }

    #[test]
    fn history_queries_check_their_range() {
        let t = |s: &str| Some(s.parse::<Timestamp>().unwrap());
        assert!(HistoryQuery::parse(t("2026-11-01T00:00:00Z"), t("2026-11-02T00:00:00Z"), Some("transfer")).is_ok());
        assert!(HistoryQuery::parse(t("2026-11-02T00:00:00Z"), t("2026-11-01T00:00:00Z"), None).is_err());
        assert!(HistoryQuery::parse(None, None, Some("gift")).is_err());
        assert!(HistoryQuery::parse(t("1990-01-01T00:00:00Z"), None, None).is_err());
    }
}
