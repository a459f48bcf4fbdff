//! The stored value of each [`Format`](super::Format): how a row of f32
//! values is stored (with its scale) and how a stored value widens back to
//! f32. bf16 is kept as its bit pattern (`u16`) so widening is a shift;
//! int8 is kept offset by 128 as `u8` (`x + 128` in 1 ..= 255), the
//! unsigned operand AVX-512 VNNI multiplies (see `int8_kernel`).

/// A value type rows are stored in.
pub(crate) trait Element: Copy + Send + Sync + std::fmt::Debug + 'static {
    /// Whether a row's products are multiplied by its scale.
    const SCALED: bool;

    /// Dimensions packed together in the block layout (4 for int8: one
    /// 32-bit VNNI lane holds four consecutive values of a row).
    const GROUP: usize;

    /// The stored form of 0 (padding).
    const ZERO: Self;

    /// The scale of a row: what one unit of a stored value is worth (1 for
    /// unscaled formats, 0 for an all-zero int8 row).
    fn scale_of(row: &[f32]) -> f32;

    /// `x` stored in a row of scale `scale`.
    fn store(x: f32, scale: f32) -> Self;

    /// The stored value as f32 (before the row's scale).
    fn widen(self) -> f32;
}

/// An element the float kernel scans (16 consecutive rows of one
/// dimension widen to one AVX-512 vector).
pub(crate) trait FloatElement: Element {
    /// Sixteen stored values widened at once.
    #[cfg(target_arch = "x86_64")]
    fn widen_v4(simd: pulp::x86::V4, x: &[Self; 16]) -> pulp::f32x16;
}

impl Element for f32 {
    const SCALED: bool = false;
    const GROUP: usize = 1;
    const ZERO: Self = 0.0;

    fn scale_of(_: &[f32]) -> f32 {
        1.0
    }

    fn store(x: f32, _: f32) -> Self {
        x
    }

    #[inline(always)]
    fn widen(self) -> f32 {
        self
    }
}

impl FloatElement for f32 {
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn widen_v4(_: pulp::x86::V4, x: &[Self; 16]) -> pulp::f32x16 {
        pulp::cast(*x)
    }
}

/// bf16 bit patterns, rounded to nearest even.
impl Element for u16 {
    const SCALED: bool = false;
    const GROUP: usize = 1;
    const ZERO: Self = 0;

    fn scale_of(_: &[f32]) -> f32 {
        1.0
    }

    fn store(x: f32, _: f32) -> Self {
        half::bf16::from_f32(x).to_bits()
    }

    #[inline(always)]
    fn widen(self) -> f32 {
        f32::from_bits(u32::from(self) << 16)
    }
}

impl FloatElement for u16 {
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn widen_v4(simd: pulp::x86::V4, x: &[Self; 16]) -> pulp::f32x16 {
        let wide = simd.convert_u16x16_to_u32x16(pulp::cast(*x));
        pulp::cast(simd.shl_const_u32x16::<16>(wide))
    }
}

/// Symmetric int8 stored offset: `q = round(x / s)` in [-127, 127],
/// `s = max|x| / 127`, kept as `q + 128`.
impl Element for u8 {
    const SCALED: bool = true;
    const GROUP: usize = 4;
    const ZERO: Self = 128;

    fn scale_of(row: &[f32]) -> f32 {
        quant_scale(row)
    }

    fn store(x: f32, scale: f32) -> Self {
        (i16::from(quantise(x, scale)) + 128) as u8
    }

    #[inline(always)]
    fn widen(self) -> f32 {
        f32::from(self) - 128.0
    }
}

/// `max|x| / 127`: the symmetric int8 scale of a row or a query.
pub(crate) fn quant_scale(x: &[f32]) -> f32 {
    x.iter().fold(0.0f32, |m, v| m.max(v.abs())) / 127.0
}

/// `round(x / scale)` in [-127, 127] (0 when the scale is 0).
pub(crate) fn quantise(x: f32, scale: f32) -> i8 {
    if scale > 0.0 {
        // In range by construction (|x| <= 127 s); the clamp guards the
        // last ulp of the division.
        (x / scale).round().clamp(-127.0, 127.0) as i8
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int8_maps_the_largest_magnitude_to_127_and_rounds_the_rest() {
        let row = [0.5f32, -1.0, 0.25, 0.0];
        let s = u8::scale_of(&row);
        assert_eq!(s, 1.0 / 127.0);
        let q: Vec<f32> = row.iter().map(|&x| u8::store(x, s).widen()).collect();
        assert_eq!(q, vec![64.0, -127.0, 32.0, 0.0]);
        for (x, q) in row.iter().zip(&q) {
            assert!((q * s - x).abs() <= s / 2.0);
        }
    }

    #[test]
    fn int8_all_zero_row_has_scale_zero_and_stores_zero() {
        let s = u8::scale_of(&[0.0, -0.0]);
        assert_eq!(s, 0.0);
        assert_eq!(u8::store(0.0, s), u8::ZERO);
        assert_eq!(u8::ZERO.widen(), 0.0);
    }

    #[test]
    fn bf16_round_trips_through_its_bits_as_the_half_crate_rounds() {
        for x in [0.1f32, -0.3, 1.0 / 3.0, 1e-20, -7.5] {
            let b = u16::store(x, 1.0);
            assert_eq!(b.widen(), half::bf16::from_f32(x).to_f32());
        }
    }
}
