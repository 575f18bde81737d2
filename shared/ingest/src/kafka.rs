//! The Kafka side: the idempotent producer that puts envelopes on the topic (key = tweet id,
//! acks=all) and the topic tool (the seed's `kafka-topics.sh --create`).

use crate::error::Error;
use crate::msk::{AuthMode, iam_token};
use futures::StreamExt;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, OAuthToken};
use rdkafka::config::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use std::time::Duration;
use tweetlake_contract::envelope::{ENVELOPE_VERSION, TweetMessage};

pub use tweetlake_contract::envelope::headers;

/// Connection settings.
#[derive(Clone, Debug)]
pub struct KafkaSettings {
    /// Comma-separated `host:port` list.
    pub bootstrap: String,
    /// How to authenticate.
    pub auth: AuthMode,
    /// SCRAM user and password (auth mode `scram`).
    pub scram: Option<(String, String)>,
    /// AWS region for the IAM token (auth mode `iam`).
    pub region: Option<String>,
    /// PEM file of the CA that signed the brokers' certificates, for a self-managed cluster with a
    /// private CA; `None` trusts the system store (enough for MSK).
    pub ca_file: Option<std::path::PathBuf>,
    /// `compression.type`: none, gzip, lz4 or zstd.
    pub compression: String,
    /// How long a message may wait for its acknowledgement before the run fails.
    pub message_timeout: Duration,
}

/// The rdkafka client context: forwards librdkafka logs to `tracing` and signs MSK IAM tokens.
pub struct Context {
    iam: Option<(aws_credential_types::Credentials, String)>,
}

impl ClientContext for Context {
    // Only called by librdkafka when `sasl.mechanism=OAUTHBEARER`, i.e. auth mode `iam`.
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = true;

    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        use rdkafka::config::RDKafkaLogLevel as L;
        match level {
            L::Emerg | L::Alert | L::Critical | L::Error => tracing::error!(target: "librdkafka", fac, "{message}"),
            L::Warning => tracing::warn!(target: "librdkafka", fac, "{message}"),
            _ => tracing::debug!(target: "librdkafka", fac, "{message}"),
        }
    }

    fn generate_oauth_token(&self, _config: Option<&str>) -> Result<OAuthToken, Box<dyn std::error::Error>> {
        let (creds, region) = self.iam.as_ref().ok_or("OAUTHBEARER requested but auth mode is not iam")?;
        let (token, lifetime_ms) = iam_token(creds, region, std::time::SystemTime::now())?;
        Ok(OAuthToken { token, principal_name: String::new(), lifetime_ms })
    }
}

impl KafkaSettings {
    /// Plaintext, lz4, 30 s acknowledgement timeout: the local broker (topic tool, local run, tests).
    pub fn plaintext(bootstrap: &str) -> Self {
        Self {
            bootstrap: bootstrap.to_owned(),
            auth: AuthMode::Plaintext,
            scram: None,
            region: None,
            ca_file: None,
            compression: "lz4".into(),
            message_timeout: Duration::from_secs(30),
        }
    }

    /// The librdkafka connection settings (brokers, TLS, SASL) every client of this connection
    /// shares: the producer, the topic tool, and consumers that read the topic back.
    pub fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap).set("client.id", "tweetlake-ingest");
        match self.auth {
            AuthMode::Plaintext => {}
            AuthMode::Tls => {
                c.set("security.protocol", "ssl");
            }
            AuthMode::Scram => {
                let (user, pass) = self.scram.clone().unwrap_or_default();
                c.set("security.protocol", "sasl_ssl")
                    .set("sasl.mechanism", "SCRAM-SHA-512")
                    .set("sasl.username", user)
                    .set("sasl.password", pass);
            }
            AuthMode::Iam => {
                c.set("security.protocol", "sasl_ssl").set("sasl.mechanism", "OAUTHBEARER");
            }
        }
        if let Some(ca) = self.ca_file.as_ref().filter(|_| self.auth != AuthMode::Plaintext) {
            c.set("ssl.ca.location", ca.to_string_lossy());
        }
        c
    }

    async fn context(&self) -> Result<Context, Error> {
        if self.auth != AuthMode::Iam {
            return Ok(Context { iam: None });
        }
        use aws_credential_types::provider::ProvideCredentials;
        let conf = aws_config::load_from_env().await;
        let region = self
            .region
            .clone()
            .or_else(|| conf.region().map(|r| r.to_string()))
            .ok_or(Error::Config { var: "AWS_REGION", message: "needed to sign MSK IAM tokens".into() })?;
        let provider = conf
            .credentials_provider()
            .ok_or(Error::Config { var: "AWS_ACCESS_KEY_ID", message: "no AWS credentials for MSK IAM".into() })?;
        let creds =
            provider.provide_credentials().await.map_err(|e| Error::Kafka(format!("AWS credentials for MSK IAM: {e}")))?;
        Ok(Context { iam: Some((creds, region)) })
    }
}

