//! The ARM client: one authenticated request with bounded retries, long-running operations
//! followed to their end, and `nextLink` pages collected.
//!
//! Retry rules: reads and idempotent writes ([`Idempotency::Safe`]) are retried on 429
//! (waiting exactly what `Retry-After` asks), 5xx and broken connections, with exponential
//! backoff and jitter, bounded in attempts and in total waiting. A request that is not
//! idempotent ([`Idempotency::Once`]) is re-sent only when it provably never reached ARM (the
//! connection could not be opened) or was refused with 401 before a token refresh; any other
//! failure goes back to the caller, who must look at the resource before trying again.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, Url};
use serde_json::Value;

use super::credential::Credentials;
use super::error::{AzureError, Envelope};
use crate::model::Settings;

/// A boxed wait, as [`Pause::pause`] returns it.
pub type PauseFuture<'a> = Pin<Box<dyn Future<Output = Result<(), AzureError>> + Send + 'a>>;

/// The run's clock, as the client sees it: every retry backoff and every poll interval goes
/// through it (tests skip the waits and record them).
pub trait Pause: Send + Sync {
    /// Waits `d`, or fails with [`AzureError::Cancelled`] when the run is cancelled meanwhile.
    fn pause(&self, d: Duration) -> PauseFuture<'_>;
    /// The run's clock time (for deadlines: compare two readings).
    fn now(&self) -> Duration;
}

/// Whether a request may be sent again after an answer that leaves its outcome unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotency {
    /// Sending it twice has the effect of sending it once (GET, PUT of a whole resource,
    /// enable/disable, exportTemplate, whatIf).
    Safe,
    /// Sending it twice may apply it twice (a slot swap): never re-sent blindly.
    Once,
}

/// Bounds of the retry loop and of long-running operations.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Requests at most, the first included.
    pub max_attempts: u32,
    /// First backoff (doubles each retry).
    pub base_backoff: Duration,
    /// Longest single backoff of our own (a longer `Retry-After` is honoured while
    /// `max_total_wait` allows; past it, the request gives up).
    pub max_backoff: Duration,
    /// Most total waiting across the retries of one request.
    pub max_total_wait: Duration,
    /// Per-request timeout (ARM itself gives providers 60 s).
    pub request_timeout: Duration,
    /// Poll interval of a long-running operation that sends no `Retry-After`.
    pub default_poll: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            max_total_wait: Duration::from_secs(180),
            request_timeout: Duration::from_secs(100),
            default_poll: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// The backoff before retry number `retry` (1-based): exponential, capped, ±20 % jitter.
    pub fn backoff(&self, retry: u32) -> Duration {
        let exp = self.base_backoff.saturating_mul(1u32 << retry.saturating_sub(1).min(16));
        let capped = exp.min(self.max_backoff);
        capped.mul_f64(0.8 + fastrand::f64() * 0.4)
    }
}

/// One request to ARM.
#[derive(Debug, Clone)]
pub struct ArmRequest {
    /// HTTP method.
    pub method: Method,
    /// Absolute URL (see [`ArmClient::url`]).
    pub url: String,
    /// JSON body, if any.
    pub body: Option<Value>,
    /// What the request is about, for messages ("site `shop-web` in group `rg-shop`").
    pub what: String,
    /// Whether it may be re-sent.
    pub idempotency: Idempotency,
}

/// An answer with a success status.
#[derive(Debug, Clone)]
pub struct ArmResponse {
    /// HTTP status.
    pub status: u16,
    /// Headers.
    pub headers: HeaderMap,
    /// JSON body (`null` when empty).
    pub body: Value,
    /// `x-ms-request-id`.
    pub request_id: Option<String>,
}

impl ArmResponse {
    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `Retry-After` (or `retry-after-ms` / `x-ms-retry-after-ms`), when given.
    pub fn retry_after(&self) -> Option<Duration> {
        retry_after(&self.headers)
    }
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    for name in ["retry-after-ms", "x-ms-retry-after-ms"] {
        if let Some(ms) =
            headers.get(name).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok())
        {
            return Some(Duration::from_millis(ms));
        }
    }
    let v = headers.get("retry-after")?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    // An HTTP date: wait until then.
    let when = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let d = when.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(d.to_std().unwrap_or_default())
}

/// Percent-encodes one path segment (a resource name).
pub fn encode(segment: &str) -> String {
    const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~')
        .remove(b'(')
        .remove(b')');
    percent_encoding::utf8_percent_encode(segment, SEGMENT).to_string()
}

/// The run's ARM client: endpoint, default subscription, credential and retry policy.
pub struct ArmClient {
    http: reqwest::Client,
    endpoint: Url,
    subscription: Option<String>,
    credentials: Credentials,
    policy: RetryPolicy,
}

