//! Reports: text summary, HdrHistogram percentile distribution (.hgrm), JSON, SVG plot.

use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::cli::Config;
use crate::stats::{ErrorKind, SIGFIG};
use crate::RunResult;

/// Percentiles shown in the summaries.
pub const PERCENTILES: [(f64, &str); 4] = [(50.0, "p50"), (90.0, "p90"), (99.0, "p99"), (99.9, "p99.9")];

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// Latency at percentile `p` (0..=100), ms.
pub fn percentile_ms(h: &Histogram<u64>, p: f64) -> f64 {
    if h.is_empty() {
        0.0
    } else {
        ms(h.value_at_quantile(p / 100.0))
    }
}

fn max_ms(h: &Histogram<u64>) -> f64 {
    if h.is_empty() {
        0.0
    } else {
        ms(h.max())
    }
}

pub fn mode_name(cfg: &Config) -> String {
    match cfg.rate {
        Some(r) => format!("open-loop at {r} req/s"),
        None => "closed-loop".to_string(),
    }
}

fn latency_line(h: &Histogram<u64>) -> String {
    let mut s = String::new();
    for (p, name) in PERCENTILES {
        let _ = write!(s, "{name} {:.3}  ", percentile_ms(h, p));
    }
    let (mean, stdev) = if h.is_empty() { (0.0, 0.0) } else { (h.mean() / 1e3, h.stdev() / 1e3) };
    let _ = write!(s, "max {:.3}  (mean {mean:.3}, stdev {stdev:.3})", max_ms(h));
    s
}

/// Human-readable summary for stdout.
pub fn text(cfg: &Config, r: &RunResult) -> String {
    let st = &r.stats;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "corelink-load {} {}: {}, {} thread(s), {} connection(s){}",
        cfg.method,
        cfg.target_url(),
        mode_name(cfg),
        cfg.threads,
        cfg.connections,
        if cfg.new_conn { ", new connection per request" } else { "" }
    );
    let secs = r.elapsed.as_secs_f64();
    let _ = writeln!(s, "  measured     {:.2}s (after {:.2}s warm-up)", secs, cfg.warmup.as_secs_f64());
    let _ = writeln!(
        s,
        "  requests     {} responses, {:.2} req/s, {:.2} MB/s read, {} connection(s) opened",
        st.responses,
        r.requests_per_sec(),
        if secs > 0.0 { st.bytes_read as f64 / secs / 1e6 } else { 0.0 },
        st.connects
    );
    let _ = writeln!(s, "  latency ms   {}", latency_line(&st.latency));
    if cfg.rate.is_some() {
        let _ = writeln!(s, "  service ms   {}  (uncorrected)", latency_line(&st.service));
    }
    let mut errs = String::new();
    for k in ErrorKind::ALL {
        let _ = write!(errs, "{} {}  ", k.name(), st.errors(k));
    }
    let _ = writeln!(s, "  errors       {}", errs.trim_end());
    let non2xx: Vec<String> = st
        .statuses()
        .into_iter()
        .filter(|(code, _)| !(200..300).contains(code))
        .map(|(code, n)| format!("{code}: {n}"))
        .collect();
    if !non2xx.is_empty() {
        let _ = writeln!(s, "  non-2xx      {}", non2xx.join("  "));
    }
    s
}

