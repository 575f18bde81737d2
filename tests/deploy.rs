//! Each function as the deployment guide ships it: `cargo lambda build --release`, then `cargo lambda
//! deploy --dry` under the function name the template gives it. Checks that the template's build
//! metadata, function names and code locations agree with the packages, and that each package yields a
//! Linux executable that cargo-lambda packages for `provided.al2023`.
//!
//! To keep CI's cold run in budget, the three functions are built by one `cargo lambda build` (one
//! compilation of the dependency tree, with the features of all three unified; a deployment builds each
//! package on its own, so the process function's binary leaves out the maintenance function's DataFusion),
//! and the release profile comes from the environment: the test command (`tests/run.sh`) builds
//! unoptimised, without LTO; a deployment build keeps Cargo.toml's profile.

use serde_json::Value as Json;
use std::path::PathBuf;
use std::process::Command;
use tweetlake_tests::infra::{sub_text, template};
use tweetlake_tests::lambda::LocalLambda;
use tweetlake_tests::{local_tables, read_table, repo_root, target_dir};

/// Variables `cargo test` sets for this test process that a nested build must not inherit: some crates
/// read them at compile time, so inheriting them rebuilds those crates (and their dependents) for
/// nothing. Cargo's own settings (`CARGO_HOME`, `CARGO_TARGET_DIR`, `CARGO_PROFILE_*`, …) stay.
fn inherited_from_cargo_test(name: &str) -> bool {
    name.starts_with("CARGO_PKG_")
        || name.starts_with("CARGO_MANIFEST_")
        || name.starts_with("CARGO_CRATE_")
        || name.starts_with("CARGO_BIN_")
        || name.starts_with("RUSTUP_TOOLCHAIN")
        || ["CARGO_PRIMARY_PACKAGE", "CARGO_TARGET_TMPDIR", "RUST_RECURSION_COUNT", "OUT_DIR"].contains(&name)
}

fn cargo_lambda(args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new("cargo");
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(inherited_from_cargo_test) {
            cmd.env_remove(name);
        }
    }
    cmd.arg("lambda")
        .args(args)
        .current_dir(repo_root())
        .env("CARGO_TARGET_DIR", target_dir())
        .output()
        .expect("cargo lambda runs (infra/local/stack.sh installs it)")
}

/// `e_machine` of an ELF executable: 0x3E x86-64, 0xB7 aarch64.
/// The three functions' packages, in the template's order.
const PACKAGES: [&str; 3] = ["tweetlake-ingest-function", "tweetlake-process-function", "tweetlake-maintenance-function"];

/// Builds every function for Lambda once per test process; each test that needs a bootstrap waits here.
fn build_functions() {
    static BUILT: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let mut args = vec!["build", "--release", "--compiler", "cargo", "--quiet"];
        args.extend(PACKAGES.iter().flat_map(|p| ["-p", p]));
        let out = cargo_lambda(&args);
        out.status.success().then_some(()).ok_or_else(|| String::from_utf8_lossy(&out.stderr).into_owned())
    });
    if let Err(e) = built {
        panic!("cargo lambda build --release of the three functions: {e}");
    }
}

fn elf_machine(path: &std::path::Path) -> u16 {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&bytes[..4], b"\x7fELF", "{} is an ELF executable", path.display());
    u16::from_le_bytes([bytes[18], bytes[19]])
}

