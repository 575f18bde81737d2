//! The HTML report: reads the tweets and quarantine tables and writes one self-contained page (inline
//! SVG, no scripts, no network) with tweet volume and mean sentiment over time per rule, label shares,
//! languages, top hashtags and quarantine reasons. Time runs by minute, hour or day, whichever suits the
//! span of the data ([`Resolution`]); every point is drawn as a mark, so a single window still shows. The SVG is written by hand: five simple chart shapes do not
//! justify a plotting crate, whose text rendering needs system font libraries.

use crate::query::{rows, session};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write;
use tweetlake_pipeline::config::TableLocations;
use unicode_segmentation::UnicodeSegmentation;

/// The time step of the over-time charts, chosen from the span of the tweets' creation times.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Resolution {
    /// For a span under 6 hours.
    Minute,
    /// For a span up to 4 days.
    #[default]
    Hour,
    /// Beyond.
    Day,
}

impl Resolution {
    /// The resolution for data spanning `seconds`.
    pub fn for_span(seconds: f64) -> Self {
        if seconds < 6.0 * 3600.0 {
            Resolution::Minute
        } else if seconds <= 4.0 * 86400.0 {
            Resolution::Hour
        } else {
            Resolution::Day
        }
    }

    /// How a window start (`2021-09-22T16:37:00`) is shown on the time axis: `16:37`, `09-22 16h` or
    /// `2021-09-22`.
    pub fn axis_label(self, at: &str) -> String {
        let part = |r: std::ops::Range<usize>| at.get(r).unwrap_or(at).to_owned();
        match self {
            Resolution::Minute => part(11..16),
            Resolution::Hour => format!("{} {}h", part(5..10), part(11..13)),
            Resolution::Day => part(0..10),
        }
    }

    /// Its name, as SQL's `date_trunc` takes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Resolution::Minute => "minute",
            Resolution::Hour => "hour",
            Resolution::Day => "day",
        }
    }
}

/// What the report shows, as read from the tables.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ReportData {
    /// Rows in the tweets table.
    pub tweets: u64,
    /// Rows in the quarantine table.
    pub quarantined: u64,
    /// The time step of `per_rule`.
    pub resolution: Resolution,
    /// Per rule tag: (window start, tweets, tweets in the mean, mean sentiment score), one per window of
    /// `resolution` that has tweets. The mean is over scored tweets that are not retweets, as the
    /// aggregates table's.
    pub per_rule: BTreeMap<String, Vec<(String, u64, u64, f64)>>,
    /// Tweets per sentiment label (`unscored`: a language the model does not read).
    pub labels: BTreeMap<String, u64>,
    /// Each class's expected count: the three-class probabilities summed over the rows that have them
    /// (negative, neutral, positive); `None` when no row has them.
    pub expected: Option<[f64; 3]>,
    /// Per language X detected (`none` when it gave none): tweets, and of them scored; most first.
    pub languages: Vec<(String, u64, u64)>,
    /// The most used hashtags (lower-cased) and their counts.
    pub hashtags: Vec<(String, u64)>,
    /// Quarantined records per quality rule.
    pub reasons: BTreeMap<String, u64>,
}

