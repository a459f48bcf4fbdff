//! Small SVG line charts for the bench commands' results (the PNG twins
//! come from plotters in [`super::plot_png`]).
//!
//! Hand-written: SVG text needs no font at write time (the viewer renders
//! it), and the chart is a few dozen lines of markup.

use std::fmt::Write;

/// One line: a name and its (x, y) points.
pub struct Series<'a> {
    /// Legend text.
    pub name: &'a str,
    /// Points, in x order.
    pub points: Vec<(f64, f64)>,
}

/// One chart panel.
pub struct Panel<'a> {
    /// Title above the panel.
    pub title: &'a str,
    /// X-axis label.
    pub x_label: &'a str,
    /// Y-axis label.
    pub y_label: &'a str,
    /// Log2 x axis (batch sizes); otherwise linear.
    pub log_x: bool,
    /// The lines.
    pub series: Vec<Series<'a>>,
}

const W: f64 = 520.0;
const H: f64 = 340.0;
const M: (f64, f64, f64, f64) = (60.0, 20.0, 40.0, 50.0); // left, right, top, bottom
const COLORS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
];

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Panels side by side in one SVG document.
pub fn svg(panels: &[Panel<'_>]) -> String {
    let mut out = String::new();
    let total_w = W * panels.len().max(1) as f64;
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{total_w}" height="{H}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    for (i, p) in panels.iter().enumerate() {
        panel(&mut out, p, W * i as f64);
    }
    out.push_str("</svg>\n");
    out
}

fn panel(out: &mut String, p: &Panel<'_>, x0: f64) {
    let pts = p.series.iter().flat_map(|s| s.points.iter());
    let fx = |x: f64| if p.log_x { x.max(1e-9).log2() } else { x };
    let (mut xmin, mut xmax, mut ymax) = (f64::INFINITY, f64::NEG_INFINITY, 0.0f64);
    for &(x, y) in pts {
        if x.is_finite() && y.is_finite() {
            xmin = xmin.min(fx(x));
            xmax = xmax.max(fx(x));
            ymax = ymax.max(y);
        }
    }
    if !xmin.is_finite() {
        return;
    }
    if xmax <= xmin {
        xmax = xmin + 1.0;
    }
    let ymax = if ymax > 0.0 { ymax * 1.1 } else { 1.0 };
    let (l, r, t, b) = M;
    let sx = |x: f64| x0 + l + (fx(x) - xmin) / (xmax - xmin) * (W - l - r);
    let sy = |y: f64| t + (1.0 - y / ymax) * (H - t - b);
    let _ = writeln!(
        out,
        r#"<text x="{}" y="16" text-anchor="middle" font-size="13">{}</text>"#,
        x0 + W / 2.0,
        escape(p.title)
    );
    // Axes, ticks and grid.
    let _ = writeln!(
        out,
        r##"<path d="M{} {} V{} H{}" stroke="#333" fill="none"/>"##,
        x0 + l,
        t,
        H - b,
        x0 + W - r
    );
    for i in 0..=4 {
        let y = ymax * f64::from(i) / 4.0;
        let (gx0, gx1, gy, lx, ly, label) = (
            x0 + l,
            x0 + W - r,
            sy(y),
            x0 + l - 4.0,
            sy(y) + 4.0,
            tick(y),
        );
        let _ = writeln!(
            out,
            r##"<line x1="{gx0}" x2="{gx1}" y1="{gy}" y2="{gy}" stroke="#ddd"/><text x="{lx}" y="{ly}" text-anchor="end">{label}</text>"##
        );
    }
    let mut xs: Vec<f64> = p
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|pt| pt.0))
        .collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    for x in xs {
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
            sx(x),
            H - b + 14.0,
            tick(x)
        );
    }
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        x0 + l + (W - l - r) / 2.0,
        H - 12.0,
        escape(p.x_label)
    );
    let _ = writeln!(
        out,
        r#"<text transform="translate({},{}) rotate(-90)" text-anchor="middle">{}</text>"#,
        x0 + 14.0,
        t + (H - t - b) / 2.0,
        escape(p.y_label)
    );
    // Lines and legend.
    for (i, s) in p.series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let d: Vec<String> = s
            .points
            .iter()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .enumerate()
            .map(|(j, &(x, y))| {
                format!(
                    "{}{:.1} {:.1}",
                    if j == 0 { "M" } else { "L" },
                    sx(x),
                    sy(y)
                )
            })
            .collect();
        let _ = writeln!(
            out,
            r#"<path d="{}" stroke="{color}" stroke-width="2" fill="none"/>"#,
            d.join(" ")
        );
        let ly = t + 6.0 + 14.0 * i as f64;
        let _ = writeln!(
            out,
            r#"<line x1="{}" x2="{}" y1="{ly}" y2="{ly}" stroke="{color}" stroke-width="2"/><text x="{}" y="{}">{}</text>"#,
            x0 + l + 10.0,
            x0 + l + 28.0,
            x0 + l + 32.0,
            ly + 4.0,
            escape(s.name)
        );
    }
}

fn tick(v: f64) -> String {
    if v >= 1000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v >= 10.0 || v == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_every_series_and_escapes_text() {
        let s = svg(&[Panel {
            title: "latency <p50>",
            x_label: "batch",
            y_label: "ms",
            log_x: true,
            series: vec![
                Series {
                    name: "ranker",
                    points: vec![(1.0, 2.0), (2.0, 3.0), (4.0, 5.0)],
                },
                Series {
                    name: "retriever",
                    points: vec![(1.0, 4.0), (4.0, f64::NAN)],
                },
            ],
        }]);
        assert!(s.starts_with("<svg") && s.trim_end().ends_with("</svg>"));
        assert_eq!(s.matches("stroke-width=\"2\" fill=\"none\"").count(), 2);
        assert!(s.contains("latency &lt;p50&gt;") && !s.contains("<p50>"));
        assert!(s.contains(">ranker<") && s.contains(">retriever<"));
        assert!(!s.contains("NaN"), "non-finite points are skipped");
    }
}
