//! The Phoenix model on candle's CPU backend.
//!
//! * [`tokens`] builds the token sequence from hash embeddings, actions and
//!   product surfaces (reference steps 1-6).
//! * [`layers`] and [`attention`] hold the decoder layer: sandwich RMSNorms,
//!   RoPE, grouped-query attention with soft-capped logits, gated GELU FFN.
//! * [`transformer`] runs the layer stack dense with an explicit mask (the
//!   oracle, and the retriever's user tower).
//! * [`reference`] is the dense ranker, [`ranker`] the fast one (its layer
//!   stack runs on [`crate::cpu`]: context once, then candidates against the
//!   cached K/V), [`retriever`] the two-tower model.
//!
//! Numerics follow the fixtures' README: f32 everywhere in f32 mode; in bf16
//! mode values are rounded to bf16 exactly where the reference rounds them,
//! and every product accumulates in f32 ([`Precision`]).

pub mod attention;
pub mod fused;
pub mod layers;
pub mod ranker;
pub mod reference;
pub mod retriever;
pub mod softcap;
pub mod tokens;
pub mod transformer;

use candle_core::{DType, Tensor};

use crate::config::FpropDtype;

/// Where values are rounded: a no-op in f32, round-to-nearest-even to bf16
/// (kept in f32 storage) in bf16 mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Precision(pub FpropDtype);

impl Precision {
    /// Whether values are rounded to bf16.
    pub fn is_bf16(&self) -> bool {
        self.0 == FpropDtype::Bf16
    }

    /// Rounds `t` to the forward dtype (values stay in an f32 tensor).
    pub fn round(&self, t: Tensor) -> candle_core::Result<Tensor> {
        match self.0 {
            FpropDtype::F32 => Ok(t),
            FpropDtype::Bf16 => t.to_dtype(DType::BF16)?.to_dtype(DType::F32),
        }
    }
}
