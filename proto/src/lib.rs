//! foryou's wire contract: every gRPC service and message, generated from
//! `proto/foryou/v1/*.proto` by tonic-prost-build (protox parses the protos,
//! so no system protoc is needed).
//!
//! Services: `ScoredPostsService` (home mixer), `InNetworkPostsService`
//! (Thunder, with the `IngestEvents` stream), `PhoenixRanker` and
//! `PhoenixRetrieval` (the engine as a service). Messages: the post events
//! (`InNetworkEvent`) shared by Kafka payloads and the ingest stream.
//!
//! All protos live in the one package `foryou.v1` (module [`v1`]). Every post
//! and user id is `int64` on the wire: X snowflakes fit in 63 bits and the
//! original Thunder and home mixer use `i64`, so callers holding `u64` ids
//! convert with `as i64`. Field names are the wire contract; numbers are ours.

pub mod codec;

/// Generated code of package `foryou.v1`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("foryou.v1");
}

/// Encoded `FileDescriptorSet` of every proto, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/foryou_descriptor.bin"));

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::v1::{InNetworkEvent, TweetCreateEvent, in_network_event::EventVariant};

    #[test]
    fn in_network_event_round_trips() {
        let ev = InNetworkEvent {
            event_variant: Some(EventVariant::TweetCreateEvent(TweetCreateEvent {
                post_id: 1_900_000_000_000_000_001,
                author_id: 42,
                created_at: 1_767_225_600,
                source_post_id: Some(7),
                has_video: true,
                video_duration_ms: Some(12_000),
                ..Default::default()
            })),
        };
        let bytes = ev.encode_to_vec();
        assert_eq!(
            InNetworkEvent::decode(bytes.as_slice()).expect("decodes"),
            ev
        );
    }

    #[test]
    fn descriptor_set_names_every_service() {
        let fds =
            prost_types::FileDescriptorSet::decode(super::FILE_DESCRIPTOR_SET).expect("valid set");
        let services: Vec<String> = fds
            .file
            .iter()
            .flat_map(|f| f.service.iter().filter_map(|s| s.name.clone()))
            .collect();
        for want in [
            "ScoredPostsService",
            "InNetworkPostsService",
            "PhoenixRanker",
            "PhoenixRetrieval",
        ] {
            assert!(
                services.iter().any(|s| s == want),
                "{want} missing from {services:?}"
            );
        }
    }
}
