//! The admin page's figures: job counts per status and type, and jobs
//! completed and failed per minute over the last hour, drawn as an SVG by
//! the server (no chart script). The figures come from the images layer.

use std::fmt::Write as _;

use crate::images::{Images, ImagesResult};

/// Minutes the chart covers.
pub const CHART_MINUTES: usize = 60;
const MINUTE_MS: i64 = 60_000;

/// Jobs completed and failed in each of the last [`CHART_MINUTES`] minutes,
/// oldest minute first.
///
/// # Errors
/// The database failed.
pub async fn per_minute(images: &Images) -> ImagesResult<(Vec<u64>, Vec<u64>)> {
    let since = images.now().plus_ms(-(CHART_MINUTES as i64) * MINUTE_MS);
    let mut completed = vec![0; CHART_MINUTES];
    let mut failed = vec![0; CHART_MINUTES];
    for (minute, status, count) in images.finished_per_minute(since).await? {
        let Ok(minute) = usize::try_from(minute) else { continue };
        let bucket = if status == "FAILED" { &mut failed } else { &mut completed };
        if let Some(n) = bucket.get_mut(minute) {
            *n += count.max(0).unsigned_abs();
        }
    }
    Ok((completed, failed))
}

/// A stacked bar chart (completed below, failed above) per minute, with a
/// text summary for screen readers.
pub fn svg(completed: &[u64], failed: &[u64]) -> String {
    const WIDTH: f64 = 720.0;
    const HEIGHT: f64 = 180.0;
    const LEFT: f64 = 36.0;
    const BOTTOM: f64 = 22.0;
    const TOP: f64 = 10.0;
    let minutes = completed.len().max(failed.len()).max(1);
    let at = |v: &[u64], i: usize| v.get(i).copied().unwrap_or(0);
    let peak = (0..minutes).map(|i| at(completed, i) + at(failed, i)).max().unwrap_or(0).max(1);
    let plot_h = HEIGHT - BOTTOM - TOP;
    let slot = (WIDTH - LEFT) / minutes as f64;
    let bar = (slot * 0.8).max(1.0);
    let total_ok: u64 = completed.iter().sum();
    let total_bad: u64 = failed.iter().sum();
    let mut out = String::new();
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" \
         aria-labelledby=\"chart-title\"><title id=\"chart-title\">Jobs per minute over the last hour: \
         {total_ok} completed, {total_bad} failed</title>"
    );
    let base = HEIGHT - BOTTOM;
    let _ = write!(
        out,
        "<line x1=\"{LEFT}\" y1=\"{base}\" x2=\"{WIDTH}\" y2=\"{base}\" stroke=\"#9aa3b5\"/>\
         <line x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{WIDTH}\" y2=\"{TOP}\" stroke=\"#e3e7ee\"/>\
         <text x=\"{x}\" y=\"{y}\" font-size=\"11\" text-anchor=\"end\" fill=\"#5b6474\">{peak}</text>\
         <text x=\"{x}\" y=\"{base}\" font-size=\"11\" text-anchor=\"end\" fill=\"#5b6474\">0</text>",
        x = LEFT - 6.0,
        y = TOP + 4.0,
    );
    for i in 0..minutes {
        let x = LEFT + i as f64 * slot + (slot - bar) / 2.0;
        let ok_h = plot_h * at(completed, i) as f64 / peak as f64;
        let bad_h = plot_h * at(failed, i) as f64 / peak as f64;
        if ok_h > 0.0 {
            let _ = write!(
                out,
                "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{bar:.1}\" height=\"{ok_h:.1}\" fill=\"#2f9e55\"/>",
                base - ok_h
            );
        }
        if bad_h > 0.0 {
            let _ = write!(
                out,
                "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{bar:.1}\" height=\"{bad_h:.1}\" fill=\"#d2453b\"/>",
                base - ok_h - bad_h
            );
        }
    }
    for (i, label) in [(0, "−60 min"), (minutes / 2, "−30 min"), (minutes, "now")] {
        let x = LEFT + i as f64 * slot;
        let anchor = if i == 0 {
            "start"
        } else if i == minutes {
            "end"
        } else {
            "middle"
        };
        let _ = write!(
            out,
            "<text x=\"{x:.1}\" y=\"{}\" font-size=\"11\" text-anchor=\"{anchor}\" fill=\"#5b6474\">{label}</text>",
            HEIGHT - 6.0
        );
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chart_draws_one_bar_per_nonzero_count_and_says_the_totals() {
        let mut completed = vec![0; CHART_MINUTES];
        let mut failed = vec![0; CHART_MINUTES];
        completed[59] = 4;
        completed[10] = 2;
        failed[59] = 1;
        let svg = svg(&completed, &failed);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches("<rect").count(), 3);
        assert!(svg.contains("6 completed, 1 failed"));
    }

    #[test]
    fn an_empty_hour_draws_axes_without_bars() {
        let svg = svg(&[0; CHART_MINUTES], &[0; CHART_MINUTES]);
        assert_eq!(svg.matches("<rect").count(), 0);
        assert!(svg.contains("0 completed, 0 failed"));
    }
}
