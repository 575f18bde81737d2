//! An emulator of Lambda's Kafka event source mapping: polls the topic's partitions, cuts batches by
//! size, batching window and the 6 MB invocation payload cap, delivers them as MSK-shaped events to
//! the process function (in-process or over HTTP through `cargo lambda watch`), and moves on only
//! after the function succeeded — a failed batch is retried. Where it starts reading comes from the
//! offsets the process function recorded in the Delta table, so a restart neither loses nor repeats.
//! Like Lambda's MSK mapping it commits its consumer group's offsets after each successful invocation,
//! so Kafka's own tools show the lag; the group's offsets are only a view, the table stays the truth.

use futures::future::BoxFuture;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Headers;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tweetlake_pipeline::decode::{Origin, RawRecord, encode_event, encoded_size};

/// Lambda's limit on an invocation payload.
pub const MAX_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;

/// How batches are cut and retried.
#[derive(Clone, Debug)]
pub struct EsmSettings {
    /// Brokers.
    pub bootstrap: String,
    /// Topic.
    pub topic: String,
    /// Most records per batch (Lambda's `BatchSize`, default 100).
    pub batch_size: usize,
    /// Longest wait to fill a batch (`MaximumBatchingWindowInSeconds`).
    pub window: Duration,
    /// Invocation payload cap.
    pub max_payload: usize,
    /// Attempts of one batch before the emulator gives up (Lambda would stop the mapping's progress).
    pub attempts: u32,
    /// Consumer group whose offsets are committed after each successful invocation (Lambda's
    /// `ConsumerGroupId`; it defaults to the mapping's UUID there).
    pub group: String,
}

impl EsmSettings {
    /// A run's choices, with the rest as the local runs use them: Lambda's payload cap, five
    /// attempts per batch.
    pub fn new(bootstrap: &str, topic: &str, batch_size: usize, window: Duration, group: &str) -> Self {
        Self {
            bootstrap: bootstrap.to_owned(),
            topic: topic.to_owned(),
            batch_size,
            window,
            max_payload: MAX_PAYLOAD_BYTES,
            attempts: 5,
            group: group.to_owned(),
        }
    }
}

/// Most pollers `deliver` runs at once, each with a processor (table handles and batches in flight) of
/// its own: a topic of more partitions shares them out, so memory stays bounded.
pub const MAX_POLLERS: usize = 8;

/// The consumer group of the local run's emulator.
pub const DEFAULT_GROUP: &str = "tweetlake-esm";

/// Something that runs the process function on one event.
pub trait Invoker: Send + Sync {
    /// Invokes with the event's JSON bytes; returns the function's response.
    fn invoke(&self, event: Vec<u8>) -> BoxFuture<'_, Result<Value, String>>;
}

/// The process function's library in this process.
pub struct InProcess(pub Arc<tweetlake_pipeline::Processor>);

impl Invoker for InProcess {
    fn invoke(&self, event: Vec<u8>) -> BoxFuture<'_, Result<Value, String>> {
        Box::pin(async move {
            let s = self.0.process_event(event).await.map_err(|e| e.to_string())?;
            serde_json::to_value(s).map_err(|e| e.to_string())
        })
    }
}

/// The process function behind a Lambda invoke endpoint (`cargo lambda watch`, or any Invoke API).
pub struct Http {
    /// e.g. `http://127.0.0.1:9000/2015-03-31/functions/tweetlake-process-function/invocations`.
    pub url: String,
    /// Client.
    pub client: reqwest::Client,
}

impl Invoker for Http {
    fn invoke(&self, event: Vec<u8>) -> BoxFuture<'_, Result<Value, String>> {
        Box::pin(async move {
            let resp = self.client.post(&self.url).body(event).send().await.map_err(|e| e.to_string())?;
            let failed = resp.headers().contains_key("x-amz-function-error") || !resp.status().is_success();
            let body: Value = resp.json().await.map_err(|e| e.to_string())?;
            if failed { Err(body.to_string()) } else { Ok(body) }
        })
    }
}

