//! Embedding the rollbook engine in another Rust program: register a custom primitive, run a
//! runbook with it (once as a dry-run, once for real) against a health endpoint this program
//! serves itself on 127.0.0.1, and read the run's journal back.
//!
//! The engine needs no simulator: this builds and runs with `cargo run --no-default-features
//! --example embed` (and with the default features, `cargo run --example embed`).

use std::io::{Read, Write};
use std::net::TcpListener;

use rollbook::engine::{Engine, RunOptions};
use rollbook::model::{Access, PrimitiveError};
use rollbook::providers::{CallCx, Meta, Planned, Primitive};
use rollbook::run::journal::{Event, read_journal};
use serde::{Deserialize, Serialize};

/// `pager::notify`: tells the on-call channel what the runbook is doing.
struct Notify;

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct NotifyArgs {
    channel: String,
    text: String,
}

#[derive(Serialize)]
struct NotifyOutput {
    delivered: bool,
}

impl Primitive for Notify {
    type Args = NotifyArgs;
    type Output = NotifyOutput;

    fn meta(&self) -> Meta {
        Meta {
            namespace: "pager",
            name: "notify",
            doc: "Posts a message to an on-call channel.",
            keys_doc: "`channel`, `text`",
            returns: "`#{ delivered }`",
            access: Access::Mutate,
        }
    }

    async fn call(&self, _cx: &CallCx, args: NotifyArgs) -> Result<NotifyOutput, PrimitiveError> {
        println!("[{}] {}", args.channel, args.text);
        Ok(NotifyOutput { delivered: true })
    }

    async fn plan(&self, _cx: &CallCx, args: &NotifyArgs) -> Result<Planned, PrimitiveError> {
        Ok(Planned {
            effect: format!("post to {}: {}", args.channel, args.text),
            output: serde_json::json!({ "delivered": false }),
        })
    }
}

const RUNBOOK: &str = r##"
const RUNBOOK = #{
    name: "announce",
    version: "1.0.0",
    params: #{ release: #{ type: "string" }, health_url: #{ type: "string" } },
};
let probe = health::http(#{ url: params.health_url, body_contains: "ok" });
if !probe.ok { throw `the service is not healthy: ${probe.reason}`; }
stage("announce", || pager::notify(#{ channel: "#incidents", text: `rolling back ${params.release}` }));
"done"
"##;

/// Serves `200 ok` to every request on a loopback port: the service the runbook checks.
fn serve_health() -> std::io::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}/healthz", listener.local_addr()?);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut stream = stream;
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
        }
    });
    Ok(url)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut engine = Engine::new();
    engine.register(Notify);
    let health_url = serve_health()?;

    let dir = std::env::temp_dir().join(format!("rollbook-embed-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let runbook = engine.load_source(&dir.join("announce.rhai"), RUNBOOK.to_string())?;
    let params = [("release".to_string(), "web 1.5.0".to_string()), ("health_url".to_string(), health_url)];

    let mut plan_only = RunOptions::new(dir.join("state"));
    plan_only.dry_run = true;
    let planned = engine.run(&runbook, &params, plan_only).await?;
    for step in &planned.plan {
        println!("plan: {} — {}", step.call, step.effect);
    }

    let report = engine.run(&runbook, &params, RunOptions::new(dir.join("state"))).await?;
    println!("status: {:?}, value: {:?}", report.status, report.value);

    for record in read_journal(&report.journal)?.records {
        if let Event::CallFinished { primitive, ok, duration_ms, .. } = record.event {
            println!("journal: {primitive} ok={ok} in {duration_ms}ms");
        }
    }
    std::fs::remove_dir_all(&dir)?;
    assert_eq!(report.exit_code, 0);
    Ok(())
}
