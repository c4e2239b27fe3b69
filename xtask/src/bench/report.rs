//! The benchmark's report: Markdown tables with ratios and the targets of
//! issue 5, and an SVG chart of cleanup time against N.

use std::fmt::Write;

use super::measure::{stats, Stats};
use super::Record;

fn select<'r>(
    records: &'r [Record],
    engine: &str,
    case: &str,
    method: &str,
    n: Option<usize>,
    unrelated: bool,
) -> Vec<&'r Record> {
    records
        .iter()
        .filter(|r| {
            r.engine == engine
                && r.case == case
                && r.method == method
                && n.is_none_or(|n| r.n == n)
                && r.unrelated == unrelated
        })
        .collect()
}

fn wall(records: &[&Record]) -> Stats {
    stats(&records.iter().map(|r| r.sample.wall).collect::<Vec<_>>())
}

fn engines(records: &[Record]) -> Vec<&str> {
    let mut engines: Vec<&str> = records.iter().map(|r| r.engine.as_str()).collect();
    engines.dedup();
    engines
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "missed"
    }
}

/// The Markdown report.
pub fn markdown(records: &[Record], sizes: &[usize], runs: usize, crowd: bool) -> String {
    let mut out = String::new();
    let largest = sizes.iter().copied().max().unwrap_or(0);
    if records.iter().any(|r| r.case == "cleanup") {
        let _ = writeln!(
            out,
            "### Cleanup of N agents' leftovers (a stopped container and an image each), {}; {runs} runs, order alternated\n",
            match crowd {
                true => "1000 unrelated containers and 1000 unrelated image tags present",
                false => "nothing else on the engine (`--quick`: not comparable with the published figures)",
            }
        );
        let _ = writeln!(
            out,
            "| engine | N | method | wall s, median (min–max) | CPU s | peak RSS MiB | anvyl ÷ this |"
        );
        let _ = writeln!(out, "|---|---:|---|---|---:|---:|---:|");
    }
    let mut targets = Vec::new();
    for engine in engines(records) {
        for &n in sizes {
            let anvyl = wall(&select(records, engine, "cleanup", "anvyl", Some(n), crowd)).median;
            for method in super::Method::ALL {
                let name = format!("{method:?}").to_lowercase();
                let rs = select(records, engine, "cleanup", &name, Some(n), crowd);
                if rs.is_empty() {
                    continue;
                }
                let w = wall(&rs);
                let cpu = stats(&rs.iter().map(|r| r.sample.cpu).collect::<Vec<_>>()).median;
                let rss = stats(&rs.iter().map(|r| r.sample.rss_mib).collect::<Vec<_>>()).max;
                let ratio = anvyl / w.median;
                let _ = writeln!(
                    out,
                    "| {engine} | {n} | {} | {:.3} ({:.3}–{:.3}) | {cpu:.3} | {rss:.1} | {} |",
                    method.title().replace('|', "\\|"),
                    w.median,
                    w.min,
                    w.max,
                    if method == super::Method::Anvyl {
                        "—".to_string()
                    } else {
                        format!("{ratio:.2}")
                    }
                );
                if n == largest {
                    match method {
                        super::Method::Cli => targets.push(format!(
                            "- {engine}: anvyl ÷ CLI pipeline at N={n} = {ratio:.2} (target ≤ 0.7): {}",
                            verdict(ratio <= 0.7)
                        )),
                        super::Method::Prune => targets.push(format!(
                            "- {engine}: anvyl ÷ prune at N={n} = {ratio:.2} (target ≤ 1.0): {}",
                            verdict(ratio <= 1.0)
                        )),
                        super::Method::Anvyl => targets.push(format!(
                            "- {engine}: anvyl peak RSS at N={n} = {rss:.1} MiB (target ≤ 25 MB): {}",
                            verdict(rss * 1.048_576 <= 25.0)
                        )),
                    }
                }
            }
        }
        // The engine's own sensitivity to the crowd, from prune's runs, puts
        // anvyl's in proportion.
        let crowd_of = |method: &str| {
            let median = |unrelated| {
                wall(&select(
                    records,
                    engine,
                    "cleanup",
                    method,
                    Some(largest),
                    unrelated,
                ))
                .median
            };
            (median(true), median(false))
        };
        // A part that did not run (`--only starts`) has no target line.
        let ran = |case: &str, method: &str| {
            !select(records, engine, case, method, None, crowd).is_empty()
        };
        if crowd && ran("cleanup", "anvyl") {
            let (with, without) = crowd_of("anvyl");
            let (prune_with, prune_without) = crowd_of("prune");
            let engine_own = if prune_without > 0.0 {
                format!(
                    "; prune: {prune_with:.3} ÷ {prune_without:.3} = {:.2}",
                    prune_with / prune_without
                )
            } else {
                String::new()
            };
            targets.push(format!(
            "- {engine}: anvyl at N={largest} with ÷ without the 1000 unrelated = {with:.3} ÷ {without:.3} = {:.2} (target ≤ 1.1): {}{engine_own}",
            with / without,
            verdict(with / without <= 1.1)
        ));
        }
        if ran("dry-run", "anvyl") {
            let dry = wall(&select(records, engine, "dry-run", "anvyl", None, crowd)).median;
            let ps = wall(&select(records, engine, "dry-run", "cli", None, crowd)).median;
            targets.push(format!(
            "- {engine}: dry run with nothing to clean {dry:.3}s ÷ `ps -aq --filter` {ps:.3}s = {:.2} (target ≤ 0.5): {}",
            dry / ps,
            verdict(dry / ps <= 0.5)
        ));
        }
        if ran("start", "anvyl") {
            let start = wall(&select(records, engine, "start", "anvyl", None, crowd)).median;
            let start0 = wall(&select(
                records,
                engine,
                "start",
                "anvyl-settle-0",
                None,
                crowd,
            ))
            .median;
            let cli = wall(&select(records, engine, "start", "cli", None, crowd)).median;
            targets.push(format!(
            "- {engine}: `agent start` {start:.3}s ÷ build + run {cli:.3}s = {:.2} (target ≤ 1.15): {}; with settle_ms = 0: {start0:.3}s, {:.2}: {}",
            start / cli,
            verdict(start / cli <= 1.15),
            start0 / cli,
            verdict(start0 / cli <= 1.15)
        ));
        }
        let many =
            |method| wall(&select(records, engine, "start-many", method, None, crowd)).median;
        let (anvyl, serial, parallel) = (
            many("anvyl-settle-0"),
            many("cli-serial"),
            many("cli-parallel"),
        );
        if anvyl > 0.0 {
            targets.push(format!(
                "- {engine}: `agent start` of {n} agents, settle 0, {anvyl:.3}s ÷ {n} build + run side by side {parallel:.3}s = {:.2} (target ≤ 1.0): {}; ÷ one after another {serial:.3}s = {:.2}",
                anvyl / parallel,
                verdict(anvyl / parallel <= 1.0),
                anvyl / serial,
                n = super::many::MANY,
            ));
        }
    }
    let _ = writeln!(out, "\n### Targets\n");
    for t in targets {
        let _ = writeln!(out, "{t}");
    }
    out
}