impl std::fmt::Debug for ArmClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArmClient")
            .field("endpoint", &self.endpoint.as_str())
            .field("subscription", &self.subscription)
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

impl ArmClient {
    /// A client over `http` configured from the settings: `ROLLBOOK_ARM_ENDPOINT` (default
    /// `https://management.azure.com`), `AZURE_SUBSCRIPTION_ID`, `ROLLBOOK_ARM_TIMEOUT` (per
    /// request, default 100s), and the credential [`super::select_credential`] picks.
    pub fn from_settings(http: reqwest::Client, settings: &Settings) -> Result<ArmClient, AzureError> {
        let raw = settings.var("ROLLBOOK_ARM_ENDPOINT").unwrap_or(super::DEFAULT_ENDPOINT);
        let endpoint = Url::parse(raw.trim_end_matches('/'))
            .map_err(|e| AzureError::Invalid(format!("ROLLBOOK_ARM_ENDPOINT `{raw}` is not a URL: {e}")))?;
        if !matches!(endpoint.scheme(), "http" | "https") || endpoint.host_str().is_none() {
            return Err(AzureError::Invalid(format!(
                "ROLLBOOK_ARM_ENDPOINT `{raw}` must be an http(s) URL with a host"
            )));
        }
        // A bearer token must never cross a network in the clear: plain HTTP only to loopback
        // (the simulator, a local proxy).
        if endpoint.scheme() == "http" && !super::is_loopback_host(endpoint.host_str().unwrap_or("")) {
            return Err(AzureError::Invalid(format!(
                "ROLLBOOK_ARM_ENDPOINT `{raw}` must use https (plain http is accepted only for loopback addresses)"
            )));
        }
        if let Some(origin) = settings.sandbox.as_deref()
            && Url::parse(origin).map(|o| o.origin() != endpoint.origin()).unwrap_or(true)
        {
            return Err(AzureError::Invalid(format!(
                "sandbox: the ARM endpoint `{raw}` is not the simulator's; a rehearsal reaches only the simulator"
            )));
        }
        let scope = format!("{}/.default", endpoint.as_str().trim_end_matches('/'));
        let credentials = Credentials::from_settings(settings, &scope)?;
        let mut policy = RetryPolicy::default();
        if let Some(t) = settings.var("ROLLBOOK_ARM_TIMEOUT") {
            policy.request_timeout = crate::model::parse_duration(t)
                .map_err(|e| AzureError::Invalid(format!("ROLLBOOK_ARM_TIMEOUT: {e}")))?;
        }
        Ok(ArmClient {
            http,
            endpoint,
            subscription: settings.var("AZURE_SUBSCRIPTION_ID").map(str::to_string),
            credentials,
            policy,
        })
    }

    /// The same client with another retry policy.
    pub fn with_policy(mut self, policy: RetryPolicy) -> ArmClient {
        self.policy = policy;
        self
    }

    /// The retry policy.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// The credential in use.
    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// `given`, else `AZURE_SUBSCRIPTION_ID`, else an `invalid` error that says what to set.
    pub fn subscription(&self, given: Option<&str>) -> Result<String, AzureError> {
        given
            .filter(|s| !s.trim().is_empty())
            .map(str::to_string)
            .or_else(|| self.subscription.clone())
            .ok_or_else(|| {
                AzureError::Invalid(
                    "no azure subscription: pass `subscription` or set AZURE_SUBSCRIPTION_ID".into(),
                )
            })
    }

    /// The absolute URL of `path` (already encoded, starting with `/`) with `api-version`.
    pub fn url(&self, path: &str, api_version: &str) -> String {
        let base = self.endpoint.as_str().trim_end_matches('/');
        format!("{base}{path}?api-version={api_version}")
    }

    /// An ARM-given URL (operation status, `nextLink`), made absolute and checked to be on the
    /// ARM endpoint, so the token is never sent anywhere else.
    pub fn follow(&self, link: &str) -> Result<String, AzureError> {
        let url = if link.starts_with('/') {
            self.endpoint
                .join(link)
                .map_err(|e| AzureError::Invalid(format!("ARM sent a bad link `{link}`: {e}")))?
        } else {
            Url::parse(link).map_err(|e| AzureError::Invalid(format!("ARM sent a bad link `{link}`: {e}")))?
        };
        let same = url.scheme() == self.endpoint.scheme()
            && url.host_str() == self.endpoint.host_str()
            && url.port_or_known_default() == self.endpoint.port_or_known_default();
        if !same {
            return Err(AzureError::Invalid(format!(
                "ARM sent a link to `{}`, which is not the ARM endpoint `{}`; not following it",
                url.origin().ascii_serialization(),
                self.endpoint.origin().ascii_serialization()
            )));
        }
        Ok(url.to_string())
    }

