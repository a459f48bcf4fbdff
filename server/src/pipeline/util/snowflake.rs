//! Snowflake ids (spec §4.2): `created_ms = (id >> 22) + 1288834974657`.

/// The Twitter epoch, unix ms.
pub const TWEPOCH_MS: i64 = 1_288_834_974_657;

/// Creation time of a snowflake id, unix ms; `None` for ids ≤ 0.
pub fn created_ms(id: i64) -> Option<i64> {
    (id > 0).then(|| (id >> 22) + TWEPOCH_MS)
}

/// Age at `now_ms`, ms: `None` for an invalid id or a creation time in the
/// future.
pub fn age_ms(id: i64, now_ms: i64) -> Option<i64> {
    created_ms(id).filter(|c| *c <= now_ms).map(|c| now_ms - c)
}

/// The smallest id created at `created_ms` (sequence and worker bits 0).
pub fn id_at(created_ms: i64) -> i64 {
    (created_ms - TWEPOCH_MS) << 22
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_invalid_or_future_ids() {
        let t = 1_800_000_000_000;
        let id = id_at(t) + 12345; // low bits do not change the time
        assert_eq!(created_ms(id), Some(t));
        assert_eq!(age_ms(id, t + 5), Some(5));
        assert_eq!(age_ms(id, t - 1), None, "future");
        assert_eq!(created_ms(0), None);
        assert_eq!(created_ms(-7), None);
    }
}