/// A consumed message as the event source mapping hands it over: topic, position, create time, key,
/// value and headers (a header without a value as empty bytes).
pub fn consumed(m: &impl Message) -> RawRecord {
    RawRecord {
        topic: m.topic().to_owned(),
        partition: m.partition(),
        offset: m.offset(),
        timestamp_ms: m.timestamp().to_millis().unwrap_or(0),
        key: m.key().map(<[u8]>::to_vec),
        value: m.payload().map(<[u8]>::to_vec),
        headers: m
            .headers()
            .map(|h| h.iter().map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec())).collect())
            .unwrap_or_default(),
        decode_error: None,
    }
}

/// The MSK event for `records` of the emulated cluster behind `bootstrap`, as Lambda sends it.
pub fn msk_event(bootstrap: &str, records: &[RawRecord]) -> Vec<u8> {
    let origin = Origin {
        event_source_arn: Some("arn:aws:kafka:local:000000000000:cluster/tweetlake-local/emulated"),
        bootstrap_servers: Some(bootstrap),
    };
    encode_event(records, origin)
}

/// Progress after each delivered batch.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct EsmProgress {
    /// Batches delivered successfully.
    pub batches: usize,
    /// Records delivered.
    pub records: usize,
    /// Failed invocations that were retried.
    pub retries: usize,
    /// Sum of the function's `rows_written`.
    pub rows_written: usize,
    /// Sum of `duplicates_in_batch` + `duplicates_in_window` + `redelivered_skipped`.
    pub duplicates_skipped: usize,
    /// Sum of `quarantined` per rule.
    pub quarantined: BTreeMap<String, usize>,
    /// Next offset to read per partition.
    pub positions: BTreeMap<i32, i64>,
}

impl EsmProgress {
    fn add(&mut self, summary: &Value) {
        let n = |k: &str| summary[k].as_u64().unwrap_or(0) as usize;
        self.rows_written += n("rows_written");
        self.duplicates_skipped += n("duplicates_in_batch") + n("duplicates_in_window") + n("redelivered_skipped");
        if let Some(q) = summary["quarantined"].as_object() {
            for (rule, c) in q {
                *self.quarantined.entry(rule.clone()).or_default() += c.as_u64().unwrap_or(0) as usize;
            }
        }
    }
}

/// The emulator for one topic.
pub struct Esm {
    settings: EsmSettings,
    consumer: BaseConsumer,
    partitions: Vec<i32>,
    start: BTreeMap<i32, i64>,
    /// A record polled that did not fit the last batch's payload: the first of the next.
    held: std::sync::Mutex<Option<RawRecord>>,
}

fn consumer(bootstrap: &str, group: &str) -> anyhow::Result<BaseConsumer> {
    // Partitions are assigned, not subscribed: the group never rebalances, it only holds committed
    // offsets, and only after the function succeeded (never automatically).
    Ok(ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .create()?)
}

/// The topic's partitions and the end offset of each now (what "caught up" means), read with a
/// consumer of its own: nothing assigned, so the broker answers the offset requests at once.
pub fn end_offsets(bootstrap: &str, topic: &str) -> anyhow::Result<BTreeMap<i32, i64>> {
    let c = consumer(bootstrap, DEFAULT_GROUP)?;
    let md = c.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let partitions: Vec<i32> = md
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .map(|t| t.partitions().iter().map(|p| p.id()).collect())
        .unwrap_or_default();
    anyhow::ensure!(!partitions.is_empty(), "topic {topic} has no partitions (create it first: tweetlake topic create)");
    let mut out = BTreeMap::new();
    for p in partitions {
        out.insert(p, c.fetch_watermarks(topic, p, Duration::from_secs(10))?.1);
    }
    Ok(out)
}

impl Esm {
    /// Connects and positions every partition of `partitions` at `start` (partition → next offset;
    /// absent = the beginning, Lambda's `TRIM_HORIZON`).
    pub fn new(settings: EsmSettings, partitions: &[i32], start: &BTreeMap<i32, i64>) -> anyhow::Result<Self> {
        let consumer = consumer(&settings.bootstrap, &settings.group)?;
        let mut tpl = TopicPartitionList::new();
        for p in partitions {
            let at = start.get(p).map(|o| Offset::Offset(*o)).unwrap_or(Offset::Beginning);
            tpl.add_partition_offset(&settings.topic, *p, at)?;
        }
        consumer.assign(&tpl)?;
        Ok(Self { settings, consumer, partitions: partitions.to_vec(), start: start.clone(), held: Default::default() })
    }

