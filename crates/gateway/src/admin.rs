//! Merchants, their terminals and keys, and the versioned routing configuration (operator API).

use crate::Gateway;
use crate::keys;
use crate::routing::{RoutingConfig, RoutingVersionView};
use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jiff::Timestamp;
use minipay_core::business::{BusinessName, RegistrationNumber};
use minipay_core::request::PageLimit;
use minipay_services::pagination::{decode_cursor, page_of, rows_for};
use minipay_services::views::Page;
use minipay_services::{ServiceError, ServiceResult};
use minipay_store::{Merchant, NewMerchantRecord, NewTerminalRecord, RoutingVersion, Session, StoreError, Terminal};
use minipay_wire::TerminalKey;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

/// Characters of a terminal id: upper-case letters and digits without the ones people confuse
/// when reading an id off a terminal's label (`0`/`O`, `1`/`I`/`L`).
pub const TERMINAL_ID_ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
/// Characters in a terminal id (the POS header's field).
pub const TERMINAL_ID_LEN: usize = 8;
/// Tries at a fresh terminal id: 31⁸ ≈ 8.5·10¹¹ ids make even one collision rare.
const TERMINAL_ID_ATTEMPTS_MAX: u32 = 5;
/// Tries at writing a routing version when concurrent changes take the next number first.
const ROUTING_WRITE_ATTEMPTS_MAX: u32 = 5;

/// An onboarding request, validated at the edge.
pub struct NewMerchant {
    /// Trimmed, 1–100 characters.
    pub name: BusinessName,
    pub registration_number: RegistrationNumber,
}

impl NewMerchant {
    pub fn parse(name: &str, registration_number: &str) -> ServiceResult<Self> {
        Ok(Self {
            name: BusinessName::parse(name).map_err(ServiceError::validation)?,
            registration_number: RegistrationNumber::parse(registration_number).map_err(ServiceError::validation)?,
        })
    }
}

/// A merchant (가맹점) as operators see it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MerchantView {
    #[schema(value_type = String, format = Uuid)]
    pub id: Uuid,
    pub name: String,
    /// Always shown as `123-45-67890`.
    #[schema(example = "124-81-00998")]
    pub registration_number: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

impl From<&Merchant> for MerchantView {
    fn from(m: &Merchant) -> Self {
        Self {
            id: m.id,
            name: m.name.clone(),
            registration_number: m.registration_number.to_string(),
            created_at: m.created_at,
        }
    }
}

/// A new terminal and its key, shown this once. No `Debug`: it must not reach a log line.
#[derive(Serialize, ToSchema)]
pub struct IssuedTerminal {
    /// 8 characters of `A-Z` and `2-9` without `I`, `L`, `O`.
    #[schema(example = "K7QX3M9A")]
    pub terminal_id: String,
    /// The terminal's 256-bit key, base64 (standard alphabet, padded). Shown once.
    pub key: String,
    #[schema(value_type = String, format = Uuid)]
    pub merchant_id: Uuid,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

/// A disabled terminal: from `disabled_at` on, its requests are refused.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DisabledTerminal {
    pub terminal_id: String,
    /// The first disable's instant (disabling again changes nothing).
    #[schema(value_type = String, format = DateTime)]
    pub disabled_at: Timestamp,
}

/// A terminal that may send requests, with its key opened (for the intake).
#[derive(Debug, Clone)]
pub struct ActiveTerminal {
    pub terminal_id: String,
    pub merchant_id: Uuid,
    pub key: TerminalKey,
}

fn duplicate_number() -> ServiceError {
    ServiceError::Conflict("a merchant with this registration number is already onboarded".into())
}

impl Gateway {
    /// Records a merchant. A known registration number is `409 conflict`; the unique column
    /// settles two onboardings racing with the same number.
    #[tracing::instrument(name = "minipay.gateway.onboard_merchant", skip_all, err(level = "debug"))]
    pub async fn onboard_merchant(&self, req: NewMerchant) -> ServiceResult<MerchantView> {
        let id = Uuid::now_v7();
        let mut tx = self.store.begin().await?;
        let insert = tx
            .insert_merchant(&NewMerchantRecord {
                id,
                name: req.name.as_str(),
                registration_number: &req.registration_number,
                at: self.clock.now(),
            })
            .await;
        match insert {
            Err(StoreError::Unique(what)) if what.contains("registration_number") => return Err(duplicate_number()),
            other => other?,
        }
        let merchant = tx.merchant(id).await?.context("merchant just inserted")?;
        tx.commit().await?;
        Ok(MerchantView::from(&merchant))
    }

    /// Every merchant, newest first, a cursor page at a time.
    pub async fn merchants(&self, limit: PageLimit, cursor: Option<&str>) -> ServiceResult<Page<MerchantView>> {
        let after = cursor.map(decode_cursor).transpose()?;
        let rows = self.store.read().await?.merchants(after, rows_for(limit)).await?;
        Ok(page_of(
            rows,
            limit,
            |m| (m.created_at, m.id),
            |m| MerchantView::from(&m),
        ))
    }

