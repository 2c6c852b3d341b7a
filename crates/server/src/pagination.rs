//! Opaque list cursors. A cursor is the base64url of the last returned item's id (ids sort by
//! creation time), tagged so that a cursor from one list cannot be replayed against another.

use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use runtools_protocol::{ErrorCode, ListParams, Page};

use crate::error::ApiError;

/// A validated `?limit=&cursor=`.
#[derive(Debug)]
pub struct PageRequest<Id> {
    pub after: Option<Id>,
    pub limit: u32,
}

impl<Id: FromStr> PageRequest<Id> {
    /// Validates the query of a list named `list` (the cursor's tag).
    pub fn from_params(list: &str, params: ListParams) -> Result<Self, ApiError> {
        let limit = params.limit.unwrap_or(ListParams::DEFAULT_LIMIT);
        if !(1..=ListParams::MAX_LIMIT).contains(&limit) {
            return Err(ApiError::new(
                ErrorCode::InvalidQuery,
                format!("`limit` must be between 1 and {}, got {limit}", ListParams::MAX_LIMIT),
            ));
        }
        let after = params.cursor.map(|cursor| decode(list, &cursor)).transpose()?;
        Ok(Self { after, limit })
    }
}

fn decode<Id: FromStr>(list: &str, cursor: &str) -> Result<Id, ApiError> {
    let invalid = || ApiError::new(ErrorCode::InvalidCursor, "`cursor` must be a `next_cursor` returned by this list");
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let id = text.strip_prefix(list).and_then(|rest| rest.strip_prefix(':')).ok_or_else(invalid)?;
    id.parse().map_err(|_| invalid())
}

/// Builds a page, with a cursor after its last item when more follow.
pub fn page<T, Id: std::fmt::Display>(list: &str, items: Vec<T>, more: bool, id_of: impl Fn(&T) -> Id) -> Page<T> {
    let next_cursor =
        if more { items.last().map(|last| URL_SAFE_NO_PAD.encode(format!("{list}:{}", id_of(last)))) } else { None };
    Page { data: items, next_cursor }
}

#[cfg(test)]
mod tests {
    use runtools_protocol::{KeyId, SecretId};

    use super::*;

    #[test]
    fn cursors_round_trip_and_are_bound_to_their_list() {
        let ids = vec![KeyId::new(), KeyId::new()];
        let page = page("keys", ids.clone(), true, |id| *id);
        let cursor = page.next_cursor.unwrap();
        let params = ListParams { limit: None, cursor: Some(cursor.clone()) };
        let request = PageRequest::<KeyId>::from_params("keys", params).unwrap();
        assert_eq!(request.after, Some(ids[1]));
        assert_eq!(request.limit, ListParams::DEFAULT_LIMIT);
        let params = ListParams { limit: None, cursor: Some(cursor) };
        let error = PageRequest::<SecretId>::from_params("secrets", params).unwrap_err();
        assert_eq!(error.code(), ErrorCode::InvalidCursor);
    }

    #[test]
    fn limits_outside_1_to_100_are_refused() {
        for limit in [0, 101] {
            let error =
                PageRequest::<KeyId>::from_params("keys", ListParams { limit: Some(limit), cursor: None }).unwrap_err();
            assert_eq!(error.code(), ErrorCode::InvalidQuery);
        }
    }

    #[test]
    fn the_last_page_has_no_cursor() {
        assert_eq!(page("keys", vec![KeyId::new()], false, |id| *id).next_cursor, None);
    }
}
