//! The bank simulator and the open-banking HTTP client: every scenario runs in-process and over HTTP.

use minipay_bank::{
    Bank, BankError, BankPolicy, BankSimulator, HttpBank, RegisterAccount, ResilientBank, SimFaults, SimStats,
    TransferRequest, TransferStatus,
};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

const INITIAL_BALANCE_WON: i64 = 100_000_000;
const BANK_CODE: &str = "004";
const NORMAL_ACCOUNT: &str = "1234567890";
const NO_FUNDS_ACCOUNT: &str = "1234560002";
const UNAVAILABLE_ACCOUNT: &str = "1234560003";
const TIMEOUT_NOT_TAKEN_ACCOUNT: &str = "1234560004";
const TIMEOUT_TAKEN_ACCOUNT: &str = "1234560005";
const REFUSED_ACCOUNT: &str = "1234560009";
/// Long enough that a deadline well below it is sure to fire first.
const SLOW_BANK_LATENCY_MS: u64 = 300;
/// Roomy enough for a request to reach the local simulator before the caller gives up, so a
/// timed-out pull has certainly been committed.
const SHORT_DEADLINE_MS: u64 = 100;

/// Writes each scenario's two tests: against the simulator in-process and over HTTP.
macro_rules! on_both_transports {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            use super::*;

            #[tokio::test]
            async fn in_process() {
                let sim = Arc::new(BankSimulator::new());
                super::$scenario(sim.clone(), sim).await;
            }

            #[tokio::test]
            async fn over_http() {
                let sim = Arc::new(BankSimulator::new());
                let (addr, server) = sim.clone().serve("127.0.0.1:0").await.expect("bind the simulator");
                let bank = Arc::new(HttpBank::new(&format!("http://{addr}")).expect("http bank"));
                super::$scenario(bank, sim).await;
                server.abort();
            }
        }
    )*};
}

on_both_transports!(
    registration_normal_and_refused,
    balances_by_account_number,
    pull_moves_money_once_and_replay_returns_same_receipt,
    pulls_beyond_the_balance_are_declined,
    unavailable_pull_is_not_recorded,
    timeout_without_taking_money_is_failed,
    timeout_after_taking_money_is_completed,
    push_adds_to_the_balance,
    error_rate_one_answers_unavailable_and_changes_nothing,
    slow_balance_inquiry_times_out_under_policy,
    slow_pull_commits_before_answering,
    resilient_retry_after_unavailable_pulls_once,
    cancel_voids_an_unexecuted_transfer_for_good,
    cancel_after_execution_reports_completed,
    registration_checks_the_holder_name,
);

fn register_request(account_number: &str) -> RegisterAccount {
    RegisterAccount {
        bank_code: BANK_CODE.into(),
        account_number: account_number.into(),
        holder_name: "Kim".into(),
    }
}

async fn register(bank: &Arc<dyn Bank>, account_number: &str) -> String {
    bank.register_account(&register_request(account_number))
        .await
        .expect("register")
        .fintech_use_num
}

fn transfer(tran_id: &str, fintech_use_num: &str, amount: i64) -> TransferRequest {
    TransferRequest {
        tran_id: tran_id.into(),
        fintech_use_num: fintech_use_num.into(),
        amount,
        print_content: "minipay".into(),
    }
}

async fn balance(bank: &Arc<dyn Bank>, fintech_use_num: &str) -> i64 {
    bank.balance(fintech_use_num).await.expect("balance")
}

async fn status(bank: &Arc<dyn Bank>, tran_id: &str) -> TransferStatus {
    bank.transfer_status(tran_id).await.expect("status inquiry")
}

