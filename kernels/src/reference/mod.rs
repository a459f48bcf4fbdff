//! CPU references: the same contracts as the CUDA kernels, computed plainly
//! (f64 sums, one row at a time). Tests compare the kernels against these on
//! fresh random inputs, and against the engine's CPU model.

pub mod attention;
pub mod attention_gemm;
pub mod ops;
pub mod topk;

use half::bf16;

/// `‖out − reference‖ / ‖reference‖` over all elements; infinite when any
/// output is NaN or the lengths differ.
pub fn relative_error(out: &[f32], reference: &[f32]) -> f64 {
    if out.len() != reference.len() || out.iter().any(|x| x.is_nan()) {
        return f64::INFINITY;
    }
    let (mut diff, mut norm) = (0f64, 0f64);
    for (&o, &r) in out.iter().zip(reference) {
        diff += (f64::from(o) - f64::from(r)).powi(2);
        norm += f64::from(r).powi(2);
    }
    if norm == 0.0 {
        return diff.sqrt();
    }
    (diff / norm).sqrt()
}

/// f32 values rounded to bf16 (round to nearest even).
pub fn to_bf16(x: &[f32]) -> Vec<bf16> {
    x.iter().map(|&v| bf16::from_f32(v)).collect()
}

/// bf16 values widened to f32.
pub fn to_f32(x: &[bf16]) -> Vec<f32> {
    x.iter().map(|v| v.to_f32()).collect()
}

/// `x` rounded to bf16 and widened back.
pub fn round_bf16(x: f32) -> f32 {
    bf16::from_f32(x).to_f32()
}
