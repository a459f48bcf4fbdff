//! Scalar math written to vectorise, and a way to compile the loops that use
//! it for the CPU's widest vectors.
//!
//! The release build targets baseline x86-64 (SSE2), so a plain loop gets
//! 4-wide vectors at best. [`wide!`] declares a function whose body also
//! has a copy compiled for AVX-512, picked at run time.
//!
//! [`exp`] and [`round_bf16`] are branch-free so such loops vectorise: libm's
//! `expf` is a call per element (12% of a mid-shape bf16 call in perf), and
//! `half`'s conversion is not inlined.

/// Whether the CPU has AVX-512 (F, BW, VL, DQ) with AVX2 and FMA; checked once.
pub fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *HAS.get_or_init(|| {
            std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("avx512vl")
                && std::arch::is_x86_feature_detected!("avx512dq")
                && std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// `wide!(pub fn name(args) => body)` declares `name::<B>(args)`, which runs
/// `body::<B>(args)` (an `#[inline(always)]` function) compiled for AVX-512
/// when [`has_avx512`], else for the build's baseline. The body is inlined
/// into a `#[target_feature]` copy, so its loops vectorise 16 wide; a
/// closure would not do (closures are not reliably inlined into it).
macro_rules! wide {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($a:ident: $t:ty),* $(,)?) => $body:ident) => {
        $(#[$m])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name<const B: bool>($($a: $t),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c,bmi1,bmi2")]
                #[allow(clippy::too_many_arguments)]
                fn v4<const B: bool>($($a: $t),*) {
                    $body::<B>($($a),*)
                }
                if $crate::numerics::simd::has_avx512() {
                    #[allow(unsafe_code)]
                    // SAFETY: the CPU has every feature `v4` is compiled for.
                    unsafe { v4::<B>($($a),*) };
                    return;
                }
            }
            $body::<B>($($a),*)
        }
    };
}
pub(crate) use wide;

/// `e^x` for f32, within 2 ulp of `expf` over the normal range (tested);
/// 0 below `-87.3` (where `e^x` leaves the normal range), so `exp(-inf)`
/// is exactly 0 as masking needs; `+inf` above `88.7`.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const SHIFT: f32 = 12_582_912.0; // 1.5 * 2^23: adding it rounds to an integer
    let xc = x.clamp(-87.3, 88.7);
    let n = (xc * LOG2E + SHIFT) - SHIFT;
    let r = xc - n * LN2_HI - n * LN2_LO; // |r| <= ln2 / 2
    // e^r by its Taylor series to r^7 (truncation < 6e-9 relative here).
    let p = 1.0 / 5040.0;
    let p = p * r + 1.0 / 720.0;
    let p = p * r + 1.0 / 120.0;
    let p = p * r + 1.0 / 24.0;
    let p = p * r + 1.0 / 6.0;
    let p = p * r + 0.5;
    let p = p * r + 1.0;
    let p = p * r + 1.0;
    // p * 2^n by adding n to p's exponent: p lies in [0.7, 1.42], and in
    // the clamped range the sum stays a normal exponent (1 ..= 254).
    let y = f32::from_bits((p.to_bits() as i32).wrapping_add((n as i32) << 23) as u32);
    if x < -87.3 {
        0.0
    } else if x > 88.7 {
        f32::INFINITY
    } else {
        y
    }
}

/// Round-to-nearest-even to bf16, kept in f32; NaN stays NaN.
#[inline(always)]
pub fn round_bf16(x: f32) -> f32 {
    let b = x.to_bits();
    let rounded = b.wrapping_add(0x7fff + ((b >> 16) & 1)) & 0xffff_0000;
    if x.is_nan() {
        x
    } else {
        f32::from_bits(rounded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ulps(a: f32, b: f32) -> u32 {
        (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs() as u32
    }

    #[test]
    fn exp_is_within_two_ulp_of_libm_over_the_normal_range() {
        let mut worst = 0;
        let mut x = -87.0f32;
        while x < 88.5 {
            let u = ulps(exp(x), x.exp());
            assert!(u <= 2, "exp({x}) = {} against {}", exp(x), x.exp());
            worst = worst.max(u);
            x += 0.0137;
        }
        for x in [0.0f32, 1e-8, -1e-8, 0.5, -0.5, 1.0, -1.0, 30.0, -30.0] {
            worst = worst.max(ulps(exp(x), x.exp()));
        }
        assert!(worst <= 2, "worst {worst} ulp");
    }

    #[test]
    fn exp_ends_at_zero_and_infinity() {
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(-1e30), 0.0);
        assert_eq!(exp(-100.0), 0.0);
        assert_eq!(exp(100.0), f32::INFINITY);
        assert_eq!(exp(0.0), 1.0);
    }

    #[test]
    fn bf16_rounding_matches_the_half_crate() {
        let mut x = -3.0e5f32;
        while x < 3.0e5 {
            for v in [x, x * 1.0001, 1.0 / x] {
                assert_eq!(round_bf16(v), half::bf16::from_f32(v).to_f32(), "{v}");
            }
            x += 77.7;
        }
        for v in [
            0.0f32,
            -0.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::MAX,
            1e-40,
        ] {
            assert_eq!(
                round_bf16(v).to_bits(),
                half::bf16::from_f32(v).to_f32().to_bits(),
                "{v}"
            );
        }
        assert!(round_bf16(f32::NAN).is_nan());
    }
}