async fn cancel_voids_an_unexecuted_transfer_for_good(bank: Arc<dyn Bank>, sim: Arc<BankSimulator>) {
    let fin = register(&bank, NORMAL_ACCOUNT).await;
    // Never seen: the cancel voids the id, and a pull arriving later under it is refused.
    assert_eq!(bank.cancel_transfer("T-late").await.unwrap(), TransferStatus::Failed);
    assert_eq!(status(&bank, "T-late").await, TransferStatus::Failed);
    let late = bank.pull(&transfer("T-late", &fin, 10_000)).await;
    assert!(matches!(late, Err(BankError::Declined(_))), "{late:?}");
    assert_eq!(balance(&bank, &fin).await, INITIAL_BALANCE_WON);
    assert_eq!(sim.stats().pulls_executed, 0);
    // Cancelling again changes nothing.
    assert_eq!(bank.cancel_transfer("T-late").await.unwrap(), TransferStatus::Failed);
    assert_eq!(sim.stats().cancels, 2);
}

async fn cancel_after_execution_reports_completed(bank: Arc<dyn Bank>, sim: Arc<BankSimulator>) {
    let fin = register(&bank, NORMAL_ACCOUNT).await;
    bank.pull(&transfer("T-done", &fin, 10_000)).await.unwrap();
    assert_eq!(bank.cancel_transfer("T-done").await.unwrap(), TransferStatus::Completed);
    assert_eq!(status(&bank, "T-done").await, TransferStatus::Completed);
    assert_eq!(balance(&bank, &fin).await, INITIAL_BALANCE_WON - 10_000);
    assert_eq!(sim.stats().pulls_executed, 1);
}

async fn registration_checks_the_holder_name(bank: Arc<dyn Bank>, _sim: Arc<BankSimulator>) {
    register(&bank, NORMAL_ACCOUNT).await; // as "Kim"
    let mut other = register_request(NORMAL_ACCOUNT);
    other.holder_name = "  kim ".into();
    assert!(
        bank.register_account(&other).await.is_ok(),
        "case and spaces do not matter"
    );
    other.holder_name = "Lee".into();
    let refused = bank.register_account(&other).await;
    assert!(matches!(refused, Err(BankError::Declined(_))), "{refused:?}");
}

async fn registration_normal_and_refused(bank: Arc<dyn Bank>, sim: Arc<BankSimulator>) {
    let account = bank
        .register_account(&register_request(NORMAL_ACCOUNT))
        .await
        .expect("register");
    assert_eq!(account.fintech_use_num, "004000000000001234567890");
    // Registering again is harmless and yields the same handle.
    assert_eq!(register(&bank, NORMAL_ACCOUNT).await, account.fintech_use_num);

    let refused = bank.register_account(&register_request(REFUSED_ACCOUNT)).await;
    assert_eq!(refused, Err(BankError::Declined("registration refused".into())));
    let malformed = bank.register_account(&register_request("12-34-56")).await;
    assert!(matches!(malformed, Err(BankError::Declined(_))), "{malformed:?}");
    assert_eq!(sim.stats().registrations, 4);
}

async fn balances_by_account_number(bank: Arc<dyn Bank>, _sim: Arc<BankSimulator>) {
    let normal = register(&bank, NORMAL_ACCOUNT).await;
    let no_funds = register(&bank, NO_FUNDS_ACCOUNT).await;
    assert_eq!(balance(&bank, &normal).await, INITIAL_BALANCE_WON);
    assert_eq!(balance(&bank, &no_funds).await, 0);

    // A restarted simulator has never seen the number, but knows it from its digits.
    assert_eq!(balance(&bank, "004000000000009876543210").await, INITIAL_BALANCE_WON);
    let unknown = Err(BankError::Declined("unknown account".into()));
    assert_eq!(bank.balance("not-a-fin-num").await, unknown);
    assert_eq!(bank.balance("004000000000001234560009").await, unknown);
}

