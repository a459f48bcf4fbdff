//! GetScoredPosts over loopback (127.0.0.1:0): request limits and malformed
//! bloom filters are INVALID_ARGUMENT on the wire, a request at the limits
//! is served, a body that is not protobuf is INVALID_ARGUMENT, and a
//! compressed request that inflates past the decode limit is refused.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use foryou_proto::v1 as pb;
use foryou_proto::v1::scored_posts_service_client::ScoredPostsServiceClient;
use foryou_server::grpc::limits::{HOME_MIXER_REQUEST_BYTES, MessageLimits};
use foryou_server::grpc::scored_posts::{HomeMixerService, MAX_BLOOM_FILTER_ENTRIES};
use foryou_server::pipeline::components::filters::PreviouslySeenPostsFilter;
use foryou_server::pipeline::framework::{CandidatePipeline, ComponentError, Source};
use foryou_server::pipeline::home_mixer::{PostCandidate, ScoredPostsQuery};
use foryou_server::pipeline::util::bloom::{MAX_BLOOM_BITS, MAX_BLOOM_HASHES};
use prost::bytes::{Buf, BufMut};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;

/// Candidates of the feed: what Phoenix and Thunder send at most (2 200).
const FEED: i64 = 2200;

/// 2 200 retweet replies: three related ids each, as many as a candidate has.
struct FullFeed;

#[async_trait]
impl Source<ScoredPostsQuery, PostCandidate> for FullFeed {
    async fn get_candidates(
        &self,
        _: &ScoredPostsQuery,
    ) -> Result<Vec<PostCandidate>, ComponentError> {
        Ok((1..=FEED)
            .map(|i| PostCandidate {
                tweet_id: i,
                retweeted_tweet_id: Some(10_000 + i),
                in_reply_to_tweet_id: Some(20_000 + i),
                ..PostCandidate::default()
            })
            .collect())
    }
}

/// Serves the home mixer (the full feed, the seen-posts filter) on a free
/// loopback port until the returned sender drops.
async fn start() -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let pipeline = CandidatePipeline::new()
        .source(FullFeed)
        .filter(PreviouslySeenPostsFilter);
    let svc = HomeMixerService::new(Arc::new(pipeline), 3000).into_server(MessageLimits::new(
        None,
        HOME_MIXER_REQUEST_BYTES,
        128 << 20,
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                let _ = rx.await;
            })
            .await
            .expect("serve");
    });
    (addr, tx)
}

async fn channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect")
}

fn all_ones(num_bits: u64, num_hashes: u32) -> pb::ImpressionBloomFilterEntry {
    pb::ImpressionBloomFilterEntry {
        bitset: vec![0xff; num_bits.div_ceil(8) as usize],
        num_bits,
        num_hashes,
    }
}

#[tokio::test]
async fn an_all_ones_filter_with_u32_max_hashes_is_invalid_argument_on_the_wire() {
    let (addr, _stop) = start().await;
    let mut c = ScoredPostsServiceClient::new(channel(addr).await);
    let started = Instant::now();
    let err = c
        .get_scored_posts(pb::ScoredPostsQuery {
            viewer_id: 7,
            bloom_filter_entries: vec![all_ones(4096, u32::MAX)],
            ..Default::default()
        })
        .await
        .expect_err("k = 2^32 - 1 is refused");
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert_eq!(
        err.message(),
        "bloom_filter_entries[0].num_hashes is 4294967295, expected 1 to 64 (the limit)"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "refused at once"
    );
}

