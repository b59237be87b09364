//! What the virtual users do: uniform P2P transfers, a hot receiver, or a realistic mix.

use crate::report::{Recorder, Report};
use crate::{LoadTest, Population, Rng, VirtualAccount};
use serde_json::json;
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// Transfers between uniformly random pairs of users.
    Uniform,
    /// Every user sends to one receiver (the first user).
    Hot,
    /// Transfers 50%, history reads 20%, charges 10%, pending transfers then accepted 10%,
    /// savings deposits 10%.
    Mix,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Self::Uniform => "uniform",
            Self::Hot => "hot",
            Self::Mix => "mix",
        }
    }
}

/// The requests a virtual user makes; each is timed under its own name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Action {
    Transfer,
    History,
    Charge,
    PendingTransfer,
    Accept,
    Deposit,
}

impl Action {
    pub(crate) const ALL: [Self; 6] = [
        Self::Transfer,
        Self::History,
        Self::Charge,
        Self::PendingTransfer,
        Self::Accept,
        Self::Deposit,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Transfer => "transfer",
            Self::History => "history",
            Self::Charge => "charge",
            Self::PendingTransfer => "pending_transfer",
            Self::Accept => "accept",
            Self::Deposit => "deposit",
        }
    }
}

/// Runs the virtual users over an existing population and gathers what they measured.
pub async fn drive(client: &reqwest::Client, test: &LoadTest, population: &Population) -> Report {
    let started = Instant::now();
    let measure_from = started + test.ramp();
    let until = measure_from + test.duration();
    let users = test.users as usize;
    let accounts: std::sync::Arc<[VirtualAccount]> = population.accounts.clone().into();
    let mut tasks = tokio::task::JoinSet::new();
    for vu in 0..users {
        let user = VirtualUser {
            client: client.clone(),
            target: test.target.clone(),
            accounts: accounts.clone(),
            scenario: test.scenario,
            amount: test.amount,
            rng: Rng::new(0x5EED ^ (vu as u64) << 20),
        };
        let start_at = started + test.ramp().mul_f64(vu as f64 / users as f64);
        tasks.spawn(user.run(start_at, measure_from, until));
    }
    let mut all = Recorder::new(measure_from);
    while let Some(done) = tasks.join_next().await {
        all.merge(done.expect("virtual users do not panic"));
    }
    all.into_report(test, Instant::now().duration_since(measure_from).min(test.duration()))
}

struct VirtualUser {
    client: reqwest::Client,
    target: String,
    accounts: std::sync::Arc<[VirtualAccount]>,
    scenario: Scenario,
    amount: i64,
    rng: Rng,
}

/// The answer to one request: status (0 = no answer) and the body when it is needed.
struct Answer {
    status: u16,
    body: Option<serde_json::Value>,
}

impl VirtualUser {
    async fn run(mut self, start_at: Instant, measure_from: Instant, until: Instant) -> Recorder {
        let mut rec = Recorder::new(measure_from);
        tokio::time::sleep_until(start_at).await;
        while Instant::now() < until {
            self.step(&mut rec).await;
        }
        rec
    }

    /// One iteration of the scenario (one request, or two for a pending transfer).
    async fn step(&mut self, rec: &mut Recorder) {
        let n = self.accounts.len();
        match self.scenario {
            Scenario::Uniform => {
                let (a, b) = self.rng.pair(n);
                self.transfer(rec, a, b, false).await;
            }
            Scenario::Hot => {
                let a = 1 + self.rng.below(n - 1);
                self.transfer(rec, a, 0, false).await;
            }
            Scenario::Mix => {
                let (a, b) = self.rng.pair(n);
                match self.rng.below(10) {
                    0..=4 => {
                        self.transfer(rec, a, b, false).await;
                    }
                    5 | 6 => self.history(rec, a).await,
                    7 => self.small_move(rec, Action::Charge, a).await,
                    8 => {
                        let sent = self.transfer(rec, a, b, true).await;
                        if let Some(id) = sent {
                            self.accept(rec, b, &id).await;
                        }
                    }
                    _ => self.small_move(rec, Action::Deposit, a).await,
                }
            }
        }
    }

    /// A transfer from `a` to `b`; its id when it was made.
    async fn transfer(&mut self, rec: &mut Recorder, a: usize, b: usize, pending: bool) -> Option<String> {
        let (from, to) = (&self.accounts[a], &self.accounts[b]);
        let mut body = json!({"to_user_id": to.user_id, "amount": self.amount});
        if pending {
            body["mode"] = json!("pending");
        }
        let action = if pending {
            Action::PendingTransfer
        } else {
            Action::Transfer
        };
        let answer = self
            .post(
                rec,
                action,
                "/v1/transfers".to_owned(),
                &from.token.clone(),
                body,
                pending,
            )
            .await;
        answer
            .body
            .and_then(|b| b["id"].as_str().map(str::to_owned))
            .filter(|_| answer.status == 201)
    }

    async fn accept(&mut self, rec: &mut Recorder, receiver: usize, id: &str) {
        let token = self.accounts[receiver].token.clone();
        self.post(
            rec,
            Action::Accept,
            format!("/v1/transfers/{id}/accept"),
            &token,
            json!({}),
            false,
        )
        .await;
    }

    /// 100 won into `a`'s main account from the bank (`Charge`; small, so that the daily limit
    /// lasts the whole run), or from main into savings (`Deposit`).
    async fn small_move(&mut self, rec: &mut Recorder, action: Action, a: usize) {
        let account = &self.accounts[a];
        let path = match action {
            Action::Charge => format!("/v1/accounts/{}/charges", account.main_account_id),
            _ => format!("/v1/accounts/{}/deposits", account.savings_account_id),
        };
        let token = account.token.clone();
        self.post(rec, action, path, &token, json!({"amount": 100}), false)
            .await;
    }

    async fn history(&mut self, rec: &mut Recorder, a: usize) {
        let account = &self.accounts[a];
        let url = format!(
            "{}/v1/accounts/{}/history?limit=20",
            self.target, account.main_account_id
        );
        let sent = Instant::now();
        let res = self.client.get(url).bearer_auth(&account.token).send().await;
        let status = match res {
            Ok(r) => {
                let status = r.status().as_u16();
                let _ = r.bytes().await;
                status
            }
            Err(_) => 0,
        };
        rec.record(Action::History, sent, sent.elapsed(), status);
    }

    /// A money POST with a fresh Idempotency-Key, timed.
    async fn post(
        &mut self,
        rec: &mut Recorder,
        action: Action,
        path: String,
        token: &str,
        body: serde_json::Value,
        want_body: bool,
    ) -> Answer {
        let sent = Instant::now();
        let res = self
            .client
            .post(format!("{}{path}", self.target))
            .bearer_auth(token)
            .header("Idempotency-Key", uuid::Uuid::now_v7().to_string())
            .json(&body)
            .send()
            .await;
        let answer = match res {
            Ok(r) => {
                let status = r.status().as_u16();
                let body = if want_body {
                    r.json().await.ok()
                } else {
                    let _ = r.bytes().await;
                    None
                };
                Answer { status, body }
            }
            Err(_) => Answer { status: 0, body: None },
        };
        rec.record(action, sent, sent.elapsed(), answer.status);
        answer
    }
}

/// Rounds a duration to whole microseconds for the histograms.
pub(crate) fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}