async fn pull_moves_money_once_and_replay_returns_same_receipt(bank: Arc<dyn Bank>, sim: Arc<BankSimulator>) {
    let fin = register(&bank, NORMAL_ACCOUNT).await;
    let pull = transfer("charge-1", &fin, 10_000);

    let receipt = bank.pull(&pull).await.expect("pull");
    assert_eq!(receipt.amount, 10_000);
    assert!(!receipt.bank_tran_id.is_empty());
    assert_eq!(balance(&bank, &fin).await, INITIAL_BALANCE_WON - 10_000);

    let replay = bank.pull(&pull).await.expect("replayed pull");
    assert_eq!(replay, receipt);
    assert_eq!(balance(&bank, &fin).await, INITIAL_BALANCE_WON - 10_000);
    assert_eq!(sim.pull_attempts("charge-1"), 2);
    let stats = sim.stats();
    assert_eq!((stats.pulls, stats.pulls_executed), (2, 1));

    assert_eq!(status(&bank, "charge-1").await, TransferStatus::Completed);
    assert_eq!(status(&bank, "never-sent").await, TransferStatus::NotFound);

    let second = bank
        .pull(&transfer("charge-2", &fin, 5_000))
        .await
        .expect("second pull");
    assert_ne!(second.bank_tran_id, receipt.bank_tran_id);
}

async fn pulls_beyond_the_balance_are_declined(bank: Arc<dyn Bank>, sim: Arc<BankSimulator>) {
    let insufficient = Err(BankError::Declined("insufficient balance".into()));
    let no_funds = register(&bank, NO_FUNDS_ACCOUNT).await;
    assert_eq!(bank.pull(&transfer("t-broke", &no_funds, 1)).await, insufficient);
    assert_eq!(status(&bank, "t-broke").await, TransferStatus::Failed);

    let normal = register(&bank, NORMAL_ACCOUNT).await;
    let too_much = transfer("t-too-much", &normal, INITIAL_BALANCE_WON + 1);
    assert_eq!(bank.pull(&too_much).await, insufficient);
    // The refusal is remembered too: a replay is declined again.
    assert_eq!(bank.pull(&too_much).await, insufficient);
    assert_eq!(status(&bank, "t-too-much").await, TransferStatus::Failed);
    assert_eq!(balance(&bank, &normal).await, INITIAL_BALANCE_WON);
    assert_eq!(sim.stats().pulls_executed, 0);
}

async fn unavailable_pull_is_not_recorded(bank: Arc<dyn Bank>, sim: Arc<BankSimulator>) {
    let fin = register(&bank, UNAVAILABLE_ACCOUNT).await;
    let pull = transfer("t-503", &fin, 10_000);
    assert!(matches!(bank.pull(&pull).await, Err(BankError::Unavailable(_))));
    assert_eq!(status(&bank, "t-503").await, TransferStatus::NotFound);
    // Never processed, so never remembered: a retry meets the same outage.
    assert!(matches!(bank.pull(&pull).await, Err(BankError::Unavailable(_))));
    assert_eq!(sim.pull_attempts("t-503"), 2);
    assert_eq!(sim.stats().pulls_executed, 0);
    assert_eq!(balance(&bank, &fin).await, INITIAL_BALANCE_WON);
}

async fn timeout_without_taking_money_is_failed(bank: Arc<dyn Bank>, sim: Arc<BankSimulator>) {
    let fin = register(&bank, TIMEOUT_NOT_TAKEN_ACCOUNT).await;
    let pull = transfer("t-504", &fin, 10_000);
    assert_eq!(bank.pull(&pull).await, Err(BankError::Timeout));
    assert_eq!(status(&bank, "t-504").await, TransferStatus::Failed);
    assert_eq!(balance(&bank, &fin).await, INITIAL_BALANCE_WON);
    assert_eq!(sim.stats().pulls_executed, 0);
}

async fn timeout_after_taking_money_is_completed(bank: Arc<dyn Bank>, sim: Arc<BankSimulator>) {
    let fin = register(&bank, TIMEOUT_TAKEN_ACCOUNT).await;
    let pull = transfer("t-taken", &fin, 10_000);
    assert_eq!(bank.pull(&pull).await, Err(BankError::Timeout));
    assert_eq!(status(&bank, "t-taken").await, TransferStatus::Completed);
    assert_eq!(bank.pull(&pull).await, Err(BankError::Timeout));
    assert_eq!(balance(&bank, &fin).await, INITIAL_BALANCE_WON - 10_000);
    assert_eq!(sim.pull_attempts("t-taken"), 2);
    assert_eq!(sim.stats().pulls_executed, 1);
}

