//! The Phoenix models as users see them.
//!
//! * [`ranker`]: the fast ranker. User + history are encoded once, then
//!   candidates are scored against that context in chunks, on whichever
//!   [`Backend`](crate::backend::Backend) the model holds (chosen once, from
//!   a [`Device`](crate::backend::Device)); requests by ids go through
//!   [`PhoenixRanker::rank_ids`](ranker::PhoenixRanker::rank_ids).
//! * [`reference`]: the dense, explicitly masked ranker on candle (the test
//!   oracle, and the route of rows whose user token is padding).
//! * [`retriever`]: the two-tower retriever (user tower, candidate tower,
//!   exact top-k over a corpus).
//! * [`token_cache`]: candidate tokens kept between requests (a token
//!   depends on the candidate alone).
//!
//! Numerics follow the fixtures' README: f32 everywhere in f32 mode; in bf16
//! mode values are rounded to bf16 exactly where the reference rounds them,
//! and every product accumulates in f32 ([`crate::numerics::Precision`]).
//! Nothing here branches on a cargo feature or names a device type.

pub mod ranker;
pub mod reference;
pub mod retriever;
pub mod token_cache;
