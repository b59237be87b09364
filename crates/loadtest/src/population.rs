//! The users a load test drives, set up through the public API like real sign-ups.

use anyhow::{Context, bail};
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::sync::Semaphore;

/// One user the load drives: their token and accounts.
#[derive(Debug, Clone)]
pub struct VirtualAccount {
    pub user_id: String,
    pub main_account_id: String,
    pub savings_account_id: String,
    pub token: String,
}

/// Everyone set up for a run.
#[derive(Debug, Clone)]
pub struct Population {
    pub accounts: Vec<VirtualAccount>,
    /// Won charged into the main accounts during set-up.
    pub funded: i64,
}

/// Sign-ups at once while setting up (password hashing makes each one cost a few ms of CPU).
const SETUP_PARALLEL: usize = 8;

/// Signs up `n` users, logs them in, registers a (simulated) bank account for each, opens a
/// free savings account and charges `funds` won into each main account.
pub async fn populate(client: &reqwest::Client, target: &str, n: usize, funds: i64) -> anyhow::Result<Population> {
    let run = uuid::Uuid::now_v7().simple().to_string();
    let gate = Arc::new(Semaphore::new(SETUP_PARALLEL));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let (client, target, run, gate) = (client.clone(), target.to_owned(), run.clone(), gate.clone());
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await?;
            sign_up(&client, &target, &run, i, funds).await.map(|a| (i, a))
        });
    }
    let mut accounts = vec![None; n];
    while let Some(done) = tasks.join_next().await {
        let (i, account) = done??;
        accounts[i] = Some(account);
    }
    Ok(Population {
        accounts: accounts.into_iter().map(|a| a.expect("every user set up")).collect(),
        funded: funds * n as i64,
    })
}

async fn sign_up(
    client: &reqwest::Client,
    target: &str,
    run: &str,
    i: usize,
    funds: i64,
) -> anyhow::Result<VirtualAccount> {
    let email = format!("lt-{run}-{i}@loadtest.example");
    let password = format!("load-test-{run}");
    let user = call(
        client,
        target,
        "/v1/users",
        None,
        json!({"email": email, "password": password, "name": format!("Load {i}")}),
    )
    .await?;
    let token = call(
        client,
        target,
        "/v1/auth/token",
        None,
        json!({"email": email, "password": password}),
    )
    .await?["access_token"]
        .as_str()
        .context("access_token")?
        .to_owned();
    // Fourteen digits ending in 1 (the simulator's "always succeeds" account), unique per run.
    let run_prefix = u64::from_str_radix(&run[run.len() - 8..], 16).unwrap_or(0) % 1_000_000;
    let number = format!("{run_prefix:06}{i:07}1");
    call(
        client,
        target,
        "/v1/bank-accounts",
        Some(&token),
        json!({"bank_code": "088", "account_number": number, "holder_name": format!("Load {i}")}),
    )
    .await?;
    let main = user["main_account_id"].as_str().context("main_account_id")?.to_owned();
    let savings = call(
        client,
        target,
        "/v1/accounts",
        Some(&token),
        json!({"kind": "savings", "product": "free"}),
    )
    .await?["id"]
        .as_str()
        .context("savings id")?
        .to_owned();
    call(
        client,
        target,
        &format!("/v1/accounts/{main}/charges"),
        Some(&token),
        json!({"amount": funds}),
    )
    .await?;
    Ok(VirtualAccount {
        user_id: user["id"].as_str().context("user id")?.to_owned(),
        main_account_id: main,
        savings_account_id: savings,
        token,
    })
}

async fn call(
    client: &reqwest::Client,
    target: &str,
    path: &str,
    token: Option<&str>,
    body: Value,
) -> anyhow::Result<Value> {
    let mut req = client.post(format!("{target}{path}")).json(&body);
    if let Some(t) = token {
        req = req
            .bearer_auth(t)
            .header("Idempotency-Key", uuid::Uuid::now_v7().to_string());
    }
    let res = req.send().await.with_context(|| format!("POST {path}"))?;
    let status = res.status();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("set-up POST {path} answered {status}: {body}");
    }
    Ok(body)
}