async fn push_adds_to_the_balance(bank: Arc<dyn Bank>, sim: Arc<BankSimulator>) {
    let normal = register(&bank, NORMAL_ACCOUNT).await;
    let no_funds = register(&bank, NO_FUNDS_ACCOUNT).await;
    let payout = transfer("payout-1", &normal, 7_000);
    let receipt = bank.push(&payout).await.expect("push");
    assert_eq!(receipt.amount, 7_000);
    assert_eq!(bank.push(&payout).await, Ok(receipt));
    bank.push(&transfer("payout-2", &no_funds, 3_000))
        .await
        .expect("push to an empty account");

    assert_eq!(balance(&bank, &normal).await, INITIAL_BALANCE_WON + 7_000);
    assert_eq!(balance(&bank, &no_funds).await, 3_000);
    assert_eq!(status(&bank, "payout-1").await, TransferStatus::Completed);
    let stats = sim.stats();
    assert_eq!((stats.pushes, stats.pushes_executed), (3, 2));
}

async fn error_rate_one_answers_unavailable_and_changes_nothing(bank: Arc<dyn Bank>, sim: Arc<BankSimulator>) {
    let fin = register(&bank, NORMAL_ACCOUNT).await;
    sim.set_faults(SimFaults {
        latency_ms: 0,
        error_rate: 1.0,
        ..SimFaults::default()
    });

    let unavailable = |r: &Result<_, BankError>| matches!(r, Err(BankError::Unavailable(_)));
    assert!(unavailable(
        &bank
            .register_account(&register_request(NORMAL_ACCOUNT))
            .await
            .map(|_| ())
    ));
    assert!(unavailable(&bank.balance(&fin).await.map(|_| ())));
    assert!(unavailable(
        &bank.pull(&transfer("t-out", &fin, 10_000)).await.map(|_| ())
    ));
    assert!(unavailable(
        &bank.push(&transfer("t-in", &fin, 10_000)).await.map(|_| ())
    ));
    assert!(unavailable(&bank.transfer_status("t-out").await.map(|_| ())));

    sim.set_faults(SimFaults::default());
    assert_eq!(balance(&bank, &fin).await, INITIAL_BALANCE_WON);
    assert_eq!(status(&bank, "t-out").await, TransferStatus::NotFound);
    assert_eq!(status(&bank, "t-in").await, TransferStatus::NotFound);
    let stats = sim.stats();
    assert_eq!((stats.pulls_executed, stats.pushes_executed), (0, 0));
}

async fn slow_balance_inquiry_times_out_under_policy(bank: Arc<dyn Bank>, sim: Arc<BankSimulator>) {
    let fin = register(&bank, NORMAL_ACCOUNT).await;
    sim.set_faults(SimFaults {
        latency_ms: SLOW_BANK_LATENCY_MS,
        error_rate: 0.0,
        ..SimFaults::default()
    });
    let policy = BankPolicy {
        balance_timeout_ms: SHORT_DEADLINE_MS,
        ..BankPolicy::default()
    };
    let resilient = ResilientBank::new(bank, policy);
    assert_eq!(resilient.balance(&fin).await, Err(BankError::Timeout));
}

async fn slow_pull_commits_before_answering(bank: Arc<dyn Bank>, sim: Arc<BankSimulator>) {
    let fin = register(&bank, NORMAL_ACCOUNT).await;
    sim.set_faults(SimFaults {
        latency_ms: SLOW_BANK_LATENCY_MS,
        error_rate: 0.0,
        ..SimFaults::default()
    });
    let policy = BankPolicy {
        transfer_timeout_ms: SHORT_DEADLINE_MS,
        ..BankPolicy::default()
    };
    let resilient = ResilientBank::new(bank.clone(), policy);
    assert_eq!(
        resilient.pull(&transfer("t-slow", &fin, 10_000)).await,
        Err(BankError::Timeout)
    );

    // The caller gave up, but the bank had already moved the money: ask, never pull again.
    sim.set_faults(SimFaults::default());
    assert_eq!(status(&bank, "t-slow").await, TransferStatus::Completed);
    assert_eq!(balance(&bank, &fin).await, INITIAL_BALANCE_WON - 10_000);
}