/// Reads the figures from the tweets and quarantine tables.
pub async fn read(tables: &TableLocations) -> anyhow::Result<ReportData> {
    let ctx = session(&tables.named()[..2], &tables.storage_options).await?;
    let n = |v: &Value, k: &str| v[k].as_u64().unwrap_or(0);
    let s = |v: &Value, k: &str| v[k].as_str().unwrap_or_default().to_owned();
    let mut d = ReportData {
        tweets: rows(&ctx, "SELECT count(*) AS n FROM tweets").await?.first().map_or(0, |r| n(r, "n")),
        quarantined: rows(&ctx, "SELECT count(*) AS n FROM quarantine").await?.first().map_or(0, |r| n(r, "n")),
        ..ReportData::default()
    };
    let span = "SELECT date_part('epoch', max(created_at)) - date_part('epoch', min(created_at)) AS span FROM tweets";
    let seconds = rows(&ctx, span).await?.first().and_then(|r| r["span"].as_f64()).unwrap_or(0.0);
    d.resolution = Resolution::for_span(seconds);
    // Rows of tables written before the `kind` column count as originals.
    let per_window = format!(
        "SELECT tag, CAST(date_trunc('{}', created_at) AS VARCHAR) AS at, count(*) AS n, count(mean_score) AS scored, \
         avg(mean_score) AS mean FROM (SELECT unnest(rule_tags) AS tag, created_at, \
         CASE WHEN coalesce(kind, 'original') <> 'retweet' THEN sentiment_score END AS mean_score FROM tweets) \
         GROUP BY tag, at ORDER BY at",
        d.resolution.as_str()
    );
    for r in rows(&ctx, &per_window).await? {
        let mean = r["mean"].as_f64().unwrap_or(0.0);
        d.per_rule.entry(s(&r, "tag")).or_default().push((s(&r, "at"), n(&r, "n"), n(&r, "scored"), mean));
    }
    for r in rows(&ctx, "SELECT coalesce(sentiment_label, 'unscored') AS label, count(*) AS n FROM tweets GROUP BY 1").await? {
        d.labels.insert(s(&r, "label"), n(&r, "n"));
    }
    let sums = "SELECT sum(sentiment_negative) AS neg, sum(sentiment_neutral) AS neu, sum(sentiment_positive) AS pos FROM tweets";
    if let Some(r) = rows(&ctx, sums).await?.first()
        && let [Some(neg), Some(neu), Some(pos)] = ["neg", "neu", "pos"].map(|c| r[c].as_f64())
    {
        d.expected = Some([neg, neu, pos]);
    }
    let langs = "SELECT coalesce(lang, 'none') AS lang, count(*) AS n, count(sentiment_score) AS scored FROM tweets \
         GROUP BY 1 ORDER BY n DESC, lang";
    d.languages = rows(&ctx, langs).await?.iter().map(|r| (s(r, "lang"), n(r, "n"), n(r, "scored"))).collect();
    let tags = "SELECT lower(h) AS tag, count(*) AS n FROM (SELECT unnest(hashtags) AS h FROM tweets) GROUP BY 1 ORDER BY n DESC, tag LIMIT 15";
    d.hashtags = rows(&ctx, tags).await?.iter().map(|r| (s(r, "tag"), n(r, "n"))).collect();
    for r in rows(&ctx, "SELECT rule, count(*) AS n FROM quarantine GROUP BY 1").await? {
        d.reasons.insert(s(&r, "rule"), n(&r, "n"));
    }
    Ok(d)
}

const COLORS: &[&str] = &["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"];

/// Fonts for labels in any script: the system UI font, then CJK and emoji faces, then any sans-serif.
const FONTS: &str = "system-ui, 'Noto Sans', 'Noto Sans CJK KR', 'Noto Sans CJK JP', 'Apple SD Gothic Neo', \
                     'Malgun Gothic', 'Segoe UI Emoji', 'Noto Color Emoji', sans-serif";

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// `label` cut to at most `max` graphemes (what a reader sees as one character: an emoji with its
/// modifiers, a letter with its accents), with `…` when cut.
fn shorten(label: &str, max: usize) -> String {
    let mut g = label.graphemes(true);
    let head: String = g.by_ref().take(max).collect();
    if g.next().is_some() { format!("{}…", head.graphemes(true).take(max.saturating_sub(1)).collect::<String>()) } else { head }
}

