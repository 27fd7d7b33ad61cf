//! `health::http`: probes a URL until `consecutive` successive probes pass, within `attempts`.

use std::collections::BTreeMap;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::{Verdict, describe_error, parse_url};
use crate::model::{Dur, PrimitiveError};
use crate::providers::{Access, CallCx, Meta, Primitive};

/// `health::http`.
pub struct Http;

/// The method of a probe: a probe only reads, so `GET` or `HEAD` (any case); anything else is
/// refused when the args are checked, before any request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub enum ProbeMethod {
    /// `GET` (the default).
    #[default]
    #[serde(rename = "GET")]
    Get,
    /// `HEAD`.
    #[serde(rename = "HEAD")]
    Head,
}

impl<'de> Deserialize<'de> for ProbeMethod {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        match raw.to_ascii_uppercase().as_str() {
            "GET" => Ok(ProbeMethod::Get),
            "HEAD" => Ok(ProbeMethod::Head),
            _ => Err(serde::de::Error::custom(format!(
                "`method` must be GET or HEAD, not `{raw}`: a health probe only reads"
            ))),
        }
    }
}

impl ProbeMethod {
    fn as_reqwest(self) -> reqwest::Method {
        match self {
            ProbeMethod::Get => reqwest::Method::GET,
            ProbeMethod::Head => reqwest::Method::HEAD,
        }
    }
}
fn five_seconds() -> Dur {
    Dur::secs(5)
}
fn one() -> u32 {
    1
}

/// Which statuses count as healthy: one code or a list.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ExpectStatus {
    /// Exactly this status.
    One(u16),
    /// Any of these.
    Any(Vec<u16>),
}

/// Keys of `health::http`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpArgs {
    /// The URL to probe.
    pub url: String,
    /// HTTP method: GET (default) or HEAD.
    #[serde(default)]
    pub method: ProbeMethod,
    /// Extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Healthy statuses (default any 200–399).
    #[serde(default)]
    pub expect_status: Option<ExpectStatus>,
    /// Text the body must contain.
    #[serde(default)]
    pub body_contains: Option<String>,
    /// Per-request timeout (5s).
    #[serde(default = "five_seconds")]
    pub timeout: Dur,
    /// Probes at most (1).
    #[serde(default = "one")]
    pub attempts: u32,
    /// Wait between probes (5s).
    #[serde(default = "five_seconds")]
    pub interval: Dur,
    /// Successive passing probes needed (1).
    #[serde(default = "one")]
    pub consecutive: u32,
}

/// Result of `health::http`.
#[derive(Debug, Clone, Serialize)]
pub struct HttpOutput {
    /// Whether `consecutive` successive probes passed (true only for a `pass` verdict).
    pub ok: bool,
    /// `pass`; `fail` when the last probe got an answer that failed the checks;
    /// `inconclusive` when it got no usable answer (unreachable, no answer in time).
    pub verdict: Verdict,
    /// Why not `pass`, in words; none when it passed.
    pub reason: Option<String>,
    /// Status of the last answer, if any.
    pub status: Option<u16>,
    /// Latency of the last probe.
    pub latency_ms: u64,
    /// Probes made.
    pub attempts: u32,
    /// The last failure in words; none when ok.
    pub error: Option<String>,
}

impl Primitive for Http {
    type Args = HttpArgs;
    type Output = HttpOutput;

    fn meta(&self) -> Meta {
        Meta {
            namespace: "health",
            name: "http",
            doc: "Probes an HTTP endpoint (GET or HEAD) until `consecutive` successive probes pass within `attempts`; the verdict is pass, fail (answered, failing) or inconclusive (no answer: never act on it); never throws for an unhealthy target.",
            keys_doc: "`url`, `method` (\"GET\" or \"HEAD\"), `headers` (#{}), `expect_status` (any 200–399; an int or array of ints), `body_contains`, `timeout` per request (\"5s\"), `attempts` (1), `interval` (\"5s\"), `consecutive` (1)",
            returns: "`#{ ok, verdict, reason, status, latency_ms, attempts, error }`",
            access: Access::Read,
        }
    }

    fn target(&self, args: &HttpArgs) -> Option<String> {
        Some(args.url.clone())
    }

