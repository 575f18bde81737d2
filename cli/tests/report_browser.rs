//! The HTML report as a user sees it: headless Chromium (Debian's, installed by `infra/local/stack.sh
//! browser`) renders the report of a test run, for tweets within one hour, over several days, and the
//! report README command 1 leaves (the bundled sample, a day of tweets).
//! Every chart must have drawn marks: counted in its SVG, and as non-background pixels inside its plot
//! area in the rendered image. Lives in the CLI package so Cargo builds the binary it runs.

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use tweetlake_tests::xapi_server::Pool;
use tweetlake_tests::{Rec, envelope, event, python, repo_root, stack_var};

/// The charts of the report and the kind of mark each draws.
const CHARTS: [(&str, &str); 7] = [
    ("volume", "circle"),
    ("sentiment", "circle"),
    ("labels", "rect"),
    ("expected", "rect"),
    ("languages", "rect"),
    ("hashtags", "rect"),
    ("quarantine", "rect"),
];

fn tweetlake(dir: &Path, args: &[&str]) {
    let (t, q) = (dir.join("tweets"), dir.join("quarantine"));
    let tables = ["--table", t.to_str().unwrap(), "--quarantine", q.to_str().unwrap()];
    let out = Command::new(env!("CARGO_BIN_EXE_tweetlake")).args(args).args(tables).current_dir(repo_root()).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Renders `file` in headless Chromium at `width`×`height` into `png`.
fn screenshot(file: &Path, png: &Path, width: u32, height: u32) {
    let out = Command::new(stack_var("TWEETLAKE_CHROMIUM"))
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--force-device-scale-factor=1"])
        .arg(format!("--window-size={width},{height}"))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", file.display()))
        .output()
        .expect("chromium runs");
    assert!(png.exists(), "chromium wrote no screenshot: {}", String::from_utf8_lossy(&out.stderr));
}

/// Each chart of `report` on its own: the figure's SVG (its plot-area box from the SVG's own
/// geometry), rendered by Chromium; returns per chart the marks in the SVG and the non-background
/// pixels Chromium drew inside the plot area.
fn drawn(report: &Path, dir: &Path) -> Value {
    let html = std::fs::read_to_string(report).unwrap();
    let mut out = serde_json::Map::new();
    for (id, mark) in CHARTS {
        let start = html.find(&format!("<figure id=\"{id}\"")).unwrap_or_else(|| panic!("chart {id} in the report"));
        let fig = &html[start..start + html[start..].find("</figure>").unwrap()];
        let svg = &fig[fig.find("<svg").unwrap()..fig.find("</svg>").unwrap() + 6];
        let attr = |name: &str| -> u32 {
            let at = svg.find(&format!(" {name}=\"")).unwrap() + name.len() + 3;
            svg[at..at + svg[at..].find('"').unwrap()].parse::<f64>().unwrap() as u32
        };
        let (w, h) = (attr("width"), attr("height"));
        // The plot area, inside the axes: line charts keep 56 px left, 150 right, 30 top, 60 bottom;
        // bar charts draw their bars right of 200 px.
        let (x0, y0, x1, y1) = if mark == "circle" { (58, 30, w - 150, h - 62) } else { (201, 5, w - 10, h - 5) };
        let file = dir.join(format!("{id}.svg"));
        std::fs::write(&file, svg).unwrap();
        let png = dir.join(format!("{id}.png"));
        screenshot(&file, &png, w, h);
        let count = r#"
import sys
from PIL import Image
im = Image.open(sys.argv[1]).convert("RGB")
x0, y0, x1, y1 = map(int, sys.argv[2:6])
print(sum(1 for x in range(x0, x1) for y in range(y0, y1) if min(im.getpixel((x, y))) < 200))
"#;
        let px = Command::new(python())
            .args(["-c", count, png.to_str().unwrap()])
            .args([x0, y0, x1, y1].map(|v| v.to_string()))
            .output()
            .unwrap();
        assert!(px.status.success(), "{}", String::from_utf8_lossy(&px.stderr));
        let pixels: u64 = String::from_utf8_lossy(&px.stdout).trim().parse().unwrap();
        let marks = if mark == "circle" { fig.matches("class=\"point\"").count() } else { fig.matches("class=\"bar\"").count() };
        let empty = fig.contains("class=\"empty\"");
        out.insert(id.to_owned(), serde_json::json!({"marks": marks, "pixels": pixels, "empty": empty}));
    }
    Value::Object(out)
}

/// Asserts every chart but those of `without_data` drew marks; those must say in words that they have
/// nothing to show.
fn assert_every_chart_drawn(name: &str, report: &Path, dir: &Path, without_data: &[&str]) -> Value {
    let d = drawn(report, dir);
    for (id, _) in CHARTS {
        if without_data.contains(&id) {
            assert_eq!(d[id]["marks"], 0, "{name}: {id}");
            assert!(d[id]["empty"].as_bool().unwrap(), "{name}: chart {id} must say it has no data: {d}");
            assert!(d[id]["pixels"].as_u64().unwrap() > 30, "{name}: chart {id} shows its note: {d}");
            continue;
        }
        assert!(d[id]["marks"].as_u64().unwrap() > 0, "{name}: chart {id} has no mark: {d}");
        assert!(d[id]["pixels"].as_u64().unwrap() > 30, "{name}: chart {id} drew nothing in its plot area: {d}");
    }
    d
}

#[test]
fn every_chart_draws_its_data_for_an_hour_and_for_several_days() {
    // One hour: the sample event of recorded tweets (all within 16:00–17:00 on one day).
    let hour = tempfile::tempdir().unwrap();
    tweetlake(hour.path(), &["process", "--event", "events/msk-batch.json"]);
    tweetlake(hour.path(), &["process", "--event", "events/poison-batch.json"]);
    let report = hour.path().join("report.html");
    tweetlake(hour.path(), &["report", "--out", report.to_str().unwrap()]);
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(html.contains("Tweets per minute, per rule"), "a span under a few hours runs by minute");
    assert_every_chart_drawn("one hour", &report, hour.path(), &[]);

    // Several days: a tweet every 3 hours over 4 days, two rules, one malformed record.
    let days = tempfile::tempdir().unwrap();
    let start = chrono::DateTime::parse_from_rfc3339("2026-11-20T00:00:00Z").unwrap().to_utc();
    let now_ms = chrono::Utc::now().timestamp_millis();
    let mut recs: Vec<Rec> = (0..32i64)
        .map(|i| {
            let at = (start + chrono::Duration::hours(3 * i)).format("%Y-%m-%dT%H:%M:%S.000Z").to_string();
            let text = if i % 2 == 0 { "I love this #weekend" } else { "this is awful #monday" };
            let id = (1_861_000_000_000_000_000 + i).to_string();
            Rec {
                partition: 0,
                offset: i,
                timestamp_ms: now_ms,
                value: Some(envelope(&id, text, &at, ["rain", "sun"][i as usize % 2])),
            }
        })
        .collect();
    recs.push(Rec { partition: 0, offset: 32, timestamp_ms: now_ms, value: Some(b"{not json".to_vec()) });
    let batch = days.path().join("event.json");
    std::fs::write(&batch, event(&recs)).unwrap();
    tweetlake(days.path(), &["process", "--event", batch.to_str().unwrap()]);
    let report = days.path().join("report.html");
    tweetlake(days.path(), &["report", "--out", report.to_str().unwrap()]);
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(html.contains("Tweets per hour, per rule"), "4 days run by hour");
    let d = assert_every_chart_drawn("four days", &report, days.path(), &[]);
    assert_eq!(d["volume"]["marks"], 32, "a mark per tweet's hour: {d}");
}

#[test]
fn the_main_jobs_report_draws_the_bundled_day_hour_by_hour() {
    // README command 1: `tweetlake local` on the bundled sample, its own tables under --dir.
    let dir = tempfile::tempdir().unwrap();
    let topic = format!("report-{}-{}", std::process::id(), chrono::Utc::now().timestamp_micros() % 1_000_000);
    let out = Command::new(env!("CARGO_BIN_EXE_tweetlake"))
        .args(["local", "--no-progress", "--dir", dir.path().to_str().unwrap(), "--topic", &topic])
        .args(["--bootstrap", &tweetlake_tests::kafka::bootstrap()])
        .env_remove("TWEETLAKE_TABLE_URI")
        .env_remove("TWEETLAKE_QUARANTINE_URI")
        .env_remove("TWEETLAKE_RULES")
        .env_remove("TWEETLAKE_X_BEARER_TOKEN")
        .current_dir(repo_root())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report = dir.path().join("report.html");
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(html.contains("Tweets per hour, per rule"), "the sample spans a day, drawn by the hour");
    // Every bundled record is well-formed, so the quarantine chart has nothing to draw and says so.
    let d = assert_every_chart_drawn("the bundled sample", &report, dir.path(), &["quarantine"]);
    // A point per rule and hour with tweets, counted from the recorded pages themselves.
    let hours: BTreeSet<(String, String)> = ["brexit", "kpop"]
        .iter()
        .flat_map(|rule| {
            Pool::bundled(rule)
                .tweets
                .iter()
                .map(|t| (rule.to_string(), t["created_at"].as_str().unwrap()[..13].to_owned()))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(hours.len() >= 20, "the sample covers many hours: {hours:?}");
    assert_eq!(d["volume"]["marks"], hours.len(), "a mark per rule and hour: {d}");
    // The whole page, as the README shows it.
    let page: PathBuf = dir.path().join("report.png");
    screenshot(&report, &page, 900, 1800);
    if std::env::var_os("TWEETLAKE_WRITE_SCREENSHOT").is_some() {
        std::fs::copy(&page, repo_root().join("infra/report.png")).unwrap();
    }
}
