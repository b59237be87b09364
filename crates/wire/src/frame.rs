//! Link framing as `tokio_util` codecs: a 4-digit ASCII length or a 2-byte big-endian binary
//! length, each counting the bytes that follow it.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// How messages are delimited on a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Framing {
    /// 4 ASCII digits (`0000`–`9999`), then that many bytes.
    Ascii4,
    /// 2 bytes, big-endian, then that many bytes.
    Binary2,
}

impl Framing {
    /// The length prefix's size in bytes.
    pub const fn prefix_len(self) -> usize {
        match self {
            Self::Ascii4 => 4,
            Self::Binary2 => 2,
        }
    }

    /// The longest payload the prefix can express.
    pub const fn len_max(self) -> usize {
        match self {
            Self::Ascii4 => 9999,
            Self::Binary2 => u16::MAX as usize,
        }
    }

    /// The payload length a prefix of `prefix_len()` bytes says, `None` when it is not a length.
    fn parse(self, prefix: &[u8]) -> Option<usize> {
        match self {
            Self::Ascii4 if prefix.iter().all(u8::is_ascii_digit) => {
                Some(prefix.iter().fold(0, |acc, digit| acc * 10 + usize::from(digit - b'0')))
            }
            Self::Ascii4 => None,
            Self::Binary2 => Some(usize::from(u16::from_be_bytes([prefix[0], prefix[1]]))),
        }
    }

    /// Writes the prefix of a payload of `len` bytes (`len <= len_max()`).
    fn put(self, len: usize, dst: &mut BytesMut) {
        debug_assert!(len <= self.len_max());
        match self {
            Self::Ascii4 => dst.put_slice(format!("{len:04}").as_bytes()),
            Self::Binary2 => dst.put_u16(len as u16),
        }
    }
}

/// A frame that cannot be read: the connection should be closed.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("bad length prefix {0:?}")]
    BadLength(Vec<u8>),
    #[error("frame of {got} bytes is over the limit of {max}")]
    TooLong { got: usize, max: usize },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// One link's codec: yields each frame's payload, writes a payload with its prefix.
#[derive(Debug, Clone)]
pub struct LinkCodec {
    framing: Framing,
    max_len: usize,
}

impl LinkCodec {
    /// A codec refusing frames longer than `max_len` (at most what the prefix can say).
    pub fn new(framing: Framing, max_len: usize) -> Self {
        Self {
            framing,
            max_len: max_len.min(framing.len_max()),
        }
    }

    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// The longest payload accepted either way.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// The payload length of the prefix at the start of `src` (which holds the whole prefix),
    /// checked before any of the body is buffered.
    fn payload_len(&self, src: &[u8]) -> Result<usize, FrameError> {
        let prefix = &src[..self.framing.prefix_len()];
        match self.framing.parse(prefix) {
            // A message is never empty: a zero length is a broken stream, not a message.
            None | Some(0) => Err(FrameError::BadLength(prefix.to_vec())),
            Some(got) if got > self.max_len => Err(FrameError::TooLong { got, max: self.max_len }),
            Some(len) => Ok(len),
        }
    }
}

impl Decoder for LinkCodec {
    type Item = BytesMut;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, FrameError> {
        let prefix_len = self.framing.prefix_len();
        if src.len() < prefix_len {
            src.reserve(prefix_len - src.len());
            return Ok(None);
        }
        let frame_len = prefix_len + self.payload_len(src)?;
        if src.len() < frame_len {
            // Bounded by max_len: the length was checked above.
            src.reserve(frame_len - src.len());
            return Ok(None);
        }
        src.advance(prefix_len);
        Ok(Some(src.split_to(frame_len - prefix_len)))
    }
}

impl Encoder<Bytes> for LinkCodec {
    type Error = FrameError;

    fn encode(&mut self, item: Bytes, dst: &mut BytesMut) -> Result<(), FrameError> {
        if item.len() > self.max_len {
            return Err(FrameError::TooLong {
                got: item.len(),
                max: self.max_len,
            });
        }
        if item.is_empty() {
            // The peer's decoder would refuse it; refuse it here already.
            let mut prefix = BytesMut::new();
            self.framing.put(0, &mut prefix);
            return Err(FrameError::BadLength(prefix.to_vec()));
        }
        dst.reserve(self.framing.prefix_len() + item.len());
        self.framing.put(item.len(), dst);
        dst.put_slice(&item);
        Ok(())
    }
}
