//! The SAM template (`infra/template.yaml`) checked offline with the pinned tools the local stack
//! installs: cfn-lint, the project's CloudFormation Guard rules (`infra/guard/tweetlake.guard`) — on
//! the template and on copies that break each rule — and checkov.

use serde_json::Value as Json;
use std::collections::BTreeSet;
use tweetlake_tests::infra::{run, template_path, template_text};
use tweetlake_tests::repo_root;

const GUARD_RULES: &str = "infra/guard/tweetlake.guard";

/// `(rule, status)` for every rule `cfn-guard validate --show-summary all` reports on `data`.
fn guard(data: &std::path::Path) -> (bool, Vec<(String, String)>) {
    let out = run(
        "TWEETLAKE_CFN_GUARD",
        &["validate", "-r", GUARD_RULES, "-d", data.to_str().expect("utf-8 path"), "--show-summary", "all"],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let rules = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("tweetlake.guard/"))
        .filter_map(|l| l.split_once(char::is_whitespace))
        .map(|(rule, status)| (rule.to_owned(), status.trim().to_owned()))
        .collect();
    (out.status.success(), rules)
}

/// The rules of the guard file that judge a template (parameterized helper rules are called by them).
fn rule_names() -> BTreeSet<String> {
    std::fs::read_to_string(repo_root().join(GUARD_RULES))
        .expect("rules file")
        .lines()
        .filter_map(|l| l.strip_prefix("rule "))
        .filter_map(|l| {
            let end = l.find(|c: char| c.is_whitespace() || c == '(')?;
            // `rule name(params)` is a helper the judging rules call.
            (end > 0 && !l[end..].starts_with('(')).then(|| l[..end].to_owned())
        })
        .collect()
}

