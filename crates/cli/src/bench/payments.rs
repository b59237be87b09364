//! `minipay bench payments`: payments from wallet users to businesses and refunds of some,
//! through the HTTP API, on PostgreSQL + NATS JetStream with the built-in bank: requests
//! accepted per second (the `202`) and their latency, payments and refunds settled per second,
//! and afterwards the audit and every bank balance (each user's, the platform's) and every
//! business's balance.

use super::remittances::{delete_stream, get};
use super::{ScratchDatabase, ServerProcess, WalSegments, percentile};
use anyhow::{Context, bail};
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `minipay bench payments`.
#[derive(clap::Args)]
pub struct PaymentsBench {
    #[command(flatten)]
    pub db: ScratchDatabase,
    #[arg(long, default_value_t = 20_000)]
    pub payments: u32,
    /// Refunds, each of half of one of the first payments.
    #[arg(long, default_value_t = 2_000)]
    pub refunds: u32,
    /// Paying users (each with a registered bank account).
    #[arg(long, default_value_t = 200)]
    pub users: u32,
    /// Businesses taking the payments.
    #[arg(long, default_value_t = 20)]
    pub businesses: u32,
    /// Requests in flight at once (closed loop: the next request goes when one is answered).
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Send this many requests per second whatever the answers (open loop) instead of a fixed
    /// number in flight; each latency then counts from when its request was due.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Payments sent (64 in flight) and settled before the measured ones, so that these meet
    /// a server that has done the work before (statements prepared on its connections, caches
    /// filled); 0 measures from a cold start. Counted in the balances, not in the results.
    #[arg(long, default_value_t = 0)]
    pub warm_up: u32,
    /// Won per payment.
    #[arg(long, default_value_t = 10_000)]
    pub amount: i64,
    #[arg(long, env = "MINIPAY_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,
    /// Longest wait for everything to settle, in seconds.
    #[arg(long, default_value_t = 600)]
    pub settle_seconds: u64,
    /// Where to write the JSON result.
    #[arg(long, default_value = "docs/bench/payments.json")]
    pub out: PathBuf,
}

/// A paying user: their id and bank account number.
#[derive(Clone)]
struct Payer {
    id: String,
    account: String,
}

/// A business taking payments: its API key.
#[derive(Clone)]
struct Shop {
    key: String,
}

/// Every bank account starts here at the simulator.
const OPENING_WON: i64 = 100_000_000;
/// Sign-ups at once (password hashing costs CPU).
const SIGNUP_PARALLEL: usize = 8;
/// The measured payments' order ids (`order-0`, ...), and the warm-up's.
const MEASURED_ORDERS: &str = "order-";
const WARM_UP_ORDERS: &str = "warm-up-";
/// The warm-up's payments in flight at once.
const WARM_UP_IN_FLIGHT: usize = 64;
/// Connections kept open when sending at a rate (as many as may be in flight).
const RATE_CONNECTIONS: usize = 512;

/// How a phase's requests are sent.
#[derive(Debug, Clone, Copy)]
enum Pace {
    /// This many in flight, the next sent as soon as one is answered (closed loop: the
    /// server's speed sets the rate, and the latency includes the queue this load makes).
    InFlight(usize),
    /// One every `1 / rate` seconds whatever the answers (open loop); each latency is counted
    /// from when its request was due, so a request delayed by a slow answer is charged with
    /// the delay (no coordinated omission).
    PerSecond(f64),
}

impl Pace {
    fn connections(self) -> usize {
        match self {
            Self::InFlight(n) => n,
            Self::PerSecond(_) => RATE_CONNECTIONS,
        }
    }
}

/// What one phase of requests measured.
#[derive(Debug, Clone, serde::Serialize)]
struct Phase {
    requests: u32,
    accepted: u32,
    accepted_per_second: f64,
    accept_p50_ms: f64,
    accept_p99_ms: f64,
    settled_per_second: f64,
    settle_p50_ms: f64,
    settle_p99_ms: f64,
    /// The accepted requests by the second they were sent (or due) in: how the latency went
    /// through the phase (the first second pays for connections being opened).
    timeline: Vec<Second>,
    /// The first second's requests by the tenth of a second they were sent in (`second` is
    /// then the slice's index): where in the first second its tail is.
    first_second_by_tenth: Vec<Second>,
    /// WAL segments PostgreSQL made (none to recycle) while the phase's requests were sent,
    /// net of any a checkpoint removed meanwhile ([`WalSegments`]): commits wait while one is
    /// made. `None` when they cannot be counted.
    wal_segments_made: Option<i64>,
}