/// Cleanup wall time (median) against N, one line per engine and method.
pub fn svg(records: &[Record], crowd: bool) -> String {
    let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for engine in engines(records) {
        for method in super::Method::ALL {
            let name = format!("{method:?}").to_lowercase();
            let mut ns: Vec<usize> = select(records, engine, "cleanup", &name, None, crowd)
                .iter()
                .map(|r| r.n)
                .collect();
            ns.sort_unstable();
            ns.dedup();
            let points = ns
                .iter()
                .map(|&n| {
                    (
                        n as f64,
                        wall(&select(records, engine, "cleanup", &name, Some(n), crowd)).median,
                    )
                })
                .collect::<Vec<_>>();
            if !points.is_empty() {
                series.push((format!("{engine} {name}"), points));
            }
        }
    }
    let (w, h, pad) = (640.0, 400.0, 50.0);
    let max_n = series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.0))
        .fold(1.0, f64::max);
    let max_t = series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.1))
        .fold(0.001, f64::max);
    let x = |n: f64| pad + n / max_n * (w - 2.0 * pad);
    let y = |t: f64| h - pad - t / max_t * (h - 2.0 * pad);
    let colours = [
        "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
    ];
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <line x1=\"{pad}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\n\
         <line x1=\"{pad}\" y1=\"{pad}\" x2=\"{pad}\" y2=\"{}\" stroke=\"black\"/>\n\
         <text x=\"{}\" y=\"{}\" text-anchor=\"middle\">N (agents' leftovers)</text>\n\
         <text x=\"12\" y=\"{}\" transform=\"rotate(-90 12 {})\" text-anchor=\"middle\">cleanup wall time, s (median)</text>\n\
         <text x=\"{}\" y=\"{}\" text-anchor=\"end\">{max_n}</text>\n<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{max_t:.2}</text>\n",
        h - pad, w - pad, h - pad, h - pad, w / 2.0, h - 12.0, h / 2.0, h / 2.0, w - pad, h - pad + 15.0, pad - 4.0, pad + 4.0
    );
    for (i, (name, points)) in series.iter().enumerate() {
        let colour = colours[i % colours.len()];
        let path: Vec<String> = points
            .iter()
            .map(|&(n, t)| format!("{:.1},{:.1}", x(n), y(t)))
            .collect();
        let _ = writeln!(
            out,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>",
            path.join(" ")
        );
        for &(n, t) in points {
            let _ = writeln!(
                out,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{colour}\"/>",
                x(n),
                y(t)
            );
        }
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"{}\" fill=\"{colour}\">{name}</text>",
            pad + 10.0,
            pad + 15.0 * (i as f64 + 1.0)
        );
    }
    out.push_str("</svg>\n");
    out
}
