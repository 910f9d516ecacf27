//! PNG charts of a report, drawn with `plotters`' bitmap backend. Text goes through
//! `ab_glyph` with DejaVu Sans embedded from the `dejavu` crate, so no system font package
//! is needed. Reads the report; measures nothing.

use crate::report::{Report, Row};
use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;
use plotters::style::register_font;
use std::path::Path;

const WIDTH: u32 = 1400;
const LABEL_CHARS: usize = 60;

fn fail(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("drawing a chart: {e}")
}

/// Registers the embedded font as `sans-serif` (idempotent).
fn fonts() -> anyhow::Result<()> {
    register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular())
        .map_err(|_| anyhow::anyhow!("the embedded DejaVu font did not load"))
}

fn short(s: &str) -> String {
    if s.chars().count() <= LABEL_CHARS {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(LABEL_CHARS - 1).collect();
        t.push('…');
        t
    }
}

/// A log axis range covering `values` with some room, never empty.
fn log_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::MAX, f64::MIN);
    for v in values.filter(|v| *v > 0.0 && v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if lo > hi {
        return (0.1, 10.0);
    }
    (lo / 2.0, hi * 2.0)
}

/// Horizontal bars of ours / reference on a log axis, one per headline figure measured;
/// green when its target is met, red when not.
fn ratios(report: &Report, path: &Path) -> anyhow::Result<bool> {
    let headlines = report.headlines();
    let rows: Vec<(&crate::report::Headline, f64)> = headlines
        .iter()
        .filter_map(|h| h.ratio().map(|x| (h, x)))
        .filter(|(_, x)| *x > 0.0) // a zero has no place on a log axis
        .collect();
    if rows.is_empty() {
        return Ok(false);
    }
    let n = rows.len();
    let labels: Vec<String> = rows
        .iter()
        .map(|(h, _)| short(&format!("{}: {}", h.id, h.target())))
        .collect();
    let (lo, hi) = log_range(rows.iter().map(|(_, x)| *x).chain([1.0]));
    let height = 160 + 44 * n as u32;
    let root = BitMapBackend::new(path, (WIDTH, height)).into_drawing_area();
    root.fill(&WHITE).map_err(fail)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "ours / reference (log scale, 1 = equal; green: target met, red: not met)",
            ("sans-serif", 22),
        )
        .margin(16)
        .x_label_area_size(50)
        .y_label_area_size(560)
        .build_cartesian_2d((lo..hi).log_scale(), (0..n - 1).into_segmented())
        .map_err(fail)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n)
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => labels.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .x_desc("ratio ours / reference")
        .label_style(("sans-serif", 15))
        .draw()
        .map_err(fail)?;
    chart
        .draw_series(rows.iter().enumerate().map(|(i, (h, x))| {
            let color = if h.met() {
                RGBColor(46, 139, 87)
            } else {
                RGBColor(205, 92, 60)
            };
            let mut bar = Rectangle::new(
                [
                    (1.0, SegmentValue::Exact(i)),
                    (*x, SegmentValue::Exact(i + 1)),
                ],
                color.filled(),
            );
            bar.set_margin(6, 6, 0, 0);
            bar
        }))
        .map_err(fail)?;
    chart
        .draw_series(rows.iter().enumerate().map(|(i, (_, x))| {
            Text::new(
                format!("{x:.3}"),
                (x.max(1.0) * 1.05, SegmentValue::CenterOf(i)),
                ("sans-serif", 14),
            )
        }))
        .map_err(fail)?;
    chart
        .draw_series(LineSeries::new(
            [(1.0, SegmentValue::Exact(0)), (1.0, SegmentValue::Last)],
            BLACK.stroke_width(2),
        ))
        .map_err(fail)?;
    root.present().map_err(fail)?;
    Ok(true)
}

