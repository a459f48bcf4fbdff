//! The same charts as [`super::plot`], as PNG: plotters drawing to a bitmap,
//! text laid out by ab_glyph with DejaVu Sans embedded in the binary (the
//! `dejavu` crate), so writing a PNG needs no fontconfig and no system fonts.

use std::path::Path;

use plotters::coord::Shift;
use plotters::coord::ranged1d::ValueFormatter;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use super::plot::Panel;

const W: u32 = 560;
const H: u32 = 360;
const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

fn err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("drawing the chart: {e}")
}

/// Registers the embedded font under "sans-serif" (once per process).
fn register_font() -> anyhow::Result<()> {
    static LOADED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = *LOADED.get_or_init(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular())
            .is_ok()
    });
    anyhow::ensure!(ok, "the embedded DejaVu Sans font did not load");
    Ok(())
}

/// Writes `panels` side by side as one PNG at `path`.
pub fn png(path: &Path, panels: &[Panel<'_>]) -> anyhow::Result<()> {
    register_font()?;
    let n = panels.len().max(1);
    let root = BitMapBackend::new(path, (W * n as u32, H)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let areas = root.split_evenly((1, n));
    for (area, p) in areas.iter().zip(panels) {
        panel(area, p)?;
    }
    root.present().map_err(err)?;
    Ok(())
}

/// The axes' ranges: x over the points (positive for a log axis), y from 0
/// to 10% above the largest point.
fn ranges(p: &Panel<'_>) -> (f64, f64, f64) {
    let pts = p.series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, 0f64);
    for &(x, y) in pts.filter(|(x, y)| x.is_finite() && y.is_finite()) {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y1 = y1.max(y);
    }
    if p.log_x {
        x0 = x0.max(1e-9);
    }
    if x0.partial_cmp(&x1) != Some(std::cmp::Ordering::Less) {
        (x0, x1) = if x0.is_finite() {
            (x0, x0 * 2.0 + 1.0)
        } else {
            (1.0, 2.0)
        };
    }
    (x0, x1, if y1 > 0.0 { y1 * 1.1 } else { 1.0 })
}

fn panel(area: &DrawingArea<BitMapBackend<'_>, Shift>, p: &Panel<'_>) -> anyhow::Result<()> {
    let (x0, x1, y1) = ranges(p);
    let mut b = ChartBuilder::on(area);
    b.caption(p.title, ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(64);
    if p.log_x {
        let chart = b
            .build_cartesian_2d((x0..x1).log_scale(), 0f64..y1)
            .map_err(err)?;
        lines(chart, p)
    } else {
        let chart = b.build_cartesian_2d(x0..x1, 0f64..y1).map_err(err)?;
        lines(chart, p)
    }
}

fn lines<'a, 'path: 'a, X>(
    mut chart: ChartContext<'a, BitMapBackend<'path>, Cartesian2d<X, RangedCoordf64>>,
    p: &Panel<'_>,
) -> anyhow::Result<()>
where
    X: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    chart
        .configure_mesh()
        .x_desc(p.x_label)
        .y_desc(p.y_label)
        .label_style(("sans-serif", 12))
        .draw()
        .map_err(err)?;
    for (i, s) in p.series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(
                s.points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(err)?
            .label(s.name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
            });
        chart
            .draw_series(
                s.points
                    .iter()
                    .map(|&pt| Circle::new(pt, 3, color.filled())),
            )
            .map_err(err)?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 12))
        .draw()
        .map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::plot::Series;

    #[test]
    fn writes_a_png_with_drawn_lines_on_both_axis_kinds() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("chart.png");
        let panel = |log_x| Panel {
            title: "p50 latency",
            x_label: "batch size",
            y_label: "ms",
            log_x,
            series: vec![
                Series {
                    name: "ranker",
                    points: vec![(1.0, 2.0), (4.0, 5.0), (64.0, 40.0)],
                },
                Series {
                    name: "empty",
                    points: vec![],
                },
            ],
        };
        png(&path, &[panel(true), panel(false)]).expect("png written");
        let bytes = std::fs::read(&path).expect("read back");
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "a PNG signature");
        // IHDR: width and height, big-endian, right after the signature.
        let w = u32::from_be_bytes(bytes[16..20].try_into().expect("4 bytes"));
        let h = u32::from_be_bytes(bytes[20..24].try_into().expect("4 bytes"));
        assert_eq!((w, h), (2 * W, H));
        // A chart with lines and text is far from a blank image.
        assert!(bytes.len() > 5_000, "only {} bytes", bytes.len());
    }

    #[test]
    fn ranges_survive_no_points_and_one_point() {
        let p = |points: Vec<(f64, f64)>| Panel {
            title: "t",
            x_label: "x",
            y_label: "y",
            log_x: true,
            series: vec![Series { name: "s", points }],
        };
        let (x0, x1, y1) = ranges(&p(vec![]));
        assert!(x0 < x1 && y1 > 0.0);
        let (x0, x1, y1) = ranges(&p(vec![(8.0, 3.0)]));
        assert!(x0 == 8.0 && x1 > 8.0 && (y1 - 3.3).abs() < 1e-9);
    }
}