    pub async fn merchant(&self, id: Uuid) -> ServiceResult<MerchantView> {
        let merchant = self.store.read().await?.merchant(id).await?;
        merchant
            .as_ref()
            .map(MerchantView::from)
            .ok_or(ServiceError::NotFound("merchant"))
    }

    /// Issues a terminal with a fresh key (sealed at rest, shown in the answer only). A
    /// terminal id already taken is drawn again, in a new transaction.
    #[tracing::instrument(name = "minipay.gateway.issue_terminal", skip_all, err(level = "debug"))]
    pub async fn issue_terminal(&self, merchant_id: Uuid) -> ServiceResult<IssuedTerminal> {
        let key = keys::generate();
        let sealed = self.keys.seal(&key);
        for _ in 0..TERMINAL_ID_ATTEMPTS_MAX {
            let terminal_id = random_terminal_id();
            if let Some(terminal) = self.try_insert_terminal(merchant_id, &terminal_id, &sealed).await? {
                return Ok(IssuedTerminal {
                    terminal_id: terminal.terminal_id,
                    key: STANDARD.encode(key.0),
                    merchant_id,
                    created_at: terminal.created_at,
                });
            }
        }
        Err(anyhow::anyhow!("no free terminal id in {TERMINAL_ID_ATTEMPTS_MAX} draws").into())
    }

    /// The terminal, or `None` when its id was taken meanwhile; `404` for an unknown merchant.
    async fn try_insert_terminal(
        &self,
        merchant_id: Uuid,
        terminal_id: &str,
        sealed: &[u8],
    ) -> ServiceResult<Option<Terminal>> {
        let mut tx = self.store.begin().await?;
        if tx.merchant(merchant_id).await?.is_none() {
            return Err(ServiceError::NotFound("merchant"));
        }
        let record = NewTerminalRecord {
            terminal_id,
            merchant_id,
            key_sealed: sealed,
            at: self.clock.now(),
        };
        match tx.insert_terminal(&record).await {
            Err(StoreError::Unique(_)) => return Ok(None),
            other => other?,
        }
        let terminal = tx.terminal(terminal_id).await?.context("terminal just inserted")?;
        tx.commit().await?;
        Ok(Some(terminal))
    }

    /// Disables a terminal at once (every request looks its terminal up afresh). Disabling a
    /// disabled terminal changes nothing and answers the first instant.
    #[tracing::instrument(name = "minipay.gateway.disable_terminal", skip_all, err(level = "debug"))]
    pub async fn disable_terminal(&self, terminal_id: &str) -> ServiceResult<DisabledTerminal> {
        let mut tx = self.store.begin().await?;
        let disabled_at = tx
            .disable_terminal(terminal_id, self.clock.now())
            .await?
            .ok_or(ServiceError::NotFound("terminal"))?;
        tx.commit().await?;
        Ok(DisabledTerminal {
            terminal_id: terminal_id.to_owned(),
            disabled_at,
        })
    }

    /// The terminal with its key, if it exists and is not disabled (for the intake). A key
    /// that does not open (the secret changed) is an internal error, never a silent refusal.
    pub async fn terminal(&self, terminal_id: &str) -> ServiceResult<Option<ActiveTerminal>> {
        if terminal_id.len() != TERMINAL_ID_LEN {
            return Ok(None);
        }
        let terminal = self.store.read().await?.terminal(terminal_id).await?;
        let Some(t) = terminal.filter(|t| t.disabled_at.is_none()) else {
            return Ok(None);
        };
        let key = self.keys.open(&t.key_sealed).with_context(|| {
            format!(
                "terminal {} key (is terminal_key_secret the one it was sealed under?)",
                t.terminal_id
            )
        })?;
        Ok(Some(ActiveTerminal {
            terminal_id: t.terminal_id,
            merchant_id: t.merchant_id,
            key,
        }))
    }

    /// The routing configuration in force, if one was ever set.
    pub async fn routing(&self) -> ServiceResult<Option<RoutingVersionView>> {
        let current = self.store.read().await?.current_routing_version().await?;
        current.map(version_view).transpose()
    }

