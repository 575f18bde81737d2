//! X's batch compliance jobs (`/2/compliance/jobs`): create a job, upload the post ids to check, poll
//! its status, and download what X reports: the posts that were deleted, or whose authors protected,
//! suspended or deactivated their accounts, and so must leave every copy of the data.
//!
//! The upload and download URLs are pre-signed storage URLs: they get no bearer token, so the token is
//! never sent anywhere but the API.

use crate::config::TokenSource;
use crate::error::Error;
use crate::xapi::{Answer, XClient, transport};
use serde::{Deserialize, Serialize};

const JOBS: &str = "/2/compliance/jobs";

/// A compliance job's status, as X reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Created, waiting for its upload.
    Created,
    /// Ids uploaded, being checked.
    InProgress,
    /// Results ready at the download URL.
    Complete,
    /// X could not check the ids.
    Failed,
    /// The upload or the results expired before they were used.
    Expired,
}

impl JobStatus {
    /// Whether the job will not change any more.
    pub fn is_final(self) -> bool {
        matches!(self, JobStatus::Complete | JobStatus::Failed | JobStatus::Expired)
    }
}

/// A compliance job (the spec's `ComplianceJob`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// The job's id.
    pub id: String,
    /// Where it is in its lifecycle.
    pub status: JobStatus,
    /// Where the ids go (pre-signed; valid 15 minutes from creation).
    pub upload_url: String,
    /// Where the results come from once complete (pre-signed; valid a week).
    pub download_url: String,
    /// When the upload URL expires.
    #[serde(default)]
    pub upload_expires_at: Option<String>,
    /// When the job was created.
    #[serde(default)]
    pub created_at: Option<String>,
}

/// One line of a job's results: a post that must leave the data, and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// The post's id, as uploaded.
    pub id: String,
    /// `delete` (remove the post) or `scrub_geo` (remove its location).
    pub action: String,
    /// `deleted`, `protected`, `suspended`, `deactivated` or `scrub_geo`.
    pub reason: String,
    /// When X redacted it.
    #[serde(default)]
    pub redacted_at: Option<String>,
}

impl Finding {
    /// Whether the post itself must go (every action but a location scrub; Tweetlake keeps no location).
    pub fn removes_post(&self) -> bool {
        self.action != "scrub_geo"
    }
}

#[derive(Deserialize)]
struct JobResponse {
    data: Option<Job>,
    #[serde(default)]
    errors: Vec<crate::xapi::Problem>,
}

impl JobResponse {
    fn job(self, endpoint: &'static str) -> Result<Job, Error> {
        self.data.ok_or_else(|| Error::Api {
            endpoint,
            status: 200,
            detail: self.errors.iter().map(crate::xapi::Problem::text).collect::<Vec<_>>().join("; "),
        })
    }
}

impl XClient {
    /// A client for the API at `base_url`, reading the token from Secrets Manager if it lives there.
    pub async fn connect(base_url: &str, token: &TokenSource, timeout: std::time::Duration) -> Result<Self, Error> {
        let token = match token {
            TokenSource::Value(t) => t.clone(),
            secret => secret.resolve(&aws_sdk_secretsmanager::Client::new(&aws_config::load_from_env().await)).await?,
        };
        XClient::new(base_url, token, timeout)
    }

    /// Creates a job for post ids, named `name` (at most 64 characters).
    pub async fn create_compliance_job(&self, name: &str) -> Result<Job, Error> {
        let body = serde_json::json!({"type": "tweets", "name": name.chars().take(64).collect::<String>()});
        let resp = self.rest(self.post(JOBS)).json(&body).send().await.map_err(|e| transport("compliance jobs", e))?;
        Self::answer::<JobResponse>("compliance jobs", resp).await?.ok_or_api("compliance jobs")?.job("compliance jobs")
    }

    /// The job's current state; a 429 or 5xx is an answer to poll again after, not an error.
    pub async fn compliance_job(&self, id: &str) -> Result<Answer<Job>, Error> {
        let resp = self.rest(self.get(&format!("{JOBS}/{id}"))).send().await.map_err(|e| transport("compliance job", e))?;
        Ok(match Self::answer::<JobResponse>("compliance job", resp).await? {
            Answer::Ok(r, rate) => Answer::Ok(r.job("compliance job")?, rate),
            Answer::RateLimited(r) => Answer::RateLimited(r),
            Answer::Unavailable { status, detail } => Answer::Unavailable { status, detail },
        })
    }

    /// Uploads `ids` (one per line) to the job's pre-signed upload URL.
    pub async fn upload_compliance_ids(&self, job: &Job, ids: &[String]) -> Result<(), Error> {
        let mut body = ids.join("\n");
        body.push('\n');
        let resp = self
            .rest(self.http.put(&job.upload_url))
            .header(reqwest::header::CONTENT_TYPE, "text/plain")
            .body(body)
            .send()
            .await
            .map_err(|e| transport("compliance upload", e))?;
        match resp.status() {
            s if s.is_success() => Ok(()),
            s => Err(Error::Api {
                endpoint: "compliance upload",
                status: s.as_u16(),
                detail: resp.text().await.unwrap_or_default().chars().take(300).collect(),
            }),
        }
    }

    /// Downloads a complete job's results: one JSON object per line (blank lines are skipped).
    pub async fn compliance_findings(&self, job: &Job) -> Result<Vec<Finding>, Error> {
        let resp = self.http.get(&job.download_url).send().await.map_err(|e| transport("compliance download", e))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| transport("compliance download", e))?;
        if !status.is_success() {
            return Err(Error::Api {
                endpoint: "compliance download",
                status: status.as_u16(),
                detail: text.chars().take(300).collect(),
            });
        }
        parse_findings(&text)
    }
}

/// Reads a results file; a line that is not a finding fails the whole file (applying part of a job
/// would leave posts X reported in the lake with nothing to say so).
pub fn parse_findings(text: &str) -> Result<Vec<Finding>, Error> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| Error::Transport {
                endpoint: "compliance download",
                message: format!("line {}: not a compliance result: {e}", i + 1),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_documented_result_lines_and_refuses_a_broken_one() {
        let text = "{\"id\":\"1\",\"action\":\"delete\",\"created_at\":\"2024-01-10T12:00:00.000Z\",\"redacted_at\":\"2024-01-12T08:30:00.000Z\",\"reason\":\"deleted\"}\n\n\
                    {\"id\":\"2\",\"action\":\"scrub_geo\",\"reason\":\"scrub_geo\"}\n";
        let f = parse_findings(text).unwrap();
        assert_eq!(f.len(), 2);
        assert!(f[0].removes_post() && !f[1].removes_post());
        assert_eq!(f[0].redacted_at.as_deref(), Some("2024-01-12T08:30:00.000Z"));
        let e = parse_findings("{\"id\":\"1\"}\n").unwrap_err().to_string();
        assert!(e.contains("line 1"), "{e}");
    }

    #[test]
    fn only_complete_failed_and_expired_are_final() {
        let s: Vec<JobStatus> = serde_json::from_str(r#"["created","in_progress","complete","failed","expired"]"#).unwrap();
        assert_eq!(s.iter().map(|s| s.is_final()).collect::<Vec<_>>(), [false, false, true, true, true]);
    }
}
