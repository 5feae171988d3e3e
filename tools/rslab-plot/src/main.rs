// SPDX-License-Identifier: GPL-2.0

//! rslab-plot: turns the CSV that `/sys/kernel/debug/rslab/bench` writes
//! (one file per clock) into the side-by-side table, a JSON document and a
//! bar chart of the rslab ÷ kernel ratios, one panel per group of cases, as
//! SVG and PNG.

mod latency;
mod results;

use anyhow::{bail, Context, Result};
use clap::Parser;
use plotters::coord::Shift;
use plotters::prelude::*;
use results::Run;
use std::path::{Path, PathBuf};

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
    /// Write the same chart as a PNG to this file.
    #[arg(long)]
    png: Option<PathBuf>,
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
    for path in [&args.svg, &args.png].into_iter().flatten() {
        plot(&runs[0], path).with_context(|| format!("plotting {}", path.display()))?;
    }
    Ok(())
}

/// The sizes, in the order of the bars in each group, and their colours.
const SIZES: [(u32, RGBColor); 3] = [
    (64, RGBColor(0x1f, 0x77, 0xb4)),
    (256, RGBColor(0xff, 0x7f, 0x0e)),
    (1024, RGBColor(0x2c, 0xa0, 0x2c)),
];

/// The groups of cases, one panel each, in the module's order.
const GROUPS: [&str; 4] = ["cache", "kmalloc", "mempool", "memory"];

/// Writes the chart to `path`: SVG, or PNG if the name ends in `.png`.
fn plot(run: &Run, path: &Path) -> Result<()> {
    if run.cases().is_empty() {
        bail!("no comparisons to plot");
    }
    let size = (1600, 1000);
    register_font()?;
    if path.extension().is_some_and(|e| e == "png") {
        let root = BitMapBackend::new(path, size).into_drawing_area();
        draw(run, &root)?;
        root.present()?;
    } else {
        let root = SVGBackend::new(path, size).into_drawing_area();
        draw(run, &root)?;
        root.present()?;
    }
    Ok(())
}

/// The TrueType font the chart's text is measured with (for both formats:
/// the layout sizes its labels by it) and a PNG's text drawn with: DejaVu
/// Sans, which `scripts/setup` installs.
const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// Registers [`FONT`] as plotters' "sans-serif", once.
fn register_font() -> Result<()> {
    static DONE: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    if DONE.get().is_some() {
        return Ok(());
    }
    let bytes = std::fs::read(FONT).with_context(|| format!("reading {FONT}"))?;
    // plotters keeps the font for the program's life.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
        .map_err(|_| anyhow::anyhow!("{FONT} is not a font plotters can read"))?;
    let _ = DONE.set(());
    Ok(())
}

/// The whole chart: a title with the clock, and one panel per group.
fn draw<DB: DrawingBackend>(run: &Run, root: &DrawingArea<DB, Shift>) -> Result<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let title = format!(
        "rslab ÷ kernel, {} clock (below 1.0: rslab ahead, except objs_per_slab)",
        run.clock
    );
    let root = root.titled(&title, ("sans-serif", 24))?;
    let groups: Vec<&str> = GROUPS
        .into_iter()
        .filter(|g| run.cases().iter().any(|c| group_of(c) == *g))
        .collect();
    let latency = !run.latency_hist.is_empty();
    let n = groups.len() + usize::from(latency);
    let panels = root.split_evenly((n.div_ceil(2), 2.min(n)));
    for (group, panel) in groups.iter().zip(&panels) {
        draw_panel(run, group, panel)?;
    }
    if latency {
        draw_latency_panel(run, &panels[groups.len()])?;
    }
    Ok(())
}

/// The histogram columns and their colours.
const COLUMNS: [(&str, RGBColor); 4] = [
    ("alloc_fast", RGBColor(0x1f, 0x77, 0xb4)),
    ("alloc_slow", RGBColor(0x94, 0x67, 0xbd)),
    ("free_fast", RGBColor(0xff, 0x7f, 0x0e)),
    ("free_slow", RGBColor(0xd6, 0x27, 0x28)),
];

/// The latency panel: the first size's histograms from the bench's `on`
/// runs, each column's share of its operations per log2 bucket as a bar
/// (a cluster per bucket), and what the histograms cost in the caption.
fn draw_latency_panel<DB: DrawingBackend>(run: &Run, area: &DrawingArea<DB, Shift>) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let size = run.latency_hist[0].size;
    let of = |column: &str| -> Vec<&latency::Bucket> {
        run.latency_hist
            .iter()
            .filter(|b| b.size == size && b.column == column)
            .collect()
    };
    // A bucket's x is log2 of its least duration (bucket 0 at 0).
    let log2 = |ns: u64| ns.checked_ilog2().unwrap_or(0) as f64;
    let right = run
        .latency_hist
        .iter()
        .map(|b| log2(b.ns))
        .fold(1.0, f64::max)
        + 1.0;
    let ratio = |side| {
        latency::cost_ratio(&run.latency_cost, size, side).map_or("-".into(), |r| format!("{r:.3}"))
    };
    let caption = format!(
        "latency, {size} B pair: share of ops per bucket (pair on/off {}, key_on/off {})",
        ratio("on"),
        ratio("key_on")
    );
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..right, 0f64..100f64)?;
    chart
        .configure_mesh()
        .x_desc("ns (log2 buckets, least duration)")
        .x_labels(right as usize + 1)
        .x_label_formatter(&|x| format!("{}", 1u64 << (*x as u32).min(63)))
        .y_desc("% of the column's ops")
        .draw()?;
    // A cluster of bars per bucket, one per column that counted anything.
    for (j, (column, colour)) in COLUMNS.iter().enumerate() {
        let buckets = of(column);
        let total: u64 = buckets.iter().map(|b| b.count).sum();
        if total == 0 {
            continue;
        }
        let bars = buckets.into_iter().map(|b| {
            let x0 = log2(b.ns) + 0.1 + 0.2 * j as f64;
            let share = 100.0 * b.count as f64 / total as f64;
            Rectangle::new([(x0, 0.0), (x0 + 0.18, share)], colour.filled())
        });
        chart
            .draw_series(bars)?
            .label(format!("{column} ({total})"))
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], colour.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .border_style(BLACK)
        .background_style(WHITE)
        .draw()?;
    Ok(())
}

