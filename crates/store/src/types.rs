//! Column types shared by both backends: instants (`timestamptz` / INTEGER microseconds) and
//! business dates (`date` / TEXT).

use jiff::Timestamp;
use jiff::civil::Date;
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::types::Oid;
use sqlx::postgres::{PgArgumentBuffer, PgHasArrayType, PgTypeInfo, PgValueFormat, PgValueRef};
use sqlx::sqlite::{SqliteArgumentsBuffer, SqliteTypeInfo, SqliteValueRef};
use sqlx::{Decode, Encode, Postgres, Sqlite, Type};

/// Microseconds from the Unix epoch to PostgreSQL's epoch (2000-01-01T00:00:00Z).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
/// Days from 1970-01-01 to 2000-01-01.
const PG_EPOCH_DAYS: i32 = 10_957;

/// An instant as stored: `timestamptz` on PostgreSQL, INTEGER microseconds on SQLite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct DbTime(pub Timestamp);

impl DbTime {
    fn micros(self) -> i64 {
        self.0.as_microsecond()
    }
    fn from_micros(us: i64) -> Result<Self, BoxDynError> {
        Ok(Self(Timestamp::from_microsecond(us)?))
    }
}

impl From<DbTime> for Timestamp {
    fn from(t: DbTime) -> Self {
        t.0
    }
}

impl Type<Postgres> for DbTime {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_oid(Oid(1184))
    }
}

impl PgHasArrayType for DbTime {
    fn array_type_info() -> PgTypeInfo {
        PgTypeInfo::with_oid(Oid(1185))
    }
}

impl Encode<'_, Postgres> for DbTime {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        Encode::<Postgres>::encode(self.micros() - PG_EPOCH_MICROS, buf)
    }
}

impl Decode<'_, Postgres> for DbTime {
    fn decode(value: PgValueRef<'_>) -> Result<Self, BoxDynError> {
        match value.format() {
            PgValueFormat::Binary => {
                let us = <i64 as Decode<Postgres>>::decode(value)?;
                Self::from_micros(us + PG_EPOCH_MICROS)
            }
            PgValueFormat::Text => Err("timestamptz in text format is not supported".into()),
        }
    }
}

impl Type<Sqlite> for DbTime {
    fn type_info() -> SqliteTypeInfo {
        <i64 as Type<Sqlite>>::type_info()
    }
    fn compatible(ty: &SqliteTypeInfo) -> bool {
        <i64 as Type<Sqlite>>::compatible(ty)
    }
}

impl Encode<'_, Sqlite> for DbTime {
    fn encode_by_ref(&self, buf: &mut SqliteArgumentsBuffer) -> Result<IsNull, BoxDynError> {
        Encode::<Sqlite>::encode(self.micros(), buf)
    }
}

impl<'r> Decode<'r, Sqlite> for DbTime {
    fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        Self::from_micros(<i64 as Decode<Sqlite>>::decode(value)?)
    }
}

/// A calendar date as stored: `date` on PostgreSQL, TEXT `YYYY-MM-DD` on SQLite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct DbDate(pub Date);

impl DbDate {
    fn days_since_unix_epoch(self) -> Result<i32, BoxDynError> {
        let days = self.0.since(Date::constant(1970, 1, 1))?.get_days();
        Ok(days)
    }
}

impl Type<Postgres> for DbDate {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_oid(Oid(1082))
    }
}

impl PgHasArrayType for DbDate {
    fn array_type_info() -> PgTypeInfo {
        PgTypeInfo::with_oid(Oid(1182))
    }
}

impl Encode<'_, Postgres> for DbDate {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        Encode::<Postgres>::encode(self.days_since_unix_epoch()? - PG_EPOCH_DAYS, buf)
    }
}

impl Decode<'_, Postgres> for DbDate {
    fn decode(value: PgValueRef<'_>) -> Result<Self, BoxDynError> {
        match value.format() {
            PgValueFormat::Binary => {
                let days = <i32 as Decode<Postgres>>::decode(value)? + PG_EPOCH_DAYS;
                let date = Date::constant(1970, 1, 1).checked_add(jiff::Span::new().days(days))?;
                Ok(Self(date))
            }
            PgValueFormat::Text => Ok(Self(value.as_str()?.parse()?)),
        }
    }
}

impl Type<Sqlite> for DbDate {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }
    fn compatible(ty: &SqliteTypeInfo) -> bool {
        <String as Type<Sqlite>>::compatible(ty)
    }
}

impl Encode<'_, Sqlite> for DbDate {
    fn encode_by_ref(&self, buf: &mut SqliteArgumentsBuffer) -> Result<IsNull, BoxDynError> {
        Encode::<Sqlite>::encode(self.0.to_string(), buf)
    }
}

impl<'r> Decode<'r, Sqlite> for DbDate {
    fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        Ok(Self(<&str as Decode<Sqlite>>::decode(value)?.parse()?))
    }
}
