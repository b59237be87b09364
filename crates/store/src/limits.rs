//! The daily charge limit: one row per (user, Seoul business date), changed only by single
//! conditional statements.

use crate::Result;
use crate::session::Session;
use crate::types::DbDate;
use minipay_core::charge::{ChargeLimit, DAILY_CHARGE_LIMIT};
use minipay_core::{Amount, BusinessDate, UserId};

impl Session {
    /// Counts `amount` against the user's limit for `date` if it fits, in one statement.
    /// Returns the new usage, or `None` (and changes nothing) if it would exceed the limit.
    pub async fn reserve_charge_limit(
        &mut self,
        user: UserId,
        date: BusinessDate,
        amount: Amount,
    ) -> Result<Option<ChargeLimit>> {
        self.assert_writable();
        if amount.won() > DAILY_CHARGE_LIMIT {
            return Ok(None);
        }
        // The insert path cannot exceed the limit (checked above); the update path is
        // conditional. Concurrent reservations serialise on the row.
        let used: Option<i64> = on_db!(self, c => sqlx::query_scalar(
            "INSERT INTO charge_limits (user_id, business_date, used) VALUES ($1, $2, $3)
             ON CONFLICT (user_id, business_date)
             DO UPDATE SET used = charge_limits.used + excluded.used
             WHERE charge_limits.used + excluded.used <= $4
             RETURNING used",
        )
        .bind(user.as_uuid())
        .bind(DbDate(date.date()))
        .bind(amount.won())
        .bind(DAILY_CHARGE_LIMIT)
        .fetch_optional(c)
        .await)?;
        Ok(used.map(|used| ChargeLimit::new(date, used)))
    }

    /// Gives back a reservation whose charge failed (the bank said no or never took the money).
    pub async fn release_charge_limit(&mut self, user: UserId, date: BusinessDate, amount: Amount) -> Result<()> {
        self.assert_writable();
        let updated = on_db!(self, c => sqlx::query(
            "UPDATE charge_limits SET used = used - $3 WHERE user_id = $1 AND business_date = $2 AND used >= $3",
        )
        .bind(user.as_uuid())
        .bind(DbDate(date.date()))
        .bind(amount.won())
        .execute(c)
        .await.map(|r| r.rows_affected()))?;
        if updated != 1 {
            return Err(crate::StoreError::corrupt(format!(
                "released a charge-limit reservation that was never made ({user}, {date}, {amount})"
            )));
        }
        Ok(())
    }

    pub async fn charge_limit(&mut self, user: UserId, date: BusinessDate) -> Result<ChargeLimit> {
        let used: Option<i64> = on_db!(self, c => sqlx::query_scalar(
            "SELECT used FROM charge_limits WHERE user_id = $1 AND business_date = $2",
        )
        .bind(user.as_uuid())
        .bind(DbDate(date.date()))
        .fetch_optional(c)
        .await)?;
        Ok(ChargeLimit::new(date, used.unwrap_or(0)))
    }
}