async fn resilient_retry_after_unavailable_pulls_once(bank: Arc<dyn Bank>, sim: Arc<BankSimulator>) {
    /// The outage lasts a few retry delays, so the pull fails at least once, then succeeds.
    const OUTAGE_MS: u64 = 30;
    let fin = register(&bank, NORMAL_ACCOUNT).await;
    sim.set_faults(SimFaults {
        latency_ms: 0,
        error_rate: 1.0,
        ..SimFaults::default()
    });
    let recovery = {
        let sim = sim.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(OUTAGE_MS)).await;
            sim.set_faults(SimFaults::default());
        })
    };
    let policy = BankPolicy {
        retries_max: 10,
        retry_delay_ms: 10,
        ..BankPolicy::default()
    };
    let resilient = ResilientBank::new(bank.clone(), policy);
    let pull = transfer("t-retried", &fin, 10_000);

    let receipt = resilient.pull(&pull).await.expect("pull after the outage");
    recovery.await.expect("recovery task");
    assert!(sim.pull_attempts("t-retried") >= 2, "the first attempt met the outage");
    assert_eq!(sim.stats().pulls_executed, 1);
    assert_eq!(balance(&bank, &fin).await, INITIAL_BALANCE_WON - 10_000);

    assert_eq!(resilient.pull(&pull).await, Ok(receipt));
    assert_eq!(sim.stats().pulls_executed, 1);
    assert_eq!(balance(&bank, &fin).await, INITIAL_BALANCE_WON - 10_000);
}

// ---- HTTP only: the wire format, the fault knobs and the client's error mapping ----

async fn served() -> (Arc<BankSimulator>, String, tokio::task::JoinHandle<()>) {
    let sim = Arc::new(BankSimulator::new());
    let (addr, server) = sim.clone().serve("127.0.0.1:0").await.expect("bind the simulator");
    (sim, format!("http://{addr}"), server)
}

async fn post_json(url: &str, body: &Value) -> (u16, Value) {
    let response = reqwest::Client::new().post(url).json(body).send().await.expect("send");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json body"))
}

