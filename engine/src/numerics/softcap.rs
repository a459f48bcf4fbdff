//! The attention-logit transform, fused: `cap * tanh(x * mult / cap)` in
//! one pass over the logits.
//!
//! Candle's form is four tensor passes (scale, divide, `tanhf`, scale), and
//! glibc's scalar `tanhf` goes through `expm1f`: on the mid shape (D 512,
//! S 256, C 256) those two functions were 20% of a ranker call (perf, one
//! thread). Here `tanh` is computed as
//!
//! * `|z| < 0.3`: the odd Taylor series to `z^9` (truncation below 2e-8
//!   absolute there), which keeps full relative accuracy near 0 where the
//!   exponential form cancels;
//! * otherwise: `sign(z) (1 - 2 / (exp(2|z|) + 1))`, one `expf`, absolute
//!   error a few f32 eps, and exactly ±1 once `exp` overflows.
//!
//! Against an f64 reference the result is within 3e-7 absolute of
//! `tanh` over [-60, 60] (tested), so after the `cap` (30) scale a logit
//! moves by at most ~1e-5: far inside the fixtures' 1e-4.

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor};

/// `tanh(z)` for f32, see the module comment for the method and its error.
/// Both forms are computed and one is selected, with the vectorisable
/// `numerics::simd::exp`, so loops over it vectorise (the CPU stack's softmax).
#[inline(always)]
pub fn tanh_f32(z: f32) -> f32 {
    let a = z.abs();
    let z2 = z * z;
    // z - z^3/3 + 2z^5/15 - 17z^7/315 + 62z^9/2835, Horner form.
    let p = 62.0 / 2835.0;
    let p = p * z2 - 17.0 / 315.0;
    let p = p * z2 + 2.0 / 15.0;
    let p = p * z2 - 1.0 / 3.0;
    let series = z + z * z2 * p;
    let far = (1.0 - 2.0 / (super::simd::exp(2.0 * a) + 1.0)).copysign(z);
    if a < 0.3 { series } else { far }
}

/// `cap * tanh(x * mult / cap)`, or `x * mult` without a cap.
#[inline(always)]
pub fn softcap_scalar(x: f32, mult: f32, cap: Option<f32>) -> f32 {
    match cap {
        Some(c) => c * tanh_f32(x * mult / c),
        None => x * mult,
    }
}

struct SoftCap {
    mult: f32,
    cap: Option<f32>,
}

impl CustomOp1 for SoftCap {
    fn name(&self) -> &'static str {
        "attention-softcap"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (mult, cap) = (self.mult, self.cap);
        super::gelu::map_f32(self.name(), storage, layout, |x| {
            softcap_scalar(x, mult, cap)
        })
    }
}

/// `cap * tanh(x * mult / cap)` elementwise (`x * mult` when `cap` is
/// `None`): one fused pass for f32 on the CPU, candle's ops otherwise.
pub fn softcap(x: &Tensor, mult: f32, cap: Option<f32>) -> Result<Tensor> {
    if x.dtype() == DType::F32 && x.device().is_cpu() {
        return x.contiguous()?.apply_op1_no_bwd(&SoftCap { mult, cap });
    }
    let s = (x * f64::from(mult))?;
    match cap {
        Some(c) => (s / f64::from(c))?.tanh()? * f64::from(c),
        None => Ok(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tanh_is_within_3e7_of_f64_everywhere_and_odd() {
        let mut worst = 0.0f64;
        for i in -600_000..=600_000 {
            let z = i as f32 * 1e-4; // [-60, 60]
            let got = f64::from(tanh_f32(z));
            let err = (got - f64::from(z).tanh()).abs();
            worst = worst.max(err);
            assert_eq!(tanh_f32(-z), -tanh_f32(z), "odd at {z}");
        }
        assert!(worst < 3e-7, "worst absolute error {worst}");
        // Near 0 the series keeps relative accuracy.
        let z = 1e-6f32;
        assert!((tanh_f32(z) - z).abs() <= f32::EPSILON * z);
        assert_eq!(tanh_f32(0.0), 0.0);
        assert_eq!(tanh_f32(1e4), 1.0);
        assert_eq!(tanh_f32(-1e4), -1.0);
        assert_eq!(tanh_f32(f32::INFINITY), 1.0);
    }

    #[test]
    fn the_fused_op_matches_candles_composition() -> Result<()> {
        let xs: Vec<f32> = (0..8192).map(|i| (i as f32 - 4096.0) / 16.0).collect();
        let t = Tensor::from_vec(xs, (64, 128), &candle_core::Device::Cpu)?;
        let (mult, cap) = (0.125f32, 30.0f32);
        let ours: Vec<f32> = softcap(&t, mult, Some(cap))?.flatten_all()?.to_vec1()?;
        let candle: Vec<f32> = ((&t * f64::from(mult))? / f64::from(cap))?
            .tanh()?
            .affine(f64::from(cap), 0.0)?
            .flatten_all()?
            .to_vec1()?;
        let d = ours
            .iter()
            .zip(&candle)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(d < 1e-5, "max |diff| {d}");
        // Without a cap it is the plain scale; a transposed input is copied.
        let plain: Vec<f32> = softcap(&t.t()?, 2.0, None)?.flatten_all()?.to_vec1()?;
        let want: Vec<f32> = (t.t()? * 2.0)?.flatten_all()?.to_vec1()?;
        assert_eq!(plain, want);
        Ok(())
    }
}
