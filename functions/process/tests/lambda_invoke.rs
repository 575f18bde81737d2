//! The process function invoked the way users invoke it locally: `cargo lambda watch` serving the
//! Lambda runtime API, the real function binary attached to it, `cargo lambda invoke --data-file
//! events/…`, then the table read back independently. `--only-lambda-apis` lets the test run the binary
//! Cargo built for it instead of having cargo-lambda build the workspace a second time.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tweetlake_tests::*;

/// The name `cargo lambda watch --only-lambda-apis` serves a function attached from outside under.
const ATTACHED: &str = "_";

struct Watch(Vec<Child>);

impl Drop for Watch {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Waits until the emulator accepts connections: a function started earlier fails its first
/// runtime-API call and exits.
fn wait_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "cargo lambda watch did not listen on port {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn invoke(port: u16, event: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // An invoke waits for the function without limit; a dead function must fail the test instead.
        let out = Command::new("timeout")
            .args([
                "120",
                "cargo",
                "lambda",
                "invoke",
                ATTACHED,
                "--invoke-address",
                "127.0.0.1",
                "--invoke-port",
                &port.to_string(),
            ])
            .args(["--data-file", &repo_root().join("events").join(event).to_string_lossy(), "-o", "json"])
            .current_dir(repo_root())
            .output()
            .expect("cargo lambda is installed (infra/local/stack.sh install)");
        if out.status.success() {
            return serde_json::from_slice(&out.stdout)
                .unwrap_or_else(|e| panic!("invoke output {e}: {}", String::from_utf8_lossy(&out.stdout)));
        }
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        // The emulator needs a moment to listen and the function to register with it.
        assert!(Instant::now() < deadline && !err.contains("Tweetlake."), "invoke failed: {err}");
        std::thread::sleep(Duration::from_secs(2));
    }
}

fn echo_stderr(child: &mut Child, tag: &'static str) {
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("[{tag}] {line}");
        }
    });
}

#[test]
fn cargo_lambda_invoke_with_sample_events() {
    let t = s3_tables("lambda-invoke");
    let port = free_port();
    let mut watch = Command::new("cargo")
        .args(["lambda", "watch", "--only-lambda-apis", "-A", "127.0.0.1", "-P", &port.to_string()])
        .current_dir(repo_root())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cargo lambda is installed (infra/local/stack.sh install)");
    echo_stderr(&mut watch, "watch");
    wait_listening(port);
    let mut function = Command::new(env!("CARGO_BIN_EXE_tweetlake-process"))
        .env("AWS_LAMBDA_RUNTIME_API", format!("http://127.0.0.1:{port}/.rt"))
        .env("AWS_LAMBDA_FUNCTION_NAME", ATTACHED)
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
        .env("TWEETLAKE_TABLE_URI", &t.tweets)
        .env("TWEETLAKE_QUARANTINE_URI", &t.quarantine)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("function binary starts");
    echo_stderr(&mut function, "function");
    let _guard = Watch(vec![function, watch]);
    let first = invoke(port, "msk-batch.json");
    assert_eq!(first["records_in"], 27, "{first}");
    assert_eq!(first["rows_written"], 20);
    assert_eq!(first["quarantined"].as_object().unwrap().len(), 6);
    // The self-managed event carries the same offsets: Lambda redelivery in another shape.
    let second = invoke(port, "self-managed-batch.json");
    assert_eq!((second["redelivered_skipped"].as_u64(), second["rows_written"].as_u64()), (Some(27), Some(0)), "{second}");
    let poison = invoke(port, "poison-batch.json");
    assert_eq!(poison["rows_written"], 0);
    assert_eq!(poison["quarantined"].as_object().unwrap().len(), 3);

    let table = read_table(&t.tweets, &["tweetlake:tweets:0", "tweetlake:tweets:1"]);
    assert_eq!(table["rows"].as_array().unwrap().len(), 20);
    assert_eq!(table["txn"]["tweetlake:tweets:0"], 502);
    assert_eq!(table["txn"]["tweetlake:tweets:1"], 215);
    assert_eq!(read_table(&t.quarantine, &[])["rows"].as_array().unwrap().len(), 9);
}