#[test]
fn each_function_builds_for_release_and_packages_for_deploy_under_its_stack_name() {
    let tpl = template();
    let prefix = tpl["Parameters"]["NamePrefix"]["Default"].as_str().expect("NamePrefix default").to_owned();
    build_functions();
    for (resource, package) in ["IngestFunction", "ProcessFunction", "MaintenanceFunction"].into_iter().zip(PACKAGES) {
        let r = &tpl["Resources"][resource];
        assert_eq!(r["Metadata"]["BuildMethod"].as_str(), Some("rust-cargolambda"), "{resource}");
        let binary = r["Metadata"]["BuildProperties"]["Binary"].as_str().expect("BuildProperties.Binary");
        let name = sub_text(&r["Properties"]["FunctionName"]).replace("${NamePrefix}", &prefix);
        assert_eq!(
            name, binary,
            "{resource}: the function is named after its binary, so `cargo lambda deploy {binary}` updates it"
        );
        // CodeUri (relative to infra/) is the package that defines the binary.
        let code_uri = r["Properties"]["CodeUri"].as_str().expect("CodeUri");
        let manifest = std::fs::read_to_string(repo_root().join("infra").join(code_uri).join("Cargo.toml"))
            .expect("CodeUri holds a Cargo.toml");
        assert!(manifest.contains(&format!("name = \"{package}\"")), "{resource}: CodeUri {code_uri} is package {package}");
        let defines_binary = manifest.contains(&format!("name = \"{binary}\"")) || package == binary;
        assert!(defines_binary, "{resource}: package {package} builds binary {binary}");

        let bootstrap = target_dir().join("lambda").join(binary).join("bootstrap");
        let machine = elf_machine(&bootstrap);
        assert!(machine == 0x3E || machine == 0xB7, "{binary}: a Linux x86-64 or aarch64 executable, e_machine {machine:#x}");

        let dry = cargo_lambda(&[
            "deploy",
            "--dry",
            "--lambda-dir",
            target_dir().join("lambda").to_str().unwrap(),
            "--binary-name",
            binary,
            "--output-format",
            "json",
            &name,
        ]);
        assert!(dry.status.success(), "cargo lambda deploy --dry {name}: {}", String::from_utf8_lossy(&dry.stderr));
        // The JSON follows a progress line.
        let out = String::from_utf8_lossy(&dry.stdout);
        let plan: Json =
            out.find('{').and_then(|i| serde_json::from_str(&out[i..]).ok()).unwrap_or_else(|| panic!("no JSON plan in: {out}"));
        assert_eq!(plan["kind"], "function", "{plan}");
        assert_eq!(plan["name"].as_str(), Some(binary), "{plan}");
        assert_eq!(plan["arch"].as_str(), Some(if machine == 0x3E { "x86_64" } else { "arm64" }), "{plan}");
        let zip = PathBuf::from(plan["path"].as_str().expect("the packaged archive's path"));
        let size = std::fs::metadata(&zip).unwrap_or_else(|e| panic!("{}: {e}", zip.display())).len();
        assert!(size > 1_000_000, "{}: the archive holds the binary ({size} bytes)", zip.display());
        assert_eq!(plan["files"], serde_json::json!(["bootstrap"]), "the archive holds the bootstrap executable: {plan}");
        assert_eq!(plan["config"]["runtime"].as_str(), Some("provided.al2023"), "{plan}");
    }
}

/// The process function as it deploys (the release profile's panic strategy) survives a storage
/// failure inside delta-rs's writer, where the storage client panics while cleaning up a failed upload:
/// the invocation fails as `Tweetlake.Retryable` and the same process then lands the batch once.
#[test]
fn the_release_build_reports_a_failed_write_as_retryable_and_lives_on() {
    build_functions();
    let bootstrap = target_dir().join("lambda/tweetlake-process-function/bootstrap");
    let t = local_tables();
    let f = LocalLambda::start(bootstrap.to_str().unwrap(), &t.env());
    // The function creates the tables at start; then the tweets table's partition folder is made a file.
    let log = std::path::Path::new(&t.tweets).join("_delta_log");
    let started = std::time::Instant::now();
    while !log.exists() {
        assert!(started.elapsed().as_secs() < 60, "the function did not create its tables");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let blocker = std::path::Path::new(&t.tweets).join("created_date=2021-09-22");
    std::fs::write(&blocker, b"not a folder").unwrap();
    let err = f.invoke_result("msk-batch.json").expect_err("the write cannot succeed");
    assert!(err.contains("Tweetlake.Retryable"), "{err}");
    std::fs::remove_file(&blocker).unwrap();
    let summary = f.invoke("msk-batch.json");
    assert_eq!(summary["rows_written"], 20, "{summary}");
    assert_eq!(read_table(&t.tweets, &[])["rows"].as_array().unwrap().len(), 20);
}
