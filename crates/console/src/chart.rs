//! Charts as inline SVG, drawn on the server (no chart library, no script). Each chart has a
//! text alternative on its page: the same numbers in a table.

use std::fmt::Write as _;

/// Colours for series, distinguishable in the common colour-vision deficiencies (Okabe–Ito).
const COLOURS: [&str; 7] = [
    "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442",
];

/// XML text escaping for labels.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A horizontal bar chart of `(label, value)`, labelled `title` for screen readers.
pub fn bars(title: &str, items: &[(String, u64)]) -> String {
    let max = items.iter().map(|i| i.1).max().unwrap_or(0).max(1);
    let row = 26;
    let height = row * items.len().max(1) + 4;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart" viewBox="0 0 600 {height}" role="img" aria-label="{}" preserveAspectRatio="xMinYMin meet">"#,
        escape(title)
    );
    for (i, (label, value)) in items.iter().enumerate() {
        let y = i * row + 2;
        let w = (*value as f64 / max as f64 * 380.0).max(1.0);
        let _ = write!(
            s,
            r#"<text x="0" y="{}" class="label">{}</text><rect x="150" y="{y}" width="{w:.1}" height="20" fill="{}"/><text x="{:.1}" y="{}" class="value">{value}</text>"#,
            y + 15,
            escape(label),
            COLOURS[i % COLOURS.len()],
            150.0 + w + 6.0,
            y + 15,
        );
    }
    s.push_str("</svg>");
    s
}

/// Stacked columns: one column per bucket (`label`, counts per series in `series` order).
pub fn stacked(title: &str, series: &[String], buckets: &[(String, Vec<u64>)]) -> String {
    let max = buckets
        .iter()
        .map(|b| b.1.iter().sum::<u64>())
        .max()
        .unwrap_or(0)
        .max(1);
    let n = buckets.len().max(1);
    let width = 600.0;
    let plot = 160.0;
    let col = width / n as f64;
    let legend_rows = series.len().div_ceil(3);
    let height = plot + 24.0 + 20.0 * legend_rows as f64;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{}" preserveAspectRatio="xMinYMin meet">"#,
        escape(title)
    );
    for (i, (label, counts)) in buckets.iter().enumerate() {
        let x = i as f64 * col;
        let mut top = plot;
        for (k, c) in counts.iter().enumerate() {
            if *c == 0 {
                continue;
            }
            let h = *c as f64 / max as f64 * (plot - 10.0);
            top -= h;
            let _ = write!(
                s,
                r#"<rect x="{:.1}" y="{top:.1}" width="{:.1}" height="{h:.1}" fill="{}"><title>{}: {c} ({})</title></rect>"#,
                x + 1.0,
                (col - 2.0).max(1.0),
                COLOURS[k % COLOURS.len()],
                escape(label),
                escape(&series[k]),
            );
        }
        if i % (n / 6).max(1) == 0 {
            let _ = write!(
                s,
                r#"<text x="{:.1}" y="{}" class="axis">{}</text>"#,
                x,
                plot + 16.0,
                escape(label)
            );
        }
    }
    for (k, name) in series.iter().enumerate() {
        let x = (k % 3) as f64 * 200.0;
        let y = plot + 28.0 + 20.0 * (k / 3) as f64;
        let _ = write!(
            s,
            r#"<rect x="{x}" y="{:.1}" width="12" height="12" fill="{}"/><text x="{:.1}" y="{:.1}" class="label">{}</text>"#,
            y - 10.0,
            COLOURS[k % COLOURS.len()],
            x + 16.0,
            y,
            escape(name)
        );
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped_and_bars_scale_to_the_largest() {
        let svg = bars("v", &[("<b>".into(), 10), ("1.0.0".into(), 5)]);
        assert!(svg.contains("&lt;b&gt;") && !svg.contains("<b>"));
        assert!(svg.contains(r#"width="380.0""#) && svg.contains(r#"width="190.0""#));
        let svg = stacked(
            "f",
            &["a".into()],
            &[("00:00".into(), vec![0]), ("01:00".into(), vec![3])],
        );
        assert_eq!(svg.matches("<title>").count(), 1, "{svg}");
    }
}
