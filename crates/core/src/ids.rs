//! Typed identifiers: one newtype per entity so an account id can never be passed as a user id.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh, time-ordered (UUIDv7) id: new rows land at the right edge of indexes.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
            pub const fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }
            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Uuid {
                id.0
            }
        }
    };
}

typed_id!(
    /// A person using the wallet.
    UserId
);
typed_id!(
    /// A ledger account: a user's main or savings account, or a system account.
    AccountId
);
typed_id!(
    /// One business event on the ledger (its entries sum to zero).
    JournalId
);
typed_id!(
    /// One line of a journal: the change to one account.
    EntryId
);
typed_id!(
    /// A P2P transfer between two users' main accounts.
    TransferId
);
typed_id!(
    /// A pull of money from a user's bank account into their main account.
    ChargeId
);
typed_id!(
    /// A user's registered external bank account (open-banking "fin account").
    BankAccountId
);
typed_id!(
    /// A business (사업자) using the platform machine-to-machine with its API key.
    BusinessId
);