    /// Polls one batch: up to `batch_size` records (or `most`, when fewer are known to be left) or
    /// `max_payload` bytes, waiting at most `window`.
    fn poll_batch(&self, most: usize) -> anyhow::Result<Vec<RawRecord>> {
        let started = Instant::now();
        let mut batch = Vec::new();
        let mut bytes = 1024;
        let mut held = self.held.lock().expect("not poisoned");
        while batch.len() < self.settings.batch_size.min(most) {
            let rec = match held.take() {
                Some(rec) => rec,
                None => {
                    let left = self.settings.window.saturating_sub(started.elapsed());
                    if left.is_zero() {
                        break;
                    }
                    let Some(m) = self.consumer.poll(left.min(Duration::from_millis(100))) else { continue };
                    consumed(&m?)
                }
            };
            let size = encoded_size(&rec);
            if !batch.is_empty() && bytes + size > self.settings.max_payload {
                // Too big for this invocation: it opens the next one (kept, not fetched again: a seek
                // would drop what the consumer has already fetched of the partition).
                *held = Some(rec);
                break;
            }
            bytes += size;
            batch.push(rec);
        }
        Ok(batch)
    }

    /// Commits the group's offsets of the batch's partitions. A failed commit only delays the lag the
    /// broker shows (the next batch commits again), so it is logged, not fatal.
    fn commit_group(&self, batch: &[RawRecord], positions: &BTreeMap<i32, i64>) {
        let commit = || {
            let mut tpl = TopicPartitionList::new();
            let parts: std::collections::BTreeSet<i32> = batch.iter().map(|r| r.partition).collect();
            for p in parts {
                tpl.add_partition_offset(&self.settings.topic, p, Offset::Offset(positions[&p]))?;
            }
            self.consumer.commit(&tpl, CommitMode::Sync)
        };
        if let Err(e) = commit() {
            tracing::warn!(group = %self.settings.group, "committing the consumer group's offsets failed: {e}");
        }
    }

    /// Delivers batches until every partition reaches `until` (or `stop` says so); calls `on_batch`
    /// after each successful invocation.
    pub async fn run_until(
        &self,
        invoker: &dyn Invoker,
        until: &BTreeMap<i32, i64>,
        progress: &mut EsmProgress,
        stop: &(dyn Fn() -> bool + Sync),
        on_batch: &mut (dyn FnMut(&EsmProgress) + Send),
    ) -> anyhow::Result<()> {
        // Records left before the end (none: done). The last batch is cut when they have arrived,
        // without waiting out the batching window (offsets that hold no record, such as transaction
        // markers, make this an overestimate; then the window ends the batch).
        let left = |p: &EsmProgress| -> usize {
            until.iter().map(|(part, end)| (end - p.positions.get(part).copied().unwrap_or(0)).max(0) as usize).sum()
        };
        self.begin(progress);
        while left(progress) > 0 && !stop() {
            self.deliver_one(invoker, left(progress), progress, on_batch).await?;
        }
        Ok(())
    }

    /// Delivers batches while `producing` is set (the event source mapping polls while the ingest
    /// function is still writing), then up to the topic's end as it stands once production finished.
    pub async fn run_while_producing(
        &self,
        invoker: &dyn Invoker,
        producing: &AtomicBool,
        progress: &mut EsmProgress,
        stop: &(dyn Fn() -> bool + Sync),
        on_batch: &mut (dyn FnMut(&EsmProgress) + Send),
    ) -> anyhow::Result<()> {
        self.begin(progress);
        while producing.load(Ordering::SeqCst) && !stop() {
            self.deliver_one(invoker, usize::MAX, progress, on_batch).await?;
        }
        let mut end = end_offsets(&self.settings.bootstrap, &self.settings.topic)?;
        end.retain(|p, _| self.partitions.contains(p));
        self.run_until(invoker, &end, progress, stop, on_batch).await
    }