#[test]
fn cfn_lint_passes_with_nothing_to_report() {
    let out = run("TWEETLAKE_CFN_LINT", &["--format", "json", template_path().to_str().unwrap()]);
    let found: Json = serde_json::from_slice(&out.stdout).expect("cfn-lint prints JSON");
    assert_eq!(found, Json::Array(vec![]), "cfn-lint findings: {found:#}");
    assert!(out.status.success(), "cfn-lint failed: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn cfn_lint_catches_a_function_naming_a_missing_role() {
    // Proves the linter reads the functions through the SAM transform rather than skipping them.
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("template.yaml");
    std::fs::write(&broken, template_text().replacen("Role: !GetAtt ProcessRole.Arn", "Role: !GetAtt NoSuchRole.Arn", 1))
        .unwrap();
    let out = run("TWEETLAKE_CFN_LINT", &["--format", "json", broken.to_str().unwrap()]);
    let found: Json = serde_json::from_slice(&out.stdout).expect("cfn-lint prints JSON");
    let ids: Vec<&str> = found.as_array().unwrap().iter().filter_map(|m| m["Rule"]["Id"].as_str()).collect();
    assert!(!out.status.success(), "a dangling role reference must fail the lint");
    assert!(ids.iter().any(|id| id.starts_with('E')), "an error is reported: {ids:?}");
}

#[test]
fn every_guard_rule_passes_on_the_template() {
    let (ok, rules) = guard(&template_path());
    let expected = rule_names();
    assert!(expected.len() >= 8, "the rules file defines the project's rules: {expected:?}");
    let reported: BTreeSet<String> = rules.iter().map(|(r, _)| r.clone()).collect();
    assert_eq!(reported, expected, "every rule is evaluated");
    for (rule, status) in &rules {
        assert_eq!(status, "PASS", "rule {rule} (SKIP would mean it found nothing to check)");
    }
    assert!(ok, "cfn-guard validate exits 0");
}

/// One way to break one rule: replace the first `find` in the template with `replace`.
struct Break {
    rule: &'static str,
    what: &'static str,
    find: &'static str,
    replace: &'static str,
}

const BREAKS: &[Break] = &[
    Break {
        rule: "s3_bucket_encrypted",
        what: "the data bucket without default encryption",
        find: "      BucketEncryption:\n        ServerSideEncryptionConfiguration:\n          - ServerSideEncryptionByDefault: { SSEAlgorithm: AES256 }\n            BucketKeyEnabled: true\n",
        replace: "",
    },
    Break {
        rule: "s3_bucket_private",
        what: "a bucket that allows public bucket policies",
        find: "RestrictPublicBuckets: true",
        replace: "RestrictPublicBuckets: false",
    },
    Break {
        rule: "s3_bucket_tls_only",
        what: "the failed-batches bucket without its TLS-only policy",
        find: "      Bucket: !Ref FailedBatchesBucket",
        replace: "      Bucket: !Ref DataBucket",
    },
    Break {
        rule: "s3_bucket_tls_only",
        what: "a bucket policy that denies TLS instead of plain HTTP",
        find: "\"aws:SecureTransport\": \"false\"",
        replace: "\"aws:SecureTransport\": \"true\"",
    },
    Break {
        rule: "iam_no_wildcard_action_on_any_resource",
        what: "ec2:* on Resource \"*\"",
        find: "ec2:DescribeSecurityGroups]",
        replace: "ec2:DescribeSecurityGroups, \"ec2:*\"]",
    },
    Break {
        rule: "iam_no_wildcard_action_on_any_resource",
        what: "kafka-cluster:* on Resource \"*\" inside a conditional statement",
        find: "kafka-cluster:WriteDataIdempotently]\n                  Resource: !If [CreatesProvisioned, !Ref MskCluster, !If [CreatesServerless, !Ref MskServerlessCluster, !Ref ExistingMskClusterArn]]",
        replace: "kafka-cluster:*]\n                  Resource: \"*\"",
    },
    Break {
        rule: "lambda_runtime_al2023",
        what: "the functions' global runtime provided.al2",
        find: "    Runtime: provided.al2023",
        replace: "    Runtime: provided.al2",
    },
    Break {
        rule: "lambda_runtime_al2023",
        what: "one function overriding the runtime",
        find: "      CodeUri: ../functions/process\n",
        replace: "      CodeUri: ../functions/process\n      Runtime: nodejs20.x\n",
    },
    Break {
        rule: "kafka_mapping_on_failure_destination",
        what: "the mapping without an on-failure destination",
        find: "      DestinationConfig:\n        OnFailure:\n          Destination: !GetAtt FailedBatchesBucket.Arn\n",
        replace: "",
    },
    Break {
        rule: "kafka_mapping_starts_at_trim_horizon",
        what: "the mapping starting at LATEST",
        find: "StartingPosition: TRIM_HORIZON",
        replace: "StartingPosition: LATEST",
    },
    Break {
        rule: "kafka_mapping_limits",
        what: "a literal batch size over 10000",
        find: "      BatchSize: !Ref BatchSize",
        replace: "      BatchSize: 20000",
    },
    Break {
        rule: "kafka_mapping_limits",
        what: "a batch size parameter allowing 20000",
        find: "    MaxValue: 10000\n    Description: Records per process",
        replace: "    MaxValue: 20000\n    Description: Records per process",
    },
    Break {
        rule: "kafka_mapping_limits",
        what: "a batching window of 900 s",
        find: "      MaximumBatchingWindowInSeconds: !Ref BatchingWindowSeconds",
        replace: "      MaximumBatchingWindowInSeconds: 900",
    },
    Break {
        rule: "kafka_mapping_limits",
        what: "20000 retries",
        find: "      MaximumRetryAttempts: !Ref MaximumRetryAttempts",
        replace: "      MaximumRetryAttempts: 20000",
    },
    Break {
        rule: "kafka_mapping_limits",
        what: "a record age of 30 s (the service wants -1 or 60-604800)",
        find: "      MaximumRecordAgeInSeconds: !Ref MaximumRecordAgeSeconds",
        replace: "      MaximumRecordAgeInSeconds: 30",
    },
    Break {
        rule: "kafka_mapping_limits",
        what: "a record-age parameter allowing 30 s",
        find: "AllowedValues: [-1, 3600,",
        replace: "AllowedValues: [-1, 30, 3600,",
    },
    Break {
        rule: "kafka_mapping_limits",
        what: "no provisioned poller settings",
        find: "      ProvisionedPollerConfig:\n        MinimumPollers: !Ref MinimumPollers\n        MaximumPollers: !Ref MaximumPollers\n",
        replace: "",
    },
];

#[test]
fn a_template_breaking_each_guard_rule_is_rejected_by_that_rule() {
    let text = template_text();
    let dir = tempfile::tempdir().unwrap();
    for (i, b) in BREAKS.iter().enumerate() {
        assert!(text.contains(b.find), "break '{}': its text is no longer in the template:\n{}", b.what, b.find);
        let broken = dir.path().join(format!("break-{i}.yaml"));
        std::fs::write(&broken, text.replacen(b.find, b.replace, 1)).unwrap();
        let (ok, rules) = guard(&broken);
        let failed: BTreeSet<&str> = rules.iter().filter(|(_, s)| s == "FAIL").map(|(r, _)| r.as_str()).collect();
        assert!(!ok, "break '{}': cfn-guard accepted the template", b.what);
        assert_eq!(failed, BTreeSet::from([b.rule]), "break '{}' fails exactly its rule", b.what);
    }
    let covered: BTreeSet<String> = BREAKS.iter().map(|b| b.rule.to_owned()).collect();
    assert_eq!(covered, rule_names(), "every rule has a template that breaks it");
}

#[test]
fn checkov_passes_and_every_skip_is_justified() {
    let out = run(
        "TWEETLAKE_CHECKOV",
        &["--skip-download", "--framework", "cloudformation", "-o", "json", "-f", template_path().to_str().unwrap()],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let start = stdout.find('{').unwrap_or_else(|| panic!("checkov printed no JSON: {stdout}"));
    let report: Json = serde_json::from_str(&stdout[start..]).expect("checkov JSON");
    let summary = &report["summary"];
    let failed: Vec<String> = report["results"]["failed_checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| format!("{} {} ({})", c["check_id"], c["resource"], c["check_name"]))
        .collect();
    assert!(failed.is_empty(), "checkov failures: {failed:#?}");
    assert_eq!(summary["parsing_errors"], 0, "checkov parsed the template");
    assert!(summary["resource_count"].as_u64().unwrap() >= 40, "checkov saw the resources: {summary}");
    assert!(summary["passed"].as_u64().unwrap() >= 50, "checkov ran its checks: {summary}");
    let skipped = report["results"]["skipped_checks"].as_array().unwrap();
    assert!(!skipped.is_empty());
    for s in skipped {
        let why = s["check_result"]["suppress_comment"].as_str().unwrap_or_default();
        assert!(why.len() >= 20, "skip of {} on {} needs a reason, found {why:?}", s["check_id"], s["resource"]);
    }
    assert!(out.status.success(), "checkov exits 0");
}
