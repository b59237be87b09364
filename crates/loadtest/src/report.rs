//! What a load test measured, judged against its thresholds, as JSON and as an HTML page.

use crate::LoadTest;
use crate::scenario::{Action, micros};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use tokio::time::Instant;

/// What one virtual user (or all of them, merged) measured. Requests sent during the ramp
/// are counted apart and not in the percentiles.
pub(crate) struct Recorder {
    measure_from: Instant,
    latencies: BTreeMap<Action, Vec<u32>>,
    errors: BTreeMap<Action, BTreeMap<u16, u64>>,
    /// Successful requests answered in each second of the measured window.
    per_second: Vec<u64>,
    warmup: u64,
}

impl Recorder {
    pub(crate) fn new(measure_from: Instant) -> Self {
        Self {
            measure_from,
            latencies: BTreeMap::new(),
            errors: BTreeMap::new(),
            per_second: Vec::new(),
            warmup: 0,
        }
    }

    pub(crate) fn record(&mut self, action: Action, sent: Instant, took: Duration, status: u16) {
        if sent < self.measure_from {
            self.warmup += 1;
            return;
        }
        if (200..300).contains(&status) {
            self.latencies.entry(action).or_default().push(micros(took));
            let second = (sent + took).duration_since(self.measure_from).as_secs() as usize;
            if self.per_second.len() <= second {
                self.per_second.resize(second + 1, 0);
            }
            self.per_second[second] += 1;
        } else {
            *self.errors.entry(action).or_default().entry(status).or_default() += 1;
        }
    }

    pub(crate) fn merge(&mut self, other: Self) {
        for (action, mut l) in other.latencies {
            self.latencies.entry(action).or_default().append(&mut l);
        }
        for (action, errs) in other.errors {
            let mine = self.errors.entry(action).or_default();
            for (status, n) in errs {
                *mine.entry(status).or_default() += n;
            }
        }
        if self.per_second.len() < other.per_second.len() {
            self.per_second.resize(other.per_second.len(), 0);
        }
        for (i, n) in other.per_second.into_iter().enumerate() {
            self.per_second[i] += n;
        }
        self.warmup += other.warmup;
    }

    pub(crate) fn into_report(mut self, test: &LoadTest, window: Duration) -> Report {
        let seconds = window.as_secs_f64().max(1e-9);
        let actions = Action::ALL
            .iter()
            .filter_map(|&action| {
                let mut l = self.latencies.remove(&action).unwrap_or_default();
                let errors = self.errors.remove(&action).unwrap_or_default();
                if l.is_empty() && errors.is_empty() {
                    return None;
                }
                l.sort_unstable();
                let ms = |q: f64| {
                    if l.is_empty() {
                        0.0
                    } else {
                        f64::from(l[((l.len() - 1) as f64 * q).round() as usize]) / 1000.0
                    }
                };
                Some(ActionStats {
                    action: action.name().to_owned(),
                    ok: l.len() as u64,
                    errors: errors.values().sum(),
                    errors_by_status: errors.into_iter().map(|(s, n)| (s.to_string(), n)).collect(),
                    per_second: l.len() as f64 / seconds,
                    p50_ms: ms(0.50),
                    p90_ms: ms(0.90),
                    p99_ms: ms(0.99),
                    max_ms: ms(1.0),
                })
            })
            .collect();
        self.per_second.truncate(window.as_secs().max(1) as usize);
        let mut report = Report {
            scenario: test.scenario.name().to_owned(),
            target: test.target.clone(),
            users: test.users,
            accounts: test.accounts,
            ramp_seconds: test.ramp_seconds,
            measured_seconds: seconds,
            warmup_requests: self.warmup,
            actions,
            per_second: self.per_second,
            thresholds: Vec::new(),
            audit: None,
        };
        report.thresholds = test.thresholds().into_iter().map(|t| t.judge(&report)).collect();
        report
    }
}

/// Latency and throughput of one kind of request over the measured window.
#[derive(Debug, Clone, Serialize)]
pub struct ActionStats {
    pub action: String,
    pub ok: u64,
    pub errors: u64,
    pub errors_by_status: BTreeMap<String, u64>,
    /// Successful requests per second.
    pub per_second: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// A pass/fail rule over a report.
#[derive(Debug, Clone, Copy)]
pub enum Threshold {
    MaxErrorRate(f64),
    MaxP99Ms(f64),
    MinTransfersPerSecond(f64),
}

#[derive(Debug, Clone, Serialize)]
pub struct Judged {
    pub rule: String,
    pub limit: f64,
    pub actual: f64,
    pub passed: bool,
}

impl Threshold {
    fn judge(self, r: &Report) -> Judged {
        let (rule, limit, actual, passed) = match self {
            Self::MaxErrorRate(limit) => {
                let (ok, err) = r.actions.iter().fold((0, 0), |(o, e), a| (o + a.ok, e + a.errors));
                let rate = if ok + err == 0 {
                    0.0
                } else {
                    err as f64 / (ok + err) as f64
                };
                ("error rate at most", limit, rate, rate <= limit && ok > 0)
            }
            Self::MaxP99Ms(limit) => {
                let worst = r.actions.iter().map(|a| a.p99_ms).fold(0.0, f64::max);
                ("p99 (ms) at most", limit, worst, worst <= limit)
            }
            Self::MinTransfersPerSecond(limit) => {
                let tps = r.transfers_per_second();
                ("transfers/s at least", limit, tps, tps >= limit)
            }
        };
        Judged {
            rule: rule.to_owned(),
            limit,
            actual,
            passed,
        }
    }
}

/// The result of one load test.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: String,
    pub target: String,
    pub users: u32,
    pub accounts: u32,
    pub ramp_seconds: u64,
    pub measured_seconds: f64,
    /// Requests sent during the ramp (not measured).
    pub warmup_requests: u64,
    pub actions: Vec<ActionStats>,
    /// Successful requests in each second of the measured window.
    pub per_second: Vec<u64>,
    pub thresholds: Vec<Judged>,
    /// The ledger audit after the run (with an admin token).
    pub audit: Option<serde_json::Value>,
}

