//! The hash-embedding gather (`gather_rows_bf16`, `gather_rows_bf16x8`)
//! without a GPU: the real kernel source compiled for the host
//! (`tests/emulate/ops_host.cpp`) runs with the launch the wrapper makes
//! (`cuda/ops.rs`: the 16-byte form when D, the row stride and the column
//! offset are multiples of 8; a grid-stride loop of at most 16 blocks per
//! SM), and its output must equal the CPU reference bit for bit, columns
//! outside the gathered block untouched. `gpu_contract` checks the same on
//! a GPU. Needs `c++` (see `emulate/mod.rs`).

mod emulate;

use foryou_kernels::reference::ops::{GatherShape, gather_rows};
use half::bf16;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The wrapper's choice of form (with 16-byte aligned buffers, as device
/// allocations are) and its grid for `sms` SMs.
fn launch_of(s: &GatherShape, sms: usize) -> (&'static str, usize) {
    let vector =
        s.dim.is_multiple_of(8) && s.out_stride.is_multiple_of(8) && s.out_offset.is_multiple_of(8);
    let w = if vector { 8 } else { 1 };
    let n = s.rows * s.per_row * s.dim / w;
    let grid = n.div_ceil(256).clamp(1, sms * 16);
    (if vector { "x8" } else { "x1" }, grid)
}

#[test]
fn host_emulation_of_the_gather_equals_the_reference_in_both_forms() {
    let Some(exe) = emulate::build("ops_host") else {
        return;
    };
    let mut rng = ChaCha8Rng::seed_from_u64(17);
    // (rows, H, D, table rows, skip row 0, out stride, out offset, SMs)
    let cases = [
        (40, 3, 64, 50, true, 3 * 64 + 16, 8, 132), // 16-byte form
        (40, 3, 64, 50, true, 3 * 64 + 16, 8, 1),   // same, grid-stride loop
        (33, 2, 12, 20, true, 2 * 12 + 5, 3, 1),    // element form
        (7, 1, 128, 9, false, 128, 0, 2),           // surface table: row 0 is a row
        (5, 4, 16, 6, true, 4 * 16 + 8, 4, 1),      // offset not a multiple of 8
    ];
    let mut forms = Vec::new();
    for (rows, h, d, table_rows, skip_row0, out_stride, out_offset, sms) in cases {
        let s = GatherShape {
            rows,
            per_row: h,
            dim: d,
            table_rows,
            skip_row0,
            out_stride,
            out_offset,
        };
        let (form, grid) = launch_of(&s, sms);
        forms.push(form);
        let table: Vec<bf16> = (0..table_rows * d)
            .map(|_| bf16::from_f32(rng.random_range(-1.0f32..1.0)))
            .collect();
        // Indices in range, 0 (padding for hash tables), negative and past
        // the table: the last two gather zeros.
        let idx: Vec<i32> = (0..rows * h)
            .map(|i| match i % 7 {
                0 => 0,
                1 => -3,
                2 => table_rows as i32 + 4,
                _ => rng.random_range(0..table_rows as i32),
            })
            .collect();
        // The output starts as a pattern, so untouched columns show.
        let start: Vec<bf16> = (0..rows * out_stride)
            .map(|i| bf16::from_f32(1000.0 + i as f32))
            .collect();
        let mut want = start.clone();
        gather_rows(&idx, &table, s, &mut want);

        let dir = emulate::case_dir(&format!(
            "gather_{rows}_{h}_{d}_{out_stride}_{out_offset}_{sms}"
        ));
        let le16 =
            |x: &[bf16]| -> Vec<u8> { x.iter().flat_map(|v| v.to_bits().to_le_bytes()).collect() };
        let idx_bytes: Vec<u8> = idx.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(dir.join("idx.bin"), idx_bytes).expect("write idx");
        std::fs::write(dir.join("table.bin"), le16(&table)).expect("write table");
        std::fs::write(dir.join("out.bin"), le16(&start)).expect("write out");
        std::fs::write(
            dir.join("gather.txt"),
            format!(
                "{form} {rows} {h} {d} {table_rows} {} {out_stride} {out_offset} {grid}\n",
                u8::from(skip_row0)
            ),
        )
        .expect("write spec");
        emulate::run(&exe, &dir);
        let got: Vec<u16> = std::fs::read(dir.join("out.bin"))
            .expect("harness output")
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        let want: Vec<u16> = want.iter().map(|v| v.to_bits()).collect();
        assert_eq!(got, want, "{s:?} ({form}, grid {grid})");
    }
    assert!(
        forms.contains(&"x8") && forms.contains(&"x1"),
        "both forms ran"
    );
}
