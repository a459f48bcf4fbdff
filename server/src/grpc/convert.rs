//! Proto ↔ domain conversions.

use foryou_proto::v1 as pb;

use crate::pipeline::home_mixer::BloomFilterEntry;
use crate::pipeline::util::bloom::BloomFilterError;
use crate::thunder::LightPost;

impl TryFrom<pb::ImpressionBloomFilterEntry> for BloomFilterEntry {
    type Error = BloomFilterError;

    /// A client's filter, refused when [`BloomFilterEntry::check`] fails
    /// (no bits, too many bits or hashes, a bitset of the wrong length).
    fn try_from(b: pb::ImpressionBloomFilterEntry) -> Result<Self, Self::Error> {
        let entry = Self {
            bits: b.bitset,
            num_bits: b.num_bits,
            num_hashes: b.num_hashes,
        };
        entry.check()?;
        Ok(entry)
    }
}

impl From<&LightPost> for pb::LightPost {
    fn from(p: &LightPost) -> Self {
        Self {
            post_id: p.post_id,
            author_id: p.author_id,
            created_at: p.created_at,
            in_reply_to_post_id: p.in_reply_to_post_id.map(|v| v.get()),
            in_reply_to_user_id: p.in_reply_to_user_id.map(|v| v.get()),
            is_retweet: p.is_retweet,
            is_reply: p.is_reply,
            source_post_id: p.source_post_id.map(|v| v.get()),
            source_user_id: p.source_user_id.map(|v| v.get()),
            has_video: p.has_video,
            conversation_id: p.conversation_id.map(|v| v.get()),
            video_duration_ms: p
                .video_duration_ms
                .map(|v| i32::try_from(v.get()).unwrap_or(i32::MAX)),
        }
    }
}
