//! Draws dashboard panels from Prometheus range queries (issue 8's picture of the overview;
//! Grafana is not installable here): one inline-SVG line chart per panel in a Grafana-like
//! dark HTML grid, screenshotted to PNG by headless Chromium.

use serde_json::Value;
use std::fmt::Write;
use std::path::Path;

const W: f64 = 760.0;
const H: f64 = 300.0;
const PAD_L: f64 = 70.0;
const PAD_R: f64 = 16.0;
const PAD_T: f64 = 34.0;
const PAD_B: f64 = 84.0;
const COLORS: &[&str] = &["#73bf69", "#f2cc0c", "#5794f2", "#ff9830", "#f2495c", "#b877d9", "#8ab8ff", "#fade2a"];

/// One series of a panel: legend and `(unix seconds, value)` points.
pub struct Series {
    pub legend: String,
    pub points: Vec<(f64, f64)>,
}

/// One panel to draw.
pub struct Panel {
    pub title: String,
    pub unit: String,
    pub series: Vec<Series>,
}

/// Grafana's `{{label}}` legend format applied to a result's labels.
pub fn legend(format: &str, metric: &Value) -> String {
    let mut out = format.to_owned();
    if let Some(m) = metric.as_object() {
        for (k, v) in m {
            out = out.replace(&format!("{{{{{k}}}}}"), v.as_str().unwrap_or(""));
        }
    }
    // Labels the result does not carry.
    while let (Some(a), Some(b)) = (out.find("{{"), out.find("}}")) {
        if b < a {
            break;
        }
        out.replace_range(a..b + 2, "");
    }
    if out.trim().is_empty() {
        "value".into()
    } else {
        out.trim().to_owned()
    }
}

/// `(t, v)` points of a range-query matrix entry (NaN and infinities dropped).
pub fn points(entry: &Value) -> Vec<(f64, f64)> {
    entry["values"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let t = p[0].as_f64()?;
            let v: f64 = p[1].as_str()?.parse().ok()?;
            v.is_finite().then_some((t, v))
        })
        .collect()
}

fn fmt_value(v: f64, unit: &str) -> String {
    match unit {
        "percentunit" => format!("{:.0}%", v * 100.0),
        "s" if v < 1.0 => format!("{:.0} ms", v * 1000.0),
        "s" => format!("{v:.2} s"),
        "reqps" => format!("{v:.2}/s"),
        _ => format!("{v:.2}"),
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn svg(panel: &Panel, t0: f64, t1: f64) -> String {
    let mut max = panel.series.iter().flat_map(|s| s.points.iter().map(|p| p.1)).fold(0.0_f64, f64::max);
    if panel.unit == "percentunit" {
        max = max.max(1.0);
    }
    if max <= 0.0 {
        max = 1.0;
    }
    max *= 1.05;
    let (pw, ph) = (W - PAD_L - PAD_R, H - PAD_T - PAD_B);
    let x = |t: f64| PAD_L + (t - t0) / (t1 - t0).max(1.0) * pw;
    let y = |v: f64| PAD_T + ph - v / max * ph;
    let mut s = String::new();
    let _ = write!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}"><rect width="{W}" height="{H}" fill="#181b1f" stroke="#2c3235"/><text x="12" y="22" fill="#ccccdc" font-size="15" font-weight="600">{}</text>"##,
        esc(&panel.title)
    );
    for i in 0..=4 {
        let v = max * f64::from(i) / 4.0;
        let yy = y(v);
        let _ = write!(
            s,
            r##"<line x1="{PAD_L}" x2="{}" y1="{yy:.1}" y2="{yy:.1}" stroke="#2c3235"/><text x="{}" y="{:.1}" fill="#8e8e8e" font-size="11" text-anchor="end">{}</text>"##,
            W - PAD_R,
            PAD_L - 6.0,
            yy + 4.0,
            esc(&fmt_value(v, &panel.unit))
        );
    }
    for (i, t) in [t0, (t0 + t1) / 2.0, t1].into_iter().enumerate() {
        let secs = t as u64 % 86_400;
        let label = format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
        let anchor = ["start", "middle", "end"][i];
        let _ = write!(
            s,
            r##"<text x="{:.1}" y="{:.1}" fill="#8e8e8e" font-size="11" text-anchor="{anchor}">{label} UTC</text>"##,
            x(t),
            PAD_T + ph + 16.0
        );
    }
    if panel.series.iter().all(|s| s.points.is_empty()) {
        let _ = write!(
            s,
            r##"<text x="{}" y="{}" fill="#8e8e8e" font-size="14" text-anchor="middle">no data</text>"##,
            W / 2.0,
            H / 2.0
        );
    }
    for (i, se) in panel.series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let pts: Vec<String> = se.points.iter().map(|(t, v)| format!("{:.1},{:.1}", x(*t), y(*v))).collect();
        if pts.len() == 1 {
            let _ = write!(s, r##"<circle cx="{}" r="2.5" fill="{color}"/>"##, pts[0].replace(',', "\" cy=\""));
        } else if !pts.is_empty() {
            let _ = write!(
                s,
                r##"<polyline fill="none" stroke="{color}" stroke-width="1.8" points="{}"/>"##,
                pts.join(" ")
            );
        }
        let (col, row) = (i % 4, i / 4);
        let (lx, ly) = (PAD_L + col as f64 * 170.0, PAD_T + ph + 36.0 + row as f64 * 16.0);
        let last = se.points.last().map(|p| fmt_value(p.1, &panel.unit)).unwrap_or_default();
        let _ = write!(
            s,
            r##"<rect x="{lx}" y="{}" width="10" height="3" fill="{color}"/><text x="{}" y="{ly}" fill="#ccccdc" font-size="11">{} {}</text>"##,
            ly - 4.0,
            lx + 14.0,
            esc(&se.legend.chars().take(22).collect::<String>()),
            esc(&last)
        );
    }
    s.push_str("</svg>");
    s
}

/// Writes the panels as an HTML grid (two columns) to `html`, then screenshots it to `png`
/// with headless Chromium.
pub fn render(title: &str, panels: &[Panel], t0: f64, t1: f64, html: &Path, png: &Path) {
    let mut page = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><style>body{{margin:0;padding:12px;background:#111217;\
         font-family:sans-serif}}h1{{color:#ccccdc;font-size:18px;margin:4px 4px 12px}}\
         .g{{display:grid;grid-template-columns:repeat(2,{W}px);gap:10px}}</style></head><body><h1>{}</h1><div class=\"g\">",
        esc(title)
    );
    for p in panels {
        page.push_str(&svg(p, t0, t1));
    }
    page.push_str("</div></body></html>");
    std::fs::write(html, page).unwrap();
    let rows = panels.len().div_ceil(2) as f64;
    let height = (60.0 + rows * (H + 10.0)).ceil() as u32;
    let width = (2.0 * W + 34.0) as u32;
    let out = std::process::Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--force-device-scale-factor=1"])
        .arg(format!("--window-size={width},{height}"))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", html.display()))
        .output()
        .expect("chromium runs (scripts/test installs it)");
    assert!(png.exists(), "chromium wrote no screenshot: {}", String::from_utf8_lossy(&out.stderr));
}
