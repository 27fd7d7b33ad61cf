//! `[[notify]]`: a POST per run event to Slack, Teams or any JSON webhook, retried a few times;
//! a notification that cannot be delivered is logged and never fails a run.

use std::time::Duration;

use serde_json::{Value, json};

use super::config::{Notify, NotifyEvent, NotifyFormat};

/// How many times a notification is tried.
const ATTEMPTS: u32 = 3;

/// Sends notifications in the background.
#[derive(Clone)]
pub struct Notifier {
    targets: Vec<Notify>,
    client: reqwest::Client,
}

impl Notifier {
    /// A notifier for these targets.
    pub fn new(targets: Vec<Notify>) -> Notifier {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap_or_default();
        Notifier { targets, client }
    }

    /// Sends `event` (with `text` for people and `fields` for machines) to every target that
    /// wants it; returns at once.
    pub fn send(&self, event: NotifyEvent, text: String, fields: Value) {
        for t in self.targets.iter().filter(|t| t.events.contains(&event)) {
            let body = match t.format {
                NotifyFormat::Slack => json!({ "text": text }),
                NotifyFormat::Teams => json!({
                    "@type": "MessageCard",
                    "@context": "http://schema.org/extensions",
                    "summary": format!("rollbook: {}", event.as_str()),
                    "text": text,
                }),
                NotifyFormat::Json => {
                    let mut v = fields.clone();
                    if let Value::Object(m) = &mut v {
                        m.insert("event".into(), json!(event.as_str()));
                        m.insert("text".into(), json!(text));
                    }
                    v
                }
            };
            let client = self.client.clone();
            let url = t.url.clone();
            tokio::spawn(async move {
                let mut last = String::new();
                for attempt in 0..ATTEMPTS {
                    if attempt > 0 {
                        tokio::time::sleep(Duration::from_millis(250 << attempt)).await;
                    }
                    match client.post(&url).json(&body).send().await {
                        Ok(r) if r.status().is_success() => return,
                        Ok(r) => last = format!("answered {}", r.status()),
                        Err(e) => last = e.without_url().to_string(),
                    }
                }
                tracing::warn!(
                    "notification to {} not delivered after {ATTEMPTS} attempts: {last}",
                    redact_url(&url)
                );
            });
        }
    }
}

/// A webhook URL without its path and query (they often hold a secret).
fn redact_url(url: &str) -> String {
    match url.find("://").map(|i| i + 3) {
        Some(start) => {
            let host_end = url[start..].find('/').map(|i| start + i).unwrap_or(url.len());
            format!("{}/…", &url[..host_end])
        }
        None => "a webhook".into(),
    }
}