    /// Partitions not read yet stand where the emulator started them.
    fn begin(&self, progress: &mut EsmProgress) {
        for (p, o) in &self.start {
            progress.positions.entry(*p).or_insert(*o);
        }
    }

    /// Polls one batch of at most `most` records and, if it holds any, invokes the function with it
    /// until it succeeds (or gives up after `attempts`), then records the progress and commits the
    /// group's offsets.
    async fn deliver_one(
        &self,
        invoker: &dyn Invoker,
        most: usize,
        progress: &mut EsmProgress,
        on_batch: &mut (dyn FnMut(&EsmProgress) + Send),
    ) -> anyhow::Result<()> {
        let batch = self.poll_batch(most)?;
        if batch.is_empty() {
            return Ok(());
        }
        let event = msk_event(&self.settings.bootstrap, &batch);
        let mut attempt = 0;
        let summary = loop {
            attempt += 1;
            match invoker.invoke(event.clone()).await {
                Ok(s) => break s,
                Err(e) if attempt < self.settings.attempts => {
                    tracing::warn!(attempt, "process function failed, retrying the batch: {e}");
                    progress.retries += 1;
                    tokio::time::sleep(Duration::from_millis(200 * attempt as u64)).await;
                }
                Err(e) => {
                    anyhow::bail!("process function failed {attempt} times on a batch; stopping without moving past it: {e}")
                }
            }
        };
        progress.batches += 1;
        progress.records += batch.len();
        progress.add(&summary);
        for r in &batch {
            let pos = progress.positions.entry(r.partition).or_insert(0);
            *pos = (*pos).max(r.offset + 1);
        }
        self.commit_group(&batch, &progress.positions);
        on_batch(progress);
        Ok(())
    }
}

impl EsmProgress {
    /// Adds another emulator's totals (of other partitions) to these.
    fn absorb(&mut self, other: &EsmProgress) {
        self.batches += other.batches;
        self.records += other.records;
        self.retries += other.retries;
        self.rows_written += other.rows_written;
        self.duplicates_skipped += other.duplicates_skipped;
        for (rule, n) in &other.quarantined {
            *self.quarantined.entry(rule.clone()).or_default() += n;
        }
        self.positions.extend(other.positions.iter().map(|(p, o)| (*p, *o)));
    }

    /// The totals of several emulators.
    fn sum<'a>(all: impl IntoIterator<Item = &'a EsmProgress>) -> EsmProgress {
        let mut total = EsmProgress::default();
        all.into_iter().for_each(|p| total.absorb(p));
        total
    }
}

