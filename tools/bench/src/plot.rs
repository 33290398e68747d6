//! `--plot FILE.svg`: received packets per second and inner Gbit/s against packet size, one line
//! per device under test.

use std::collections::BTreeMap;
use std::path::Path;

use plotters::prelude::*;

use crate::report::RunResult;

/// One device's points: (mean inner size in bytes, rx Mpps, rx inner Gbit/s), by size. With a
/// rate sweep only the best run per size counts (what the device can do at that size).
pub fn series(runs: &[RunResult]) -> BTreeMap<String, Vec<(f64, f64, f64)>> {
    let mut by_dut: BTreeMap<String, BTreeMap<u64, (f64, f64, f64)>> = BTreeMap::new();
    for run in runs {
        let points = by_dut.entry(run.dut.clone()).or_default();
        let key = (run.size_mean_bytes * 1000.0) as u64;
        let point = (run.size_mean_bytes, run.rx_pps / 1e6, run.rx_inner_gbps);
        let best = points.entry(key).or_insert(point);
        if point.1 > best.1 {
            *best = point;
        }
    }
    by_dut
        .into_iter()
        .map(|(dut, points)| (dut, points.into_values().collect()))
        .collect()
}

/// Writes the plot: SVG, or PNG when `path` ends in `.png` (the SVG rendered by
/// `rsvg-convert`, librsvg's tool: a bitmap straight from plotters would need its font and
/// image backends, heavier than one Debian package that `tools/setup` installs).
pub fn write(path: &Path, runs: &[RunResult]) -> Result<(), String> {
    let png = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("png"));
    if !png {
        return write_svg(path, runs);
    }
    let svg = path.with_extension("svg.tmp");
    write_svg(&svg, runs)?;
    let converted = std::process::Command::new("rsvg-convert")
        .args(["--format", "png", "--background-color", "white", "--output"])
        .arg(path)
        .arg(&svg)
        .output();
    let _ = std::fs::remove_file(&svg);
    match converted {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!(
            "{}: rsvg-convert: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Err(format!(
            "{}: a PNG plot needs rsvg-convert (Debian: librsvg2-bin; tools/setup installs it): {e}",
            path.display()
        )),
    }
}

/// Writes the SVG.
pub fn write_svg(path: &Path, runs: &[RunResult]) -> Result<(), String> {
    let series = series(runs);
    let max_x = runs
        .iter()
        .map(|r| r.size_mean_bytes)
        .fold(0.0, f64::max)
        .max(64.0)
        * 1.05;
    let max_mpps = series
        .values()
        .flatten()
        .map(|p| p.1)
        .fold(0.0, f64::max)
        .max(1e-3)
        * 1.15;
    let max_gbps = series
        .values()
        .flatten()
        .map(|p| p.2)
        .fold(0.0, f64::max)
        .max(1e-3)
        * 1.15;
    let root = SVGBackend::new(path, (1200, 500)).into_drawing_area();
    let fail = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let panels = root.split_evenly((1, 2));
    for (panel, (title, unit, max_y, pick)) in panels.iter().zip([
        ("Received packets per second", "Mpps", max_mpps, 1usize),
        ("Received inner throughput", "Gbit/s", max_gbps, 2usize),
    ]) {
        let mut chart = ChartBuilder::on(panel)
            .caption(title, ("sans-serif", 20))
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..max_x, 0.0..max_y)
            .map_err(|e| fail(&e))?;
        chart
            .configure_mesh()
            .x_desc("inner packet size (bytes; imix at its mean)")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_desc(unit)
            .draw()
            .map_err(|e| fail(&e))?;
        for (index, (dut, points)) in series.iter().enumerate() {
            let colour = Palette99::pick(index).to_rgba();
            let xy: Vec<(f64, f64)> = points
                .iter()
                .map(|p| (p.0, if pick == 1 { p.1 } else { p.2 }))
                .collect();
            chart
                .draw_series(LineSeries::new(xy.clone(), colour.stroke_width(2)))
                .map_err(|e| fail(&e))?
                .label(dut.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
                });
            chart
                .draw_series(xy.into_iter().map(|p| Circle::new(p, 4, colour.filled())))
                .map_err(|e| fail(&e))?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| fail(&e))?;
    }
    root.present().map_err(|e| fail(&e))?;
    Ok(())
}
