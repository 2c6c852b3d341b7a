//! Timestamps at rest: Unix milliseconds in a BIGINT, identical on both engines.

use chrono::{DateTime, Utc};

use crate::StoreError;

pub(crate) fn now_millis() -> i64 {
    Utc::now().timestamp_millis()
}

pub(crate) fn from_millis(millis: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_millis(millis).ok_or_else(|| StoreError::corrupt("timestamp", millis))
}

pub(crate) fn from_millis_opt(millis: Option<i64>) -> Result<Option<DateTime<Utc>>, StoreError> {
    millis.map(from_millis).transpose()
}
