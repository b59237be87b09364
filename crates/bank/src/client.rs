//! The open-banking HTTP client (`HttpBank`) and the wire format it shares with the simulator.

use crate::{Bank, BankError, FinAccount, RegisterAccount, TransferReceipt, TransferRequest, TransferStatus};
use async_trait::async_trait;
use reqwest::{StatusCode, Url};
use serde::de::DeserializeOwned;
use std::time::Duration;

/// Generous on purpose: it only bounds establishing the TCP connection. Per-call deadlines
/// belong to `ResilientBank`, which knows how long each kind of call may take.
const CONNECT_TIMEOUT_MS: u64 = 2_000;

/// The open-banking (KFTC-flavoured) JSON API: paths, bodies and response codes. The simulator
/// serves exactly this and `HttpBank` speaks exactly this, so both use these definitions.
pub(crate) mod wire {
    use crate::TransferStatus;
    use serde::{Deserialize, Serialize};

    pub(crate) const REGISTER_PATH: &str = "/v2.0/user/register";
    pub(crate) const BALANCE_PATH: &str = "/v2.0/account/balance/fin_num";
    /// The platform's own account (answered with `BalanceResponseBody`); no query.
    pub(crate) const PLATFORM_BALANCE_PATH: &str = "/v2.0/account/balance/platform";
    /// Drawing transfer: the pull.
    pub(crate) const WITHDRAW_PATH: &str = "/v2.0/transfer/withdraw/fin_num";
    /// Deposit transfer: the push.
    pub(crate) const DEPOSIT_PATH: &str = "/v2.0/transfer/deposit/fin_num";
    pub(crate) const TRANSFER_RESULT_PATH: &str = "/v2.0/transfer/result";
    /// Voids a transfer id the bank has not executed (same bodies as the result inquiry).
    pub(crate) const TRANSFER_CANCEL_PATH: &str = "/v2.0/transfer/cancel";

    pub(crate) const RSP_CODE_OK: &str = "A0000";
    pub(crate) const RSP_CODE_BAD_REQUEST: &str = "A0001";
    pub(crate) const RSP_CODE_DECLINED: &str = "A0002";
    pub(crate) const RSP_CODE_UNAVAILABLE: &str = "A0007";
    pub(crate) const RSP_CODE_TIMEOUT: &str = "A0008";
    pub(crate) const RSP_CODE_INTERNAL: &str = "A0009";

    #[derive(Debug, Serialize, Deserialize)]
    pub(crate) struct RegisterRequestBody {
        pub bank_code_std: String,
        pub account_num: String,
        pub account_holder_name: String,
    }

    #[derive(Debug, Serialize, Deserialize)]
    pub(crate) struct RegisterResponseBody {
        pub rsp_code: String,
        pub fintech_use_num: String,
    }

    #[derive(Debug, Serialize, Deserialize)]
    pub(crate) struct BalanceQuery {
        pub fintech_use_num: String,
    }

    #[derive(Debug, Serialize, Deserialize)]
    pub(crate) struct BalanceResponseBody {
        pub rsp_code: String,
        pub balance_amt: i64,
    }

    /// `bank_tran_id` is the platform's `tran_id`: the key the bank executes at most once.
    #[derive(Debug, Serialize, Deserialize)]
    pub(crate) struct TransferRequestBody {
        pub bank_tran_id: String,
        pub fintech_use_num: String,
        pub tran_amt: i64,
        pub print_content: String,
    }

    /// `bank_tran_id` echoes the platform's id; `bank_rsp_tran_id` is the bank's own.
    #[derive(Debug, Serialize, Deserialize)]
    pub(crate) struct TransferResponseBody {
        pub rsp_code: String,
        pub bank_tran_id: String,
        pub bank_rsp_tran_id: String,
        pub tran_amt: i64,
    }

    #[derive(Debug, Serialize, Deserialize)]
    pub(crate) struct TransferResultRequestBody {
        pub bank_tran_id: String,
    }

