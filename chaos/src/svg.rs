//! The run's picture, written by hand as SVG: latency (p50, p99, max per second, log scale) above
//! throughput (ok, fail and info completions per second), with every fault window shaded and the
//! heal marked.

use std::fmt::Write as _;

use crate::nemesis::NemesisKind;
use crate::stats::{Bucket, FaultInterval};

const WIDTH: f64 = 1100.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const LATENCY_TOP: f64 = 50.0;
const LATENCY_BOTTOM: f64 = 300.0;
const THROUGHPUT_TOP: f64 = 350.0;
const THROUGHPUT_BOTTOM: f64 = 560.0;
const LEGEND_Y: f64 = 600.0;
const HEIGHT: f64 = 640.0;
/// Label lines above the panels for faults active together.
const FAULT_LABEL_LEVELS_MAX: usize = 1;
/// Lowest latency shown, in ms (the log axis starts there).
const LATENCY_MS_FLOOR: f64 = 0.1;

pub struct Plot<'a> {
    pub title: &'a str,
    pub buckets: &'a [Bucket],
    pub faults: &'a [FaultInterval],
    /// When the heal began, seconds since the start.
    pub heal_s: Option<f64>,
}

fn color(kind: NemesisKind) -> &'static str {
    match kind {
        NemesisKind::Partition => "#d62728",
        NemesisKind::Kill => "#9467bd",
        NemesisKind::Pause => "#8c564b",
        NemesisKind::Loss => "#e377c2",
        NemesisKind::Latency => "#17becf",
        NemesisKind::Restart => "#7f7f7f",
        NemesisKind::Membership => "#bcbd22",
    }
}

/// Escapes text for SVG content and attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// A round step that gives about `target` ticks over `span`.
fn tick_step(span: f64, target: f64) -> f64 {
    let raw = (span / target).max(f64::MIN_POSITIVE);
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0].into_iter().map(|m| m * magnitude).find(|s| *s >= raw).unwrap_or(10.0 * magnitude)
}

