//! `tweetlake eval` and `tweetlake score` as a user runs them, on the committed model and the labelled
//! files the repository carries.

use serde_json::Value;
use std::process::Command;

fn tweetlake(args: &[&str], stdin: Option<&str>) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tweetlake"));
    cmd.args(args).current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).env_remove("TWEETLAKE_NEUTRAL_BAND");
    let Some(input) = stdin else { return cmd.output().expect("tweetlake runs") };
    use std::io::Write;
    let mut child = cmd.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).spawn().expect("runs");
    child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("writes");
    child.wait_with_output().expect("tweetlake runs")
}

fn json_lines(out: &std::process::Output) -> Vec<Value> {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("one JSON object per line")).collect()
}

#[test]
fn eval_reports_the_measures_per_file_and_per_source() {
    let manual = json_lines(&tweetlake(&["eval", "--test", "tests/data/testdata.manual.2009.06.14.csv"], None));
    assert_eq!(manual.len(), 1);
    let t = &manual[0]["test"];
    assert_eq!((t["all_rows"].as_u64(), t["binary_rows"].as_u64()), (Some(498), Some(359)));
    assert!(t["binary_accuracy"].as_f64().unwrap() >= 0.85, "{t}");
    let confusion: u64 =
        t["confusion"].as_array().unwrap().iter().flat_map(|r| r.as_array().unwrap()).map(|c| c.as_u64().unwrap()).sum();
    assert_eq!(confusion, 498);

    // One line per source, in the order asked, each over that source's rows only (724 and 476 in the file).
    let sample = "tests/data/semeval-sample/train-sample.csv";
    let per_source =
        json_lines(&tweetlake(&["eval", "--test", sample, "--source", "twitter-2016train-A,twitter-2013train-A"], None));
    let got: Vec<_> =
        per_source.iter().map(|l| (l["source"].as_str().unwrap(), l["test"]["all_rows"].as_u64().unwrap())).collect();
    assert_eq!(got, [("twitter-2016train-A", 476), ("twitter-2013train-A", 724)]);
    for l in &per_source {
        let recall = l["test"]["recall"].as_array().unwrap();
        assert_eq!(recall.len(), 3);
        let mean = recall.iter().map(|r| r.as_f64().unwrap()).sum::<f64>() / 3.0;
        assert!((mean - l["test"]["macro_recall"].as_f64().unwrap()).abs() < 1e-9, "macro recall is the mean of the three");
    }

    let missing = tweetlake(&["eval", "--test", sample, "--source", "twitter-2016train-A,twitter-2099test-A"], None);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("twitter-2099test-A"), "the error names the missing source");
}

#[test]
fn score_prints_a_label_and_three_probabilities_per_line() {
    let lines = json_lines(&tweetlake(&["score"], Some("I love this, what a wonderful day\nthis is awful, I hate it\n")));
    assert_eq!(lines.len(), 2);
    for l in &lines {
        let p: Vec<f64> = l["probabilities"].as_array().unwrap().iter().map(|p| p.as_f64().unwrap()).collect();
        assert_eq!(p.len(), 3);
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-5, "{l}");
    }
    assert_eq!((lines[0]["label"].as_str(), lines[1]["label"].as_str()), (Some("positive"), Some("negative")));
    assert!(lines[0]["probabilities"][2].as_f64() > lines[0]["probabilities"][0].as_f64());
}