#[tokio::test]
async fn http_wire_format_matches_the_open_banking_api() {
    let (_sim, base, server) = served().await;
    let (status, registered) = post_json(
        &format!("{base}/v2.0/user/register"),
        &json!({"bank_code_std": "004", "account_num": NORMAL_ACCOUNT, "account_holder_name": "Kim"}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        registered,
        json!({"rsp_code": "A0000", "fintech_use_num": "004000000000001234567890"})
    );

    let balance_url = format!("{base}/v2.0/account/balance/fin_num?fintech_use_num=004000000000001234567890");
    let balance: Value = reqwest::get(&balance_url)
        .await
        .expect("send")
        .json()
        .await
        .expect("json body");
    assert_eq!(
        balance,
        json!({"rsp_code": "A0000", "balance_amt": INITIAL_BALANCE_WON})
    );

    let withdraw = |fin: &str| json!({"bank_tran_id": format!("w-{fin}"), "fintech_use_num": fin, "tran_amt": 10_000, "print_content": "x"});
    let withdraw_url = format!("{base}/v2.0/transfer/withdraw/fin_num");
    let (status, receipt) = post_json(&withdraw_url, &withdraw("004000000000001234567890")).await;
    assert_eq!(status, 200);
    assert_eq!(receipt["rsp_code"], "A0000");
    assert_eq!(receipt["bank_tran_id"], "w-004000000000001234567890");
    assert_eq!(receipt["tran_amt"], 10_000);
    assert!(receipt["bank_rsp_tran_id"].as_str().is_some_and(|id| !id.is_empty()));

    for (fin, http_status, rsp_code) in [
        ("004000000000001234560002", 422, "A0002"),
        ("004000000000001234560003", 503, "A0007"),
        ("004000000000001234560004", 504, "A0008"),
    ] {
        let (status, error) = post_json(&withdraw_url, &withdraw(fin)).await;
        assert_eq!(
            (status, error["rsp_code"].as_str()),
            (http_status, Some(rsp_code)),
            "{fin}: {error}"
        );
    }

    let (status, result) = post_json(
        &format!("{base}/v2.0/transfer/result"),
        &json!({"bank_tran_id": "w-004000000000001234560004"}),
    )
    .await;
    assert_eq!(
        (status, result),
        (200, json!({"rsp_code": "A0000", "status": "failed"}))
    );
    server.abort();
}

#[tokio::test]
async fn http_malformed_requests_answer_400() {
    let (_sim, base, server) = served().await;
    let client = reqwest::Client::new();
    let broken = client
        .post(format!("{base}/v2.0/transfer/withdraw/fin_num"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("send");
    assert_eq!(broken.status().as_u16(), 400);
    // A missing field is malformed too, never a 422 "declined".
    let (status, error) = post_json(
        &format!("{base}/v2.0/transfer/deposit/fin_num"),
        &json!({"tran_amt": 1}),
    )
    .await;
    assert_eq!((status, error["rsp_code"].as_str()), (400, Some("A0001")));
    let no_query = client
        .get(format!("{base}/v2.0/account/balance/fin_num"))
        .send()
        .await
        .expect("send");
    assert_eq!(no_query.status().as_u16(), 400);
    server.abort();
}

#[tokio::test]
async fn http_fault_knobs_and_stats() {
    let (sim, base, server) = served().await;
    let client = reqwest::Client::new();
    let faults_url = format!("{base}/admin/faults");
    let set = client
        .put(&faults_url)
        .json(&json!({"latency_ms": 5, "error_rate": 0.25}))
        .send()
        .await
        .expect("send");
    assert_eq!(set.status().as_u16(), 200);
    let echoed: SimFaults = set.json().await.expect("faults");
    assert_eq!(
        echoed,
        SimFaults {
            latency_ms: 5,
            error_rate: 0.25,
            ..SimFaults::default()
        }
    );
    assert_eq!(sim.faults(), echoed);
    let read: SimFaults = client
        .get(&faults_url)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("faults");
    assert_eq!(read, echoed);

    sim.set_faults(SimFaults::default());
    let bank = HttpBank::new(&base).expect("http bank");
    bank.balance("004000000000001234567890").await.expect("balance");
    let stats: SimStats = client
        .get(format!("{base}/admin/stats"))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("stats");
    assert_eq!(
        stats,
        SimStats {
            balance_inquiries: 1,
            ..SimStats::default()
        }
    );
    server.abort();
}

#[tokio::test]
async fn http_client_maps_transport_failures() {
    assert!(matches!(HttpBank::new("not a url"), Err(BankError::Protocol(_))));

    // Nothing listens on a port just released: the request was certainly not sent.
    let port = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let closed = HttpBank::new(&format!("http://127.0.0.1:{port}")).expect("http bank");
    let pull = transfer("t-refused", "004000000000001234567890", 1);
    assert!(matches!(closed.pull(&pull).await, Err(BankError::Unavailable(_))));

    // Something that is not the bank API answers 404: a protocol error, not a decline.
    let (_sim, base, server) = served().await;
    let lost = HttpBank::new(&format!("{base}/elsewhere/")).expect("http bank");
    assert!(matches!(
        lost.balance("004000000000001234567890").await,
        Err(BankError::Protocol(_))
    ));

    // A trailing slash on the base url is tolerated.
    let slashed = HttpBank::new(&format!("{base}/")).expect("http bank");
    assert_eq!(
        slashed.balance("004000000000001234567890").await,
        Ok(INITIAL_BALANCE_WON)
    );
    server.abort();
}