/// An SVG text element showing `label` cut to `max` graphemes, with the whole label as its tooltip.
fn label_text(attrs: &str, label: &str, max: usize) -> String {
    format!(r#"<text {attrs}><title>{}</title>{}</text>"#, esc(label), esc(&shorten(label, max)))
}

/// A line chart: one polyline per series over a shared, ordered set of x labels (window starts, placed
/// at their time), a mark per point, and `x_label` under the axis.
fn line_chart(
    id: &str,
    title: &str,
    x_label: &str,
    x_text: &dyn Fn(&str) -> String,
    series: &BTreeMap<String, Vec<(String, f64)>>,
    y_fixed: Option<(f64, f64)>,
) -> String {
    let (w, h, l, r, t, b) = (760.0, 300.0, 56.0, 150.0, 30.0, 60.0);
    let mut xs: Vec<&String> = series.values().flatten().map(|(x, _)| x).collect();
    xs.sort();
    xs.dedup();
    let ys = series.values().flatten().map(|(_, y)| *y);
    let (lo, hi) = y_fixed.unwrap_or_else(|| (0.0, ys.fold(1.0f64, f64::max)));
    // Windows sit at their time, so hours without tweets show as the gaps they are; labels that are
    // not times fall back to even spacing.
    let times: Result<Vec<chrono::NaiveDateTime>, _> =
        xs.iter().map(|x| chrono::NaiveDateTime::parse_from_str(x.get(..19).unwrap_or(x), "%Y-%m-%dT%H:%M:%S")).collect();
    let at: Vec<f64> = match times {
        Ok(times) => times.iter().map(|t| t.and_utc().timestamp() as f64).collect(),
        Err(_) => (0..xs.len()).map(|i| i as f64).collect(),
    };
    let (first, last) = (at.first().copied().unwrap_or(0.0), at.last().copied().unwrap_or(0.0));
    let px = |i: usize| l + (w - l - r) * if last > first { (at[i] - first) / (last - first) } else { 0.5 };
    let py = |y: f64| t + (h - t - b) * (1.0 - (y - lo) / (hi - lo).max(1e-9));
    let names: Vec<&String> = series.keys().collect();
    let mut s = format!(
        r#"<figure id="{id}" data-series="{}"><figcaption>{}</figcaption><svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img">"#,
        esc(&names.iter().map(|n| n.as_str()).collect::<Vec<_>>().join(",")),
        esc(title)
    );
    let _ = write!(
        s,
        r##"<line x1="{l}" y1="{}" x2="{}" y2="{}" stroke="#444"/><line x1="{l}" y1="{t}" x2="{l}" y2="{}" stroke="#444"/>"##,
        h - b,
        w - r,
        h - b,
        h - b
    );
    for k in 0..=4 {
        let y = lo + (hi - lo) * k as f64 / 4.0;
        let _ = write!(
            s,
            r##"<text x="{}" y="{}" font-size="10" text-anchor="end">{}</text>"##,
            l - 4.0,
            py(y) + 3.0,
            if hi <= 1.0 { format!("{y:.2}") } else { format!("{y:.0}") }
        );
    }
    if xs.is_empty() {
        let _ = write!(s, r#"<text class="empty" x="{}" y="{}" font-size="12">No tweets yet.</text>"#, l + 10.0, t + 20.0);
    }
    // A label under a window where it does not run into the one before.
    let mut free_from = f64::MIN;
    for (i, x) in xs.iter().enumerate() {
        if px(i) >= free_from {
            s += &label_text(
                &format!(r#"x="{:.1}" y="{}" font-size="9" text-anchor="middle""#, px(i), h - b + 14.0),
                &x_text(x),
                16,
            );
            free_from = px(i) + 64.0;
        }
    }
    let _ = write!(
        s,
        r#"<text x="{:.1}" y="{}" font-size="10" text-anchor="middle">{}</text>"#,
        (l + w - r) / 2.0,
        h - 12.0,
        esc(x_label)
    );
    for (si, (name, pts)) in series.iter().enumerate() {
        let c = COLORS[si % COLORS.len()];
        let path: Vec<String> =
            pts.iter().map(|(x, y)| format!("{:.1},{:.1}", px(xs.iter().position(|v| *v == x).unwrap_or(0)), py(*y))).collect();
        let _ = write!(
            s,
            r#"<polyline class="series" data-name="{}" fill="none" stroke="{c}" stroke-width="2" points="{}"/>"#,
            esc(name),
            path.join(" ")
        );
        // A mark per point: a line through one point draws nothing, and the value shows on hover.
        for ((x, y), at) in pts.iter().zip(&path) {
            let (cx, cy) = at.split_once(',').expect("x,y");
            let value = if hi <= 1.0 { format!("{y:.3}") } else { format!("{y:.0}") };
            let _ = write!(
                s,
                r#"<circle class="point" data-name="{}" data-value="{value}" cx="{cx}" cy="{cy}" r="3.5" fill="{c}"><title>{}: {} at {}</title></circle>"#,
                esc(name),
                esc(name),
                value,
                esc(x)
            );
            if pts.len() == 1 {
                let _ = write!(
                    s,
                    r#"<text x="{cx}" y="{}" font-size="10" text-anchor="start" dx="6">{value}</text>"#,
                    cy.parse::<f64>().unwrap_or(0.0) - 6.0
                );
            }
        }
        let _ = write!(s, r#"<rect x="{}" y="{}" width="10" height="10" fill="{c}"/>"#, w - r + 10.0, t + 16.0 * si as f64);
        s += &label_text(&format!(r#"x="{}" y="{}" font-size="11""#, w - r + 24.0, t + 9.0 + 16.0 * si as f64), name, 18);
    }
    s.push_str("</svg></figure>\n");
    s
}

/// A horizontal bar chart.
fn bar_chart(id: &str, title: &str, bars: &[(String, u64)], empty: &str) -> String {
    let (w, row, l) = (760.0, 22.0, 200.0);
    let h = 20.0 + row * bars.len().max(1) as f64;
    let max = bars.iter().map(|b| b.1).max().unwrap_or(1).max(1) as f64;
    let mut s = format!(
        r#"<figure id="{id}" data-series="{}"><figcaption>{}</figcaption><svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img">"#,
        esc(&bars.iter().map(|b| b.0.as_str()).collect::<Vec<_>>().join(",")),
        esc(title)
    );
    if bars.is_empty() {
        // Said in words, so an empty chart is never mistaken for one that failed to draw.
        let _ = write!(s, r#"<text class="empty" x="{l}" y="20" font-size="12">{}</text>"#, esc(empty));
    }
    for (i, (name, v)) in bars.iter().enumerate() {
        let y = 10.0 + row * i as f64;
        let bw = (w - l - 60.0) * *v as f64 / max;
        s += &label_text(&format!(r#"x="{}" y="{}" font-size="11" text-anchor="end""#, l - 6.0, y + 13.0), name, 30);
        let _ = write!(
            s,
            r#"<rect class="bar" data-name="{}" data-value="{v}" x="{l}" y="{y}" width="{bw:.1}" height="{}" fill="{}"/><text x="{}" y="{}" font-size="11">{v}</text>"#,
            esc(name),
            row - 6.0,
            COLORS[i % COLORS.len()],
            l + bw + 4.0,
            y + 13.0
        );
    }
    s.push_str("</svg></figure>\n");
    s
}

/// The self-contained HTML page.
pub fn html(d: &ReportData, title: &str) -> String {
    let volume: BTreeMap<String, Vec<(String, f64)>> =
        d.per_rule.iter().map(|(k, v)| (k.clone(), v.iter().map(|(x, n, _, _)| (x.clone(), *n as f64)).collect())).collect();
    // An hour without a scored tweet has no mean: it is left out, not drawn as 0.
    let mean: BTreeMap<String, Vec<(String, f64)>> = d
        .per_rule
        .iter()
        .map(|(k, v)| (k.clone(), v.iter().filter(|h| h.2 > 0).map(|(x, _, _, m)| (x.clone(), *m)).collect()))
        .collect();
    let mut page = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title><style>body,svg{{font-family:{FONTS};}}body{{margin:2em;max-width:820px}}figure{{margin:1.5em 0}}figcaption{{font-weight:bold;margin-bottom:.4em}}td,th{{padding:2px 10px;text-align:left}}</style></head><body><h1>{t}</h1>\n",
        t = esc(title)
    );
    let scored: u64 = d.languages.iter().map(|l| l.2).sum();
    let _ = writeln!(
        page,
        "<table id=\"summary\"><tr><th>tweets</th><td>{}</td></tr><tr><th>scored</th><td>{scored} ({:.1} %)</td></tr><tr><th>quarantined</th><td>{}</td></tr><tr><th>rules</th><td>{}</td></tr></table>",
        d.tweets,
        100.0 * scored as f64 / d.tweets.max(1) as f64,
        d.quarantined,
        d.per_rule.len()
    );
    let unit = d.resolution.as_str();
    let first_day = d.per_rule.values().flatten().map(|p| p.0.get(..10).unwrap_or_default()).min().unwrap_or_default();
    let x_label = match d.resolution {
        Resolution::Minute => format!("time (UTC) from {first_day}, per minute"),
        _ => format!("time (UTC), per {unit}"),
    };
    let x_text = |at: &str| d.resolution.axis_label(at);
    page += &line_chart("volume", &format!("Tweets per {unit}, per rule"), &x_label, &x_text, &volume, None);
    page += &line_chart(
        "sentiment",
        &format!("Mean sentiment score per {unit}, per rule (0 negative … 1 positive)"),
        &x_label,
        &x_text,
        &mean,
        Some((0.0, 1.0)),
    );
    let labels: Vec<(String, u64)> = d.labels.iter().map(|(k, v)| (k.clone(), *v)).collect();
    page += &bar_chart("labels", "Sentiment label shares", &labels, "No tweet was scored.");
    // Labels follow the decision that weighs the three classes alike; the summed probabilities are how
    // many posts of each class the model expects, the unbiased shares.
    let expected: Vec<(String, u64)> = d
        .expected
        .iter()
        .flat_map(|e| ["negative", "neutral", "positive"].iter().zip(e).map(|(c, v)| (c.to_string(), v.round() as u64)))
        .collect();
    page += &bar_chart(
        "expected",
        "Expected posts per class (the model's probabilities summed)",
        &expected,
        "No tweet has class probabilities.",
    );
    let languages: Vec<(String, u64)> = d
        .languages
        .iter()
        .map(|(lang, n, scored)| (format!("{lang} ({:.0} % scored)", 100.0 * *scored as f64 / (*n).max(1) as f64), *n))
        .collect();
    page += &bar_chart("languages", "Tweets per language (share the model scored)", &languages, "No tweets.");
    page += &bar_chart("hashtags", "Top hashtags", &d.hashtags, "No hashtags.");
    let reasons: Vec<(String, u64)> = d.reasons.iter().map(|(k, v)| (k.clone(), *v)).collect();
    page += &bar_chart("quarantine", "Quarantined records per quality rule", &reasons, "No record was quarantined.");
    page += "</body></html>\n";
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_labels_show_what_the_resolution_changes() {
        let at = "2021-09-22T16:37:00";
        assert_eq!(
            [Resolution::Minute, Resolution::Hour, Resolution::Day].map(|r| r.axis_label(at)),
            ["16:37", "09-22 16h", "2021-09-22"].map(String::from)
        );
    }

    #[test]
    fn resolution_follows_the_span() {
        assert_eq!(Resolution::for_span(0.0), Resolution::Minute);
        assert_eq!(Resolution::for_span(5.0 * 3600.0), Resolution::Minute);
        assert_eq!(Resolution::for_span(2.0 * 86400.0), Resolution::Hour);
        assert_eq!(Resolution::for_span(30.0 * 86400.0), Resolution::Day);
    }

    #[test]
    fn labels_are_cut_between_graphemes_with_the_whole_label_as_tooltip() {
        let family = "👨\u{200d}👩\u{200d}👧";
        let long = format!("{family}{family}{family}케이팝최고");
        let cut = shorten(&long, 3);
        assert_eq!(cut, format!("{family}{family}…"), "an emoji sequence is one grapheme, kept whole or dropped");
        assert_eq!(shorten("kpop", 10), "kpop");
        let t = label_text("x=\"0\"", "é<b>", 2);
        assert_eq!(t, "<text x=\"0\"><title>é&lt;b&gt;</title>é…</text>");
    }

    #[test]
    fn a_single_window_draws_a_mark_with_its_value_in_every_over_time_chart() {
        let d = ReportData {
            tweets: 3,
            resolution: Resolution::Minute,
            per_rule: BTreeMap::from([
                ("kpop".to_owned(), vec![("2021-09-22T16:37:00".to_owned(), 2, 1, 0.75)]),
                ("brexit".to_owned(), vec![("2021-09-22T16:37:00".to_owned(), 1, 0, 0.0)]),
            ]),
            ..ReportData::default()
        };
        let page = html(&d, "t");
        let figure = |id: &str| {
            let start = page.find(&format!("<figure id=\"{id}\"")).unwrap();
            page[start..start + page[start..].find("</figure>").unwrap()].to_owned()
        };
        let volume = figure("volume");
        assert_eq!(volume.matches("class=\"point\"").count(), 2, "{volume}");
        assert!(volume.contains("data-value=\"2\"") && volume.contains("per minute"));
        let sentiment = figure("sentiment");
        assert_eq!(sentiment.matches("class=\"point\"").count(), 1, "an hour without a scored tweet has no mean");
        assert!(sentiment.contains("data-value=\"0.750\"") && sentiment.contains(">0.750</text>"), "{sentiment}");
    }

    #[test]
    fn a_chart_without_data_says_so_in_words() {
        let page = html(&ReportData::default(), "t");
        for id in ["volume", "sentiment", "labels", "expected", "languages", "hashtags", "quarantine"] {
            let start = page.find(&format!("<figure id=\"{id}\"")).unwrap();
            let fig = &page[start..start + page[start..].find("</figure>").unwrap()];
            assert!(fig.contains("class=\"empty\""), "{id}: {fig}");
        }
        assert!(page.contains("No record was quarantined."));
    }

    #[test]
    fn windows_sit_at_their_time_so_empty_hours_show_as_gaps() {
        let d = ReportData {
            tweets: 3,
            per_rule: BTreeMap::from([(
                "r".to_owned(),
                ["00", "01", "05"].iter().map(|h| (format!("2021-09-22T{h}:00:00Z"), 1, 0, 0.0)).collect(),
            )]),
            ..ReportData::default()
        };
        let page = html(&d, "t");
        let start = page.find("<figure id=\"volume\"").unwrap();
        let cx: Vec<f64> = page[start..]
            .split("class=\"point\"")
            .skip(1)
            .take(3)
            .map(|p| p.split("cx=\"").nth(1).unwrap().split('"').next().unwrap().parse().unwrap())
            .collect();
        let (one, all) = (cx[1] - cx[0], cx[2] - cx[0]);
        assert!((one / all - 0.2).abs() < 0.01, "one hour of five: {cx:?}");
    }
}
