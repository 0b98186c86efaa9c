//! PNG plots of a run: load and goodput over time, and latency over time.

use crate::summary::percentile;
use crate::Report;
use plotters::prelude::*;
use std::error::Error;
use std::path::Path;
use std::sync::Once;

/// DejaVu Sans (its license is `sim/fonts/DejaVuSans-LICENSE.txt`): plotters' `ab_glyph` text
/// needs a font of its own.
static FONT: &[u8] = include_bytes!("../fonts/DejaVuSans.ttf");

fn register_font() {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, FONT)
            .map_err(|_| "DejaVu Sans")
            .expect("the bundled font parses");
    });
}

/// Draws `report` into a PNG at `path`: requests sent, attempts at the servers, goodput and
/// the servers' capacity per second above; the median and 99th percentile latency of the
/// successful requests (by the second they were sent) below, on a log scale.
pub fn draw(report: &Report, path: &Path) -> Result<(), Box<dyn Error>> {
    register_font();
    let config = &report.config;
    let series = &report.series;
    let seconds = series.requests.len();
    let root = BitMapBackend::new(path, (1000, 720)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(config.scenario.title(), ("sans-serif", 26))?;
    let (top, bottom) = root.split_vertically(400);

    let capacity = config.capacity();
    let f = config.failure;
    let capacity_at = |s: usize| {
        let t = s as f64;
        if t >= f.start.as_secs_f64() && t < (f.start + f.length).as_secs_f64() {
            capacity * f.fraction
        } else {
            capacity
        }
    };
    let peak = series
        .attempts
        .iter()
        .chain(&series.requests)
        .copied()
        .max()
        .unwrap_or(0) as f64;
    let y_max = (peak.max(capacity) * 1.1).max(1.0);
    let mut chart = ChartBuilder::on(&top)
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..seconds as f64, 0f64..y_max)?;
    chart
        .configure_mesh()
        .x_desc("simulated time (s)")
        .y_desc("per second")
        .label_style(("sans-serif", 14))
        .draw()?;
    let line = |v: &[u64]| -> Vec<(f64, f64)> {
        v.iter()
            .enumerate()
            .map(|(s, n)| (s as f64, *n as f64))
            .collect()
    };
    chart
        .draw_series(LineSeries::new(
            (0..seconds).map(|s| (s as f64, capacity_at(s))),
            BLACK.stroke_width(1),
        ))?
        .label("server capacity")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK));
    chart
        .draw_series(LineSeries::new(line(&series.attempts), RED.stroke_width(2)))?
        .label("attempts at servers")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
    chart
        .draw_series(LineSeries::new(
            line(&series.requests),
            BLUE.stroke_width(2),
        ))?
        .label("offered (requests sent)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    chart
        .draw_series(LineSeries::new(
            line(&series.goodput),
            GREEN.mix(0.9).stroke_width(2),
        ))?
        .label("goodput (successes)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], GREEN));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()?;

    let mut p50 = Vec::new();
    let mut p99 = Vec::new();
    for (s, lat) in series.latency_ms.iter().enumerate() {
        let mut lat = lat.clone();
        if let (Some(a), Some(b)) = (percentile(&mut lat, 0.5), percentile(&mut lat, 0.99)) {
            p50.push((s as f64, (a.as_millis() as f64).max(1.0)));
            p99.push((s as f64, (b.as_millis() as f64).max(1.0)));
        }
    }
    let mut chart = ChartBuilder::on(&bottom)
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..seconds as f64, (1f64..20_000f64).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("simulated time (s), by when the request was sent")
        .y_desc("latency of successes (ms)")
        .label_style(("sans-serif", 14))
        .draw()?;
    chart
        .draw_series(LineSeries::new(p50, BLUE.stroke_width(2)))?
        .label("p50")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    chart
        .draw_series(LineSeries::new(p99, RED.stroke_width(2)))?
        .label("p99")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()?;
    root.present()?;
    Ok(())
}
