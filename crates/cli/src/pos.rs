//! `minipay pos`: a POS terminal on the command line — one request over TCP in the POS wire
//! format (deflate + AES-256-GCM under the terminal's key), its answer printed as JSON.

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use minipay_gateway::pos_client::PosClient;
use minipay_gateway::request::{ApprovalInput, CardInput, CashReceiptInput, OriginalInput, TxType};
use minipay_wire::{Flags, TerminalKey};

/// Sends one request as a terminal and prints the answer.
#[derive(clap::Args)]
pub struct PosArgs {
    /// The gateway's POS listener (`MINIPAY_POS_LISTEN` of the server).
    #[arg(long, env = "MINIPAY_POS_ADDR", default_value = "127.0.0.1:9100")]
    addr: String,
    /// The terminal id (8 characters) from `POST /v1/admin/merchants/{id}/terminals`.
    #[arg(long, env = "MINIPAY_POS_TERMINAL")]
    terminal: String,
    /// The terminal's key (base64) from the same answer.
    #[arg(long, env = "MINIPAY_POS_KEY", hide_env_values = true)]
    key: String,
    /// card_approval, card_cancel, cash_receipt or cash_receipt_cancel.
    #[arg(long, default_value = "card_approval")]
    tx_type: String,
    /// The terminal's sequence number [default: derived from the time].
    #[arg(long)]
    seq_no: Option<u64>,
    /// Won.
    #[arg(long)]
    amount: i64,
    /// The card number (test cards: the last 4 digits choose the simulator's behaviour).
    #[arg(long)]
    pan: Option<String>,
    /// `YYMM`.
    #[arg(long, default_value = "2912")]
    expiry: String,
    #[arg(long)]
    installment_months: Option<u8>,
    /// For a cancel: the approval number of the sale.
    #[arg(long)]
    original_approval_no: Option<String>,
    /// For a cancel: when the sale was approved, `YYYYMMDDhhmmss`.
    #[arg(long)]
    original_approved_at: Option<String>,
    /// For a cash receipt: `0` phone, `1` business, `2` card; and the number.
    #[arg(long)]
    receipt_id_type: Option<String>,
    #[arg(long)]
    receipt_id_number: Option<String>,
    /// Send the body without deflate (it is always encrypted: the gateway refuses clear frames).
    #[arg(long)]
    no_deflate: bool,
}

impl PosArgs {
    pub async fn run(self) -> anyhow::Result<()> {
        let key: [u8; 32] = STANDARD
            .decode(self.key.trim())
            .context("the key is not base64")?
            .try_into()
            .map_err(|_| anyhow::anyhow!("the key must be 32 bytes"))?;
        let flags = Flags {
            deflate: !self.no_deflate,
            encrypted: true,
        };
        let input = self.input()?;
        let client = PosClient::connect(&self.addr, &self.terminal, TerminalKey(key), flags)
            .await
            .with_context(|| format!("connecting to {}", self.addr))?;
        let answer = client.send(&input).await?;
        let json = serde_json::json!({
            "seq_no": answer.seq_no, "tx_code": answer.tx_code, "transaction_id": answer.transaction_id,
            "result": answer.result, "response_code": answer.response_code, "approval_no": answer.approval_no,
            "message": answer.message, "upstream": answer.upstream, "issuer": answer.issuer,
        });
        println!("{}", serde_json::to_string_pretty(&json)?);
        Ok(())
    }

    fn input(&self) -> anyhow::Result<ApprovalInput> {
        let Some(tx_type) = TxType::from_name(&self.tx_type) else {
            bail!("--tx-type must be card_approval, card_cancel, cash_receipt or cash_receipt_cancel");
        };
        let now = jiff::Zoned::now().with_time_zone(jiff::tz::TimeZone::get("Asia/Seoul")?);
        let sent_at = now.strftime("%Y%m%d%H%M%S").to_string();
        let seq_no = self
            .seq_no
            .unwrap_or_else(|| u64::try_from(now.timestamp().as_millisecond() % 10_000_000_000).unwrap_or(1));
        let card = self.pan.as_ref().map(|pan| CardInput {
            track2: None,
            pan: Some(pan.clone()),
            expiry: Some(self.expiry.clone()),
        });
        let original = self.original_approval_no.as_ref().map(|no| OriginalInput {
            approval_no: no.clone(),
            approved_at: self.original_approved_at.clone().unwrap_or_else(|| sent_at.clone()),
        });
        let cash_receipt = self.receipt_id_number.as_ref().map(|n| CashReceiptInput {
            id_type: self.receipt_id_type.clone().unwrap_or_else(|| "0".into()),
            id_number: n.clone(),
        });
        Ok(ApprovalInput {
            tx_type,
            seq_no,
            sent_at,
            amount: self.amount,
            card,
            installment_months: self.installment_months,
            original,
            cash_receipt,
        })
    }
}
