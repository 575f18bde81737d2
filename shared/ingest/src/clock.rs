//! Time as the ingest run sees it: the wall clock for deadlines and rate-limit resets, and sleeps
//! for back-off. Injectable, so tests drive reconnects and deadlines without real waiting.

use chrono::{DateTime, Utc};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A source of time and of waiting.
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
    /// Waits `d` (or pretends to).
    fn sleep(&self, d: Duration) -> futures::future::BoxFuture<'_, ()>;
}

/// The real clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
    fn sleep(&self, d: Duration) -> futures::future::BoxFuture<'_, ()> {
        Box::pin(tokio::time::sleep(d))
    }
}

/// A clock that only moves when slept on; records every sleep so a test can check the back-off.
#[derive(Clone, Debug)]
pub struct ManualClock {
    inner: Arc<Mutex<(DateTime<Utc>, Vec<Duration>)>>,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        Self { inner: Arc::new(Mutex::new((start, Vec::new()))) }
    }
    /// Every sleep so far, in order.
    pub fn sleeps(&self) -> Vec<Duration> {
        self.inner.lock().expect("clock lock").1.clone()
    }
    /// Moves the clock forward without recording a sleep (time spent working).
    pub fn advance(&self, d: Duration) {
        let mut g = self.inner.lock().expect("clock lock");
        g.0 += chrono::Duration::from_std(d).expect("duration in range");
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        self.inner.lock().expect("clock lock").0
    }
    fn sleep(&self, d: Duration) -> futures::future::BoxFuture<'_, ()> {
        let mut g = self.inner.lock().expect("clock lock");
        g.0 += chrono::Duration::from_std(d).expect("duration in range");
        g.1.push(d);
        Box::pin(std::future::ready(()))
    }
}

/// What went wrong with a stream connection, which decides how long to wait before the next one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// TCP/IP level: refused, reset, stalled, cut mid-message.
    Network,
    /// An HTTP error status other than 429.
    Http,
    /// HTTP 429: too many requests or connections.
    RateLimited,
}

/// X's documented reconnect back-off for the filtered stream: network errors back off linearly by
/// 250 ms up to 16 s; HTTP errors exponentially from 5 s up to 320 s; 429s exponentially from 1 min.
/// A connection that delivers data resets it.
#[derive(Clone, Debug, Default)]
pub struct Backoff {
    last: Option<(Failure, Duration)>,
}

/// Longest wait after repeated 429s; X names no cap, 16 minutes outlasts a 15-minute rate window.
const MAX_RATE_LIMIT_WAIT: Duration = Duration::from_secs(960);

impl Backoff {
    /// The wait before reconnecting after `failure`.
    pub fn next(&mut self, failure: Failure) -> Duration {
        let prev = match self.last {
            Some((f, d)) if f == failure => Some(d),
            _ => None,
        };
        let d = match (failure, prev) {
            (Failure::Network, None) => Duration::from_millis(250),
            (Failure::Network, Some(p)) => (p + Duration::from_millis(250)).min(Duration::from_secs(16)),
            (Failure::Http, None) => Duration::from_secs(5),
            (Failure::Http, Some(p)) => (p * 2).min(Duration::from_secs(320)),
            (Failure::RateLimited, None) => Duration::from_secs(60),
            (Failure::RateLimited, Some(p)) => (p * 2).min(MAX_RATE_LIMIT_WAIT),
        };
        self.last = Some((failure, d));
        d
    }

    /// A connection succeeded: the next failure starts from the bottom again.
    pub fn reset(&mut self) {
        self.last = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_x_documented_schedules() {
        let mut b = Backoff::default();
        let net: Vec<u64> = (0..66).map(|_| b.next(Failure::Network).as_millis() as u64).collect();
        assert_eq!(&net[..4], &[250, 500, 750, 1000]);
        assert_eq!(net[63], 16_000);
        assert_eq!(net[65], 16_000);
        let mut b = Backoff::default();
        let http: Vec<u64> = (0..8).map(|_| b.next(Failure::Http).as_secs()).collect();
        assert_eq!(http, [5, 10, 20, 40, 80, 160, 320, 320]);
        let mut b = Backoff::default();
        let rl: Vec<u64> = (0..3).map(|_| b.next(Failure::RateLimited).as_secs()).collect();
        assert_eq!(rl, [60, 120, 240]);
        // A different kind of failure starts its own schedule; a success resets.
        assert_eq!(b.next(Failure::Http).as_secs(), 5);
        b.reset();
        assert_eq!(b.next(Failure::RateLimited).as_secs(), 60);
    }
}