#[tokio::test]
async fn filters_at_every_limit_are_served_and_remove_the_whole_feed() {
    let (addr, _stop) = start().await;
    let mut c = ScoredPostsServiceClient::new(channel(addr).await)
        .max_encoding_message_size(128 << 20)
        .max_decoding_message_size(128 << 20);
    let query = |entries: usize| pb::ScoredPostsQuery {
        viewer_id: 7,
        bloom_filter_entries: vec![all_ones(MAX_BLOOM_BITS, MAX_BLOOM_HASHES); entries],
        ..Default::default()
    };
    let err = c
        .get_scored_posts(query(MAX_BLOOM_FILTER_ENTRIES + 1))
        .await
        .expect_err("one filter too many");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert_eq!(
        err.message(),
        format!(
            "bloom_filter_entries has {} entries; the limit is {MAX_BLOOM_FILTER_ENTRIES}",
            MAX_BLOOM_FILTER_ENTRIES + 1
        )
    );
    // The worst accepted request: every filter all ones at the most bits
    // and hashes, so every probe of every related id runs.
    let started = Instant::now();
    let feed = c
        .get_scored_posts(query(MAX_BLOOM_FILTER_ENTRIES))
        .await
        .expect("at the limits")
        .into_inner();
    let took = started.elapsed();
    assert!(feed.scored_posts.is_empty(), "all ones: every post is seen");
    // Generous for an unoptimised build on a busy machine; without the
    // limits one such filter took seconds per request.
    assert!(took < Duration::from_secs(20), "took {took:?}");
    eprintln!("worst accepted bloom request: {took:?}");
}

/// Sends raw bytes as the request message and reads the reply's raw bytes.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        let n = src.remaining();
        Ok(Some(src.copy_to_bytes(n).to_vec()))
    }
}

#[tokio::test]
async fn a_body_that_is_not_protobuf_is_invalid_argument_and_the_server_keeps_serving() {
    let (addr, _stop) = start().await;
    let ch = channel(addr).await;
    let mut raw = tonic::client::Grpc::new(ch.clone());
    raw.ready().await.expect("ready");
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(
        "/foryou.v1.ScoredPostsService/GetScoredPosts",
    );
    // Field 1 (viewer_id) with wire type 7, which does not exist.
    let err = raw
        .unary(tonic::Request::new(vec![0x0f, 0xff, 0xff]), path, RawCodec)
        .await
        .expect_err("not protobuf");
    // tonic-prost answers INTERNAL; our codec (foryou_proto::codec) makes
    // it the caller's error.
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert!(
        err.message().starts_with("malformed protobuf message"),
        "{err:?}"
    );
    assert!(err.message().contains("wire type"), "{err:?}");
    assert_still_serving(ScoredPostsServiceClient::new(ch)).await;
}

/// A plain feed request on `c` still gets the whole feed.
async fn assert_still_serving(mut c: ScoredPostsServiceClient<Channel>) {
    let ok = c
        .get_scored_posts(pb::ScoredPostsQuery {
            viewer_id: 7,
            ..Default::default()
        })
        .await
        .expect("the server keeps serving");
    assert_eq!(ok.into_inner().scored_posts.len(), FEED as usize);
}

#[tokio::test]
async fn a_compressed_request_over_the_services_limit_is_refused_and_the_server_keeps_serving() {
    let (addr, _stop) = start().await;
    let mut c = ScoredPostsServiceClient::new(channel(addr).await)
        .send_compressed(tonic::codec::CompressionEncoding::Gzip)
        .max_encoding_message_size(128 << 20);
    // 24 MiB of zeros in one bitset: ~24 KiB on the wire once gzipped, over
    // the home mixer's 16 MiB decode limit once inflated.
    let bomb = pb::ScoredPostsQuery {
        viewer_id: 7,
        bloom_filter_entries: vec![pb::ImpressionBloomFilterEntry {
            bitset: vec![0; 24 << 20],
            num_bits: 64,
            num_hashes: 1,
        }],
        ..Default::default()
    };
    let err = c.get_scored_posts(bomb).await.expect_err("over the limit");
    assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err:?}");
    // tonic stops inflating at the limit: the 24 MiB never exist here.
    assert!(err.message().contains("size limit"), "{err:?}");
    assert_still_serving(c).await;
    const { assert!(HOME_MIXER_REQUEST_BYTES < 24 << 20) };
}