/// The requests sent in one slice (a second, or a tenth) of a phase.
#[derive(Debug, Clone, serde::Serialize)]
struct Second {
    second: u32,
    accepted: u32,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

impl PaymentsBench {
    pub async fn run(self) -> anyhow::Result<()> {
        let this = &self;
        let found = Arc::new(Mutex::new(None));
        let slot = found.clone();
        self.db
            .with(|url| async move {
                let result = this.measure(&url).await?;
                *slot.lock().expect("slot") = Some(result);
                Ok(())
            })
            .await?;
        let result = found.lock().expect("slot").take().context("no result")?;
        super::write_result(&self.out, &result)
    }

    async fn measure(&self, database_url: &str) -> anyhow::Result<Value> {
        let admin = uuid::Uuid::now_v7().simple().to_string() + "-bench-admin";
        let tag = uuid::Uuid::now_v7().simple().to_string();
        let (stream, prefix) = (format!("BENCH{tag}"), format!("bench{tag}"));
        let env = [
            ("MINIPAY_EVENTS_POLL_MS", "50"),
            // The pool (16) open before the first request, as a deployment that cares about
            // its first second's latency would run it.
            ("MINIPAY_DB_CONNECTIONS_MIN", "16"),
            // Requests first: the consumers wait out a burst the box cannot both accept and
            // settle at once (up to 10 s per batch), as a deployment whose settlement shares
            // the machine and the database with its intake would run them (docs/decisions.md).
            ("MINIPAY_EVENTS_YIELD_MAX_MS", "10000"),
            ("MINIPAY_NATS_URL", self.nats_url.as_str()),
            ("MINIPAY_NATS_STREAM", stream.as_str()),
            ("MINIPAY_NATS_SUBJECT_PREFIX", prefix.as_str()),
        ];
        let server = ServerProcess::start(database_url, &admin, &env).await?;
        let client = minipay_loadtest::http_client(self.pace().connections())?;
        let base = server.base.clone();
        println!("setting up {} users and {} businesses ...", self.users, self.businesses);
        let payers = self.sign_up(&client, &base).await?;
        let shops = self.onboard(&client, &base, &admin).await?;

        let warm = self.warm_up(&client, &base, &payers, &shops, database_url).await?;
        let mut wal = WalSegments::watch(database_url).await?;
        let postgres = wal.settings().await;
        println!("sending {} payments ...", self.payments);
        let segments_before = wal.count().await;
        let paid = self
            .pay(
                &client,
                &base,
                &payers,
                &shops,
                MEASURED_ORDERS,
                self.payments,
                self.pace(),
            )
            .await;
        let pay_segments = made(segments_before, wal.count().await);
        let measured = format!("order_id LIKE '{MEASURED_ORDERS}%'");
        let pay_settle = wait_settled(
            database_url,
            "payments",
            "paid",
            &measured,
            self.payments,
            self.settle_seconds,
        )
        .await?;
        let payments = phase(self.payments, &paid, &pay_settle, pay_segments);

        println!("sending {} refunds ...", self.refunds);
        let segments_before = wal.count().await;
        let refunded = self.refund(&client, &base, &shops, &paid.ids).await;
        let refund_segments = made(segments_before, wal.count().await);
        let refund_settle = wait_settled(
            database_url,
            "refunds",
            "succeeded",
            "TRUE",
            self.refunds,
            self.settle_seconds,
        )
        .await?;
        let refunds = phase(self.refunds, &refunded, &refund_settle, refund_segments);

        let audit = minipay_loadtest::audit(&client, &base, &admin).await?;
        let exact = self
            .balances_exact(&client, &base, &admin, &payers, &shops, &[&warm, &paid], &refunded)
            .await?;
        drop(server);
        delete_stream(&self.nats_url, &stream).await;
        let audit_ok = audit["ok"] == json!(true);
        print_table(&payments, &refunds, audit_ok, exact);
        print_wal(&payments, &refunds, &postgres);
        if !audit_ok || !exact || paid.ids.len() < self.payments as usize || refunded.ids.len() < self.refunds as usize
        {
            bail!("the run does not add up: audit {audit}, balances exact: {exact}");
        }
        Ok(json!({
            "benchmark": "payments",
            "system": "postgres+jetstream",
            "users": self.users, "businesses": self.businesses,
            "pace": match self.pace() {
                Pace::InFlight(n) => json!({"in_flight": n}),
                Pace::PerSecond(r) => json!({"per_second": r}),
            },
            "amount": self.amount,
            "warm_up_payments": self.warm_up,
            "payments": payments, "refunds": refunds,
            "audit_ok": audit_ok, "bank_balances_exact": exact,
            "postgres": postgres,
            "machine": { "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0) },
        }))
    }

    fn pace(&self) -> Pace {
        self.rate.map_or(Pace::InFlight(self.concurrency), Pace::PerSecond)
    }

    async fn sign_up(&self, client: &reqwest::Client, base: &str) -> anyhow::Result<Vec<Payer>> {
        let run = uuid::Uuid::now_v7().simple().to_string();
        futures_util::stream::iter(0..self.users)
            .map(|i| {
                let run = run.clone();
                async move {
                    let (email, password) = (format!("pay-{run}-{i}@bench.example"), format!("bench-{run}"));
                    let user = post(
                        client,
                        base,
                        "/v1/users",
                        None,
                        None,
                        json!({"email": email, "password": password, "name": format!("Payer {i}")}),
                    )
                    .await?;
                    let token = post(
                        client,
                        base,
                        "/v1/auth/token",
                        None,
                        None,
                        json!({"email": email, "password": password}),
                    )
                    .await?["access_token"]
                        .as_str()
                        .context("access_token")?
                        .to_owned();
                    let account = format!(
                        "66{:011}1",
                        u64::from(i) + 1_000 * u64::from(std::process::id() % 1_000)
                    );
                    let body =
                        json!({"bank_code": "004", "account_number": account, "holder_name": format!("Payer {i}")});
                    post(client, base, "/v1/bank-accounts", Some(&token), None, body).await?;
                    Ok(Payer {
                        id: user["id"].as_str().context("user id")?.to_owned(),
                        account,
                    })
                }
            })
            .buffer_unordered(SIGNUP_PARALLEL)
            .collect::<Vec<anyhow::Result<Payer>>>()
            .await
            .into_iter()
            .collect()
    }

    async fn onboard(&self, client: &reqwest::Client, base: &str, admin: &str) -> anyhow::Result<Vec<Shop>> {
        futures_util::stream::iter(0..self.businesses)
            .map(|i| async move {
                let account = format!(
                    "55{:010}1",
                    u64::from(i) + 1_000 * u64::from(std::process::id() % 1_000)
                );
                let prefix = format!("{:09}", 400_000_000 + u64::from(i));
                let number = minipay_core::business::RegistrationNumber::with_check_digit(&prefix)?.to_string();
                let body = json!({"name": format!("shop {i}"), "registration_number": number, "bank_code": "004",
                                  "account_number": account, "holder_name": format!("shop {i}")});
                let b = post(client, base, "/v1/admin/businesses", Some(admin), None, body).await?;
                Ok(Shop {
                    key: b["api_key"].as_str().context("api_key")?.to_owned(),
                })
            })
            .buffer_unordered(SIGNUP_PARALLEL)
            .collect::<Vec<anyhow::Result<Shop>>>()
            .await
            .into_iter()
            .collect()
    }

    /// The warm-up's payments (`--warm-up`), settled, then a second's pause; none if it is 0.
    async fn warm_up(
        &self,
        client: &reqwest::Client,
        base: &str,
        payers: &[Payer],
        shops: &[Shop],
        database_url: &str,
    ) -> anyhow::Result<Sent> {
        if self.warm_up == 0 {
            return Ok(Sent::default());
        }
        println!("warming up with {} payments ...", self.warm_up);
        let pace = Pace::InFlight(WARM_UP_IN_FLIGHT);
        let warm = self
            .pay(client, base, payers, shops, WARM_UP_ORDERS, self.warm_up, pace)
            .await;
        anyhow::ensure!(
            warm.ids.len() == self.warm_up as usize,
            "a warm-up payment was not accepted"
        );
        let filter = format!("order_id LIKE '{WARM_UP_ORDERS}%'");
        wait_settled(
            database_url,
            "payments",
            "paid",
            &filter,
            self.warm_up,
            self.settle_seconds,
        )
        .await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        Ok(warm)
    }

    /// Payment `i`: payer `i % users` pays shop `(i * 7 + 3) % businesses`, order `{orders}i`.
    #[allow(clippy::too_many_arguments)]
    async fn pay(
        &self,
        client: &reqwest::Client,
        base: &str,
        payers: &[Payer],
        shops: &[Shop],
        orders: &str,
        n: u32,
        pace: Pace,
    ) -> Sent {
        send_all(n as usize, pace, |i| {
            let (payer, shop) = (&payers[i % payers.len()], &shops[(i * 7 + 3) % shops.len()]);
            let order = format!("{orders}{i}");
            let body = json!({"user_id": payer.id, "amount": self.amount, "order_id": order});
            async move { post_accepted(client, base, "/v1/biz/payments", &shop.key, &order, body).await }
        })
        .await
    }

    /// Refund `j`: half of payment `j`, by its shop.
    async fn refund(&self, client: &reqwest::Client, base: &str, shops: &[Shop], paid: &[(usize, String)]) -> Sent {
        let by_index: HashMap<usize, &String> = paid.iter().map(|(i, id)| (*i, id)).collect();
        send_all(self.refunds as usize, self.pace(), |j| {
            let shop = &shops[(j * 7 + 3) % shops.len()];
            let payment = by_index.get(&j).map(|s| s.to_string()).unwrap_or_default();
            async move {
                let path = format!("/v1/biz/payments/{payment}/refunds");
                let key = format!("refund-{j}");
                post_accepted(client, base, &path, &shop.key, &key, json!({"amount": self.amount / 2})).await
            }
        })
        .await
    }

    /// Each user's bank: opening less paid plus refunded; the platform's: paid less refunded;
    /// each shop's balance: what it was paid less what it refunded.
    #[allow(clippy::too_many_arguments)]
    async fn balances_exact(
        &self,
        client: &reqwest::Client,
        base: &str,
        admin: &str,
        payers: &[Payer],
        shops: &[Shop],
        paid: &[&Sent],
        refunded: &Sent,
    ) -> anyhow::Result<bool> {
        let (mut user_moved, mut shop_moved) = (HashMap::<usize, i64>::new(), HashMap::<usize, i64>::new());
        for (i, _) in paid.iter().flat_map(|sent| &sent.ids) {
            *user_moved.entry(i % payers.len()).or_default() -= self.amount;
            *shop_moved.entry((i * 7 + 3) % shops.len()).or_default() += self.amount;
        }
        for (j, _) in &refunded.ids {
            *user_moved.entry(j % payers.len()).or_default() += self.amount / 2;
            *shop_moved.entry((j * 7 + 3) % shops.len()).or_default() -= self.amount / 2;
        }
        let sim = get(client, base, admin, "/v1/admin/bank-sim").await?;
        let platform: i64 = shop_moved.values().sum();
        let mut exact = sim["platform_balance"] == json!(platform);
        for (i, p) in payers.iter().enumerate() {
            let view = get(
                client,
                base,
                admin,
                &format!("/v1/admin/bank-sim/accounts/{}", p.account),
            )
            .await?;
            let expected = OPENING_WON + user_moved.get(&i).copied().unwrap_or(0);
            exact &= view["balances"]["004"] == json!(expected);
        }
        for (i, s) in shops.iter().enumerate() {
            let b: Value = client
                .get(format!("{base}/v1/biz/balance"))
                .bearer_auth(&s.key)
                .send()
                .await?
                .json()
                .await?;
            exact &= b["balance"] == json!(shop_moved.get(&i).copied().unwrap_or(0));
        }
        Ok(exact)
    }
}

/// The requests of one phase: which were accepted (index, id), and how long each took and
/// when it was sent (seconds since the phase began).
#[derive(Default)]
struct Sent {
    ids: Vec<(usize, String)>,
    latencies_ms: Vec<f64>,
    sent_at_s: Vec<f64>,
    elapsed: Duration,
}

/// Sends requests `0..n` at `pace`; each answer's id (when accepted) and latency.
async fn send_all<F, Fut>(n: usize, pace: Pace, request: F) -> Sent
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Option<String>>,
{
    let started = Instant::now();
    let outcomes = match pace {
        Pace::InFlight(k) => {
            futures_util::stream::iter(0..n)
                .map(|i| {
                    let fut = request(i);
                    async move {
                        let sent = Instant::now();
                        (i, fut.await, ms_since(sent), (sent - started).as_secs_f64())
                    }
                })
                .buffer_unordered(k)
                .collect()
                .await
        }
        Pace::PerSecond(rate) => send_at_rate(n, rate, started, &request).await,
    };
    let elapsed = started.elapsed();
    let mut ids = Vec::new();
    let mut latencies_ms = Vec::new();
    let mut sent_at_s = Vec::new();
    for (i, id, ms, at) in outcomes {
        if let Some(id) = id {
            ids.push((i, id));
            latencies_ms.push(ms);
            sent_at_s.push(at);
        }
    }
    ids.sort();
    Sent {
        ids,
        latencies_ms,
        sent_at_s,
        elapsed,
    }
}

/// Request `i` sent at `started + i / rate`, while the earlier ones are still in flight.
async fn send_at_rate<F, Fut>(
    n: usize,
    rate: f64,
    started: Instant,
    request: &F,
) -> Vec<(usize, Option<String>, f64, f64)>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Option<String>>,
{
    let mut in_flight = futures_util::stream::FuturesUnordered::new();
    let mut outcomes = Vec::with_capacity(n);
    for i in 0..n {
        let due = started + Duration::from_secs_f64(i as f64 / rate);
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(due.into()) => break,
                Some(outcome) = in_flight.next(), if !in_flight.is_empty() => outcomes.push(outcome),
            }
        }
        let fut = request(i);
        in_flight.push(async move { (i, fut.await, ms_since(due), (due - started).as_secs_f64()) });
    }
    while let Some(outcome) = in_flight.next().await {
        outcomes.push(outcome);
    }
    outcomes
}

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1_000.0
}