    async fn call(&self, cx: &CallCx, args: HttpArgs) -> Result<HttpOutput, PrimitiveError> {
        let url = parse_url(&args.url, cx)?;
        let method = args.method.as_reqwest();
        if args.attempts == 0 || args.consecutive == 0 {
            return Err(PrimitiveError::invalid("`attempts` and `consecutive` must be at least 1"));
        }
        if args.consecutive > args.attempts {
            return Err(PrimitiveError::invalid(format!(
                "`consecutive` ({}) cannot exceed `attempts` ({})",
                args.consecutive, args.attempts
            )));
        }
        let mut out = HttpOutput {
            ok: false,
            verdict: Verdict::Inconclusive,
            reason: None,
            status: None,
            latency_ms: 0,
            attempts: 0,
            error: None,
        };
        let mut last = Verdict::Inconclusive;
        let mut saw_fail = false;
        let mut passed_in_a_row = 0;
        for attempt in 1..=args.attempts {
            if attempt > 1 {
                cx.progress.waiting(&format!(
                    "probing {} (attempt {}/{}, {} passed in a row)",
                    args.url, attempt, args.attempts, passed_in_a_row
                ));
                let slept = cx.sleep(args.interval.get()).await;
                cx.progress.done_waiting();
                slept?;
            }
            out.attempts = attempt;
            let started = Instant::now();
            let verdict = tokio::select! {
                r = probe(cx, &method, &url, &args) => r?,
                _ = cx.cancel.cancelled() => return Err(PrimitiveError::new(crate::model::ErrorKind::Cancelled, "cancelled while probing")),
            };
            out.latency_ms = started.elapsed().as_millis() as u64;
            match verdict {
                Probe::Pass(status) => {
                    out.status = Some(status);
                    out.error = None;
                    passed_in_a_row += 1;
                    last = Verdict::Pass;
                    if passed_in_a_row >= args.consecutive {
                        out.ok = true;
                        out.verdict = Verdict::Pass;
                        return Ok(out);
                    }
                }
                Probe::Fail(status, reason) => {
                    out.status = Some(status);
                    out.error = Some(reason);
                    passed_in_a_row = 0;
                    last = Verdict::Fail;
                    saw_fail = true;
                }
                Probe::NoAnswer(status, reason) => {
                    out.status = status;
                    out.error = Some(reason);
                    passed_in_a_row = 0;
                    last = Verdict::Inconclusive;
                }
            }
            // Stop early when the remaining attempts can no longer give enough passes in a row.
            if passed_in_a_row + (args.attempts - attempt) < args.consecutive {
                break;
            }
        }
        if out.error.is_none() {
            out.error =
                Some(format!("only {passed_in_a_row} of {} consecutive probes passed", args.consecutive));
        }
        // The last probe decides: an answer that failed the checks is a failure, no answer
        // cannot tell; too few passes in a row count as failing only after a failed answer.
        out.verdict = match last {
            Verdict::Fail => Verdict::Fail,
            Verdict::Pass if saw_fail => Verdict::Fail,
            _ => Verdict::Inconclusive,
        };
        out.reason = out.error.clone();
        Ok(out)
    }
}

/// What one probe found.
enum Probe {
    /// It passed, with this status.
    Pass(u16),
    /// It was answered, and the answer failed the checks.
    Fail(u16, String),
    /// No usable answer (unreachable, no answer in time, the body broke off).
    NoAnswer(Option<u16>, String),
}

/// One probe; throws only when a redirect leads out of a rehearsal's sandbox.
async fn probe(
    cx: &CallCx,
    method: &reqwest::Method,
    url: &reqwest::Url,
    args: &HttpArgs,
) -> Result<Probe, PrimitiveError> {
    let sent = send(cx, method, url, args).await?;
    Ok(match probe_once(sent, args).await {
        Ok(status) => Probe::Pass(status),
        Err((Some(status), reason, true)) => Probe::Fail(status, reason),
        Err((status, reason, _)) => Probe::NoAnswer(status, reason),
    })
}

/// Headers never sent on to another origin by a redirect.
fn sensitive(name: &str) -> bool {
    ["authorization", "cookie", "proxy-authorization"].iter().any(|h| name.eq_ignore_ascii_case(h))
}

/// Sends the probe. The run's client follows redirects within one origin only; a redirect to
/// another origin is followed here (at most 10 hops, unless `expect_status` names the redirect
/// status itself), each hop checked against the sandbox, without sensitive headers.
async fn send(
    cx: &CallCx,
    method: &reqwest::Method,
    url: &reqwest::Url,
    args: &HttpArgs,
) -> Result<Result<reqwest::Response, reqwest::Error>, PrimitiveError> {
    let mut url = url.clone();
    let mut same_origin = true;
    for _hop in 0..=10 {
        let mut request = cx.http.request(method.clone(), url.clone()).timeout(args.timeout.get());
        for (name, value) in &args.headers {
            if same_origin || !sensitive(name) {
                request = request.header(name, value);
            }
        }
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => return Ok(Err(e)),
        };
        let status = response.status().as_u16();
        let expected_as_is = match &args.expect_status {
            None => false,
            Some(ExpectStatus::One(code)) => *code == status,
            Some(ExpectStatus::Any(codes)) => codes.contains(&status),
        };
        let next = response
            .status()
            .is_redirection()
            .then(|| response.headers().get(reqwest::header::LOCATION))
            .flatten()
            .and_then(|l| l.to_str().ok())
            .and_then(|l| url.join(l).ok())
            .filter(|n| matches!(n.scheme(), "http" | "https"));
        match next {
            Some(next) if !expected_as_is => {
                crate::providers::sandbox_check(&cx.shared.settings, &next)?;
                same_origin &= next.origin() == url.origin();
                url = next;
            }
            _ => return Ok(Ok(response)),
        }
    }
    Err(PrimitiveError::invalid(format!("`{}`: more than 10 redirects", args.url)).with_target(&args.url))
}

/// Ok(status) when it passes, else (status, reason, whether the answer was evaluated).
async fn probe_once(
    sent: Result<reqwest::Response, reqwest::Error>,
    args: &HttpArgs,
) -> Result<u16, (Option<u16>, String, bool)> {
    let response = sent.map_err(|e| (None, describe_error(&e, args.timeout.get()), false))?;
    let status = response.status().as_u16();
    let status_ok = match &args.expect_status {
        None => (200..400).contains(&status),
        Some(ExpectStatus::One(code)) => status == *code,
        Some(ExpectStatus::Any(codes)) => codes.contains(&status),
    };
    if !status_ok {
        let wanted = match &args.expect_status {
            None => "200–399".to_string(),
            Some(ExpectStatus::One(code)) => code.to_string(),
            Some(ExpectStatus::Any(codes)) => codes.iter().map(u16::to_string).collect::<Vec<_>>().join(", "),
        };
        return Err((Some(status), format!("status {status}, expected {wanted}"), true));
    }
    if let Some(needle) = &args.body_contains {
        let body = response
            .text()
            .await
            .map_err(|e| (Some(status), describe_error(&e, args.timeout.get()), false))?;
        if !body.contains(needle.as_str()) {
            return Err((Some(status), format!("body does not contain `{needle}`"), true));
        }
    }
    Ok(status)
}