/// `cache` of `cache/pair`.
fn group_of(case: &str) -> &str {
    case.split_once('/').map_or(case, |(g, _)| g)
}

/// One group's panel: a cluster of bars per case (one per size) named
/// under it, and a line at 1.0.
fn draw_panel<DB: DrawingBackend>(
    run: &Run,
    group: &str,
    area: &DrawingArea<DB, Shift>,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let cases: Vec<String> = run
        .cases()
        .into_iter()
        .filter(|c| group_of(c) == group)
        .collect();
    let top = run
        .comparisons
        .iter()
        .filter(|c| group_of(&c.case) == group)
        .filter_map(|c| c.ratio)
        .fold(1.0f64, f64::max)
        * 1.15;
    let mut chart = ChartBuilder::on(area)
        .caption(group, ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(90)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..cases.len() as f64, 0f64..top)?;
    // No x ticks: the mesh puts them where it likes, not under the
    // clusters (it left every case unnamed); each case is named below its
    // own.
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_desc("rslab ÷ kernel")
        .draw()?;
    let name_style = ("sans-serif", 13)
        .into_font()
        .transform(FontTransform::Rotate90);
    // Named by pattern: the panel's title is the group. The chart gives
    // the backend's coordinates, the panel draws in its own.
    let (x0, y0) = area.get_base_pixel();
    for (i, case) in cases.iter().enumerate() {
        let (x, y) = chart.backend_coord(&(i as f64 + 0.5, 0.0));
        let name = case.split_once('/').map_or(case.as_str(), |(_, p)| p);
        area.draw(&Text::new(
            name.to_string(),
            (x - x0, y - y0 + 6),
            name_style.clone(),
        ))?;
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
        .position(SeriesLabelPosition::UpperLeft)
        .border_style(BLACK)
        .background_style(WHITE)
        .draw()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run with every cache case and one case of each other group.
    fn run() -> Run {
        let mut csv = String::from(
            "# rslab-bench v2 ops=2000 reps=2 objects=5000 cpus=2\n\
             case,pattern,size,side,ops,min,median,max,unit\n",
        );
        let cases = CACHE_CASES.iter().map(|p| format!("cache,{p}"));
        let others = ["kmalloc,pair", "mempool,reserve", "memory,pages_held"];
        for case in cases.chain(others.iter().map(|c| c.to_string())) {
            for size in [64, 256, 1024] {
                for (side, n) in [("rslab", 90), ("kernel", 100)] {
                    csv += &format!("{case},{size},{side},2000,{n},{n},{n},ns/op\n");
                }
            }
        }
        csv += "# latency_cost,64,off,2000,40,40,41\n# latency_cost,64,key_on,2000,41,41,42\n";
        csv += "# latency_cost,64,on,2000,80,80,90\n# latency_hist,64,alloc_fast,32,1990\n";
        csv += "# latency_hist,64,alloc_slow,512,10\n# latency_hist,64,free_fast,32,2000\n";
        Run::parse("icount", &csv).unwrap()
    }

    const CACHE_CASES: [&str; 7] = [
        "pair",
        "out256",
        "out10000",
        "bulk16",
        "bulk128",
        "remote",
        "concurrent",
    ];

    fn temp(ext: &str) -> PathBuf {
        std::env::temp_dir().join(format!("rslab-plot-test-{}.{ext}", std::process::id()))
    }

    /// Every case is named (by its pattern) on the chart, under its
    /// cluster of bars, and every group has its panel, titled with its
    /// name.
    #[test]
    fn the_chart_names_every_case_and_group() {
        let path = temp("svg");
        plot(&run(), &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let has = |text: &str| svg.lines().any(|l| l.trim() == text);
        for case in CACHE_CASES.iter().chain(&["reserve", "pages_held"]) {
            assert!(has(case), "no label for {case}");
        }
        for group in GROUPS {
            assert!(has(group), "no panel for {group}");
        }
        assert!(svg.contains("latency, 64 B pair"), "no latency panel");
        assert!(has("alloc_fast (1990)") && has("free_fast (2000)"));
        assert!(svg.contains("icount clock"));
    }

    /// The PNG is a PNG of the chart's size.
    #[test]
    fn writes_a_png() {
        let path = temp("png");
        plot(&run(), &path).unwrap();
        let png = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        // IHDR: width and height, big-endian, at bytes 16..24.
        assert_eq!(&png[16..24], [0, 0, 6, 0x40, 0, 0, 3, 0xe8]);
    }
}
