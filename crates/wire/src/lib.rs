//! Message formats as data (API-gateway.md "Terminal intake", "Message formats as data"): the
//! POS frame (64-byte header, deflate, AES-256-GCM), link framing (4-digit ASCII or 2-byte
//! binary length, as `tokio_util` codecs), and dialects — positional EUC-KR layouts and ISO 8583
//! — loaded from data files. Pure: no IO, no async, no clock; fuzzed (`fuzz/`).

pub mod dialect;
pub mod frame;
pub mod header;
pub mod iso8583;
pub mod layout;
pub mod message;
pub mod seal;

pub use dialect::{Dialect, SpecError, shipped};
pub use frame::{FrameError, Framing, LinkCodec};
pub use header::{Flags, HEADER_LEN, HeaderError, PosHeader};
pub use message::{DecodeError, Direction, EncodeError, Message};
pub use seal::{PosFrame, SealError, TerminalKey, decode_pos_frame, encode_pos_frame};
