//! Fused elementwise ops for the CPU path, where candle's generic ones cost
//! more than the matmuls around them.
//!
//! [`gelu_tanh`]: the tanh-approximated GELU,
//! `0.5 x (1 + tanh(u))` with `u = sqrt(2/pi) (x + 0.044715 x^3)`, computed
//! through the identity `0.5 (1 + tanh(u)) = 1 / (1 + exp(-2u))`: one `exp`
//! per element in a single pass, instead of candle's scalar `tanhf` (which
//! calls `expm1f` and was 20% of a serving-shape ranker call). The identity
//! is exact; the result is within ~1e-6 (relative) of the tanh form, and more
//! accurate than it for large negative `x`, where `1 + tanh(u)` cancels.
//!
//! Measured (ranker-serving, demo shape, 1000 candidates, one thread): see
//! `benches/results/ranker_serving_*.md`.

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor};

/// sqrt(2 / pi).
const SQRT_2_OVER_PI: f32 = 0.797_884_6;

/// GELU (tanh approximation) of one value, via the logistic identity, with
/// the vectorisable `numerics::simd::exp` (the CPU stack's GELU loop uses it).
#[inline(always)]
pub fn gelu_tanh_scalar(x: f32) -> f32 {
    let u = SQRT_2_OVER_PI * x * (1.0 + 0.044_715 * x * x);
    x / (1.0 + super::simd::exp(-2.0 * u))
}

struct GeluTanh;

impl CustomOp1 for GeluTanh {
    fn name(&self) -> &'static str {
        "gelu-tanh-logistic"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        map_f32(self.name(), storage, layout, gelu_tanh_scalar)
    }
}

/// The body of an elementwise f32 custom op: `f` over a contiguous f32
/// input, same shape out (other inputs are an error naming the op).
pub(crate) fn map_f32(
    op: &str,
    storage: &CpuStorage,
    layout: &Layout,
    f: impl Fn(f32) -> f32,
) -> Result<(CpuStorage, Shape)> {
    let CpuStorage::F32(data) = storage else {
        candle_core::bail!("{op}: f32 storage only")
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("{op}: contiguous input only")
    };
    let out: Vec<f32> = data[start..end].iter().map(|&x| f(x)).collect();
    Ok((CpuStorage::F32(out), layout.shape().clone()))
}

/// Tanh-approximated GELU of `x`: the fused op for f32 on CPU, candle's
/// `gelu` otherwise.
pub fn gelu_tanh(x: &Tensor) -> Result<Tensor> {
    if x.dtype() == DType::F32 && x.device().is_cpu() {
        x.contiguous()?.apply_op1_no_bwd(&GeluTanh)
    } else {
        x.gelu()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tanh form in f64: the reference formula without rounding.
    fn exact(x: f64) -> f64 {
        let u = (2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x);
        0.5 * x * (1.0 + u.tanh())
    }

    #[test]
    fn matches_the_tanh_form_within_f32_rounding() {
        let mut worst = 0.0f64;
        for i in -200_000..=200_000 {
            let x = i as f32 * 1e-4; // [-20, 20]
            let got = f64::from(gelu_tanh_scalar(x));
            let want = exact(f64::from(x));
            let err = (got - want).abs() / want.abs().max(1e-3);
            worst = worst.max(err);
        }
        // f32 inputs to exp and the division: ~10 eps of f32 at worst.
        assert!(worst < 2e-6, "worst relative error {worst}");
        assert_eq!(gelu_tanh_scalar(0.0), 0.0);
        assert_eq!(gelu_tanh_scalar(-100.0), -0.0);
        assert_eq!(gelu_tanh_scalar(100.0), 100.0);
    }

    #[test]
    fn the_fused_op_equals_candle_gelu_within_tolerance() -> Result<()> {
        let xs: Vec<f32> = (0..4096).map(|i| (i as f32 - 2048.0) / 256.0).collect();
        let t = Tensor::from_vec(xs, (64, 64), &candle_core::Device::Cpu)?;
        let ours: Vec<f32> = gelu_tanh(&t)?.flatten_all()?.to_vec1()?;
        let candle: Vec<f32> = t.gelu()?.flatten_all()?.to_vec1()?;
        let d = ours
            .iter()
            .zip(&candle)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(d < 1e-6, "max |diff| {d}");
        // Non-contiguous input goes through a copy.
        let tt = t.t()?;
        let a: Vec<f32> = gelu_tanh(&tt)?.flatten_all()?.to_vec1()?;
        let b: Vec<f32> = gelu_tanh(&tt.contiguous()?)?.flatten_all()?.to_vec1()?;
        assert_eq!(a, b);
        Ok(())
    }
}