impl Report {
    pub fn action(&self, name: &str) -> Option<&ActionStats> {
        self.actions.iter().find(|a| a.action == name)
    }

    /// Completed transfers per second (immediate ones).
    pub fn transfers_per_second(&self) -> f64 {
        self.action("transfer").map_or(0.0, |a| a.per_second)
    }

    pub fn errors(&self) -> u64 {
        self.actions.iter().map(|a| a.errors).sum()
    }

    /// Every threshold held, and the audit (if run) found nothing.
    pub fn passed(&self) -> bool {
        self.thresholds.iter().all(|t| t.passed)
            && self
                .audit
                .as_ref()
                .is_none_or(|a| a["ok"] == serde_json::Value::Bool(true))
    }

    /// The table printed at the end of a run.
    pub fn table(&self) -> String {
        let mut out = format!(
            "scenario {} · {} users · {} accounts · {:.1} s measured\n{:<18} {:>9} {:>7} {:>10} {:>9} {:>9} {:>9} {:>9}\n",
            self.scenario,
            self.users,
            self.accounts,
            self.measured_seconds,
            "action",
            "ok",
            "errors",
            "per s",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "max ms"
        );
        for a in &self.actions {
            out += &format!(
                "{:<18} {:>9} {:>7} {:>10.1} {:>9.2} {:>9.2} {:>9.2} {:>9.2}\n",
                a.action, a.ok, a.errors, a.per_second, a.p50_ms, a.p90_ms, a.p99_ms, a.max_ms
            );
        }
        for t in &self.thresholds {
            out += &format!(
                "threshold: {} {} — {:.3} {}\n",
                t.rule,
                t.limit,
                t.actual,
                if t.passed { "PASS" } else { "FAIL" }
            );
        }
        if let Some(audit) = &self.audit {
            out += &format!("ledger audit: ok = {}\n", audit["ok"]);
        }
        out
    }

    /// Writes `report.json` and `report.html` into `dir`.
    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("report.json"), serde_json::to_string_pretty(self)? + "\n")?;
        std::fs::write(dir.join("report.html"), self.html())?;
        Ok(())
    }

    /// A self-contained page: the table, the thresholds and requests per second as a chart.
    pub fn html(&self) -> String {
        let rows: String = self
            .actions
            .iter()
            .map(|a| {
                format!(
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td></tr>",
                    a.action, a.ok, a.errors, a.per_second, a.p50_ms, a.p90_ms, a.p99_ms, a.max_ms
                )
            })
            .collect();
        let judged: String = self
            .thresholds
            .iter()
            .map(|t| {
                format!(
                    "<li class=\"{}\">{} {} — {:.3}</li>",
                    if t.passed { "pass" } else { "fail" },
                    t.rule,
                    t.limit,
                    t.actual
                )
            })
            .collect();
        let top = self.per_second.iter().copied().max().unwrap_or(1).max(1) as f64;
        let width = (self.per_second.len().max(2) - 1) as f64;
        let points: Vec<String> = self
            .per_second
            .iter()
            .enumerate()
            .map(|(i, &n)| format!("{:.1},{:.1}", i as f64 / width * 600.0, 200.0 - n as f64 / top * 190.0))
            .collect();
        let audit = match &self.audit {
            Some(a) => format!("<p>Ledger audit after the run: ok = {}</p>", a["ok"]),
            None => String::new(),
        };
        format!(
            r##"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>minipay load test: {scenario}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}td:first-child{{text-align:left}}
.pass{{color:#070}}.fail{{color:#b00;font-weight:bold}}</style></head><body>
<h1>minipay load test: {scenario}</h1>
<p>{users} virtual users, {accounts} accounts, {ramp} s ramp, {secs:.1} s measured against {target}.</p>
<table><tr><th>action</th><th>ok</th><th>errors</th><th>per s</th><th>p50 ms</th><th>p90 ms</th><th>p99 ms</th><th>max ms</th></tr>{rows}</table>
<h2>Thresholds: {verdict}</h2><ul>{judged}</ul>{audit}
<h2>Successful requests per second</h2>
<svg width="620" height="210" viewBox="-10 0 620 210"><polyline fill="none" stroke="#36c" stroke-width="2" points="{points}"/>
<text x="0" y="12" font-size="11">{top}/s</text></svg>
</body></html>
"##,
            scenario = self.scenario,
            users = self.users,
            accounts = self.accounts,
            ramp = self.ramp_seconds,
            secs = self.measured_seconds,
            target = self.target,
            verdict = if self.passed() { "PASS" } else { "FAIL" },
            points = points.join(" "),
            top = top as u64,
        )
    }
}
