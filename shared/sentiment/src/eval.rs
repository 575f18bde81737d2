//! Model evaluation on human-labelled texts: three-class macro recall and accuracy, binary accuracy and
//! ROC AUC on the positive/negative rows, calibration error and the confusion matrix.

use crate::model::{Label, Model, top_class};
use serde::Serialize;
use std::path::Path;

/// One row of `testdata.manual.2009.06.14.csv`: polarity 0, 2 or 4 and the original tweet text.
#[derive(Clone, Debug)]
pub struct LabelledText {
    /// Gold label.
    pub label: Label,
    /// Raw text, normalised at scoring time like a live tweet.
    pub text: String,
}

/// Reads the manual test set's 6-column CSV (polarity, id, date, query, user, text; no header).
pub fn read_manual_test(path: &Path) -> Result<Vec<LabelledText>, csv::Error> {
    read_labelled(path)
}

/// The label a CSV cell names: `neg`/`neu`/`pos`, the full words, or Sentiment140's polarity `0`/`2`/`4`.
pub fn parse_label(cell: &str) -> Option<Label> {
    match cell.trim().to_ascii_lowercase().as_str() {
        "0" | "neg" | "negative" => Some(Label::Negative),
        "2" | "neu" | "neutral" => Some(Label::Neutral),
        "4" | "pos" | "positive" => Some(Label::Positive),
        _ => None,
    }
}

/// Reads labelled texts from a CSV in any of the shapes the project meets: the Sentiment140 manual test
/// (6 columns, no header), `label,text` with or without a header, or a header naming `label` and `text`
/// columns (and `source`, e.g. SemEval's).
pub fn read_labelled(path: &Path) -> Result<Vec<LabelledText>, csv::Error> {
    Ok(read_rows(path, None)?.into_iter().map(|(_, row)| row).collect())
}

/// Reads the rows of each named source (a header's `source` column, e.g. SemEval's `twitter-2016test-A`)
/// in one pass: one list per source, in the order given. A source without rows is an error naming it.
pub fn read_sources<S: AsRef<str>>(path: &Path, sources: &[S]) -> Result<Vec<Vec<LabelledText>>, csv::Error> {
    let names: Vec<&str> = sources.iter().map(AsRef::as_ref).collect();
    let mut out: Vec<Vec<LabelledText>> = vec![Vec::new(); names.len()];
    for (at, row) in read_rows(path, Some(&names))? {
        out[at].push(row);
    }
    if let Some(at) = out.iter().position(Vec::is_empty) {
        return Err(bad(format!("{}: no rows of source {}", path.display(), names[at])));
    }
    Ok(out)
}

fn bad(message: String) -> csv::Error {
    csv::Error::from(std::io::Error::other(message))
}

/// The rows of `path`, each with the position of its source in `sources` (0 when not filtering).
fn read_rows(path: &Path, sources: Option<&[&str]>) -> Result<Vec<(usize, LabelledText)>, csv::Error> {
    let mut rdr = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_path(path)?;
    let mut records = rdr.records();
    let Some(first) = records.next().transpose()? else { return Ok(Vec::new()) };
    let named = |name: &str| first.iter().position(|c| c.trim().eq_ignore_ascii_case(name));
    // A header row names its columns; otherwise the shape says where label and text are.
    let (header, label_at, text_at, source_at) = match (named("label"), named("text")) {
        (Some(l), Some(t)) => (true, l, t, named("source")),
        _ if first.len() == 6 => (false, 0, 5, None),
        _ if first.len() == 2 => (false, 0, 1, None),
        _ => return Err(bad(format!("{}: expected label,text columns, a header naming them, or 6 columns", path.display()))),
    };
    if sources.is_some() && source_at.is_none() {
        return Err(bad(format!("{}: no source column to filter on", path.display())));
    }
    let mut rows = Vec::new();
    for (line, rec) in std::iter::once(Ok(first)).chain(records).enumerate().skip(usize::from(header)) {
        let rec = rec?;
        let at = match (sources, source_at) {
            (Some(want), Some(col)) => match want.iter().position(|w| rec.get(col) == Some(*w)) {
                Some(at) => at,
                None => continue,
            },
            _ => 0,
        };
        let cell = rec.get(label_at).unwrap_or_default();
        let label =
            parse_label(cell).ok_or_else(|| bad(format!("{} line {}: unknown label {cell:?}", path.display(), line + 1)))?;
        rows.push((at, LabelledText { label, text: rec.get(text_at).unwrap_or_default().to_owned() }));
    }
    Ok(rows)
}

/// Scores of a model on a labelled set.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Evaluation {
    /// Rows that are positive or negative.
    pub binary_rows: usize,
    /// Accuracy on those rows, positive when P(pos) / prior(pos) > P(neg) / prior(neg) (the label's rule).
    pub binary_accuracy: f64,
    /// Area under the ROC curve on those rows, ranking by that ratio.
    pub roc_auc: f64,
    /// All rows, neutral included.
    pub all_rows: usize,
    /// Accuracy over the three labels.
    pub three_class_accuracy: f64,
    /// Mean of the recall of each of the three classes (SemEval's and TweetEval's official measure):
    /// always answering one class scores 1/3.
    pub macro_recall: f64,
    /// Recall per class: negative, neutral, positive.
    pub recall: [f64; 3],
    /// Expected calibration error of the most probable class's probability (15 equal-width bins): how far
    /// the probabilities are from the frequencies they claim.
    pub ece: f64,
    /// Rows by gold label (negative, neutral, positive) then predicted label.
    pub confusion: [[usize; 3]; 3],
}