/// The percentile distribution in the text format HdrHistogram's
/// `outputPercentileDistribution` / `hdr_percentiles_print` (CLASSIC) writes and wrk2
/// prints with `--u_latency`: values in milliseconds (the histogram holds µs), 5 ticks
/// per half distance, then the Mean/Max/Buckets footer. HdrHistogram's plotters read it.
pub fn hgrm(h: &Histogram<u64>) -> String {
    let scale = 1000.0;
    let mut s = String::new();
    let _ = write!(s, "{:>12} {:>12} {:>12} {:>12}\n\n", "Value", "Percentile", "TotalCount", "1/(1-Percentile)");
    if !h.is_empty() {
        let mut total = 0u64;
        for v in h.iter_quantiles(5) {
            let q = v.quantile_iterated_to();
            total += v.count_since_last_iteration();
            let _ = writeln!(
                s,
                "{:12.3} {:12.6} {:12} {:12.2}",
                v.value_iterated_to() as f64 / scale,
                q,
                total,
                1.0 / (1.0 - q)
            );
        }
    }
    let (mean, stdev, max) =
        if h.is_empty() { (0.0, 0.0, 0.0) } else { (h.mean() / scale, h.stdev() / scale, h.max() as f64 / scale) };
    let _ = writeln!(s, "#[Mean    = {mean:12.3}, StdDeviation   = {stdev:12.3}]");
    let _ = writeln!(s, "#[Max     = {max:12.3}, Total count    = {:12}]", h.len());
    let _ = writeln!(s, "#[Buckets = {:12}, SubBuckets     = {:12}]", h.buckets(), sub_bucket_count(SIGFIG));
    s
}

/// HdrHistogram's sub-bucket count for a number of significant digits.
pub fn sub_bucket_count(sigfig: u8) -> u32 {
    let largest_single_unit = 2 * 10u64.pow(u32::from(sigfig));
    let magnitude = (largest_single_unit as f64).log2().ceil() as u32;
    1 << magnitude
}

/// One row of a parsed .hgrm file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HgrmRow {
    pub value_ms: f64,
    pub percentile: f64,
    pub total_count: u64,
}

/// A parsed .hgrm file.
#[derive(Debug, Clone, PartialEq)]
pub struct Hgrm {
    pub rows: Vec<HgrmRow>,
    pub mean_ms: f64,
    pub stdev_ms: f64,
    pub max_ms: f64,
    pub total_count: u64,
    pub buckets: u32,
    pub sub_buckets: u32,
}

/// Parse the .hgrm text format (ours, wrk2's or HdrHistogram's).
pub fn parse_hgrm(text: &str) -> Result<Hgrm, String> {
    let mut out =
        Hgrm { rows: Vec::new(), mean_ms: 0.0, stdev_ms: 0.0, max_ms: 0.0, total_count: 0, buckets: 0, sub_buckets: 0 };
    let field = |line: &str, key: &str| -> Result<String, String> {
        let i = line.find(key).ok_or_else(|| format!("no {key} in {line:?}"))?;
        let rest = line[i + key.len()..].trim_start();
        let rest = rest.strip_prefix('=').ok_or("expected '='")?.trim_start();
        Ok(rest.split([',', ']']).next().unwrap_or("").trim().to_string())
    };
    let num = |s: String| s.parse::<f64>().map_err(|e| format!("{s:?}: {e}"));
    let int = |s: String| s.parse::<u64>().map_err(|e| format!("{s:?}: {e}"));
    for line in text.lines() {
        let t = line.trim();
        if t.is_empty() || t.starts_with("Value") {
            continue;
        }
        if t.starts_with("#[Mean") {
            out.mean_ms = num(field(t, "Mean")?)?;
            out.stdev_ms = num(field(t, "StdDeviation")?)?;
        } else if t.starts_with("#[Max") {
            out.max_ms = num(field(t, "Max")?)?;
            out.total_count = int(field(t, "Total count")?)?;
        } else if t.starts_with("#[Buckets") {
            out.buckets = int(field(t, "Buckets")?)? as u32;
            out.sub_buckets = int(field(t, "SubBuckets")?)? as u32;
        } else if t.starts_with('#') {
            continue;
        } else {
            let cols: Vec<&str> = t.split_whitespace().collect();
            if cols.len() < 3 {
                return Err(format!("short row {t:?}"));
            }
            out.rows.push(HgrmRow {
                value_ms: num(cols[0].to_string())?,
                percentile: num(cols[1].to_string())?,
                total_count: int(cols[2].to_string())?,
            });
        }
    }
    Ok(out)
}