/// Hands an MSK IAM token to a client that never polls its main queue (an admin client). librdkafka
/// asks for OAUTHBEARER tokens with an event that only `poll` serves, so such a client would wait for
/// one until its requests time out (the real broker's IAM listener showed it). The token lasts 15
/// minutes; an admin client's work takes seconds. Does nothing for the other auth modes.
fn set_iam_token(client: &rdkafka::client::Client<Context>) -> Result<(), Error> {
    if client.context().iam.is_none() {
        return Ok(());
    }
    let t = client.context().generate_oauth_token(None).map_err(|e| Error::Kafka(format!("MSK IAM token: {e}")))?;
    let (token, principal) = (std::ffi::CString::new(t.token), std::ffi::CString::new(t.principal_name));
    let (token, principal) = match (token, principal) {
        (Ok(t), Ok(p)) => (t, p),
        _ => return Err(Error::Kafka("MSK IAM token: contains a NUL byte".into())),
    };
    let mut err = [0 as std::ffi::c_char; 512];
    // SAFETY: the client pointer is live for the borrow; the strings and the error buffer outlive the
    // call, which copies them; no extensions are passed (null, 0).
    let code = unsafe {
        rdkafka::bindings::rd_kafka_oauthbearer_set_token(
            client.native_ptr(),
            token.as_ptr(),
            t.lifetime_ms,
            principal.as_ptr(),
            std::ptr::null_mut(),
            0,
            err.as_mut_ptr(),
            err.len(),
        )
    };
    if code != rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
        // SAFETY: librdkafka writes a NUL-terminated message into the buffer on failure.
        let msg = unsafe { std::ffi::CStr::from_ptr(err.as_ptr()) }.to_string_lossy().into_owned();
        return Err(Error::Kafka(format!("MSK IAM token refused by the client: {msg}")));
    }
    Ok(())
}

/// The producer: idempotent, acks=all, compressed.
pub struct KafkaProducer {
    producer: FutureProducer<Context>,
    topic: String,
    timeout: Duration,
}

/// What a produce call delivered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Delivered {
    /// Tweet messages acknowledged.
    pub messages: usize,
    /// Unreadable stream lines forwarded for quarantine.
    pub unreadable: usize,
}

/// In-flight sends; enough to keep librdkafka's batches full without holding every payload at once.
const IN_FLIGHT: usize = 4096;

impl KafkaProducer {
    /// Connects (lazily: librdkafka dials on first use) a producer for `topic`.
    pub async fn new(settings: &KafkaSettings, topic: &str) -> Result<Self, Error> {
        let producer: FutureProducer<Context> = settings
            .client_config()
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("compression.type", &settings.compression)
            .set("linger.ms", "5")
            .set("message.timeout.ms", settings.message_timeout.as_millis().to_string())
            .create_with_context(settings.context().await?)
            .map_err(|e| Error::Config {
                var: "TWEETLAKE_KAFKA_BOOTSTRAP",
                message: format!("cannot create the producer: {e}"),
            })?;
        Ok(Self { producer, topic: topic.to_owned(), timeout: settings.message_timeout })
    }

