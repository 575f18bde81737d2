//! A function binary attached to `cargo lambda watch --only-lambda-apis` (the local Lambda runtime
//! API emulator) and invoked with `cargo lambda invoke --data-file events/…`, the way users invoke
//! the functions locally. Attaching the binary Cargo built for the test avoids cargo-lambda building
//! the workspace a second time.

use crate::repo_root;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The name `cargo lambda watch --only-lambda-apis` serves a function attached from outside under.
const ATTACHED: &str = "_";

/// The emulator and the function process; both are killed on drop.
pub struct LocalLambda {
    port: u16,
    children: Vec<Child>,
}

impl Drop for LocalLambda {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("bound").port()
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

fn echo_stderr(child: &mut Child, tag: &'static str) {
    let stderr = child.stderr.take().expect("piped stderr");
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("[{tag}] {line}");
        }
    });
}

impl LocalLambda {
    /// Starts the emulator, then the function `binary` with `env` attached to it.
    pub fn start(binary: &str, env: &[(&str, &str)]) -> Self {
        let port = free_port();
        let mut watch = Command::new("cargo")
            .args(["lambda", "watch", "--only-lambda-apis", "-A", "127.0.0.1", "-P", &port.to_string()])
            .current_dir(repo_root())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cargo lambda is installed (infra/local/stack.sh install)");
        echo_stderr(&mut watch, "watch");
        let mut me = Self { port, children: vec![watch] };
        wait_listening(port);
        let mut function = Command::new(binary)
            .env("AWS_LAMBDA_RUNTIME_API", format!("http://127.0.0.1:{port}/.rt"))
            .env("AWS_LAMBDA_FUNCTION_NAME", ATTACHED)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("function binary starts");
        echo_stderr(&mut function, "function");
        me.children.insert(0, function);
        me
    }

    /// The emulator's Invoke API URL for the attached function (what `cargo lambda invoke` calls).
    pub fn invoke_url(&self) -> String {
        format!("http://127.0.0.1:{}/2015-03-31/functions/{ATTACHED}/invocations", self.port)
    }

    /// Invokes the function with `events/{event}` and returns its JSON response; panics with the
    /// function's error if it failed.
    pub fn invoke(&self, event: &str) -> serde_json::Value {
        self.invoke_result(event).unwrap_or_else(|err| panic!("invoke failed: {err}"))
    }

    /// Invokes the function with `events/{event}`: its JSON response, or what `cargo lambda invoke`
    /// said of its error (which names the error type, e.g. `Tweetlake.Retryable`).
    pub fn invoke_result(&self, event: &str) -> Result<serde_json::Value, String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            // An invoke waits for the function without limit; a dead function must fail the test instead.
            let out = Command::new("timeout")
                .args(["300", "cargo", "lambda", "invoke", ATTACHED, "--invoke-address", "127.0.0.1"])
                .args(["--invoke-port", &self.port.to_string()])
                .args(["--data-file", &repo_root().join("events").join(event).to_string_lossy(), "-o", "json"])
                .current_dir(repo_root())
                .output()
                .expect("cargo lambda is installed (infra/local/stack.sh install)");
            if out.status.success() {
                return Ok(serde_json::from_slice(&out.stdout)
                    .unwrap_or_else(|e| panic!("invoke output {e}: {}", String::from_utf8_lossy(&out.stdout))));
            }
            let err = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            // The emulator needs a moment to register the function.
            if Instant::now() >= deadline || err.contains("Tweetlake.") {
                return Err(err);
            }
            std::thread::sleep(Duration::from_secs(2));
        }
    }
}