fn hist_json(h: &Histogram<u64>) -> Value {
    let mut m = serde_json::Map::new();
    for (p, name) in PERCENTILES {
        m.insert(name.replace('.', "_"), json!(percentile_ms(h, p)));
    }
    m.insert("p99_99".into(), json!(percentile_ms(h, 99.99)));
    m.insert("max".into(), json!(max_ms(h)));
    m.insert("min".into(), json!(if h.is_empty() { 0.0 } else { ms(h.min()) }));
    m.insert("mean".into(), json!(if h.is_empty() { 0.0 } else { h.mean() / 1e3 }));
    m.insert("stdev".into(), json!(if h.is_empty() { 0.0 } else { h.stdev() / 1e3 }));
    m.insert("count".into(), json!(h.len()));
    Value::Object(m)
}

/// JSON summary. Latencies in milliseconds.
pub fn json(cfg: &Config, r: &RunResult) -> Value {
    let st = &r.stats;
    let mut errors = serde_json::Map::new();
    for k in ErrorKind::ALL {
        errors.insert(k.name().into(), json!(st.errors(k)));
    }
    errors.insert("total".into(), json!(st.total_errors()));
    let mut status = serde_json::Map::new();
    for (code, n) in st.statuses() {
        status.insert(code.to_string(), json!(n));
    }
    let ok: u64 = st.statuses().iter().filter(|(c, _)| (200..300).contains(c)).map(|(_, n)| n).sum();
    json!({
        "url": cfg.target_url(),
        "method": cfg.method,
        "mode": if cfg.rate.is_some() { "open" } else { "closed" },
        "rate": cfg.rate,
        "threads": cfg.threads,
        "connections": cfg.connections,
        "new_conn": cfg.new_conn,
        "warmup_s": cfg.warmup.as_secs_f64(),
        "duration_s": r.elapsed.as_secs_f64(),
        "requests": st.responses,
        "ok": ok,
        "non_2xx": st.non_2xx(),
        "requests_per_sec": r.requests_per_sec(),
        "bytes_read": st.bytes_read,
        "connects": st.connects,
        "errors": errors,
        "status": status,
        "latency_ms": hist_json(&st.latency),
        "service_time_ms": hist_json(&st.service),
    })
}

/// Points of a latency-by-percentile curve: (log10(1/(1-q)), value ms); the 100% point is
/// placed at `x_max`.
fn curve(h: &Histogram<u64>, x_max: f64) -> Vec<(f64, f64)> {
    let mut pts = Vec::new();
    if h.is_empty() {
        return pts;
    }
    for v in h.iter_quantiles(5) {
        let q = v.quantile_iterated_to();
        let x = if q >= 1.0 { x_max } else { (1.0 / (1.0 - q)).log10().min(x_max) };
        pts.push((x, ms(v.value_iterated_to())));
    }
    pts
}

/// A round upper bound for an axis.
fn nice_ceil(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let mag = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if m * mag >= v {
            return m * mag;
        }
    }
    10.0 * mag
}

