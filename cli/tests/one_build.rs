//! README command 1 (`cargo run -p tweetlake-cli`) right after command 2 (the test build) compiles
//! nothing but the CLI: every crate the CLI depends on resolves to the same features both ways
//! (`cli/Cargo.toml` lists what it enables only for that). Checked with `cargo tree`, which resolves
//! features as the two builds do.

use std::collections::BTreeMap;
use std::process::Command;

/// Each package (name and version) with its features, as `cargo tree` resolves them for `args`.
fn features(args: &[&str]) -> BTreeMap<String, String> {
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .arg("tree")
        .args(args)
        .args(["--locked", "--prefix", "none", "--format", "{p}|{f}"])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .expect("cargo runs");
    assert!(out.status.success(), "cargo tree {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim_end_matches(" (*)").split_once('|'))
        .map(|(p, f)| (p.trim().to_owned(), f.trim().to_owned()))
        .collect()
}

#[test]
fn command_1_after_the_test_build_reuses_every_dependency() {
    // The test command: the whole workspace, its tests and benches included (dev-dependencies).
    let workspace = features(&["--workspace", "--edges", "normal,build,dev"]);
    let cli = features(&["--package", "tweetlake-cli", "--edges", "normal,build"]);
    assert!(cli.len() > 100, "cargo tree listed the CLI's dependencies: {cli:?}");
    let differ: Vec<String> = cli
        .iter()
        .filter(|(p, f)| workspace.get(*p).is_some_and(|w| w != *f))
        .map(|(p, f)| format!("{p}: CLI alone [{f}], test build [{}]", workspace[p]))
        .collect();
    assert!(differ.is_empty(), "command 1 would compile these (and what depends on them) again:\n{}", differ.join("\n"));
}
