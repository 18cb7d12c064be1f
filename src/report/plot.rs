//! The report's figures, drawn with plotters' SVG backend (no font files needed: text
//! goes into the SVG as `<text>` and the browser renders it with its own fonts).

use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;

/// One line of a figure.
#[derive(Debug, Clone, Default)]
pub struct Line {
    pub label: String,
    /// Colour index (the same platform keeps its colour across figures).
    pub color: usize,
    pub points: Vec<(f64, f64)>,
    /// Drawn dashed (e.g. p99 beside a solid p50).
    pub dashed: bool,
    /// A marked point (the knee), labelled with `marker_label`.
    pub marker: Option<(f64, f64)>,
    pub marker_label: String,
}

/// One bar: a gain with its interval.
#[derive(Debug, Clone)]
pub struct Bar {
    pub label: String,
    pub color: usize,
    pub value: f64,
    pub interval: Option<(f64, f64)>,
}

const SIZE: (u32, u32) = (760, 400);

/// The colour of index `i`.
pub fn color(i: usize) -> RGBColor {
    const C: [RGBColor; 10] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
        RGBColor(188, 189, 34),
        RGBColor(23, 190, 207),
    ];
    C[i % C.len()]
}

type Res = Result<(), String>;

fn err<E: std::fmt::Debug>(e: E) -> String {
    format!("{e:?}")
}

fn svg(draw: impl FnOnce(&DrawingArea<SVGBackend, Shift>) -> Res) -> Result<String, String> {
    let mut s = String::new();
    {
        let root = SVGBackend::with_string(&mut s, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        draw(&root)?;
        root.present().map_err(err)?;
    }
    Ok(s)
}

fn y_max(lines: &[Line]) -> f64 {
    let m = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.1))
        .filter(|y| y.is_finite())
        .fold(0.0f64, f64::max);
    if m > 0.0 {
        m * 1.12
    } else {
        1.0
    }
}

/// Lines against the batch size (log-2 x axis), e.g. throughput or latency.
pub fn batch_chart(
    title: &str,
    y_desc: &str,
    lines: &[Line],
    legend: SeriesLabelPosition,
) -> Result<String, String> {
    let xs = lines.iter().flat_map(|l| l.points.iter().map(|p| p.0));
    let (lo, hi) = xs.fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(x), b.max(x)));
    let (lo, hi) = if lo <= hi {
        (lo / 1.3, hi * 1.3)
    } else {
        (0.5, 2.0)
    };
    let ymax = y_max(lines);
    svg(|root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(64)
            .build_cartesian_2d((lo.max(0.1)..hi).log_scale().base(2.0), 0.0..ymax)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("batch")
            .y_desc(y_desc)
            .x_label_formatter(&|x| format!("{}", x.round()))
            .draw()
            .map_err(err)?;
        for l in lines {
            let c = color(l.color);
            let style = c.stroke_width(2);
            if l.dashed {
                chart
                    .draw_series(DashedLineSeries::new(l.points.iter().copied(), 6, 4, style))
                    .map_err(err)?
                    .label(&l.label)
                    .legend(move |(x, y)| {
                        DashedPathElement::new(vec![(x, y), (x + 20, y)], 4, 3, c.stroke_width(2))
                    });
            } else {
                chart
                    .draw_series(LineSeries::new(l.points.iter().copied(), style))
                    .map_err(err)?
                    .label(&l.label)
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2))
                    });
            }
            chart
                .draw_series(l.points.iter().map(|&p| Circle::new(p, 3, c.filled())))
                .map_err(err)?;
            if let Some(m) = l.marker {
                chart
                    .draw_series(std::iter::once(TriangleMarker::new(m, 9, c.filled())))
                    .map_err(err)?;
                chart
                    .draw_series(std::iter::once(Text::new(
                        l.marker_label.clone(),
                        m,
                        ("sans-serif", 13).into_font().color(&c),
                    )))
                    .map_err(err)?;
            }
        }
        chart
            .configure_series_labels()
            .position(legend)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
        Ok(())
    })
}

/// Lines against the run index (runs in time order), e.g. temperature per run.
pub fn run_chart(title: &str, y_desc: &str, lines: &[Line]) -> Result<String, String> {
    let n = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.0))
        .fold(1.0f64, f64::max);
    let ymax = y_max(lines);
    svg(|root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(64)
            .build_cartesian_2d(0.0..n + 1.0, 0.0..ymax)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("run (in time order)")
            .y_desc(y_desc)
            .draw()
            .map_err(err)?;
        for l in lines {
            let c = color(l.color);
            chart
                .draw_series(LineSeries::new(l.points.iter().copied(), c.stroke_width(1)))
                .map_err(err)?
                .label(&l.label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2))
                });
            chart
                .draw_series(l.points.iter().map(|&p| Circle::new(p, 2, c.filled())))
                .map_err(err)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
        Ok(())
    })
}

/// Gain bars with their intervals and a line at 1 (no difference).
pub fn gain_bars(title: &str, bars: &[Bar]) -> Result<String, String> {
    let top = bars
        .iter()
        .map(|b| b.interval.map_or(b.value, |i| i.1.max(b.value)))
        .filter(|x| x.is_finite())
        .fold(1.0f64, f64::max)
        * 1.15;
    let n = bars.len().max(1) as f64;
    let labels: Vec<String> = bars.iter().map(|b| b.label.clone()).collect();
    svg(|root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(64)
            .build_cartesian_2d(-0.5..n - 0.5, 0.0..top)
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(bars.len().max(1))
            .x_label_formatter(&|x| {
                let i = x.round();
                if (x - i).abs() < 1e-6 && i >= 0.0 {
                    labels.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .y_desc("gain (baseline p50 / p50)")
            .draw()
            .map_err(err)?;
        for (i, b) in bars.iter().enumerate() {
            let x = i as f64;
            let c = color(b.color);
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(x - 0.3, 0.0), (x + 0.3, b.value)],
                    c.mix(0.75).filled(),
                )))
                .map_err(err)?;
            if let Some((lo, hi)) = b.interval {
                chart
                    .draw_series(std::iter::once(ErrorBar::new_vertical(
                        x,
                        lo,
                        b.value,
                        hi,
                        BLACK.stroke_width(2),
                        12,
                    )))
                    .map_err(err)?;
            }
        }
        chart
            .draw_series(DashedLineSeries::new(
                [(-0.5, 1.0), (n - 0.5, 1.0)],
                6,
                4,
                BLACK.stroke_width(1),
            ))
            .map_err(err)?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_are_svg_with_their_text() {
        let l = Line {
            label: "board-a/ort/cpu".into(),
            points: vec![(1.0, 100.0), (2.0, 180.0), (4.0, 200.0)],
            marker: Some((2.0, 180.0)),
            marker_label: "knee 2".into(),
            ..Default::default()
        };
        let s = batch_chart(
            "throughput",
            "samples/s",
            std::slice::from_ref(&l),
            SeriesLabelPosition::LowerRight,
        )
        .unwrap();
        assert!(
            s.starts_with("<svg") && s.contains("board-a/ort/cpu") && s.contains("knee 2"),
            "{s}"
        );
        let s = run_chart("temperature", "°C", &[l]).unwrap();
        assert!(s.contains("<svg") && s.contains("temperature"));
        let b = [Bar {
            label: "b1".into(),
            color: 0,
            value: 2.5,
            interval: Some((2.0, 2.9)),
        }];
        let s = gain_bars("gains", &b).unwrap();
        assert!(s.contains("<rect") && s.contains("b1"), "{s}");
    }
}
