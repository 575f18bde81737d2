//! Benchmark: cold start of the process function, from `exec` of its binary to its first committed
//! batch — runtime set-up, settings, model load, table load, then one batch decoded, scored and
//! committed to Delta on the local S3 endpoint, and the response posted. The binary talks to a minimal
//! Lambda Runtime API served here (the two calls Lambda's runtime interface makes), so nothing but the
//! function is timed. Two cases: tables that do not exist yet, and tables with 50 earlier commits.
//! Median of 5 starts each.
//!
//! `cargo build --release -p tweetlake-process-function` (as deployed), then, with the stack up,
//! `cargo bench -p tweetlake-process-function --bench cold_start`; TWEETLAKE_BENCH_PROCESS_BIN names another binary.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tweetlake_tests::{Tables, event, good_recs, processor, s3_tables};

/// What the function did, with when.
#[derive(Default)]
struct Seen {
    /// The first `next` call: the function's initialisation is over.
    ready: Option<Instant>,
    /// The response (or error) of the invocation, and its body.
    done: Option<(Instant, String)>,
    served: bool,
}

#[derive(Clone)]
struct Api {
    event: Arc<Vec<u8>>,
    seen: Arc<Mutex<Seen>>,
}

async fn next(State(api): State<Api>) -> (HeaderMap, Vec<u8>) {
    let first = {
        let mut s = api.seen.lock().unwrap();
        s.ready.get_or_insert_with(Instant::now);
        !std::mem::replace(&mut s.served, true)
    };
    if !first {
        // One invocation per start: later polls wait until the process is killed.
        std::future::pending::<()>().await;
    }
    let mut h = HeaderMap::new();
    let deadline = chrono::Utc::now().timestamp_millis() + 300_000;
    h.insert("lambda-runtime-aws-request-id", "cold-start-1".parse().unwrap());
    h.insert("lambda-runtime-deadline-ms", deadline.to_string().parse().unwrap());
    h.insert(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:us-east-1:000000000000:function:tweetlake-process-function".parse().unwrap(),
    );
    (h, api.event.to_vec())
}

async fn finished(State(api): State<Api>, Path((_id, kind)): Path<(String, String)>, body: String) -> &'static str {
    api.seen.lock().unwrap().done.get_or_insert_with(|| (Instant::now(), format!("{kind}: {body}")));
    "{}"
}

fn binary() -> PathBuf {
    tweetlake_tests::optimised_binary("TWEETLAKE_BENCH_PROCESS_BIN", "tweetlake-process-function")
}

/// One cold start on `tables`: (seconds to ready, seconds to the committed first batch).
async fn start_once(tables: &Tables, ev: Arc<Vec<u8>>) -> (f64, f64) {
    let api = Api { event: ev, seen: Arc::default() };
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route("/2018-06-01/runtime/invocation/{id}/{kind}", post(finished))
        .with_state(api.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let started = Instant::now();
    let mut child = std::process::Command::new(binary())
        .env("AWS_LAMBDA_RUNTIME_API", format!("127.0.0.1:{port}"))
        .env("AWS_LAMBDA_FUNCTION_NAME", "tweetlake-process-function")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")
        .envs(tables.env())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("{}: {e} (build it: cargo build --release -p tweetlake-process-function)", binary().display())
        });
    let (ready, done) = loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the function exited ({status}) before answering");
        }
        let answered = {
            let s = api.seen.lock().unwrap();
            s.ready.zip(s.done.clone())
        };
        if let Some((r, (d, body))) = answered {
            assert!(body.starts_with("response:") && body.contains("\"rows_written\":500"), "{body}");
            break (r, d);
        }
        assert!(started.elapsed() < Duration::from_secs(120), "no answer within two minutes");
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    child.kill().unwrap();
    child.wait().unwrap();
    server.abort();
    ((ready - started).as_secs_f64(), (done - started).as_secs_f64())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    // One batch of 500 tweets on partition 0, after whatever the table already holds.
    let batch = |first: i64, base: u64| Arc::new(event(&good_recs(0, first, 500, base)));
    for history in [0usize, 50] {
        let (mut ready, mut done) = (Vec::new(), Vec::new());
        for run in 0..5 {
            let tables = s3_tables("cold-start");
            if history > 0 {
                rt.block_on(async {
                    let p = processor(&tables, &[]).await;
                    for c in 0..history {
                        p.process_event(event(&good_recs(0, c as i64 * 10, 10, 9_000_000 + c as u64 * 10))).await.unwrap();
                    }
                });
            }
            let (r, d) = rt.block_on(start_once(&tables, batch(history as i64 * 10, 1_000_000 * (run + 1))));
            eprintln!("tables with {history} commits, start {run}: ready after {r:.3} s, first batch committed after {d:.3} s");
            ready.push(r);
            done.push(d);
        }
        println!(
            "cold start, tables with {history} earlier commits: ready {:.3} s, first 500-tweet batch committed {:.3} s (medians of 5)",
            median(ready),
            median(done)
        );
    }
}
