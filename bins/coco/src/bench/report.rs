//! The HTML report of a run: the JSON summary, latency over time and a latency histogram, drawn
//! as inline SVG (no scripts, no external files).

use std::fmt::Write as _;

use hdrhistogram::Histogram;

use super::stats::Recorder;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 260.0;
const MARGIN: f64 = 48.0;

/// A line chart of `series` (name, colour, points); axes start at 0.
pub fn line_chart(title: &str, y_label: &str, series: &[(&str, &str, Vec<(f64, f64)>)]) -> String {
    let points = series.iter().flat_map(|(_, _, p)| p.iter());
    let (x_max, y_max) = points.fold((1.0f64, 1.0f64), |(x, y), (px, py)| {
        (x.max(*px), y.max(*py))
    });
    let sx = |x: f64| MARGIN + x / x_max * (WIDTH - 2.0 * MARGIN);
    let sy = |y: f64| HEIGHT - MARGIN - y / y_max * (HEIGHT - 2.0 * MARGIN);
    let mut svg = frame(title, y_label, "seconds into the run", x_max, y_max);
    for (k, (name, colour, pts)) in series.iter().enumerate() {
        let path: Vec<String> = pts
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", sx(*x), sy(*y)))
            .collect();
        let _ = write!(
            svg,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{}"/>"#,
            path.join(" ")
        );
        let _ = write!(
            svg,
            r#"<text x="{:.0}" y="{:.0}" fill="{colour}" font-size="12">{}</text>"#,
            WIDTH - MARGIN - 90.0,
            MARGIN + 14.0 * k as f64,
            escape(name)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// A bar chart of (label, value), bars in order.
pub fn bar_chart(title: &str, y_label: &str, bars: &[(String, f64)]) -> String {
    let y_max = bars.iter().map(|(_, v)| *v).fold(1.0f64, f64::max);
    let n = bars.len().max(1) as f64;
    let w = (WIDTH - 2.0 * MARGIN) / n;
    let mut svg = frame(title, y_label, "latency (log buckets)", n, y_max);
    for (k, (label, v)) in bars.iter().enumerate() {
        let h = v / y_max * (HEIGHT - 2.0 * MARGIN);
        let x = MARGIN + k as f64 * w;
        let _ = write!(
            svg,
            r##"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="#4a7ebb"><title>{}: {v}</title></rect>"##,
            HEIGHT - MARGIN - h,
            (w - 1.0).max(1.0),
            escape(label)
        );
        if bars.len() <= 24 || k % (bars.len() / 12).max(1) == 0 {
            let _ = write!(
                svg,
                r#"<text x="{:.1}" y="{:.0}" font-size="10" text-anchor="middle">{}</text>"#,
                x + w / 2.0,
                HEIGHT - MARGIN + 14.0,
                escape(label)
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

fn frame(title: &str, y_label: &str, x_label: &str, x_max: f64, y_max: f64) -> String {
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif">"#
    );
    let (l, r, t, b) = (MARGIN, WIDTH - MARGIN, MARGIN, HEIGHT - MARGIN);
    let _ = write!(
        svg,
        r#"<text x="{l}" y="20" font-size="14">{}</text><line x1="{l}" y1="{b}" x2="{r}" y2="{b}" stroke="black"/><line x1="{l}" y1="{t}" x2="{l}" y2="{b}" stroke="black"/><text x="4" y="{t}" font-size="11">{y_max:.0}</text><text x="4" y="{b}" font-size="11">0</text><text x="{l}" y="{}" font-size="11">{}</text><text x="{r}" y="{}" font-size="11" text-anchor="end">{x_max:.0}</text><text x="4" y="{}" font-size="11">{}</text>"#,
        escape(title),
        HEIGHT - 8.0,
        escape(x_label),
        HEIGHT - 8.0,
        t - 8.0,
        escape(y_label)
    );
    svg
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// p50 and p99 of each second, in milliseconds.
fn over_time(per_second: &[Histogram<u64>]) -> [Vec<(f64, f64)>; 2] {
    let mut p50 = Vec::new();
    let mut p99 = Vec::new();
    for (s, h) in per_second.iter().enumerate() {
        if h.is_empty() {
            continue;
        }
        let x = s as f64 + 0.5;
        p50.push((x, h.value_at_quantile(0.5) as f64 / 1000.0));
        p99.push((x, h.value_at_quantile(0.99) as f64 / 1000.0));
    }
    [p50, p99]
}

/// Counts in log-spaced latency buckets (powers of two microseconds), labelled in ms.
fn buckets(h: &Histogram<u64>) -> Vec<(String, f64)> {
    if h.is_empty() {
        return Vec::new();
    }
    h.iter_log(1, 2.0)
        .skip_while(|v| v.count_since_last_iteration() == 0)
        .map(|v| {
            let ms = v.value_iterated_to() as f64 / 1000.0;
            (format!("{ms:.3}"), v.count_since_last_iteration() as f64)
        })
        .collect()
}

/// The whole HTML page.
pub fn html(
    summary: &serde_json::Value,
    requests: &Recorder,
    commits: Option<&Recorder>,
) -> String {
    let [p50, p99] = over_time(&requests.per_second);
    let throughput: Vec<(f64, f64)> = requests
        .per_second
        .iter()
        .enumerate()
        .map(|(s, h)| (s as f64 + 0.5, h.len() as f64))
        .collect();
    let mut series = vec![
        ("response p50", "#4a7ebb", p50),
        ("response p99", "#c0392b", p99),
    ];
    if let Some(c) = commits {
        let [c50, c99] = over_time(&c.per_second);
        series.push(("commit p50", "#27ae60", c50));
        series.push(("commit p99", "#8e44ad", c99));
    }
    let mut page = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>coco bench</title></head>\
         <body style=\"font-family:sans-serif\"><h1>coco bench</h1>",
    );
    let _ = write!(
        page,
        "<pre>{}</pre>",
        escape(&serde_json::to_string_pretty(summary).unwrap_or_default())
    );
    page.push_str(&line_chart("Latency over time", "ms", &series));
    page.push_str("<br>");
    page.push_str(&line_chart(
        "Throughput",
        "responses/s",
        &[("ok responses", "#4a7ebb", throughput)],
    ));
    page.push_str("<br>");
    page.push_str(&bar_chart(
        "Response latency histogram",
        "requests",
        &buckets(&requests.latency),
    ));
    if let Some(c) = commits {
        page.push_str("<br>");
        page.push_str(&bar_chart(
            "Commit latency histogram",
            "transactions",
            &buckets(&c.latency),
        ));
    }
    page.push_str("</body></html>\n");
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_draws_every_second_and_bucket() {
        let mut r = Recorder::default();
        for s in 0..5 {
            for k in 1..=100 {
                r.ok(k * 100 + s * 1000, s);
            }
        }
        let page = html(&serde_json::json!({"workload": "<w>"}), &r, None);
        assert!(page.contains("&lt;w&gt;"), "the summary is escaped");
        assert_eq!(page.matches("<svg").count(), 3);
        let first_line = page.split("<polyline").nth(1).unwrap();
        let points = first_line.split("points=\"").nth(1).unwrap();
        let points = points.split('"').next().unwrap();
        assert_eq!(points.split(' ').count(), 5, "one point per second");
        let bars = buckets(&r.latency);
        assert!(bars.len() >= 4, "{bars:?}");
        assert_eq!(bars.iter().map(|(_, c)| *c).sum::<f64>(), 500.0);
        let with_commits = html(&serde_json::json!({}), &r, Some(&r));
        assert_eq!(with_commits.matches("<svg").count(), 4);
    }
}
