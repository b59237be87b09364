//! The bank simulator and the open-banking HTTP client: every scenario runs in-process and over HTTP.

use minipay_bank::{
    AccountFault, AccountFaults, AccountFaultsChange, Bank, BankError, BankPolicy, BankSimulator, HttpBank,
    OperationFault, RegisterAccount, ResilientBank, SimFaults, SimStats, TransferReceipt, TransferRequest,
    TransferStatus,
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
const CLOSED_ACCOUNT: &str = "1234560006";
/// A second normal account, for the platform's collections or as "another account".
const OTHER_ACCOUNT: &str = "5550000001";
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
    pull_moves_money_from_the_account_into_the_platform_account,
    push_moves_money_from_the_platform_account_into_the_account,
    a_push_beyond_the_platform_balance_is_declined_and_moves_nothing,
    a_closed_account_refuses_pushes_and_allows_pulls,
    pull_unavailable_twice_then_the_same_tran_id_executes_once,
    pull_timeout_not_executed_twice_then_the_same_tran_id_executes_once,
    push_unavailable_twice_then_the_same_tran_id_executes_once,
    push_timeout_not_executed_twice_then_the_same_tran_id_executes_once,
    pull_declined_twice_then_the_next_pull_executes,
    push_declined_twice_then_the_next_push_executes,
    pull_timeout_executed_moves_money_once_per_tran_id,
    push_timeout_executed_moves_money_once_per_tran_id,
    inquiry_faults_fail_the_inquiry_and_the_cancel,
    faults_on_one_account_do_not_affect_another,
    faults_follow_the_account_number_under_any_bank_code,
    an_outage_does_not_use_up_a_fault_and_no_times_means_until_replaced,
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
    fund_the_platform(&bank, 10_000).await;
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

// ---- The platform's account, the closed account and per-account faults ----

/// Pulls `won` from `OTHER_ACCOUNT` into the platform's account, so that it can push.
async fn fund_the_platform(bank: &Arc<dyn Bank>, won: i64) {
    let funder = register(bank, OTHER_ACCOUNT).await;
    bank.pull(&transfer(&format!("fund-{won}"), &funder, won))
        .await
        .expect("the platform collects");
}

async fn platform_balance(bank: &Arc<dyn Bank>) -> i64 {
    bank.platform_balance().await.expect("platform balance")
}

/// The balances of one account and of the platform's account, as the platform reads them.
async fn balances(bank: &Arc<dyn Bank>, fintech_use_num: &str) -> (i64, i64) {
    (balance(bank, fintech_use_num).await, platform_balance(bank).await)
}

fn declined(reason: &str) -> Result<TransferReceipt, BankError> {
    Err(BankError::Declined(reason.into()))
}

fn unavailable<T>(answer: &Result<T, BankError>) -> bool {
    matches!(answer, Err(BankError::Unavailable(_)))
}

async fn pull_moves_money_from_the_account_into_the_platform_account(bank: Arc<dyn Bank>, sim: Arc<BankSimulator>) {
    assert_eq!((platform_balance(&bank).await, sim.platform_balance()), (0, 0));
    let fin = register(&bank, NORMAL_ACCOUNT).await;
    let pull = transfer("t-in", &fin, 10_000);
    let receipt = bank.pull(&pull).await.expect("pull");
    assert_eq!(balances(&bank, &fin).await, (INITIAL_BALANCE_WON - 10_000, 10_000));
    assert_eq!(bank.pull(&pull).await, Ok(receipt), "a replay moves nothing");
    let too_much = transfer("t-too-much", &fin, INITIAL_BALANCE_WON);
    assert_eq!(bank.pull(&too_much).await, declined("insufficient balance"));
    assert_eq!(balances(&bank, &fin).await, (INITIAL_BALANCE_WON - 10_000, 10_000));
    assert_eq!(sim.platform_balance(), 10_000);
    assert_eq!(
        sim.account_balance(BANK_CODE, NORMAL_ACCOUNT),
        Some(INITIAL_BALANCE_WON - 10_000)
    );
}

async fn push_moves_money_from_the_platform_account_into_the_account(bank: Arc<dyn Bank>, sim: Arc<BankSimulator>) {
    fund_the_platform(&bank, 30_000).await;
    let fin = register(&bank, NORMAL_ACCOUNT).await;
    let push = transfer("t-out", &fin, 7_000);
    let receipt = bank.push(&push).await.expect("push");
    assert_eq!(balances(&bank, &fin).await, (INITIAL_BALANCE_WON + 7_000, 23_000));
    assert_eq!(bank.push(&push).await, Ok(receipt), "a replay moves nothing");
    assert_eq!(balances(&bank, &fin).await, (INITIAL_BALANCE_WON + 7_000, 23_000));
    assert_eq!(status(&bank, "t-out").await, TransferStatus::Completed);
    assert_eq!(
        sim.account_balance(BANK_CODE, OTHER_ACCOUNT),
        Some(INITIAL_BALANCE_WON - 30_000)
    );
}

async fn a_push_beyond_the_platform_balance_is_declined_and_moves_nothing(
    bank: Arc<dyn Bank>,
    sim: Arc<BankSimulator>,
) {
    let fin = register(&bank, NORMAL_ACCOUNT).await;
    let short = declined("the platform's account is short");
    assert_eq!(bank.push(&transfer("t-nothing-yet", &fin, 1)).await, short);
    assert_eq!(status(&bank, "t-nothing-yet").await, TransferStatus::Failed);
    fund_the_platform(&bank, 5_000).await;
    assert_eq!(bank.push(&transfer("t-one-too-many", &fin, 5_001)).await, short);
    assert_eq!(balances(&bank, &fin).await, (INITIAL_BALANCE_WON, 5_000));
    bank.push(&transfer("t-all", &fin, 5_000))
        .await
        .expect("push all of it");
    assert_eq!(balances(&bank, &fin).await, (INITIAL_BALANCE_WON + 5_000, 0));
    // The refusal was recorded: a repeat is refused even though it makes no difference now.
    assert_eq!(bank.push(&transfer("t-one-too-many", &fin, 5_001)).await, short);
    assert_eq!(sim.stats().pushes_executed, 1);
}

async fn a_closed_account_refuses_pushes_and_allows_pulls(bank: Arc<dyn Bank>, sim: Arc<BankSimulator>) {
    let closed = register(&bank, CLOSED_ACCOUNT).await;
    bank.pull(&transfer("t-from-closed", &closed, 10_000))
        .await
        .expect("a pull from a closed account");
    let push = transfer("t-to-closed", &closed, 1_000);
    assert_eq!(bank.push(&push).await, declined("the account is closed"));
    assert_eq!(bank.push(&push).await, declined("the account is closed"));
    assert_eq!(status(&bank, "t-to-closed").await, TransferStatus::Failed);
    assert_eq!(balances(&bank, &closed).await, (INITIAL_BALANCE_WON - 10_000, 10_000));
    assert_eq!(sim.stats().pushes_executed, 0);
}

/// Which way a transfer goes, so one scenario covers pulls and pushes.
#[derive(Debug, Clone, Copy)]
enum Direction {
    Pull,
    Push,
}

impl Direction {
    async fn send(self, bank: &Arc<dyn Bank>, req: &TransferRequest) -> Result<TransferReceipt, BankError> {
        match self {
            Self::Pull => bank.pull(req).await,
            Self::Push => bank.push(req).await,
        }
    }

    fn fault(self, fault: AccountFault, times: Option<u32>) -> AccountFaultsChange {
        let named = Some(fault);
        match self {
            Self::Pull => AccountFaultsChange {
                pull: named,
                times,
                ..AccountFaultsChange::default()
            },
            Self::Push => AccountFaultsChange {
                push: named,
                times,
                ..AccountFaultsChange::default()
            },
        }
    }

    fn faults_of(self, faults: AccountFaults) -> OperationFault {
        match self {
            Self::Pull => faults.pull,
            Self::Push => faults.push,
        }
    }

    /// (the account's, the platform's) balances after `transfers` of `won` each.
    fn balances_after(self, transfers: i64, won: i64) -> (i64, i64) {
        match self {
            Self::Pull => (
                INITIAL_BALANCE_WON - transfers * won,
                PLATFORM_FUNDS_WON + transfers * won,
            ),
            Self::Push => (
                INITIAL_BALANCE_WON + transfers * won,
                PLATFORM_FUNDS_WON - transfers * won,
            ),
        }
    }
}

/// What the platform's account holds before each fault scenario, so pushes can be paid.
const PLATFORM_FUNDS_WON: i64 = 100_000;
const FAULTED_TRANSFER_WON: i64 = 10_000;
const TWICE: Option<u32> = Some(2);

/// A funded platform account and the registered `NORMAL_ACCOUNT`, faulted as asked.
async fn faulted_account(
    bank: &Arc<dyn Bank>,
    sim: &BankSimulator,
    direction: Direction,
    fault: AccountFault,
) -> String {
    fund_the_platform(bank, PLATFORM_FUNDS_WON).await;
    let fin = register(bank, NORMAL_ACCOUNT).await;
    sim.change_account_faults(NORMAL_ACCOUNT, direction.fault(fault, TWICE))
        .expect("set the fault");
    fin
}

/// `unavailable` and `timeout_not_executed` leave no record: the same tran_id fails twice,
/// then executes once, and a repeat after that moves nothing.
async fn unprocessed_twice_then_the_same_tran_id_executes_once(
    bank: Arc<dyn Bank>,
    sim: Arc<BankSimulator>,
    direction: Direction,
    fault: AccountFault,
) {
    let fin = faulted_account(&bank, &sim, direction, fault).await;
    let req = transfer("t-faulted", &fin, FAULTED_TRANSFER_WON);
    for times_left in [Some(1), None] {
        let answer = direction.send(&bank, &req).await;
        match fault {
            AccountFault::Unavailable => assert!(unavailable(&answer), "{answer:?}"),
            _ => assert_eq!(answer, Err(BankError::Timeout)),
        }
        assert_eq!(status(&bank, "t-faulted").await, TransferStatus::NotFound);
        assert_eq!(
            balances(&bank, &fin).await,
            direction.balances_after(0, FAULTED_TRANSFER_WON)
        );
        let left = direction.faults_of(sim.account_faults(NORMAL_ACCOUNT).unwrap());
        assert_eq!(left.times_left, times_left, "{left:?}");
    }
    let receipt = direction.send(&bank, &req).await.expect("the third call executes");
    assert_eq!(direction.send(&bank, &req).await, Ok(receipt));
    assert_eq!(status(&bank, "t-faulted").await, TransferStatus::Completed);
    assert_eq!(
        balances(&bank, &fin).await,
        direction.balances_after(1, FAULTED_TRANSFER_WON)
    );
    assert_eq!(sim.account_faults(NORMAL_ACCOUNT), Ok(AccountFaults::default()));
}

/// `decline` is a processed refusal: recorded, so a repeat replays it without using up the
/// fault; two transfers are refused, the third executes.
async fn declined_twice_then_the_next_transfer_executes(
    bank: Arc<dyn Bank>,
    sim: Arc<BankSimulator>,
    direction: Direction,
) {
    let fin = faulted_account(&bank, &sim, direction, AccountFault::Decline).await;
    let refused = declined("declined by the bank (simulated)");
    let first = transfer("t-refused-1", &fin, FAULTED_TRANSFER_WON);
    assert_eq!(direction.send(&bank, &first).await, refused);
    assert_eq!(
        direction.send(&bank, &first).await,
        refused,
        "the repeat replays the refusal"
    );
    let second = transfer("t-refused-2", &fin, FAULTED_TRANSFER_WON);
    assert_eq!(direction.send(&bank, &second).await, refused);
    for tran_id in ["t-refused-1", "t-refused-2"] {
        assert_eq!(status(&bank, tran_id).await, TransferStatus::Failed);
    }
    assert_eq!(
        balances(&bank, &fin).await,
        direction.balances_after(0, FAULTED_TRANSFER_WON)
    );
    let third = transfer("t-accepted", &fin, FAULTED_TRANSFER_WON);
    direction.send(&bank, &third).await.expect("the fault wore off");
    assert_eq!(
        direction.send(&bank, &first).await,
        refused,
        "still refused: it was recorded"
    );
    assert_eq!(
        balances(&bank, &fin).await,
        direction.balances_after(1, FAULTED_TRANSFER_WON)
    );
}

/// `timeout_executed` moves the money and loses the answer: the inquiry says Completed and a
/// repeat answers the receipt without moving it again.
async fn timeout_executed_moves_money_once_per_tran_id(
    bank: Arc<dyn Bank>,
    sim: Arc<BankSimulator>,
    direction: Direction,
) {
    let fin = faulted_account(&bank, &sim, direction, AccountFault::TimeoutExecuted).await;
    for (n, tran_id) in [(1, "t-lost-answer-1"), (2, "t-lost-answer-2")] {
        let req = transfer(tran_id, &fin, FAULTED_TRANSFER_WON);
        assert_eq!(direction.send(&bank, &req).await, Err(BankError::Timeout));
        assert_eq!(status(&bank, tran_id).await, TransferStatus::Completed);
        let repeat = direction
            .send(&bank, &req)
            .await
            .expect("the repeat answers the receipt");
        assert_eq!(repeat.amount, FAULTED_TRANSFER_WON);
        assert_eq!(
            balances(&bank, &fin).await,
            direction.balances_after(n, FAULTED_TRANSFER_WON)
        );
    }
    let req = transfer("t-answered", &fin, FAULTED_TRANSFER_WON);
    direction.send(&bank, &req).await.expect("the fault wore off");
    assert_eq!(
        balances(&bank, &fin).await,
        direction.balances_after(3, FAULTED_TRANSFER_WON)
    );
}

async fn pull_unavailable_twice_then_the_same_tran_id_executes_once(bank: Arc<dyn Bank>, sim: Arc<BankSimulator>) {
    unprocessed_twice_then_the_same_tran_id_executes_once(bank, sim, Direction::Pull, AccountFault::Unavailable).await;
}

async fn pull_timeout_not_executed_twice_then_the_same_tran_id_executes_once(
    bank: Arc<dyn Bank>,
    sim: Arc<BankSimulator>,
) {
    let fault = AccountFault::TimeoutNotExecuted;
    unprocessed_twice_then_the_same_tran_id_executes_once(bank, sim, Direction::Pull, fault).await;
}

async fn push_unavailable_twice_then_the_same_tran_id_executes_once(bank: Arc<dyn Bank>, sim: Arc<BankSimulator>) {
    unprocessed_twice_then_the_same_tran_id_executes_once(bank, sim, Direction::Push, AccountFault::Unavailable).await;
}

async fn push_timeout_not_executed_twice_then_the_same_tran_id_executes_once(
    bank: Arc<dyn Bank>,
    sim: Arc<BankSimulator>,
) {
    let fault = AccountFault::TimeoutNotExecuted;
    unprocessed_twice_then_the_same_tran_id_executes_once(bank, sim, Direction::Push, fault).await;
}

async fn pull_declined_twice_then_the_next_pull_executes(bank: Arc<dyn Bank>, sim: Arc<BankSimulator>) {
    declined_twice_then_the_next_transfer_executes(bank, sim, Direction::Pull).await;
}

async fn push_declined_twice_then_the_next_push_executes(bank: Arc<dyn Bank>, sim: Arc<BankSimulator>) {
    declined_twice_then_the_next_transfer_executes(bank, sim, Direction::Push).await;
}

async fn pull_timeout_executed_moves_money_once_per_tran_id(bank: Arc<dyn Bank>, sim: Arc<BankSimulator>) {
    timeout_executed_moves_money_once_per_tran_id(bank, sim, Direction::Pull).await;
}

async fn push_timeout_executed_moves_money_once_per_tran_id(bank: Arc<dyn Bank>, sim: Arc<BankSimulator>) {
    timeout_executed_moves_money_once_per_tran_id(bank, sim, Direction::Push).await;
}

fn inquiry_fault(fault: AccountFault, times: Option<u32>) -> AccountFaultsChange {
    AccountFaultsChange {
        inquiry: Some(fault),
        times,
        ..AccountFaultsChange::default()
    }
}

/// An inquiry fault fails the status inquiry and the cancel, and a faulted cancel voids
/// nothing: once the fault wears off the same tran_id still executes.
async fn inquiry_faults_fail_the_inquiry_and_the_cancel(bank: Arc<dyn Bank>, sim: Arc<BankSimulator>) {
    let fin = register(&bank, NORMAL_ACCOUNT).await;
    let pull = transfer("t-unknown", &fin, 10_000);
    sim.change_account_faults(
        NORMAL_ACCOUNT,
        Direction::Pull.fault(AccountFault::TimeoutNotExecuted, Some(1)),
    )
    .unwrap();
    assert_eq!(bank.pull(&pull).await, Err(BankError::Timeout));

    sim.change_account_faults(NORMAL_ACCOUNT, inquiry_fault(AccountFault::Unavailable, TWICE))
        .unwrap();
    assert!(unavailable(&bank.transfer_status("t-unknown").await));
    assert!(unavailable(&bank.cancel_transfer("t-unknown").await));
    assert_eq!(
        status(&bank, "t-unknown").await,
        TransferStatus::NotFound,
        "worn off after two"
    );
    for (fault, times_out) in [
        (AccountFault::TimeoutNotExecuted, true),
        (AccountFault::TimeoutExecuted, true),
        // An inquiry cannot be refused: a decline answers as an outage.
        (AccountFault::Decline, false),
    ] {
        sim.change_account_faults(NORMAL_ACCOUNT, inquiry_fault(fault, Some(1)))
            .unwrap();
        let answer = bank.transfer_status("t-unknown").await;
        if times_out {
            assert_eq!(answer, Err(BankError::Timeout), "{fault:?}");
        } else {
            assert!(unavailable(&answer), "{fault:?}: {answer:?}");
        }
    }
    // An inquiry about a transfer the bank never heard of meets no account's fault.
    sim.change_account_faults(NORMAL_ACCOUNT, inquiry_fault(AccountFault::Unavailable, None))
        .unwrap();
    assert_eq!(status(&bank, "t-never-sent").await, TransferStatus::NotFound);
    sim.change_account_faults(NORMAL_ACCOUNT, inquiry_fault(AccountFault::Ok, None))
        .unwrap();

    bank.pull(&pull).await.expect("the cancel voided nothing");
    assert_eq!(status(&bank, "t-unknown").await, TransferStatus::Completed);
    assert_eq!(balances(&bank, &fin).await, (INITIAL_BALANCE_WON - 10_000, 10_000));
}

/// Every operation of one account faulted; another account's calls neither meet the faults
/// nor use them up.
async fn faults_on_one_account_do_not_affect_another(bank: Arc<dyn Bank>, sim: Arc<BankSimulator>) {
    let faulted = register(&bank, NORMAL_ACCOUNT).await;
    let other = register(&bank, OTHER_ACCOUNT).await;
    let everything = AccountFaultsChange {
        pull: Some(AccountFault::Unavailable),
        push: Some(AccountFault::Decline),
        inquiry: Some(AccountFault::TimeoutNotExecuted),
        times: Some(5),
    };
    let faults = sim.change_account_faults(NORMAL_ACCOUNT, everything).unwrap();
    bank.pull(&transfer("t-other-in", &other, 20_000)).await.expect("pull");
    bank.push(&transfer("t-other-out", &other, 5_000)).await.expect("push");
    assert_eq!(status(&bank, "t-other-in").await, TransferStatus::Completed);
    assert_eq!(bank.cancel_transfer("t-other-out").await, Ok(TransferStatus::Completed));
    assert_eq!(balances(&bank, &other).await, (INITIAL_BALANCE_WON - 15_000, 15_000));
    assert_eq!(sim.account_faults(NORMAL_ACCOUNT), Ok(faults), "nothing used up");
    assert_eq!(faults.pull.times_left, Some(5));

    assert!(unavailable(
        &bank.pull(&transfer("t-faulted-in", &faulted, 1_000)).await
    ));
    let push = bank.push(&transfer("t-faulted-out", &faulted, 1_000)).await;
    assert_eq!(push, declined("declined by the bank (simulated)"));
    assert_eq!(bank.transfer_status("t-faulted-out").await, Err(BankError::Timeout));
    assert_eq!(balance(&bank, &faulted).await, INITIAL_BALANCE_WON);
}

/// The faults are keyed by the account number: they meet the same number under another bank
/// code too.
async fn faults_follow_the_account_number_under_any_bank_code(bank: Arc<dyn Bank>, sim: Arc<BankSimulator>) {
    let mut elsewhere = register_request(NORMAL_ACCOUNT);
    elsewhere.bank_code = "088".into();
    let fin = bank
        .register_account(&elsewhere)
        .await
        .expect("register")
        .fintech_use_num;
    sim.change_account_faults(NORMAL_ACCOUNT, Direction::Pull.fault(AccountFault::Unavailable, None))
        .unwrap();
    assert!(unavailable(&bank.pull(&transfer("t-088", &fin, 1_000)).await));
    assert!(
        sim.account_faults("0001234567890")
            .is_ok_and(|f| f.pull.fault == AccountFault::Unavailable)
    );
    assert_eq!(sim.account_balance("088", NORMAL_ACCOUNT), Some(INITIAL_BALANCE_WON));
}

/// A whole-bank outage answers before the account's fault is consulted, so it does not use
/// up `times`; a fault without `times` stays until replaced.
async fn an_outage_does_not_use_up_a_fault_and_no_times_means_until_replaced(
    bank: Arc<dyn Bank>,
    sim: Arc<BankSimulator>,
) {
    let fin = register(&bank, NORMAL_ACCOUNT).await;
    let pull = transfer("t-patient", &fin, 1_000);
    sim.change_account_faults(
        NORMAL_ACCOUNT,
        Direction::Pull.fault(AccountFault::Unavailable, Some(1)),
    )
    .unwrap();
    sim.set_faults(SimFaults {
        error_rate: 1.0,
        ..SimFaults::default()
    });
    assert!(unavailable(&bank.pull(&pull).await));
    sim.set_faults(SimFaults::default());
    assert_eq!(sim.account_faults(NORMAL_ACCOUNT).unwrap().pull.times_left, Some(1));
    assert!(unavailable(&bank.pull(&pull).await), "the account's fault, once");
    bank.pull(&pull).await.expect("worn off");

    let stays = AccountFaults {
        push: OperationFault {
            fault: AccountFault::TimeoutNotExecuted,
            times_left: None,
        },
        ..AccountFaults::default()
    };
    sim.set_account_faults(NORMAL_ACCOUNT, stays).unwrap();
    let push = transfer("t-stuck", &fin, 500);
    for _ in 0..3 {
        assert_eq!(bank.push(&push).await, Err(BankError::Timeout));
    }
    sim.set_account_faults(NORMAL_ACCOUNT, AccountFaults::default())
        .unwrap();
    bank.push(&push).await.expect("replaced");
    assert_eq!(balances(&bank, &fin).await, (INITIAL_BALANCE_WON - 500, 500));
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

    // The one pull that executed is in the platform's account.
    let platform: Value = reqwest::get(format!("{base}/v2.0/account/balance/platform"))
        .await
        .expect("send")
        .json()
        .await
        .expect("json body");
    assert_eq!(platform, json!({"rsp_code": "A0000", "balance_amt": 10_000}));
    server.abort();
}

async fn put_json(url: &str, body: &Value) -> (u16, Value) {
    let response = reqwest::Client::new().put(url).json(body).send().await.expect("send");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json body"))
}

#[tokio::test]
async fn http_account_faults_admin_api() {
    let (sim, base, server) = served().await;
    let account_url = format!("{base}/admin/accounts/{NORMAL_ACCOUNT}");
    let (status, view) = put_json(
        &account_url,
        &json!({"pull": "unavailable", "inquiry": "decline", "times": 2}),
    )
    .await;
    let ok = json!({"fault": "ok", "times_left": null});
    let expected = json!({
        "account_number": NORMAL_ACCOUNT,
        "pull": {"fault": "unavailable", "times_left": 2},
        "push": ok,
        "inquiry": {"fault": "decline", "times_left": 2},
        "balances": {},
    });
    assert_eq!((status, &view), (200, &expected));
    assert_eq!(sim.account_faults(NORMAL_ACCOUNT).unwrap().pull.times_left, Some(2));

    // Operations not named keep their fault; the balance appears once the bank has the account.
    let bank = HttpBank::new(&base).expect("http bank");
    bank.register_account(&register_request(NORMAL_ACCOUNT))
        .await
        .expect("register");
    let (status, view) = put_json(&account_url, &json!({"push": "timeout_executed"})).await;
    assert_eq!(status, 200);
    assert_eq!(view["pull"], expected["pull"]);
    assert_eq!(view["push"], json!({"fault": "timeout_executed", "times_left": null}));
    let read: Value = reqwest::get(&account_url)
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(read, view);
    assert_eq!(read["balances"], json!({"004": INITIAL_BALANCE_WON}));

    for bad in [
        json!({"pull": "sometimes"}),
        json!({"pull": "decline", "times": 0}),
        json!({"pull": "decline", "times": -1}),
        json!({"times": 2}),
        json!({"pull": "ok", "mode": "chaos"}),
    ] {
        let (status, error) = put_json(&account_url, &bad).await;
        assert_eq!(
            (status, error["rsp_code"].as_str()),
            (400, Some("A0001")),
            "{bad}: {error}"
        );
    }
    let (status, _) = put_json(&format!("{base}/admin/accounts/12-34"), &json!({})).await;
    assert_eq!(status, 400);
    assert_eq!(
        reqwest::get(&account_url)
            .await
            .expect("send")
            .json::<Value>()
            .await
            .expect("json"),
        view,
        "rejected changes changed nothing"
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
