// SPDX-License-Identifier: GPL-2.0

//! rslab-plot: turns the CSV that `/sys/kernel/debug/rslab/bench` writes
//! (one file per clock) into the side-by-side table, a JSON document and an
//! SVG bar chart of the rslab ÷ kernel ratios.

mod results;

use anyhow::{bail, Context, Result};
use clap::Parser;
use plotters::prelude::*;
use results::Run;
use std::path::PathBuf;

/// Compare rslab with the kernel's allocators from `make bench` results.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// A results file as CLOCK=PATH (e.g. icount=build/bench/results-icount.csv);
    /// repeat for each clock. The first one is plotted.
    #[arg(long = "csv", required = true, value_parser = parse_input)]
    inputs: Vec<(String, PathBuf)>,
    /// Write every comparison, per clock, as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the first clock's ratios as an SVG bar chart to this file.
    #[arg(long)]
    svg: Option<PathBuf>,
}

fn parse_input(s: &str) -> Result<(String, PathBuf), String> {
    match s.split_once('=') {
        Some((clock, path)) if !clock.is_empty() && !path.is_empty() => {
            Ok((clock.to_string(), PathBuf::from(path)))
        }
        _ => Err(format!("expected CLOCK=PATH, got '{s}'")),
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    let mut runs = Vec::new();
    for (clock, path) in &args.inputs {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let run =
            Run::parse(clock, &text).with_context(|| format!("parsing {}", path.display()))?;
        print!("{}", run.table());
        runs.push(run);
    }
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&runs)?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.svg {
        plot(&runs[0], path)?;
    }
    Ok(())
}

/// The sizes, in the order of the bars in each group, and their colours.
const SIZES: [(u32, RGBColor); 3] = [
    (64, RGBColor(0x1f, 0x77, 0xb4)),
    (256, RGBColor(0xff, 0x7f, 0x0e)),
    (1024, RGBColor(0x2c, 0xa0, 0x2c)),
];

/// Draws one group of bars per case, one bar per size, and a line at 1.0.
fn plot(run: &Run, path: &PathBuf) -> Result<()> {
    let cases = run.cases();
    if cases.is_empty() {
        bail!("no comparisons to plot");
    }
    let top = run
        .comparisons
        .iter()
        .filter_map(|c| c.ratio)
        .fold(1.0f64, f64::max)
        * 1.15;
    let root = SVGBackend::new(path, (1400, 640)).into_drawing_area();
    root.fill(&WHITE)?;
    let title = format!(
        "rslab ÷ kernel ({} clock; below 1.0: rslab ahead, except objs_per_slab)",
        run.clock
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(150)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..cases.len() as f64, 0f64..top)?;
    // No x ticks: the mesh puts them where it likes, not under the groups
    // (it left every case unnamed); each group's name is drawn below it.
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_desc("rslab ÷ kernel")
        .draw()?;
    let name_style = ("sans-serif", 13)
        .into_font()
        .transform(FontTransform::Rotate90);
    for (i, case) in cases.iter().enumerate() {
        let (x, y) = chart.backend_coord(&(i as f64 + 0.5, 0.0));
        root.draw(&Text::new(case.clone(), (x, y + 6), name_style.clone()))?;
    }
    for (j, (size, colour)) in SIZES.iter().enumerate() {
        let bars = cases.iter().enumerate().filter_map(|(i, case)| {
            let ratio = run.find(case, *size)?.ratio?;
            let x0 = i as f64 + 0.1 + 0.27 * j as f64;
            Some(Rectangle::new(
                [(x0, 0.0), (x0 + 0.25, ratio)],
                colour.filled(),
            ))
        });
        chart
            .draw_series(bars)?
            .label(format!("{size} B"))
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], colour.filled()));
    }
    chart.draw_series(LineSeries::new(
        [(0.0, 1.0), (cases.len() as f64, 1.0)],
        BLACK.stroke_width(2),
    ))?;
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE)
        .draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every case is named on the chart, under its group of bars.
    #[test]
    fn the_chart_names_every_case() {
        let mut csv = String::from(
            "# rslab-bench v2 ops=2000 reps=2 objects=5000 cpus=2\n\
             case,pattern,size,side,ops,min,median,max,unit\n",
        );
        let cases = [
            "pair",
            "out256",
            "out10000",
            "bulk16",
            "bulk128",
            "remote",
            "concurrent",
        ];
        for case in cases {
            for size in [64, 256, 1024] {
                for (side, ns) in [("rslab", 90), ("kernel", 100)] {
                    csv += &format!("cache,{case},{size},{side},2000,{ns},{ns},{ns},ns/op\n");
                }
            }
        }
        let run = Run::parse("icount", &csv).unwrap();
        let path = std::env::temp_dir().join(format!("rslab-plot-test-{}.svg", std::process::id()));
        plot(&run, &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        for case in cases {
            let name = format!("cache/{case}");
            assert!(svg.lines().any(|l| l.trim() == name), "no label for {name}");
        }
    }
}