    #[derive(Debug, Serialize, Deserialize)]
    pub(crate) struct TransferResultResponseBody {
        pub rsp_code: String,
        pub status: TransferStatus,
    }

    /// The body of every non-2xx answer.
    #[derive(Debug, Serialize, Deserialize)]
    pub(crate) struct ErrorBody {
        pub rsp_code: String,
        pub rsp_message: String,
    }
}

/// A bank reached over the open-banking HTTP API (a real one, or `minipay sim bank`).
#[derive(Debug, Clone)]
pub struct HttpBank {
    http: reqwest::Client,
    /// Always without a trailing slash, so `base_url + PATH` is the endpoint.
    base_url: String,
}

impl HttpBank {
    /// `base_url` like `http://127.0.0.1:9000`; a trailing slash is tolerated.
    pub fn new(base_url: &str) -> Result<Self, BankError> {
        let base_url = base_url.trim_end_matches('/').to_owned();
        // Fail at start-up rather than on the first payment.
        Url::parse(&base_url).map_err(|e| BankError::Protocol(format!("invalid bank base url {base_url:?}: {e}")))?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(CONNECT_TIMEOUT_MS))
            .build()
            .map_err(|e| BankError::Protocol(format!("cannot build the bank http client: {e}")))?;
        Ok(Self { http, base_url })
    }

    fn endpoint(&self, path: &str) -> Result<Url, BankError> {
        let url = format!("{}{path}", self.base_url);
        Url::parse(&url).map_err(|e| BankError::Protocol(format!("invalid bank url {url:?}: {e}")))
    }

    async fn post<B: serde::Serialize, R: DeserializeOwned>(&self, path: &str, body: &B) -> Result<R, BankError> {
        let request = self.http.post(self.endpoint(path)?).json(body);
        answer(request.send().await).await
    }

    async fn get<R: DeserializeOwned>(&self, url: Url) -> Result<R, BankError> {
        answer(self.http.get(url).send().await).await
    }

    async fn transfer(&self, path: &str, req: &TransferRequest) -> Result<TransferReceipt, BankError> {
        let body = wire::TransferRequestBody {
            bank_tran_id: req.tran_id.clone(),
            fintech_use_num: req.fintech_use_num.clone(),
            tran_amt: req.amount,
            print_content: req.print_content.clone(),
        };
        let executed: wire::TransferResponseBody = self.post(path, &body).await?;
        // An answer about some other transfer tells us nothing about ours.
        if executed.bank_tran_id != req.tran_id {
            return Err(BankError::Protocol(format!(
                "answer for transfer {:?} to a request for {:?}",
                executed.bank_tran_id, req.tran_id
            )));
        }
        Ok(TransferReceipt {
            bank_tran_id: executed.bank_rsp_tran_id,
            amount: executed.tran_amt,
        })
    }
}

/// Turns whatever came back into the answer or the `BankError` that says what the caller may
/// conclude about the bank's state.
async fn answer<R: DeserializeOwned>(sent: reqwest::Result<reqwest::Response>) -> Result<R, BankError> {
    let response = sent.map_err(send_error)?;
    let status = response.status();
    // A body that breaks off mid-read leaves the outcome as unknown as no answer at all.
    let body = response.bytes().await.map_err(|_| BankError::Timeout)?;
    match status {
        s if s.is_success() => {
            let code: RspCodeOnly = parse(status, &body)?;
            if code.rsp_code != wire::RSP_CODE_OK {
                return Err(BankError::Protocol(format!(
                    "HTTP {status} with rsp_code {}",
                    code.rsp_code
                )));
            }
            parse(status, &body)
        }
        StatusCode::UNPROCESSABLE_ENTITY => {
            let refusal: wire::ErrorBody = parse(status, &body)?;
            Err(BankError::Declined(refusal.rsp_message))
        }
        // No body needed: a 503 (or 504) from a proxy in front of the bank means the same thing.
        StatusCode::SERVICE_UNAVAILABLE => Err(BankError::Unavailable(error_message(&body))),
        StatusCode::GATEWAY_TIMEOUT => Err(BankError::Timeout),
        _ => Err(BankError::Protocol(format!("HTTP {status}: {}", error_message(&body)))),
    }
}

