//! The simulator's Prometheus metrics at `<health_base>/metrics`, read over real HTTP: health and
//! simulated traffic per resource, App Service slots, Deployments; the numbers follow the world.

use std::collections::BTreeMap;

use crate::azure_support::start;

/// One scrape: `name{labels}` (labels as written) → value; `# TYPE` lines by metric name.
struct Scrape {
    samples: BTreeMap<String, f64>,
    types: BTreeMap<String, String>,
    content_type: String,
}

async fn scrape(health_base: &str) -> Scrape {
    let resp = reqwest::get(format!("{health_base}/metrics")).await.expect("metrics answer");
    assert_eq!(resp.status(), 200);
    let content_type =
        resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let text = resp.text().await.expect("metrics body");
    let mut samples = BTreeMap::new();
    let mut types = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("type line has a kind");
            assert!(
                types.insert(name.to_string(), kind.to_string()).is_none(),
                "one TYPE per family: {name}"
            );
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("sample line has a value");
        let value: f64 = value.parse().expect("sample value is a number");
        assert!(samples.insert(series.to_string(), value).is_none(), "series written twice: {series}");
    }
    Scrape { samples, types, content_type }
}

impl Scrape {
    fn get(&self, series: &str) -> f64 {
        *self.samples.get(series).unwrap_or_else(|| panic!("no `{series}` in {:#?}", self.samples))
    }
}

const SITE: &str = "appservice/rg-shop/shop-web";

#[tokio::test(flavor = "multi_thread")]
async fn metrics_follow_the_site_through_a_swap() {
    let az = start(
        r#"
[[k8s.deployments]]
context = "prod"
namespace = "shop"
name = "web"
replicas = 3
revisions = ["shop/web:1.4.0", "shop/web:1.5.0"]
broken = ["shop/web:1.5.0"]
"#,
    )
    .await;
    let base = az.sim.health_base();
    let before = scrape(&base).await;
    assert!(before.content_type.starts_with("text/plain; version=0.0.4"), "{}", before.content_type);
    assert_eq!(before.types.get("rollbook_sim_healthy").map(String::as_str), Some("gauge"));
    assert_eq!(before.types.get("rollbook_sim_http_requests_total").map(String::as_str), Some("counter"));
    assert_eq!(before.get(&format!("rollbook_sim_healthy{{resource=\"{SITE}\"}}")), 0.0);
    assert_eq!(before.get("rollbook_sim_healthy{resource=\"k8s/prod/shop/web\"}"), 0.0);
    assert_eq!(
        before.get("rollbook_sim_healthy{resource=\"arm/rg-shop\"}"),
        0.0,
        "infra-42 is broken and live"
    );
    assert_eq!(
        before
            .get(&format!("rollbook_sim_appservice_slot_healthy{{resource=\"{SITE}\",slot=\"production\"}}")),
        0.0
    );
    assert_eq!(
        before.get(&format!("rollbook_sim_appservice_slot_healthy{{resource=\"{SITE}\",slot=\"staging\"}}")),
        1.0
    );
    assert_eq!(
        before.get(&format!(
            "rollbook_sim_appservice_slot_build_info{{resource=\"{SITE}\",slot=\"production\",build=\"1.5.0\"}}"
        )),
        1.0
    );
    assert_eq!(before.get("rollbook_sim_deployment_replicas{resource=\"k8s/prod/shop/web\"}"), 3.0);
    assert_eq!(
        before.get(
            "rollbook_sim_deployment_image_info{resource=\"k8s/prod/shop/web\",image=\"shop/web:1.5.0\"}"
        ),
        1.0
    );
    assert_eq!(before.get("rollbook_sim_deployment_revision{resource=\"k8s/prod/shop/web\"}"), 2.0);
    assert_eq!(
        before.get("rollbook_sim_logicapp_current_version_info{resource=\"logicapp/rg-shop/orders\",version=\"08585000000000000002\"}"),
        1.0
    );
    let ok = format!("rollbook_sim_http_requests_total{{resource=\"{SITE}\",code=\"200\"}}");
    let bad = format!("rollbook_sim_http_requests_total{{resource=\"{SITE}\",code=\"503\"}}");
    assert_eq!(before.get(&ok), 0.0, "an unhealthy site answers no 200s");

    az.value(r#"appservice::swap(#{ group: "rg-shop", site: "shop-web", slot: "staging" })"#).await;

    let after = scrape(&base).await;
    assert_eq!(after.get(&format!("rollbook_sim_healthy{{resource=\"{SITE}\"}}")), 1.0);
    assert_eq!(
        after
            .get(&format!("rollbook_sim_appservice_slot_healthy{{resource=\"{SITE}\",slot=\"production\"}}")),
        1.0
    );
    assert_eq!(
        after.get(&format!("rollbook_sim_appservice_slot_healthy{{resource=\"{SITE}\",slot=\"staging\"}}")),
        0.0
    );
    assert!(after.get(&bad) >= before.get(&bad), "a counter never goes down");
    // The endpoint is the simulator's own: the request record has the scrapes.
    let scrapes = az.requests().into_iter().filter(|r| r.path == "/health/metrics").count();
    assert_eq!(scrapes, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_resource_key_still_answers_beside_the_metrics_route() {
    let az = start("").await;
    let base = az.sim.health_base();
    let one = reqwest::get(format!("{base}/{SITE}")).await.expect("health answers");
    assert_eq!(one.status(), 503);
    let unknown = reqwest::get(format!("{base}/metrics/extra")).await.expect("health answers");
    assert_eq!(unknown.status(), 404, "only `<health_base>/metrics` itself is the metrics page");
}
