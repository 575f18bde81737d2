//! Model evaluation: the Sentiment140 human-labelled test set, accuracy and ROC AUC.

use crate::model::{Label, Model};
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
    let mut rdr = csv::ReaderBuilder::new().has_headers(false).from_path(path)?;
    let mut rows = Vec::new();
    for rec in rdr.records() {
        let rec = rec?;
        let label = match rec.get(0) {
            Some("0") => Label::Negative,
            Some("2") => Label::Neutral,
            Some("4") => Label::Positive,
            other => {
                return Err(csv::Error::from(std::io::Error::other(format!("unknown polarity {other:?}"))));
            }
        };
        rows.push(LabelledText { label, text: rec.get(5).unwrap_or_default().to_owned() });
    }
    Ok(rows)
}

/// Scores of a model on a labelled set.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Evaluation {
    /// Rows that are positive or negative.
    pub binary_rows: usize,
    /// Accuracy on those rows with a 0.5 threshold (no neutral band).
    pub binary_accuracy: f64,
    /// Area under the ROC curve on those rows.
    pub roc_auc: f64,
    /// All rows, neutral included.
    pub all_rows: usize,
    /// Accuracy over the three labels with the model's neutral band.
    pub three_class_accuracy: f64,
}

/// Evaluates `model` on labelled raw texts.
pub fn evaluate(model: &Model, rows: &[LabelledText]) -> Evaluation {
    let mut scorer = model.scorer();
    let mut binary: Vec<(f32, bool)> = Vec::new();
    let mut three_right = 0usize;
    for row in rows {
        let p = scorer.predict(&row.text);
        if p.label == row.label {
            three_right += 1;
        }
        if row.label != Label::Neutral {
            binary.push((p.score, row.label == Label::Positive));
        }
    }
    let right = binary.iter().filter(|(s, pos)| (*s > 0.5) == *pos).count();
    Evaluation {
        binary_rows: binary.len(),
        binary_accuracy: ratio(right, binary.len()),
        roc_auc: roc_auc(&binary),
        all_rows: rows.len(),
        three_class_accuracy: ratio(three_right, rows.len()),
    }
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
}