/// Delivers the topic's partitions (`only`, or every one) from the offsets the tweets table records
/// up to the topic's end as it stands now — or, while `producing` is set, as it stands once it is
/// cleared — with a progress bar (`bars`) or a line per batch on stderr, until done or `stop` is set.
/// Both `tweetlake local` (while its ingest run produces) and `tweetlake deliver` run this.
///
/// Like Lambda's Kafka event source mapping, which invokes the function concurrently for different
/// partitions and in order, one batch at a time, within each, every partition (up to [`MAX_POLLERS`];
/// beyond, the partitions are shared out among them) gets a poller and a processor of its own (as a
/// separate function instance would have), running at the same time: they commit to the same tables,
/// as concurrent Lambda instances do. A failed poller stops the others after their current batch.
pub async fn deliver(
    settings: EsmSettings,
    only: Option<&[i32]>,
    processor: Arc<tweetlake_pipeline::Processor>,
    bars: bool,
    stop: Arc<AtomicBool>,
    producing: Option<Arc<AtomicBool>>,
) -> anyhow::Result<EsmProgress> {
    let mut end = end_offsets(&settings.bootstrap, &settings.topic)?;
    if let Some(only) = only {
        let unknown: Vec<&i32> = only.iter().filter(|p| !end.contains_key(p)).collect();
        anyhow::ensure!(unknown.is_empty(), "topic {} has no partitions {unknown:?} (it has {})", settings.topic, end.len());
        end.retain(|p, _| only.contains(p));
    }
    let partitions: Vec<i32> = end.keys().copied().collect();
    let start = processor.next_offsets(&settings.topic, &partitions).await?;
    let total: i64 = end.iter().map(|(p, e)| (e - start.get(p).copied().unwrap_or(0)).max(0)).sum();
    match producing {
        None => eprintln!("process: {total} records to deliver (resuming from the offsets recorded in the table: {start:?})"),
        Some(_) => {
            eprintln!("process: delivering while ingest produces (resuming from the offsets recorded in the table: {start:?})")
        }
    }
    let ahead: Vec<i32> = end.iter().filter(|(p, e)| start.get(p).is_some_and(|s| s > *e)).map(|(p, _)| *p).collect();
    if !ahead.is_empty() {
        // A broker started on empty storage under an existing table: those offsets were already written.
        eprintln!(
            "process: the table has recorded offsets past the topic's end on partitions {ahead:?} (was the broker reset?); nothing new there"
        );
    }
    let bar = match (bars, &producing) {
        (false, _) => indicatif::ProgressBar::hidden(),
        (true, None) => indicatif::ProgressBar::new(total as u64)
            .with_style(indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} records  {msg}").expect("template")),
        // The total is known only once production ends.
        (true, Some(_)) => indicatif::ProgressBar::no_length()
            .with_style(indicatif::ProgressStyle::with_template("{spinner} {pos} records  {msg}").expect("template")),
    };
    // Up to MAX_POLLERS pollers, the partitions dealt out among them in turn.
    let pollers = partitions.len().min(MAX_POLLERS);
    // Each poller's totals, summed for the bar (or a line on stderr) after any of them delivers.
    let each = Arc::new(std::sync::Mutex::new(vec![EsmProgress::default(); pollers]));
    let failed = Arc::new(AtomicBool::new(false));
    let mut workers = tokio::task::JoinSet::new();
    for i in 0..pollers {
        let mine: Vec<i32> = partitions.iter().skip(i).step_by(pollers).copied().collect();
        let processor = match i {
            0 => Arc::clone(&processor),
            _ => Arc::new(processor.sibling().await?),
        };
        let esm = Esm::new(settings.clone(), &mine, &start)?;
        let until: BTreeMap<i32, i64> = end.iter().filter(|(q, _)| mine.contains(q)).map(|(q, e)| (*q, *e)).collect();
        let (each, bar, stop, failed, producing) =
            (Arc::clone(&each), bar.clone(), Arc::clone(&stop), Arc::clone(&failed), producing.clone());
        workers.spawn(async move {
            let stopped = || stop.load(Ordering::SeqCst) || failed.load(Ordering::SeqCst);
            let mut on_batch = |mine: &EsmProgress| {
                let all = {
                    let mut each = each.lock().expect("not poisoned");
                    each[i] = mine.clone();
                    EsmProgress::sum(each.iter())
                };
                bar.set_position(all.records as u64);
                bar.set_message(format!(
                    "{} rows, {} duplicates skipped, {} quarantined",
                    all.rows_written,
                    all.duplicates_skipped,
                    all.quarantined.values().sum::<usize>()
                ));
                if !bars {
                    eprintln!("batch {}: {} records delivered, {} rows written", all.batches, all.records, all.rows_written);
                }
            };
            let mut progress = EsmProgress::default();
            let invoker = InProcess(processor);
            let done = match &producing {
                None => esm.run_until(&invoker, &until, &mut progress, &stopped, &mut on_batch).await,
                Some(p) => esm.run_while_producing(&invoker, p, &mut progress, &stopped, &mut on_batch).await,
            };
            if done.is_err() {
                failed.store(true, Ordering::SeqCst);
            }
            done.map(|()| progress)
        });
    }
    let (mut progress, mut first_error) = (EsmProgress::default(), None);
    while let Some(joined) = workers.join_next().await {
        match joined? {
            Ok(p) => progress.absorb(&p),
            Err(e) => first_error = first_error.or(Some(e)),
        }
    }
    bar.finish();
    match first_error {
        Some(e) => Err(e),
        None => Ok(progress),
    }
}
