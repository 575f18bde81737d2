//! Amazon MSK specifics: bootstrap brokers looked up from the cluster ARN, and the IAM access
//! control login token (SASL OAUTHBEARER carrying a SigV4-presigned `kafka-cluster:Connect` URL, as
//! AWS's `aws-msk-iam-sasl-signer` libraries build it).

use crate::error::Error;
use aws_credential_types::Credentials;
use base64::Engine;
use std::time::{Duration, SystemTime};

/// How the producer authenticates to the brokers (`TWEETLAKE_KAFKA_AUTH`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMode {
    /// No TLS, no SASL: the local broker.
    Plaintext,
    /// TLS (MSK port 9094).
    Tls,
    /// SASL/SCRAM-SHA-512 over TLS, credentials from a Secrets Manager secret (MSK port 9096).
    Scram,
    /// IAM access control: SASL OAUTHBEARER over TLS with a SigV4-signed token (MSK port 9098).
    Iam,
}

impl std::str::FromStr for AuthMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "plaintext" => Ok(Self::Plaintext),
            "tls" => Ok(Self::Tls),
            "scram" | "sasl_scram" => Ok(Self::Scram),
            "iam" | "sasl_iam" => Ok(Self::Iam),
            _ => Err("one of plaintext, tls, scram, iam".into()),
        }
    }
}

/// Looks up the cluster's bootstrap brokers for `mode` (`GetBootstrapBrokers`).
pub async fn bootstrap_brokers(client: &aws_sdk_kafka::Client, cluster_arn: &str, mode: AuthMode) -> Result<String, Error> {
    let out = client.get_bootstrap_brokers().cluster_arn(cluster_arn).send().await.map_err(|e| Error::Config {
        var: "TWEETLAKE_MSK_CLUSTER_ARN",
        message: format!("GetBootstrapBrokers failed: {}", aws_sdk_kafka::error::DisplayErrorContext(e)),
    })?;
    let brokers = match mode {
        AuthMode::Plaintext => out.bootstrap_broker_string(),
        AuthMode::Tls => out.bootstrap_broker_string_tls(),
        AuthMode::Scram => out.bootstrap_broker_string_sasl_scram(),
        AuthMode::Iam => out.bootstrap_broker_string_sasl_iam(),
    };
    brokers.filter(|b| !b.is_empty()).map(str::to_owned).ok_or_else(|| Error::Config {
        var: "TWEETLAKE_KAFKA_AUTH",
        message: format!(
            "cluster {cluster_arn} has no brokers for auth mode {mode:?}; enable it on the cluster or pick another mode"
        ),
    })
}

/// How long a token is valid, as AWS's signers set it.
const TOKEN_LIFETIME: Duration = Duration::from_secs(900);

/// Builds the MSK IAM login token: the presigned `https://kafka.<region>.amazonaws.com/?Action=
/// kafka-cluster%3AConnect…` URL, base64url-encoded without padding. Returns it with its expiry in
/// epoch milliseconds.
pub fn iam_token(credentials: &Credentials, region: &str, now: SystemTime) -> Result<(String, i64), Error> {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign};
    let fail = |e: &dyn std::fmt::Display| Error::Kafka(format!("signing the MSK IAM token: {e}"));
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(TOKEN_LIFETIME);
    let identity = credentials.clone().into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("kafka-cluster")
        .time(now)
        .settings(settings)
        .build()
        .map_err(|e| fail(&e))?
        .into();
    let url = format!("https://kafka.{region}.amazonaws.com/?Action=kafka-cluster%3AConnect");
    let request =
        SignableRequest::new("GET", url.as_str(), std::iter::empty(), SignableBody::Bytes(&[])).map_err(|e| fail(&e))?;
    let (instructions, _) = sign(request, &params).map_err(|e| fail(&e))?.into_parts();
    let mut signed = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in instructions.params() {
        signed.append_pair(k, v);
    }
    signed.append_pair("User-Agent", concat!("tweetlake/", env!("CARGO_PKG_VERSION")));
    let full = format!("{url}&{}", signed.finish());
    let expiry = now
        .checked_add(TOKEN_LIFETIME)
        .unwrap_or(now)
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    Ok((base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(full), expiry))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iam_token_is_a_presigned_connect_url() {
        let creds =
            Credentials::new("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", Some("session".into()), None, "test");
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_000_000);
        let (token, expiry) = iam_token(&creds, "eu-west-1", now).unwrap();
        assert_eq!(expiry, (1_764_000_000 + 900) * 1000);
        assert!(!token.contains('=') && !token.contains('+') && !token.contains('/'), "base64url without padding");
        let url = String::from_utf8(base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&token).unwrap()).unwrap();
        let parsed = url::Url::parse(&url).unwrap();
        assert_eq!(parsed.host_str(), Some("kafka.eu-west-1.amazonaws.com"));
        let q: std::collections::HashMap<_, _> = parsed.query_pairs().into_owned().collect();
        assert_eq!(q["Action"], "kafka-cluster:Connect");
        assert_eq!(q["X-Amz-Algorithm"], "AWS4-HMAC-SHA256");
        assert_eq!(q["X-Amz-Credential"], "AKIDEXAMPLE/20251124/eu-west-1/kafka-cluster/aws4_request");
        assert_eq!(q["X-Amz-Expires"], "900");
        assert_eq!(q["X-Amz-SignedHeaders"], "host");
        assert_eq!(q["X-Amz-Security-Token"], "session");
        assert_eq!(q["X-Amz-Signature"].len(), 64);
        // Same inputs, same token: the signature depends only on them.
        assert_eq!(iam_token(&creds, "eu-west-1", now).unwrap().0, token);
    }
}