    /// Validates `config` and keeps it as the next version, in force from its commit. Two
    /// concurrent changes meet at the version's primary key: the loser runs again on top of
    /// the winner (every change is kept, the later one in force).
    #[tracing::instrument(name = "minipay.gateway.put_routing", skip_all, err(level = "debug"))]
    pub async fn put_routing(&self, config: RoutingConfig, changed_by: &str) -> ServiceResult<RoutingVersionView> {
        config.validate().map_err(ServiceError::validation)?;
        let text = serde_json::to_string(&config).context("routing config as JSON")?;
        for _ in 0..ROUTING_WRITE_ATTEMPTS_MAX {
            let mut tx = self.store.begin().await?;
            match self.append_version(&mut tx, &text, changed_by).await {
                Ok(version) => {
                    tx.commit().await?;
                    self.routing_changed().await;
                    return version_view(version);
                }
                Err(e) if is_lost_race(&e) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ServiceError::Conflict(
            "the routing configuration is being changed concurrently; try again".into(),
        ))
    }

    async fn append_version(
        &self,
        tx: &mut Session,
        config: &str,
        changed_by: &str,
    ) -> Result<RoutingVersion, StoreError> {
        let previous = tx.current_routing_version().await?.map_or(0, |v| v.version);
        let version = RoutingVersion {
            version: previous + 1,
            config: config.to_owned(),
            changed_by: changed_by.to_owned(),
            changed_at: self.clock.now(),
        };
        tx.insert_routing_version(&version).await?;
        Ok(version)
    }

    /// Every routing version, newest first, a cursor page at a time.
    pub async fn routing_history(
        &self,
        limit: PageLimit,
        cursor: Option<&str>,
    ) -> ServiceResult<Page<RoutingVersionView>> {
        let before = cursor.map(decode_version_cursor).transpose()?;
        let rows = self
            .store
            .read()
            .await?
            .routing_versions(before, rows_for(limit))
            .await?;
        let page = page_of(
            rows,
            limit,
            |v| (v.changed_at, version_cursor_id(v.version)),
            std::convert::identity,
        );
        Ok(Page {
            items: page.items.into_iter().map(version_view).collect::<ServiceResult<_>>()?,
            next_cursor: page.next_cursor,
        })
    }
}

/// A unique violation (PostgreSQL: the other change committed first) or a lost lock (SQLite:
/// busy): running the change again on top of the other one can succeed.
fn is_lost_race(e: &StoreError) -> bool {
    matches!(e, StoreError::Unique(_)) || e.is_lock_conflict()
}

fn version_view(v: RoutingVersion) -> ServiceResult<RoutingVersionView> {
    let config: RoutingConfig =
        serde_json::from_str(&v.config).with_context(|| format!("routing version {} does not parse", v.version))?;
    Ok(RoutingVersionView {
        version: v.version,
        config,
        changed_by: v.changed_by,
        changed_at: v.changed_at,
    })
}

/// Routing versions are paged by version number, not by time (an operator's clock may be set
/// back); the shared cursor format carries `(time, uuid)`, so the version rides in the uuid.
fn version_cursor_id(version: i64) -> Uuid {
    Uuid::from_u64_pair(0, version.unsigned_abs())
}

fn decode_version_cursor(raw: &str) -> ServiceResult<i64> {
    let (_, id) = decode_cursor(raw)?;
    match id.as_u64_pair() {
        (0, version) => {
            i64::try_from(version).map_err(|_| ServiceError::validation("cursor is not one this server issued"))
        }
        _ => Err(ServiceError::validation("cursor is not one this server issued")),
    }
}

/// A random terminal id, uniform over [`TERMINAL_ID_ALPHABET`] (bytes at or above the
/// largest multiple of the alphabet's size are drawn again, so no character is favoured).
fn random_terminal_id() -> String {
    let n = TERMINAL_ID_ALPHABET.len();
    let unbiased_below = 256 - 256 % n;
    let mut id = String::with_capacity(TERMINAL_ID_LEN);
    while id.len() < TERMINAL_ID_LEN {
        let mut byte = [0u8; 1];
        aws_lc_rs::rand::fill(&mut byte).expect("the system random number generator failed");
        let b = usize::from(byte[0]);
        if b < unbiased_below {
            id.push(char::from(TERMINAL_ID_ALPHABET[b % n]));
        }
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_ids_are_eight_unconfusable_characters() {
        for _ in 0..200 {
            let id = random_terminal_id();
            assert_eq!(id.len(), TERMINAL_ID_LEN);
            assert!(id.bytes().all(|b| TERMINAL_ID_ALPHABET.contains(&b)), "{id}");
        }
        assert!(!TERMINAL_ID_ALPHABET.iter().any(|b| b"01ILO".contains(b)));
        assert_ne!(random_terminal_id(), random_terminal_id());
    }

    #[test]
    fn version_cursors_round_trip() {
        let at: Timestamp = "2026-11-21T00:00:00Z".parse().unwrap();
        let page = page_of(
            vec![(at, 7_i64), (at, 6)],
            PageLimit::parse(Some(1)).unwrap(),
            |v| (v.0, version_cursor_id(v.1)),
            |v| v.1,
        );
        assert_eq!(decode_version_cursor(page.next_cursor.as_deref().unwrap()).unwrap(), 7);
        let foreign = page_of(
            vec![(at, 1), (at, 2)],
            PageLimit::parse(Some(1)).unwrap(),
            |v| (v.0, Uuid::now_v7()),
            |v: (Timestamp, i64)| v.1,
        );
        assert!(decode_version_cursor(foreign.next_cursor.as_deref().unwrap()).is_err());
    }
}