    /// Sends `req`, retrying as its [`Idempotency`] allows; a non-success answer is an error.
    pub async fn send(&self, pause: &dyn Pause, req: &ArmRequest) -> Result<ArmResponse, AzureError> {
        let mut attempts = 0u32;
        let mut waited = Duration::ZERO;
        let mut refreshed = false;
        let mut force_refresh = false;
        loop {
            attempts += 1;
            let token = self.credentials.token(force_refresh).await?;
            force_refresh = false;
            let mut auth = HeaderValue::from_str(&format!("Bearer {}", token.expose())).map_err(|_| {
                AzureError::Credential {
                    source_name: self.credentials.choice().name().into(),
                    message: "the token has characters a header cannot carry".into(),
                }
            })?;
            auth.set_sensitive(true);
            let mut builder = self
                .http
                .request(req.method.clone(), &req.url)
                .timeout(self.policy.request_timeout)
                .header(reqwest::header::AUTHORIZATION, auth)
                .header(reqwest::header::ACCEPT, "application/json")
                .header("x-ms-client-request-id", client_request_id());
            if let Some(body) = &req.body {
                builder = builder.json(body);
            } else if req.method == Method::POST || req.method == Method::PUT {
                builder = builder.header(reqwest::header::CONTENT_LENGTH, "0");
            }
            tracing::debug!(method = %req.method, url = %req.url, attempt = attempts, "arm request");
            let outcome = builder.send().await;
            // Saturating: a hostile `Retry-After` (u64::MAX seconds) must give up, not overflow.
            let retry = |wait: Duration, waited: Duration| {
                attempts < self.policy.max_attempts
                    && waited.saturating_add(wait) <= self.policy.max_total_wait
            };
            match outcome {
                Err(e) => {
                    let never_sent = e.is_connect();
                    let wait = self.policy.backoff(attempts);
                    let may_retry = req.idempotency == Idempotency::Safe || never_sent;
                    if may_retry && retry(wait, waited) {
                        tracing::debug!(url = %req.url, error = %root_cause(&e), "arm request failed; retrying");
                        pause.pause(wait).await?;
                        waited = waited.saturating_add(wait);
                        continue;
                    }
                    if e.is_timeout() {
                        return Err(AzureError::Timeout {
                            what: req.what.clone(),
                            after: self.policy.request_timeout,
                        });
                    }
                    return Err(AzureError::Transport {
                        what: req.what.clone(),
                        attempts,
                        reason: root_cause(&e),
                    });
                }
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let headers = resp.headers().clone();
                    let request_id =
                        headers.get("x-ms-request-id").and_then(|v| v.to_str().ok()).map(str::to_string);
                    let text = match resp.text().await {
                        Ok(t) => t,
                        Err(e) => {
                            // The answer broke off: as ambiguous as a dropped connection.
                            let wait = self.policy.backoff(attempts);
                            if req.idempotency == Idempotency::Safe && retry(wait, waited) {
                                pause.pause(wait).await?;
                                waited = waited.saturating_add(wait);
                                continue;
                            }
                            return Err(AzureError::Transport {
                                what: req.what.clone(),
                                attempts,
                                reason: root_cause(&e),
                            });
                        }
                    };
                    let body = if text.trim().is_empty() {
                        Value::Null
                    } else {
                        serde_json::from_str(&text).unwrap_or(Value::String(text))
                    };
                    tracing::debug!(url = %req.url, status, request_id = ?request_id, "arm answer");
                    if (300..400).contains(&status) {
                        // The client follows redirects within the endpoint's origin only; one
                        // left here points elsewhere, and the token must not go there.
                        let to = headers
                            .get(reqwest::header::LOCATION)
                            .and_then(|v| v.to_str().ok())
                            .and_then(|l| Url::parse(l).ok())
                            .map(|u| u.origin().ascii_serialization())
                            .unwrap_or_else(|| "elsewhere".into());
                        let message = format!(
                            "{}: ARM answered {status}, a redirect to `{to}`, which is not the ARM endpoint; not following it",
                            req.what
                        );
                        return Err(if req.method == Method::GET {
                            AzureError::Invalid(message)
                        } else {
                            // A write may have been applied before the redirect: outcome unknown.
                            AzureError::Transport { what: req.what.clone(), attempts, reason: message }
                        });
                    }
                    if (200..300).contains(&status) {
                        return Ok(ArmResponse { status, headers, body, request_id });
                    }
                    if status == 401 && !refreshed {
                        // A token that expired early: refresh once and try again; a 401 was not applied.
                        refreshed = true;
                        force_refresh = true;
                        attempts -= 1;
                        continue;
                    }
                    let transient = status == 429 || status >= 500;
                    if transient && req.idempotency == Idempotency::Safe {
                        let wait = match retry_after(&headers) {
                            Some(ra) => ra,
                            None => self.policy.backoff(attempts),
                        };
                        if retry(wait, waited) {
                            pause.pause(wait).await?;
                            waited = waited.saturating_add(wait);
                            continue;
                        }
                    }
                    return Err(AzureError::Status {
                        what: req.what.clone(),
                        status,
                        envelope: Envelope::parse(&body).map(Box::new),
                        attempts,
                        request_id,
                        retry_after: retry_after(&headers),
                    });
                }
            }
        }
    }

    /// GET `url` (safe to retry) and return the JSON body.
    pub async fn get(&self, pause: &dyn Pause, url: String, what: &str) -> Result<Value, AzureError> {
        let req = ArmRequest {
            method: Method::GET,
            url,
            body: None,
            what: what.to_string(),
            idempotency: Idempotency::Safe,
        };
        Ok(self.send(pause, &req).await?.body)
    }

    /// Every item of a paged list: `value` of each page, following `nextLink` to the end.
    pub async fn list(&self, pause: &dyn Pause, url: String, what: &str) -> Result<Vec<Value>, AzureError> {
        let mut items = Vec::new();
        let mut next = Some(url);
        let mut pages = 0;
        while let Some(url) = next.take() {
            pages += 1;
            if pages > 10_000 {
                return Err(AzureError::Invalid(format!("{what}: more than 10000 pages; giving up")));
            }
            let body = self.get(pause, url, what).await?;
            if let Some(Value::Array(v)) = body.get("value") {
                items.extend(v.iter().cloned());
            }
            if let Some(link) = body.get("nextLink").and_then(Value::as_str).filter(|l| !l.is_empty()) {
                next = Some(self.follow(link)?);
            }
        }
        Ok(items)
    }

    /// Follows a long-running operation started by `initial` until it ends or `timeout` passes.
    ///
    /// Prefers `Azure-AsyncOperation` (status documents), else `Location` (202 until the final
    /// answer), waiting what `Retry-After` asks between polls. Returns the final answer: the
    /// `Location`'s final response, or the last status document. An answer that names neither
    /// header is already final. `Failed` or `Canceled` is an [`AzureError::OperationFailed`].
    pub async fn wait(
        &self,
        pause: &dyn Pause,
        initial: &ArmResponse,
        what: &str,
        timeout: Duration,
    ) -> Result<ArmResponse, AzureError> {
        let async_op = initial.header("azure-asyncoperation").map(str::to_string);
        let location = initial.header("location").map(str::to_string);
        // ARM accepted the request: a link we refuse to follow leaves its outcome unknown, so it
        // is reported like a lost answer (resume verifies), never as invalid input.
        let in_doubt = |e: AzureError| AzureError::Transport {
            what: what.to_string(),
            attempts: 1,
            reason: format!("{e}; ARM accepted the request, so the change may have been applied"),
        };
        let (url, status_style) = match (async_op, location) {
            (Some(a), _) => (self.follow(&a).map_err(in_doubt)?, true),
            (None, Some(l)) if initial.status == 202 || initial.status == 201 => {
                (self.follow(&l).map_err(in_doubt)?, false)
            }
            _ => return Ok(initial.clone()),
        };
        let started = pause.now();
        let mut next_wait = initial.retry_after().unwrap_or(self.policy.default_poll);
        // A zero `Retry-After` on an operation that never ends must not become a request storm
        // (or, on a clock that only moves when waited on, a loop that never times out).
        let floor = self.policy.default_poll.min(Duration::from_secs(1)).max(Duration::from_millis(10));
        loop {
            let wait = next_wait.max(floor).min(self.policy.max_backoff);
            if pause.now().saturating_sub(started).saturating_add(wait) > timeout {
                return Err(AzureError::Timeout { what: what.to_string(), after: timeout });
            }
            pause.pause(wait).await?;
            let req = ArmRequest {
                method: Method::GET,
                url: url.clone(),
                body: None,
                what: what.to_string(),
                idempotency: Idempotency::Safe,
            };
            let resp = self.send(pause, &req).await?;
            next_wait = resp.retry_after().unwrap_or(self.policy.default_poll);
            if status_style {
                let status = resp.body.get("status").and_then(Value::as_str).unwrap_or("");
                match status.to_ascii_lowercase().as_str() {
                    "succeeded" => return Ok(resp),
                    "failed" | "canceled" | "cancelled" => {
                        return Err(AzureError::OperationFailed {
                            what: what.to_string(),
                            status: status.to_string(),
                            envelope: resp
                                .body
                                .get("error")
                                .and_then(|e| serde_json::from_value(e.clone()).ok())
                                .map(Box::new),
                            request_id: resp.request_id.clone(),
                        });
                    }
                    _ => continue,
                }
            }
            if resp.status != 202 {
                return Ok(resp);
            }
        }
    }

    /// Sends `req` and, when ARM answers with a long-running operation, waits for it.
    pub async fn send_and_wait(
        &self,
        pause: &dyn Pause,
        req: &ArmRequest,
        timeout: Duration,
    ) -> Result<(ArmResponse, ArmResponse), AzureError> {
        let first = self.send(pause, req).await?;
        let last = self.wait(pause, &first, &req.what, timeout).await?;
        Ok((first, last))
    }
}