/// Paired bars (ours, reference) of every figure measured in milliseconds.
// tidy: long function: one chart's axes, bars and labels read best in one place.
fn latencies(report: &Report, path: &Path) -> anyhow::Result<bool> {
    let rows: Vec<&Row> = report.rows().iter().filter(|r| r.unit == "ms").collect();
    if rows.is_empty() {
        return Ok(false);
    }
    let n = rows.len();
    let labels: Vec<String> = rows.iter().map(|r| short(&r.figure)).collect();
    let (lo, hi) = log_range(
        rows.iter()
            .flat_map(|r| [Some(r.ours), r.reference])
            .flatten(),
    );
    let hi = hi * 30.0; // room for the value labels right of the bars
    let height = 180 + 56 * n as u32;
    let root = BitMapBackend::new(path, (WIDTH, height)).into_drawing_area();
    root.fill(&WHITE).map_err(fail)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "latencies in ms (log scale): latchkey (blue) vs reference (grey)",
            ("sans-serif", 22),
        )
        .margin(16)
        .x_label_area_size(50)
        .y_label_area_size(520)
        .build_cartesian_2d((lo..hi).log_scale(), (0..n - 1).into_segmented())
        .map_err(fail)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n)
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => labels.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .x_desc("milliseconds")
        .label_style(("sans-serif", 15))
        .draw()
        .map_err(fail)?;
    let blue = RGBColor(65, 105, 225);
    let grey = RGBColor(150, 150, 150);
    let bar = |i: usize, v: f64, upper: bool, color: RGBColor| {
        let mut b = Rectangle::new(
            [
                (lo, SegmentValue::Exact(i)),
                (v.max(lo), SegmentValue::Exact(i + 1)),
            ],
            color.filled(),
        );
        // Segment bands run bottom-up; the top half holds ours.
        if upper {
            b.set_margin(6, 27, 0, 0);
        } else {
            b.set_margin(27, 6, 0, 0);
        }
        b
    };
    chart
        .draw_series(
            rows.iter()
                .enumerate()
                .map(|(i, r)| bar(i, r.ours, true, blue)),
        )
        .map_err(fail)?;
    chart
        .draw_series(
            rows.iter()
                .enumerate()
                .filter_map(|(i, r)| r.reference.map(|v| bar(i, v, false, grey))),
        )
        .map_err(fail)?;
    chart
        .draw_series(rows.iter().enumerate().map(|(i, r)| {
            let reference = r
                .reference
                .map(|v| format!("{v:.2}"))
                .unwrap_or_else(|| "n/a".into());
            Text::new(
                format!("{:.2} vs {reference} ({})", r.ours, r.reference_name),
                (
                    r.ours.max(r.reference.unwrap_or(0.0)).max(lo) * 1.1,
                    SegmentValue::CenterOf(i),
                ),
                ("sans-serif", 13),
            )
        }))
        .map_err(fail)?;
    root.present().map_err(fail)?;
    Ok(true)
}

/// Cumulative distributions of the kept latency samples (fanout: ours vs the peer).
fn cdf(report: &Report, path: &Path) -> anyhow::Result<bool> {
    let dists = report.distributions();
    if dists.iter().all(|d| d.sorted_ms.is_empty()) {
        return Ok(false);
    }
    let (lo, hi) = log_range(dists.iter().flat_map(|d| d.sorted_ms.iter().copied()));
    let root = BitMapBackend::new(path, (WIDTH, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(fail)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "fanout: publish-to-receive latency, cumulative",
            ("sans-serif", 22),
        )
        .margin(16)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d((lo..hi).log_scale(), 0f64..100f64)
        .map_err(fail)?;
    chart
        .configure_mesh()
        .x_desc("milliseconds (log scale)")
        .y_desc("% of deliveries at or below")
        .label_style(("sans-serif", 15))
        .draw()
        .map_err(fail)?;
    let colors = [
        RGBColor(65, 105, 225),
        RGBColor(205, 92, 60),
        RGBColor(46, 139, 87),
    ];
    for (d, color) in dists.iter().zip(colors.iter().cycle()) {
        let n = d.sorted_ms.len().max(1) as f64;
        let color = *color;
        chart
            .draw_series(LineSeries::new(
                d.sorted_ms
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (v.max(lo), (i + 1) as f64 * 100.0 / n)),
                color.stroke_width(3),
            ))
            .map_err(fail)?
            .label(d.name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(3))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font(("sans-serif", 16))
        .draw()
        .map_err(fail)?;
    root.present().map_err(fail)?;
    Ok(true)
}

/// Draws every chart the report has data for into `dir`; the file names written.
pub fn draw_all(report: &Report, dir: &Path) -> anyhow::Result<Vec<String>> {
    fonts()?;
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    type Draw = fn(&Report, &Path) -> anyhow::Result<bool>;
    let charts: [(&str, Draw); 3] = [
        ("ratios.png", ratios),
        ("latency.png", latencies),
        ("fanout-latency-cdf.png", cdf),
    ];
    for (name, draw) in charts {
        let path = dir.join(name);
        if draw(report, &path)? {
            written.push(name.to_string());
        } else if path.exists() {
            std::fs::remove_file(&path)?;
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_pngs_with_the_embedded_font() -> anyhow::Result<()> {
        let mut r = Report::new();
        r.headline(crate::report::Headline {
            id: "authed_vs_healthz",
            figure: "a rate".into(),
            ours: Some(50.0),
            unit: "per s".into(),
            reference_name: "ceiling".into(),
            reference: Some(100.0),
            better: crate::report::Better::Higher,
            checks: Vec::new(),
            includes: String::new(),
        });
        r.push(
            "a latency",
            2.0,
            "peer",
            Some(1.0),
            "ms",
            crate::report::Better::Lower,
        );
        r.distribution("ours", vec![0.5, 1.0, 2.0, 4.0]);
        let dir = tempfile::tempdir()?;
        let written = draw_all(&r, dir.path())?;
        assert_eq!(written.len(), 3);
        for w in written {
            assert!(std::fs::metadata(dir.path().join(w))?.len() > 1000);
        }
        Ok(())
    }
}
