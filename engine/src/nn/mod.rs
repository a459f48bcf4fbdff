//! The model's building blocks on candle's CPU backend, as the reference
//! defines them; used by the dense oracle, the retriever's towers and the
//! CPU backend's token and head steps.
//!
//! * [`tokens`] builds the token sequence from hash embeddings, actions and
//!   product surfaces (reference steps 1-6).
//! * [`layers`] and [`attention`] hold the decoder layer: sandwich RMSNorms,
//!   RoPE, grouped-query attention with soft-capped logits, gated GELU FFN.
//! * [`transformer`] runs the layer stack dense with an explicit mask (the
//!   oracle, and the retriever's user tower).
//! * [`head`]: the ranker's final norm, unembedding and sigmoid; the
//!   retriever's candidate tower, pooling and L2 norm.

pub mod attention;
pub mod head;
pub mod layers;
pub mod tokens;
pub mod transformer;