fn fmt_ms(v: f64) -> String {
    if v >= 100.0 || v == 0.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else if v >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A named, coloured curve of (x, ms) points.
type Series = (&'static str, &'static str, Vec<(f64, f64)>);

/// Self-contained SVG: latency (ms, linear y) by percentile (log-scaled x: 0%, 90%, 99%,
/// 99.9%, ... as HdrHistogram's plotter draws it).
pub fn svg(cfg: &Config, r: &RunResult) -> String {
    let st = &r.stats;
    let (w, h) = (900.0, 540.0);
    let (left, right, top, bottom) = (80.0, 30.0, 60.0, 70.0);
    let (pw, ph) = (w - left - right, h - top - bottom);
    let count = st.latency.len().max(1) as f64;
    let x_max = count.log10().ceil().clamp(4.0, 6.0);
    let mut series: Vec<Series> = vec![("latency", "#1f77b4", curve(&st.latency, x_max))];
    if cfg.rate.is_some() {
        series.push(("service time (uncorrected)", "#ff7f0e", curve(&st.service, x_max)));
    }
    let y_top = nice_ceil(series.iter().flat_map(|(_, _, p)| p.iter().map(|&(_, v)| v)).fold(0.0, f64::max));
    let sx = |x: f64| left + x / x_max * pw;
    let sy = |v: f64| top + ph - v / y_top * ph;

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let title = format!(
        "Latency by percentile — {} {} — {}, {} conns, achieved {:.0} req/s",
        cfg.method,
        cfg.target_url(),
        mode_name(cfg),
        cfg.connections,
        r.requests_per_sec()
    );
    let _ = writeln!(s, r#"<text x="{}" y="28" text-anchor="middle" font-size="15">{}</text>"#, w / 2.0, esc(&title));
    // Grid and axes.
    let _ = writeln!(s, r##"<g stroke="#ddd" stroke-width="1">"##);
    for i in 0..=x_max as u32 {
        let x = sx(f64::from(i));
        let _ = writeln!(s, r#"<line x1="{x:.1}" y1="{top}" x2="{x:.1}" y2="{}"/>"#, top + ph);
    }
    for i in 0..=5 {
        let y = sy(y_top * f64::from(i) / 5.0);
        let _ = writeln!(s, r#"<line x1="{left}" y1="{y:.1}" x2="{}" y2="{y:.1}"/>"#, left + pw);
    }
    let _ = writeln!(s, "</g>");
    let _ = writeln!(s, r##"<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>"##);
    for i in 0..=x_max as u32 {
        let label = if i == 0 {
            "0%".to_string()
        } else {
            let p = 100.0 - 100.0 / 10f64.powi(i as i32);
            format!("{}%", fmt_pct(p))
        };
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{label}</text>"#,
            sx(f64::from(i)),
            top + ph + 18.0
        );
    }
    for i in 0..=5 {
        let v = y_top * f64::from(i) / 5.0;
        let _ =
            writeln!(s, r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#, left - 8.0, sy(v) + 4.0, fmt_ms(v));
    }
    let _ = writeln!(s, r#"<text x="{}" y="{}" text-anchor="middle">Percentile</text>"#, left + pw / 2.0, h - 25.0);
    let _ = writeln!(
        s,
        r#"<text x="20" y="{}" text-anchor="middle" transform="rotate(-90 20 {})">Latency (ms)</text>"#,
        top + ph / 2.0,
        top + ph / 2.0
    );
    // Curves.
    for (i, (name, color, pts)) in series.iter().enumerate() {
        if pts.is_empty() {
            continue;
        }
        let mut d = String::new();
        for &(x, v) in pts {
            let _ = write!(d, "{:.2},{:.2} ", sx(x), sy(v));
        }
        let d = d.trim_end();
        let _ = writeln!(s, r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{d}"/>"#);
        let ly = top + 18.0 + 18.0 * i as f64;
        let _ = writeln!(
            s,
            r#"<line x1="{}" y1="{ly}" x2="{}" y2="{ly}" stroke="{color}" stroke-width="3"/><text x="{}" y="{}">{}</text>"#,
            left + 12.0,
            left + 36.0,
            left + 42.0,
            ly + 4.0,
            esc(name)
        );
    }
    let _ = writeln!(s, "</svg>");
    s
}

fn fmt_pct(p: f64) -> String {
    let s = format!("{p:.6}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::new_histogram;

    fn sample() -> Histogram<u64> {
        let mut h = new_histogram();
        // A spread of latencies: 10_000 values from 50 µs up, plus a tail.
        for i in 0..10_000u64 {
            h.record(50 + i * 3).unwrap();
        }
        for v in [120_000, 250_000, 500_000, 1_000_000] {
            h.record(v).unwrap();
        }
        h
    }

    #[test]
    fn hgrm_round_trips() {
        let h = sample();
        let text = hgrm(&h);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "       Value   Percentile   TotalCount 1/(1-Percentile)");
        assert_eq!(lines[1], "");
        let parsed = parse_hgrm(&text).unwrap();
        assert_eq!(parsed.total_count, h.len());
        assert_eq!(parsed.total_count, 10_004);
        assert!((parsed.max_ms - h.max() as f64 / 1e3).abs() < 0.0005);
        assert!((parsed.mean_ms - h.mean() / 1e3).abs() < 0.0005);
        assert!((parsed.stdev_ms - h.stdev() / 1e3).abs() < 0.0005);
        assert_eq!(parsed.buckets, u32::from(h.buckets()));
        assert_eq!(parsed.sub_buckets, 2048);

        // Every row matches the histogram's own percentile iteration.
        let expected: Vec<_> = h.iter_quantiles(5).collect();
        assert_eq!(parsed.rows.len(), expected.len());
        for (row, v) in parsed.rows.iter().zip(&expected) {
            assert!((row.value_ms - v.value_iterated_to() as f64 / 1e3).abs() < 0.0005);
            assert!((row.percentile - v.quantile_iterated_to()).abs() < 1e-6);
            assert_eq!(row.total_count, h.count_between(0, v.value_iterated_to()));
        }
        // Percentile column is non-decreasing from 0 to 1; counts too; last row is 100%.
        assert_eq!(parsed.rows[0].percentile, 0.0);
        assert_eq!(parsed.rows.last().unwrap().percentile, 1.0);
        assert_eq!(parsed.rows.last().unwrap().total_count, h.len());
        assert!(text.lines().any(|l| l.trim_end().ends_with("inf")));
        for w in parsed.rows.windows(2) {
            assert!(w[1].percentile >= w[0].percentile);
            assert!(w[1].total_count >= w[0].total_count);
            assert!(w[1].value_ms >= w[0].value_ms);
        }
        // Reading the key percentiles back from the file agrees with the histogram:
        // the first row at or above p has the histogram's value at p.
        for p in [0.5, 0.9, 0.99, 0.999] {
            let row = parsed.rows.iter().find(|r| r.percentile >= p).unwrap();
            let want = h.value_at_quantile(p) as f64 / 1e3;
            assert!(
                (row.value_ms - want).abs() <= want * 0.002 + 0.001,
                "p{p}: file {} vs histogram {want}",
                row.value_ms
            );
        }
    }

    #[test]
    fn hgrm_row_format_matches_hdrhistogram_c() {
        let mut h = new_histogram();
        h.record(1000).unwrap();
        let text = hgrm(&h);
        let rows: Vec<&str> = text.lines().skip(2).collect();
        assert_eq!(rows[0], "       1.000     0.000000            1         1.00");
        assert_eq!(rows[1], "       1.000     1.000000            1          inf");
        assert_eq!(rows[2], "#[Mean    =        1.000, StdDeviation   =        0.000]");
        assert_eq!(rows[3], "#[Max     =        1.000, Total count    =            1]");
    }

    #[test]
    fn parses_wrk2_output() {
        let wrk2 = "       Value   Percentile   TotalCount 1/(1-Percentile)\n\n\
       0.921     0.000000            1         1.00\n\
       1.623     0.100000         6501         1.11\n\
      12.655     1.000000        60000          inf\n\
#[Mean    =        2.487, StdDeviation   =        1.317]\n\
#[Max     =       12.648, Total count    =        60000]\n\
#[Buckets =           27, SubBuckets     =         2048]\n";
        let p = parse_hgrm(wrk2).unwrap();
        assert_eq!(p.rows.len(), 3);
        assert_eq!(p.total_count, 60000);
        assert_eq!(p.buckets, 27);
        assert_eq!(p.rows[1].total_count, 6501);
        assert!((p.max_ms - 12.648).abs() < 1e-9);
    }

    #[test]
    fn nice_axes() {
        assert_eq!(nice_ceil(0.0), 1.0);
        assert_eq!(nice_ceil(0.7), 1.0);
        assert_eq!(nice_ceil(1.3), 2.0);
        assert_eq!(nice_ceil(2.2), 2.5);
        assert_eq!(nice_ceil(480.0), 500.0);
        assert_eq!(fmt_pct(99.9), "99.9");
        assert_eq!(fmt_pct(90.0), "90");
        assert_eq!(sub_bucket_count(3), 2048);
        assert_eq!(sub_bucket_count(2), 256);
    }
}