/// Evaluates `model` on labelled raw texts.
pub fn evaluate(model: &Model, rows: &[LabelledText]) -> Evaluation {
    let mut scorer = model.scorer();
    // Positive against negative by the same rule the label follows: each probability over its prior.
    let priors = model.meta().three_class.as_ref().map_or([1.0; 3], |h| h.priors);
    let mut binary: Vec<(f32, bool)> = Vec::new();
    let mut confusion = [[0usize; 3]; 3];
    let mut confidence: Vec<(f32, bool)> = Vec::with_capacity(rows.len());
    for row in rows {
        let p = scorer.predict(&row.text);
        let (gold, said) = (row.label.index(), p.label.index());
        confusion[gold][said] += 1;
        // A binary model is measured as what it claims: P(positive) and P(negative), neutral never.
        let probabilities = p.probabilities.unwrap_or([1.0 - p.score, 0.0, p.score]);
        let top = top_class(&probabilities);
        confidence.push((probabilities[top], gold == top));
        if row.label != Label::Neutral {
            let odds = (probabilities[2] / priors[2]).ln() - (probabilities[0] / priors[0]).ln();
            binary.push((odds, row.label == Label::Positive));
        }
    }
    let right = binary.iter().filter(|(s, pos)| (*s > 0.0) == *pos).count();
    let recall: [f64; 3] = std::array::from_fn(|c| ratio(confusion[c][c], confusion[c].iter().sum()));
    Evaluation {
        binary_rows: binary.len(),
        binary_accuracy: ratio(right, binary.len()),
        roc_auc: roc_auc(&binary),
        all_rows: rows.len(),
        three_class_accuracy: ratio((0..3).map(|c| confusion[c][c]).sum(), rows.len()),
        macro_recall: recall.iter().sum::<f64>() / 3.0,
        recall,
        ece: expected_calibration_error(&confidence, 15),
        confusion,
    }
}

/// Expected calibration error: rows binned by the confidence of their prediction; the row-weighted mean
/// gap between each bin's mean confidence and its accuracy.
pub fn expected_calibration_error(confidence: &[(f32, bool)], bins: usize) -> f64 {
    let mut sums = vec![(0f64, 0usize, 0usize); bins];
    for &(c, right) in confidence {
        let b = ((c.clamp(0.0, 1.0) as f64 * bins as f64) as usize).min(bins - 1);
        sums[b].0 += c as f64;
        sums[b].1 += usize::from(right);
        sums[b].2 += 1;
    }
    let n = confidence.len().max(1) as f64;
    sums.iter().filter(|b| b.2 > 0).map(|&(c, right, k)| (c / k as f64 - right as f64 / k as f64).abs() * k as f64 / n).sum()
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// ROC AUC by the rank-sum (Mann–Whitney) formula, ties counted half.
pub fn roc_auc(scored: &[(f32, bool)]) -> f64 {
    let mut v: Vec<(f32, bool)> = scored.to_vec();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (mut rank_sum, mut i) = (0f64, 0usize);
    while i < v.len() {
        let mut j = i;
        while j < v.len() && v[j].0 == v[i].0 {
            j += 1;
        }
        let avg_rank = (i + 1 + j) as f64 / 2.0;
        rank_sum += avg_rank * v[i..j].iter().filter(|x| x.1).count() as f64;
        i = j;
    }
    let pos = v.iter().filter(|x| x.1).count() as f64;
    let neg = v.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return 0.5;
    }
    (rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_of_perfect_random_and_tied_rankings() {
        assert_eq!(roc_auc(&[(0.1, false), (0.2, false), (0.8, true), (0.9, true)]), 1.0);
        assert_eq!(roc_auc(&[(0.9, false), (0.8, true)]), 0.0);
        assert_eq!(roc_auc(&[(0.5, false), (0.5, true)]), 0.5);
    }

    #[test]
    fn calibration_error_is_the_gap_between_confidence_and_accuracy() {
        // Confident at 0.9 and right 9 times in 10: calibrated.
        let fair: Vec<(f32, bool)> = (0..10).map(|i| (0.9, i < 9)).collect();
        assert!(expected_calibration_error(&fair, 15) < 1e-6);
        // Confident at 0.9 and right half the time: 0.4 off.
        let over: Vec<(f32, bool)> = (0..10).map(|i| (0.9, i < 5)).collect();
        assert!((expected_calibration_error(&over, 15) - 0.4).abs() < 1e-6);
    }

    #[test]
    fn labelled_csvs_of_every_shape_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let plain = write("plain.csv", "4,good day\n0,\"bad, bad day\"\n");
        let got = read_labelled(&plain).unwrap();
        assert_eq!((got[1].label, got[1].text.as_str()), (Label::Negative, "bad, bad day"));
        let semeval = write("s.csv", "source,id,label,text\na,1,neu,x\nb,2,pos,y\nb,3,neg,z\n");
        let [b, a] = <[_; 2]>::try_from(read_sources(&semeval, &["b", "a"]).unwrap()).unwrap();
        assert_eq!(b.iter().map(|r| r.label).collect::<Vec<_>>(), [Label::Positive, Label::Negative]);
        assert_eq!((a.len(), a[0].text.as_str()), (1, "x"));
        assert_eq!(read_labelled(&semeval).unwrap().len(), 3);
        assert!(read_sources(&plain, &["b"]).is_err(), "no source column to filter on");
        let missing = read_sources(&semeval, &["a", "c"]).unwrap_err();
        assert!(missing.to_string().contains("source c"), "{missing}");
        let err = read_labelled(&write("bad.csv", "label,text\nmaybe,x\n")).unwrap_err();
        assert!(err.to_string().contains("line 2") && err.to_string().contains("maybe"), "{err}");
    }
}