pub fn render(plot: &Plot<'_>) -> String {
    let seconds = plot.buckets.len().max(1) as f64;
    let x = |s: f64| LEFT + (s / seconds).clamp(0.0, 1.0) * (WIDTH - LEFT - RIGHT);
    let latency_max = plot.buckets.iter().filter_map(|b| b.max_ms).fold(10.0f64, f64::max);
    let (log_low, log_high) = (LATENCY_MS_FLOOR.log10(), latency_max.log10().ceil());
    let y_latency = |ms: f64| {
        let t = (ms.max(LATENCY_MS_FLOOR).log10() - log_low) / (log_high - log_low);
        LATENCY_BOTTOM - t.clamp(0.0, 1.0) * (LATENCY_BOTTOM - LATENCY_TOP)
    };
    let throughput_max =
        plot.buckets.iter().map(|b| b.ok.max(b.fail).max(b.info)).max().unwrap_or(0).max(10) as f64;
    let y_throughput = |n: f64| {
        THROUGHPUT_BOTTOM - (n / throughput_max).clamp(0.0, 1.0) * (THROUGHPUT_BOTTOM - THROUGHPUT_TOP)
    };

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="white"/>"#);
    let _ = writeln!(svg, r#"<text x="{LEFT}" y="24" font-size="16">{}</text>"#, escape(plot.title));

    // Fault windows, over both panels.
    for (i, fault) in plot.faults.iter().enumerate() {
        let (x0, x1) = (x(fault.start_ns as f64 / 1e9), x(fault.end_ns as f64 / 1e9));
        // Faults active together get their labels on separate lines.
        let level = plot.faults[..i]
            .iter()
            .filter(|f| f.start_ns <= fault.start_ns && fault.start_ns < f.end_ns)
            .count()
            .min(FAULT_LABEL_LEVELS_MAX) as f64;
        let _ = writeln!(
            svg,
            r#"<rect class="fault" x="{x0:.1}" y="{LATENCY_TOP}" width="{:.1}" height="{:.1}" fill="{}" fill-opacity="0.15"><title>{}</title></rect>"#,
            (x1 - x0).max(1.0),
            THROUGHPUT_BOTTOM - LATENCY_TOP,
            color(fault.kind),
            escape(&fault.text)
        );
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" font-size="10" fill="{}">{}</text>"#,
            x0 + 2.0,
            LATENCY_TOP - 4.0 - 11.0 * level,
            color(fault.kind),
            fault.kind.name()
        );
    }
    if let Some(heal) = plot.heal_s {
        let hx = x(heal);
        let _ = writeln!(
            svg,
            r#"<line class="heal" x1="{hx:.1}" y1="{LATENCY_TOP}" x2="{hx:.1}" y2="{THROUGHPUT_BOTTOM}" stroke="green" stroke-dasharray="4 3"/>"#
        );
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" fill="green">heal</text>"#,
            hx + 3.0,
            LATENCY_TOP + 12.0
        );
    }

    // Axes and grid.
    for (top, bottom, label) in [
        (LATENCY_TOP, LATENCY_BOTTOM, "latency (ms, log)"),
        (THROUGHPUT_TOP, THROUGHPUT_BOTTOM, "completions / s"),
    ] {
        let _ = writeln!(
            svg,
            r##"<rect x="{LEFT}" y="{top}" width="{:.1}" height="{:.1}" fill="none" stroke="#444"/>"##,
            WIDTH - LEFT - RIGHT,
            bottom - top
        );
        let _ = writeln!(
            svg,
            r#"<text x="14" y="{:.1}" transform="rotate(-90 14 {:.1})" text-anchor="middle">{label}</text>"#,
            (top + bottom) / 2.0,
            (top + bottom) / 2.0
        );
    }
    let mut decade = log_low;
    while decade <= log_high + 1e-9 {
        let ms = 10f64.powf(decade);
        let y = y_latency(ms);
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            WIDTH - RIGHT,
            LEFT - 4.0,
            y + 4.0,
            if ms < 1.0 { format!("{ms:.1}") } else { format!("{ms:.0}") }
        );
        decade += 1.0;
    }
    let step = tick_step(throughput_max, 4.0);
    let mut n = 0.0;
    while n <= throughput_max {
        let y = y_throughput(n);
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{n}</text>"##,
            WIDTH - RIGHT,
            LEFT - 4.0,
            y + 4.0
        );
        n += step;
    }
    let step = tick_step(seconds, 10.0);
    let mut s = 0.0;
    while s <= seconds {
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{s}</text>"#,
            x(s),
            THROUGHPUT_BOTTOM + 16.0
        );
        s += step;
    }
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="end">seconds since start</text>"#,
        WIDTH - RIGHT,
        THROUGHPUT_BOTTOM + 30.0
    );

    // Series: one polyline per unbroken run of seconds with a value.
    let series = |svg: &mut String,
                  class: &str,
                  stroke: &str,
                  point: &dyn Fn(usize, &Bucket) -> Option<f64>| {
        let mut run: Vec<String> = Vec::new();
        let flush = |run: &mut Vec<String>, svg: &mut String| {
            if !run.is_empty() {
                let _ = writeln!(
                    svg,
                    r#"<polyline class="{class}" fill="none" stroke="{stroke}" stroke-width="1.5" points="{}"/>"#,
                    run.join(" ")
                );
                run.clear();
            }
        };
        for (i, bucket) in plot.buckets.iter().enumerate() {
            match point(i, bucket) {
                Some(y) => run.push(format!("{:.1},{y:.1}", x(i as f64 + 0.5))),
                None => flush(&mut run, svg),
            }
        }
        flush(&mut run, svg);
    };
    series(&mut svg, "p50", "#1f77b4", &|_, b| b.p50_ms.map(y_latency));
    series(&mut svg, "p99", "#ff7f0e", &|_, b| b.p99_ms.map(y_latency));
    series(&mut svg, "max", "#7f7f7f", &|_, b| b.max_ms.map(y_latency));
    series(&mut svg, "ok", "#2ca02c", &|_, b| Some(y_throughput(b.ok as f64)));
    series(&mut svg, "fail", "#bcbd22", &|_, b| Some(y_throughput(b.fail as f64)));
    series(&mut svg, "info", "#d62728", &|_, b| Some(y_throughput(b.info as f64)));

    // Legend.
    let mut lx = LEFT;
    let lines = [
        ("p50", "#1f77b4"),
        ("p99", "#ff7f0e"),
        ("max", "#7f7f7f"),
        ("ok/s", "#2ca02c"),
        ("fail/s", "#bcbd22"),
        ("info/s", "#d62728"),
    ];
    for (label, stroke) in lines {
        let _ = writeln!(
            svg,
            r#"<line x1="{lx}" y1="{LEGEND_Y}" x2="{:.1}" y2="{LEGEND_Y}" stroke="{stroke}" stroke-width="2"/><text x="{:.1}" y="{:.1}">{label}</text>"#,
            lx + 18.0,
            lx + 22.0,
            LEGEND_Y + 4.0
        );
        lx += 70.0;
    }
    for kind in NemesisKind::ALL {
        if plot.faults.iter().any(|f| f.kind == kind) {
            let _ = writeln!(
                svg,
                r#"<rect x="{lx}" y="{:.1}" width="14" height="10" fill="{}" fill-opacity="0.3"/><text x="{:.1}" y="{:.1}">{}</text>"#,
                LEGEND_Y - 5.0,
                color(kind),
                lx + 18.0,
                LEGEND_Y + 4.0,
                kind.name()
            );
            lx += 80.0;
        }
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
#[path = "svg_test.rs"]
mod tests;