/// A keyed POST with a business key: the new object's id, if it was accepted (`202`).
async fn post_accepted(
    client: &reqwest::Client,
    base: &str,
    path: &str,
    key: &str,
    idempotency_key: &str,
    body: Value,
) -> Option<String> {
    let res = client
        .post(format!("{base}{path}"))
        .bearer_auth(key)
        .header("Idempotency-Key", idempotency_key)
        .json(&body)
        .send()
        .await
        .ok()?;
    if res.status() != 202 {
        eprintln!("POST {path} answered {}", res.status());
        return None;
    }
    let v: Value = res.json().await.ok()?;
    Some(v["id"].as_str()?.to_owned())
}

async fn post(
    client: &reqwest::Client,
    base: &str,
    path: &str,
    token: Option<&str>,
    idempotency_key: Option<&str>,
    body: Value,
) -> anyhow::Result<Value> {
    let mut req = client.post(format!("{base}{path}")).json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(k) = idempotency_key {
        req = req.header("Idempotency-Key", k);
    }
    let res = req.send().await.with_context(|| format!("POST {path}"))?;
    let status = res.status();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("set-up POST {path} answered {status}: {body}");
    }
    Ok(body)
}

/// How fast a phase settled, from the server's own timestamps.
struct Settled {
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// Waits until the `n` rows of `table` that match `filter` have `status` (one connection,
/// asking every 200 ms), then measures them from the server's timestamps: the first request to
/// the last settlement, and each one's request-to-settled time.
async fn wait_settled(
    database_url: &str,
    table: &str,
    status: &str,
    filter: &str,
    n: u32,
    max_s: u64,
) -> anyhow::Result<Settled> {
    let done_at = if table == "payments" { "paid_at" } else { "finished_at" };
    let started = Instant::now();
    let count_sql = format!("SELECT COUNT(*) FROM {table} WHERE status = '{status}' AND {filter}");
    let mut c = <sqlx::PgConnection as sqlx::Connection>::connect(database_url).await?;
    loop {
        let done: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(count_sql.clone()))
            .fetch_one(&mut c)
            .await?;
        if done >= i64::from(n) {
            break;
        }
        if started.elapsed() > Duration::from_secs(max_s) {
            bail!("only {done} of {n} {table} settled in {max_s} s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let span_ms: f64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT CAST(EXTRACT(EPOCH FROM MAX({done_at}) - MIN(created_at)) * 1000 AS DOUBLE PRECISION) FROM {table}
         WHERE {filter}"
    )))
    .fetch_one(&mut c)
    .await?;
    let spans: Vec<f64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT CAST(EXTRACT(EPOCH FROM {done_at} - created_at) * 1000 AS DOUBLE PRECISION) FROM {table}
         WHERE {done_at} IS NOT NULL AND {filter}"
    )))
    .fetch_all(&mut c)
    .await?;
    Ok(Settled {
        per_second: f64::from(n) / (span_ms / 1_000.0),
        p50_ms: percentile(&spans, 0.50),
        p99_ms: percentile(&spans, 0.99),
    })
}

