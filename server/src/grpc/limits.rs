//! How large a message each service decodes (after decompression) and
//! sends. Requests get a limit sized to the largest valid request of the
//! service rather than the 128 MiB send limit, so a compressed bomb or an
//! oversized list is refused (RESOURCE_EXHAUSTED, with tonic's message)
//! after a few MiB of work, and the memory that calls being decoded can
//! hold is bounded by the in-flight calls times these sizes.

/// Largest valid `ScoredPostsQuery`: 8 bloom filters of at most 1 MiB each
/// plus 20,000 seen and served ids, with room to spare.
pub const HOME_MIXER_REQUEST_BYTES: usize = 16 << 20;
/// Largest valid `PredictRequest` / `RetrieveRequest`: 10,000 candidates
/// or 100,000 excluded ids per list, and the history.
pub const PHOENIX_REQUEST_BYTES: usize = 8 << 20;
/// Largest valid Thunder message: a 5,000-author query, or one
/// `IngestEvents` batch.
pub const THUNDER_REQUEST_BYTES: usize = 16 << 20;

/// The decode and encode limits of one service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageLimits {
    /// Largest request message decoded, bytes after decompression.
    pub request_bytes: usize,
    /// Largest message sent, bytes.
    pub response_bytes: usize,
}

impl MessageLimits {
    /// `--max-request-bytes` when given, else the service's default; never
    /// above `--max-message-bytes`, which also bounds what is sent.
    pub fn new(flag: Option<usize>, service_default: usize, max_message_bytes: usize) -> Self {
        Self {
            request_bytes: flag.unwrap_or(service_default).min(max_message_bytes),
            response_bytes: max_message_bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_overrides_the_service_default_and_the_message_limit_caps_both() {
        let d = MessageLimits::new(None, PHOENIX_REQUEST_BYTES, 128 << 20);
        assert_eq!((d.request_bytes, d.response_bytes), (8 << 20, 128 << 20));
        let set = MessageLimits::new(Some(1 << 20), PHOENIX_REQUEST_BYTES, 128 << 20);
        assert_eq!(set.request_bytes, 1 << 20);
        let capped = MessageLimits::new(None, HOME_MIXER_REQUEST_BYTES, 4 << 20);
        assert_eq!(
            (capped.request_bytes, capped.response_bytes),
            (4 << 20, 4 << 20)
        );
    }
}
