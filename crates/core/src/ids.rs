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
typed_id!(
    /// A business remittance: A's money through the platform to B.
    RemittanceId
);
typed_id!(
    /// A payment a business takes from a wallet user's registered bank account.
    PaymentId
);
typed_id!(
    /// A refund of (part of) a payment, from the business's balance to the user's bank account.
    RefundId
);
typed_id!(
    /// One call the platform made to the bank for a payment or a refund (its history for
    /// customer support).
    BankCallId
);

/// Whose `Idempotency-Key` a key is: keys are scoped to the caller, a user or a business.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyOwner(Uuid);

impl KeyOwner {
    pub const fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl From<UserId> for KeyOwner {
    fn from(id: UserId) -> Self {
        Self(id.as_uuid())
    }
}

impl From<BusinessId> for KeyOwner {
    fn from(id: BusinessId) -> Self {
        Self(id.as_uuid())
    }
}