    /// Produces every message and waits until each is acknowledged by all in-sync replicas. Any
    /// failure fails the whole call: the caller must not move its watermark.
    pub async fn send_all(
        &self,
        messages: &[TweetMessage],
        unreadable: &[Vec<u8>],
        source: &str,
        run_id: &str,
    ) -> Result<Delivered, Error> {
        let version = ENVELOPE_VERSION.to_string();
        let base = OwnedHeaders::new()
            .insert(Header { key: headers::SOURCE, value: Some(source) })
            .insert(Header { key: headers::ENVELOPE_VERSION, value: Some(&version) })
            .insert(Header { key: headers::RUN_ID, value: Some(run_id) });
        // Built before sending, not lazily inside the stream: a stream mapping borrowed messages through
        // a closure makes the future not provably `Send` (rust-lang/rust#102211), and the local job
        // runs the ingest run on a task of its own.
        let mut records: Vec<(Option<String>, Vec<u8>, OwnedHeaders)> = messages
            .iter()
            .map(|m| {
                let tags: Vec<&str> = m.rules.iter().filter_map(|r| r.tag.as_deref()).collect();
                let h = base.clone().insert(Header { key: headers::RULES, value: Some(&tags.join(",")) });
                let payload = serde_json::to_vec(m).expect("envelope serializes");
                // Keyed by the post, not the version: every version of an edited post lands in the same
                // partition, where the process function's dedup window can tell they are one post.
                (Some(m.tweet.edit_root_id().to_owned()), payload, h)
            })
            .collect();
        // Unreadable lines go keyless: without a readable id there is no partition to keep them in.
        records.extend(unreadable.iter().map(|b| (None, b.clone(), base.clone())));
        let mut failures = Vec::new();
        let mut acked = 0usize;
        let mut results = futures::stream::iter(records)
            .map(|(key, payload, h)| async move {
                let mut rec: FutureRecord<'_, String, Vec<u8>> = FutureRecord::to(&self.topic).payload(&payload).headers(h);
                if let Some(k) = key.as_ref() {
                    rec = rec.key(k);
                }
                self.producer.send(rec, self.timeout).await.map_err(|(e, _)| e)
            })
            .buffer_unordered(IN_FLIGHT);
        while let Some(r) = results.next().await {
            match r {
                Ok(_) => acked += 1,
                Err(e) => failures.push(e),
            }
        }
        if let Some(first) = failures.first() {
            return Err(Error::Kafka(format!(
                "{} of {} messages not acknowledged, first: {first}",
                failures.len(),
                messages.len() + unreadable.len()
            )));
        }
        Ok(Delivered { messages: acked - unreadable.len(), unreadable: unreadable.len() })
    }
}

/// What `create_topic` found.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum TopicStatus {
    /// The topic was created.
    Created {
        /// Partitions.
        partitions: i32,
        /// Replication factor.
        replication_factor: i32,
    },
    /// The topic already existed; its current partition count.
    Exists {
        /// Partitions.
        partitions: usize,
    },
}

/// Creates `topic` through the Admin API, or reports that it exists.
pub async fn create_topic(
    settings: &KafkaSettings,
    topic: &str,
    partitions: i32,
    replication_factor: i32,
) -> Result<TopicStatus, Error> {
    let admin: AdminClient<Context> = settings.client_config().create_with_context(settings.context().await?).map_err(|e| {
        Error::Config { var: "TWEETLAKE_KAFKA_BOOTSTRAP", message: format!("cannot create the admin client: {e}") }
    })?;
    set_iam_token(admin.inner())?;
    let opts =
        AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))).request_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics([&NewTopic::new(topic, partitions, TopicReplication::Fixed(replication_factor))], &opts)
        .await
        .map_err(|e| Error::Kafka(format!("create topic {topic}: {e}")))?;
    match results.into_iter().next() {
        Some(Ok(_)) => Ok(TopicStatus::Created { partitions, replication_factor }),
        Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) => {
            let md = admin
                .inner()
                .fetch_metadata(Some(topic), Duration::from_secs(30))
                .map_err(|e| Error::Kafka(format!("describe topic {topic}: {e}")))?;
            let n = md.topics().iter().find(|t| t.name() == topic).map(|t| t.partitions().len()).unwrap_or(0);
            Ok(TopicStatus::Exists { partitions: n })
        }
        Some(Err((_, code))) => Err(Error::Kafka(format!("create topic {topic}: {code}"))),
        None => Err(Error::Kafka(format!("create topic {topic}: no result from the broker"))),
    }
}