#[derive(serde::Deserialize)]
struct RspCodeOnly {
    rsp_code: String,
}

fn parse<R: DeserializeOwned>(status: StatusCode, body: &[u8]) -> Result<R, BankError> {
    serde_json::from_slice(body).map_err(|e| BankError::Protocol(format!("HTTP {status} with an unreadable body: {e}")))
}

/// The bank's own words if it sent an error body, otherwise a short excerpt of whatever came.
fn error_message(body: &[u8]) -> String {
    /// Enough to recognise a proxy's error page in a log line without copying all of it.
    const EXCERPT_CHARS: usize = 200;
    match serde_json::from_slice::<wire::ErrorBody>(body) {
        Ok(error) => error.rsp_message,
        Err(_) => String::from_utf8_lossy(body).chars().take(EXCERPT_CHARS).collect(),
    }
}

fn send_error(e: reqwest::Error) -> BankError {
    if e.is_builder() {
        BankError::Protocol(format!("cannot build the bank request: {e}"))
    } else if e.is_connect() {
        // Checked before `is_timeout`: a connect timeout also never sent the request.
        BankError::Unavailable(format!("cannot connect to the bank: {e}"))
    } else {
        // A timeout or a connection that broke after the request may have reached the bank.
        BankError::Timeout
    }
}

#[async_trait]
impl Bank for HttpBank {
    async fn register_account(&self, req: &RegisterAccount) -> Result<FinAccount, BankError> {
        let body = wire::RegisterRequestBody {
            bank_code_std: req.bank_code.clone(),
            account_num: req.account_number.clone(),
            account_holder_name: req.holder_name.clone(),
        };
        let registered: wire::RegisterResponseBody = self.post(wire::REGISTER_PATH, &body).await?;
        Ok(FinAccount {
            fintech_use_num: registered.fintech_use_num,
        })
    }

    async fn balance(&self, fintech_use_num: &str) -> Result<i64, BankError> {
        let mut url = self.endpoint(wire::BALANCE_PATH)?;
        url.query_pairs_mut().append_pair("fintech_use_num", fintech_use_num);
        let balance: wire::BalanceResponseBody = self.get(url).await?;
        Ok(balance.balance_amt)
    }

    async fn platform_balance(&self) -> Result<i64, BankError> {
        let balance: wire::BalanceResponseBody = self.get(self.endpoint(wire::PLATFORM_BALANCE_PATH)?).await?;
        Ok(balance.balance_amt)
    }

    async fn pull(&self, req: &TransferRequest) -> Result<TransferReceipt, BankError> {
        self.transfer(wire::WITHDRAW_PATH, req).await
    }

    async fn push(&self, req: &TransferRequest) -> Result<TransferReceipt, BankError> {
        self.transfer(wire::DEPOSIT_PATH, req).await
    }

    async fn transfer_status(&self, tran_id: &str) -> Result<TransferStatus, BankError> {
        let body = wire::TransferResultRequestBody {
            bank_tran_id: tran_id.to_owned(),
        };
        let result: wire::TransferResultResponseBody = self.post(wire::TRANSFER_RESULT_PATH, &body).await?;
        Ok(result.status)
    }

    async fn cancel_transfer(&self, tran_id: &str) -> Result<TransferStatus, BankError> {
        let body = wire::TransferResultRequestBody {
            bank_tran_id: tran_id.to_owned(),
        };
        let result: wire::TransferResultResponseBody = self.post(wire::TRANSFER_CANCEL_PATH, &body).await?;
        Ok(result.status)
    }
}