fn client_request_id() -> String {
    let a = fastrand::u128(..);
    let h = format!("{a:032x}");
    format!("{}-{}-4{}-a{}-{}", &h[0..8], &h[8..12], &h[13..16], &h[17..20], &h[20..32])
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let p = RetryPolicy::default();
        for _ in 0..50 {
            let b1 = p.backoff(1);
            assert!(b1 >= Duration::from_millis(800) && b1 <= Duration::from_millis(1200), "{b1:?}");
            let b3 = p.backoff(3);
            assert!(b3 >= Duration::from_millis(3200) && b3 <= Duration::from_millis(4800), "{b3:?}");
            assert!(p.backoff(30) <= p.max_backoff.mul_f64(1.2));
        }
    }

    #[test]
    fn retry_after_forms() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert("retry-after-ms", HeaderValue::from_static("250"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(250)));
        let mut past = HeaderMap::new();
        past.insert("retry-after", HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"));
        assert_eq!(retry_after(&past), Some(Duration::ZERO));
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }

    fn client(endpoint: &str) -> ArmClient {
        let mut s = Settings::default();
        s.env.insert("ROLLBOOK_ARM_ENDPOINT".into(), endpoint.into());
        s.env.insert("ROLLBOOK_AZURE_TOKEN".into(), "t".into());
        ArmClient::from_settings(reqwest::Client::new(), &s).unwrap()
    }

    #[test]
    fn links_must_stay_on_the_endpoint() {
        let c = client("http://127.0.0.1:8080/");
        assert_eq!(
            c.follow("/subscriptions/x/operationresults/1?api-version=1").unwrap(),
            "http://127.0.0.1:8080/subscriptions/x/operationresults/1?api-version=1"
        );
        assert!(c.follow("http://127.0.0.1:8080/a").is_ok());
        let e = c.follow("https://evil.example.com/a").unwrap_err();
        assert!(e.to_string().contains("not the ARM endpoint"), "{e}");
        assert!(c.follow("http://127.0.0.1:9999/a").is_err());
        assert_eq!(
            c.url("/subscriptions/s", "2025-04-01"),
            "http://127.0.0.1:8080/subscriptions/s?api-version=2025-04-01"
        );
    }

    #[test]
    fn endpoint_and_subscription_settings() {
        let mut s = Settings::default();
        s.env.insert("ROLLBOOK_AZURE_TOKEN".into(), "t".into());
        let c = ArmClient::from_settings(reqwest::Client::new(), &s).unwrap();
        assert_eq!(c.url("/x", "v"), "https://management.azure.com/x?api-version=v");
        assert!(c.subscription(None).unwrap_err().to_string().contains("AZURE_SUBSCRIPTION_ID"));
        assert_eq!(c.subscription(Some("abc")).unwrap(), "abc");
        s.env.insert("AZURE_SUBSCRIPTION_ID".into(), "sub".into());
        s.env.insert("ROLLBOOK_ARM_ENDPOINT".into(), "ftp://x".into());
        assert!(ArmClient::from_settings(reqwest::Client::new(), &s).is_err());
        s.env.insert("ROLLBOOK_ARM_ENDPOINT".into(), "http://127.0.0.1:1".into());
        let c = ArmClient::from_settings(reqwest::Client::new(), &s).unwrap();
        assert_eq!(c.subscription(None).unwrap(), "sub");
    }

    #[test]
    fn names_are_encoded() {
        assert_eq!(encode("rg shop/x"), "rg%20shop%2Fx");
        assert_eq!(encode("infra-41_(a).b"), "infra-41_(a).b");
    }
}
