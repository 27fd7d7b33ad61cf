//! Throughput of the simulator: simple GETs with bounded concurrency over loopback HTTP.
//! Run with `cargo bench --bench sim`; prints requests per second (target: at least 5,000).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use rollbook::sim::{Scenario, Sim};

const REQUESTS: usize = 20_000;
const CONCURRENCY: usize = 32;

const SCENARIO: &str = r#"
[[k8s.deployments]]
context = "prod"
namespace = "shop"
name = "web"
replicas = 3
revisions = ["shop/web:1.4.0", "shop/web:1.5.0"]
"#;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let scenario = Scenario::parse(Path::new("bench.toml"), SCENARIO)?;
        let sim = Sim::start(scenario, None).await?;
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(CONCURRENCY)
            .build()?;
        let api = sim.k8s_server_url("prod").unwrap_or_default();
        let urls: Arc<[String]> = Arc::from(vec![
            format!("{api}/version"),
            format!("{api}/apis/apps/v1/namespaces/shop/deployments/web"),
            format!("{}/k8s/prod/shop/web", sim.health_base()),
        ]);
        // Warm the connection pool.
        for url in urls.iter() {
            client.get(url).send().await?.bytes().await?;
        }
        let start = Instant::now();
        let results: Vec<bool> = futures::stream::iter(0..REQUESTS)
            .map(|i| {
                let client = client.clone();
                let urls = urls.clone();
                async move {
                    match client.get(&urls[i % urls.len()]).send().await {
                        Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                        Err(_) => false,
                    }
                }
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let elapsed = start.elapsed();
        let failed = results.iter().filter(|ok| !**ok).count();
        let rate = REQUESTS as f64 / elapsed.as_secs_f64();
        println!(
            "sim: {REQUESTS} GETs (version, deployment, health), concurrency {CONCURRENCY}: {:.2?}, {rate:.0} requests/s, {failed} failed",
            elapsed
        );
        sim.shutdown().await;
        if failed > 0 {
            return Err(format!("{failed} requests failed").into());
        }
        Ok(())
    })
}
