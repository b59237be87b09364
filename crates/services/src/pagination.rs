//! Opaque list cursors: the last item's `(time, id)`, base64url-encoded.

use crate::error::{ServiceError, ServiceResult};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::Timestamp;
use uuid::Uuid;

pub(crate) fn encode_cursor(at: Timestamp, id: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}:{}", at.as_microsecond(), id))
}

pub(crate) fn decode_cursor(raw: &str) -> ServiceResult<(Timestamp, Uuid)> {
    let bad = || ServiceError::validation("cursor is not one this server issued");
    let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let (us, id) = text.split_once(':').ok_or_else(bad)?;
    let at = Timestamp::from_microsecond(us.parse().map_err(|_| bad())?).map_err(|_| bad())?;
    // Cursors carry times this server wrote; anything else could not be stored anyway.
    let at = minipay_core::time::plausible_instant(at).map_err(|_| bad())?;
    Ok((at, id.parse().map_err(|_| bad())?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let at: Timestamp = "2026-11-21T00:00:00.000001Z".parse().unwrap();
        let id = Uuid::now_v7();
        assert_eq!(decode_cursor(&encode_cursor(at, id)).unwrap(), (at, id));
        assert!(decode_cursor("!!").is_err());
        assert!(decode_cursor(&URL_SAFE_NO_PAD.encode("x:y")).is_err());
    }
}
