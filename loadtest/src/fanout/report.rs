//! The run's files: the merged histogram as a standard `.hgrm` percentile distribution, and an
//! SVG with the latency percentile curve beside throughput over time.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result, anyhow};
use hdrhistogram::Histogram;
use plotters::prelude::*;

use super::group::BUCKET_US;

/// The `.hgrm` text (values in milliseconds), as HdrHistogram's `outputPercentileDistribution`
/// writes it, so HdrHistogram's plotter and other tools read it.
pub(crate) fn hgrm(hist: &Histogram<u64>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    let mut total = 0u64;
    for v in hist.iter_quantiles(5) {
        total += v.count_since_last_iteration();
        let q = v.quantile_iterated_to();
        let ms = v.value_iterated_to() as f64 / 1000.0;
        if q < 1.0 {
            let _ = writeln!(
                out,
                "{ms:>12.3} {q:>14.12} {total:>10} {:>14.2}",
                1.0 / (1.0 - q)
            );
        } else {
            let _ = writeln!(out, "{ms:>12.3} {q:>14.12} {total:>10}");
        }
    }
    let _ = writeln!(
        out,
        "#[Mean    = {:>12.3}, StdDeviation   = {:>12.3}]",
        hist.mean() / 1000.0,
        hist.stdev() / 1000.0
    );
    let _ = writeln!(
        out,
        "#[Max     = {:>12.3}, Total count    = {:>12}]",
        hist.max() as f64 / 1000.0,
        hist.len()
    );
    let _ = writeln!(
        out,
        "#[Buckets = {:>12}, SubBuckets     = {:>12}]",
        hist.buckets(),
        hist.distinct_values()
    );
    out
}

/// What the plot shows.
pub(crate) struct PlotInput<'a> {
    pub(crate) title: String,
    pub(crate) hist: &'a Histogram<u64>,
    /// Bytes per bucket since the start.
    pub(crate) buckets: &'a [u64],
    /// Seconds after the start when relays were throttled, if they were.
    pub(crate) throttle_at: Option<f64>,
    /// The offered load, MB/s, for reference.
    pub(crate) offered_mb_s: f64,
}

/// Writes the SVG: left, latency by percentile (x = 1/(1-q) on a log axis, the usual HdrHistogram
/// view); right, aggregate goodput over time with the offered load and the throttle moment.
pub(crate) fn plot(path: &Path, input: &PlotInput<'_>) -> Result<()> {
    let root = SVGBackend::new(path, (1200, 480)).into_drawing_area();
    let err = |e: DrawingAreaErrorKind<_>| anyhow!("plot: {e:?}");
    root.fill(&WHITE).map_err(err)?;
    let root = root.titled(&input.title, ("sans-serif", 18)).map_err(err)?;
    let (left, right) = root.split_horizontally(600);

    let points: Vec<(f64, f64)> = input
        .hist
        .iter_quantiles(5)
        .filter(|v| v.quantile_iterated_to() < 1.0)
        .map(|v| {
            (
                (1.0 / (1.0 - v.quantile_iterated_to())).log10(),
                v.value_iterated_to() as f64 / 1000.0,
            )
        })
        .collect();
    let x_max = points.last().map_or(1.0, |p| p.0).max(1.0);
    let y_max = input.hist.max() as f64 / 1000.0 * 1.1 + 0.1;
    let mut chart = ChartBuilder::on(&left)
        .caption("latency by percentile", ("sans-serif", 15))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..x_max, 0f64..y_max)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("ms, publish → verified receipt")
        .x_label_formatter(&|x| {
            let q = 1.0 - 1.0 / 10f64.powf(*x);
            format!("{:.3}%", q * 100.0)
        })
        .draw()
        .map_err(err)?;
    chart
        .draw_series(LineSeries::new(points, &BLUE))
        .map_err(err)?;

    let secs = BUCKET_US as f64 / 1e6;
    let series: Vec<(f64, f64)> = input
        .buckets
        .iter()
        .enumerate()
        .map(|(i, b)| (i as f64 * secs, *b as f64 / 1e6 / secs))
        .collect();
    let t_max = (input.buckets.len() as f64 * secs).max(1.0);
    let r_max = series
        .iter()
        .map(|p| p.1)
        .fold(input.offered_mb_s, f64::max)
        * 1.15
        + 0.1;
    let mut chart = ChartBuilder::on(&right)
        .caption("aggregate goodput over time", ("sans-serif", 15))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..t_max, 0f64..r_max)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc("MB/s delivered to all subscribers")
        .draw()
        .map_err(err)?;
    chart
        .draw_series(LineSeries::new(series, &BLUE))
        .map_err(err)?
        .label("delivered")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLUE));
    chart
        .draw_series(LineSeries::new(
            vec![(0.0, input.offered_mb_s), (t_max, input.offered_mb_s)],
            &BLACK.mix(0.4),
        ))
        .map_err(err)?
        .label("offered")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLACK.mix(0.4)));
    if let Some(at) = input.throttle_at {
        chart
            .draw_series(LineSeries::new(vec![(at, 0.0), (at, r_max)], &RED))
            .map_err(err)?
            .label("relays throttled")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], RED));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}

/// Writes `text` to `path`, creating its directory.
pub(crate) fn write(path: &Path, text: &str) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hgrm_lists_percentiles_up_to_the_max() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
        for v in 1..=1000u64 {
            h.record(v * 100).unwrap();
        }
        let text = hgrm(&h);
        let rows: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .skip(1)
            .collect();
        assert!(rows.len() > 20);
        let last: Vec<&str> = rows.last().unwrap().split_whitespace().collect();
        assert_eq!(last[1], "1.000000000000");
        assert_eq!(last[2], "1000");
        assert!(text.contains("#[Max     =      100.031"), "{text}");
    }

    #[test]
    fn plot_writes_an_svg() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
        for v in 1..=100u64 {
            h.record(v * 1000).unwrap();
        }
        let path = dir.path().join("p.svg");
        plot(
            &path,
            &PlotInput {
                title: "t".into(),
                hist: &h,
                buckets: &[5, 6, 7, 1, 7],
                throttle_at: Some(0.5),
                offered_mb_s: 0.00002,
            },
        )
        .unwrap();
        let svg = std::fs::read_to_string(path).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("relays throttled"));
    }
}