/// Segments made between two counts, net of those removed (`None` if either is missing).
fn made(before: Option<i64>, after: Option<i64>) -> Option<i64> {
    Some(after? - before?)
}

fn phase(requests: u32, sent: &Sent, settled: &Settled, wal_segments_made: Option<i64>) -> Phase {
    Phase {
        requests,
        accepted: sent.ids.len() as u32,
        accepted_per_second: sent.ids.len() as f64 / sent.elapsed.as_secs_f64(),
        accept_p50_ms: percentile(&sent.latencies_ms, 0.50),
        accept_p99_ms: percentile(&sent.latencies_ms, 0.99),
        settled_per_second: settled.per_second,
        settle_p50_ms: settled.p50_ms,
        settle_p99_ms: settled.p99_ms,
        timeline: timeline(sent, 1.0, f64::INFINITY),
        first_second_by_tenth: timeline(sent, 0.1, 1.0),
        wal_segments_made,
    }
}

/// The latencies of the requests sent before `until_s`, by slice of `slice_s` seconds of sending.
fn timeline(sent: &Sent, slice_s: f64, until_s: f64) -> Vec<Second> {
    let mut by_second: Vec<Vec<f64>> = Vec::new();
    for (ms, at) in sent.latencies_ms.iter().zip(&sent.sent_at_s) {
        if *at >= until_s {
            continue;
        }
        let s = (*at / slice_s) as usize;
        if by_second.len() <= s {
            by_second.resize(s + 1, Vec::new());
        }
        by_second[s].push(*ms);
    }
    by_second
        .iter()
        .enumerate()
        .map(|(s, ms)| Second {
            second: s as u32,
            accepted: ms.len() as u32,
            p50_ms: percentile(ms, 0.50),
            p99_ms: percentile(ms, 0.99),
            max_ms: ms.iter().copied().fold(0.0, f64::max),
        })
        .collect()
}

