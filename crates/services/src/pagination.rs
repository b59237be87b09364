//! Cursor pages: opaque cursors (the last item's `(time, id)`, base64url-encoded) and the one
//! rule that turns `limit + 1` rows read into a page and its next cursor.

use crate::error::{ServiceError, ServiceResult};
use crate::views::Page;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::Timestamp;
use minipay_core::request::PageLimit;
use uuid::Uuid;

/// How many rows to read for a page of `limit`: one more, to learn whether another page follows.
pub fn rows_for(limit: PageLimit) -> u32 {
    limit.get() + 1
}

/// A page from rows read with [`rows_for`] (in the list's order): at most `limit` items, and
/// the cursor of the last one when more rows followed. `key` is the `(time, id)` the query
/// orders by; `view` turns a row into what the client sees.
pub fn page_of<R, V>(
    mut rows: Vec<R>,
    limit: PageLimit,
    key: impl Fn(&R) -> (Timestamp, Uuid),
    view: impl FnMut(R) -> V,
) -> Page<V> {
    let next_cursor = if rows.len() > limit.get() as usize {
        rows.truncate(limit.get() as usize);
        rows.last().map(|r| {
            let (at, id) = key(r);
            encode_cursor(at, id)
        })
    } else {
        None
    };
    Page {
        items: rows.into_iter().map(view).collect(),
        next_cursor,
    }
}

pub(crate) fn encode_cursor(at: Timestamp, id: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}:{}", at.as_microsecond(), id))
}

pub fn decode_cursor(raw: &str) -> ServiceResult<(Timestamp, Uuid)> {
    let bad = || ServiceError::validation("cursor is not one this server issued");
    let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let (us, id) = text.split_once(':').ok_or_else(bad)?;
    let at = Timestamp::from_microsecond(us.parse().map_err(|_| bad())?).map_err(|_| bad())?;
    // Cursors carry times this server wrote; anything else could not be stored anyway.
    let at = minipay_core::time::plausible_instant(at, "cursor").map_err(|_| bad())?;
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

    #[test]
    fn a_page_has_a_cursor_only_when_more_rows_follow() {
        let at: Timestamp = "2026-11-21T00:00:00Z".parse().unwrap();
        let rows: Vec<(Timestamp, Uuid)> = (0..3).map(|_| (at, Uuid::now_v7())).collect();
        let two = PageLimit::parse(Some(2)).unwrap();
        assert_eq!(rows_for(two), 3);
        let page = page_of(rows.clone(), two, |r| *r, |r| r.1);
        assert_eq!(page.items, vec![rows[0].1, rows[1].1]);
        assert_eq!(decode_cursor(page.next_cursor.as_deref().unwrap()).unwrap(), rows[1]);
        let three = PageLimit::parse(Some(3)).unwrap();
        let last = page_of(rows.clone(), three, |r| *r, |r| r.1);
        assert_eq!((last.items.len(), last.next_cursor), (3, None));
    }
}