fn print_table(payments: &Phase, refunds: &Phase, audit_ok: bool, exact: bool) {
    println!(
        "\n{:<10} {:>8} {:>11} {:>8} {:>8} {:>10} {:>9} {:>9}",
        "", "accepted", "accepted/s", "p50 ms", "p99 ms", "settled/s", "p50 ms", "p99 ms"
    );
    for (name, p) in [("payments", payments), ("refunds", refunds)] {
        println!(
            "{:<10} {:>8} {:>11.1} {:>8.2} {:>8.2} {:>10.1} {:>9.1} {:>9.1}",
            name,
            p.accepted,
            p.accepted_per_second,
            p.accept_p50_ms,
            p.accept_p99_ms,
            p.settled_per_second,
            p.settle_p50_ms,
            p.settle_p99_ms
        );
    }
    for (name, p) in [("payments", payments), ("refunds", refunds)] {
        let by_second: Vec<String> = p.timeline.iter().map(|s| format!("{:.0}", s.p99_ms)).collect();
        println!("{name} p99 ms by second sent: {}", by_second.join(" "));
        let by_tenth: Vec<String> = p
            .first_second_by_tenth
            .iter()
            .map(|s| format!("{:.0}", s.p99_ms))
            .collect();
        println!("{name} p99 ms by tenth of the first second: {}", by_tenth.join(" "));
    }
    println!("audit clean: {audit_ok}; bank and business balances exact: {exact}");
}

fn print_wal(payments: &Phase, refunds: &Phase, postgres: &Value) {
    let shown = |n: Option<i64>| n.map_or("unknown".to_owned(), |n| n.to_string());
    println!(
        "WAL segments PostgreSQL made (none to recycle) while sending: payments {}, refunds {}; min_wal_size {}, max_wal_size {}",
        shown(payments.wal_segments_made),
        shown(refunds.wal_segments_made),
        postgres["min_wal_size"].as_str().unwrap_or("?"),
        postgres["max_wal_size"].as_str().unwrap_or("?"),
    );
}
