//! Kubernetes Lease locks against the simulator's Kubernetes API: a live holder keeps its lease
//! whatever its pid, host name or clock; a dead one is taken over only after its record stayed
//! unchanged for the lease's duration on the taker's clock; a lost lease stops the run's
//! mutations.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use rollbook::engine::{Engine, RunOptions};
use rollbook::providers::Settings;
use rollbook::providers::k8s::lease::{LeaseLocks, LeaseStore, lease_name, opener};
use rollbook::run::journal::RunStatus;
use rollbook::run::locks::{Holder, LockBackend, LockError};
use rollbook::sim::{Scenario, Sim, SimHandle};

use crate::support::write;

const WORLD: &str = r#"
[[k8s.deployments]]
context = "prod"
namespace = "shop"
name = "web"
replicas = 2
revisions = ["shop/web:1.4.0", "shop/web:1.5.0"]
"#;

const TARGET: &str = "k8s/prod/shop/web";

struct World {
    sim: SimHandle,
    settings: Settings,
    leases: Api<Lease>,
    _dir: tempfile::TempDir,
}

async fn world(lease_seconds: &str) -> World {
    let dir = tempfile::tempdir().unwrap();
    let scenario = Scenario::parse(&dir.path().join("w.toml"), WORLD).unwrap();
    let sim = Sim::start(scenario, None).await.unwrap();
    let yaml = sim.kubeconfig_yaml();
    let path = write(dir.path(), "kubeconfig", &yaml);
    let mut settings = Settings { kubeconfig: Some(path), ..Settings::default() };
    settings.env.insert("ROLLBOOK_LEASE_SECONDS".into(), lease_seconds.into());
    let kc = Kubeconfig::from_yaml(&yaml).unwrap();
    let options = KubeConfigOptions { context: Some("prod".into()), ..Default::default() };
    let config = kube::Config::from_custom_kubeconfig(kc, &options).await.unwrap();
    let leases = Api::namespaced(kube::Client::try_from(config).unwrap(), "shop");
    World { sim, settings, leases, _dir: dir }
}

fn store() -> LeaseStore {
    LeaseStore::parse("prod/shop").unwrap()
}

/// Starts `script` as a task of the test's runtime, its locks Leases in `prod/shop`, its state
/// in `dir`.
fn spawn_run_with_leases(
    w: &World,
    dir: &std::path::Path,
    script: &std::path::Path,
) -> tokio::task::JoinHandle<Result<rollbook::engine::RunReport, rollbook::engine::EngineError>> {
    let engine = Engine::new();
    let runbook = engine.load(script).unwrap();
    let mut opts = RunOptions::new(dir.join("state"));
    opts.settings = w.settings.clone();
    opts.locks = Some(opener(w.settings.clone(), store()));
    tokio::spawn(async move { engine.run(&runbook, &[], opts).await })
}

/// Runs a blocking lock call off the async runtime.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

fn micro(t: chrono::DateTime<chrono::Utc>) -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::from_microsecond(t.timestamp_micros()).unwrap())
}

/// A lease as another runner would write it, renewed (by its clock) at `renewed`.
fn foreign(renewed: chrono::DateTime<chrono::Utc>, seconds: i32) -> Lease {
    Lease {
        metadata: ObjectMeta { name: Some(lease_name(TARGET)), ..Default::default() },
        spec: Some(LeaseSpec {
            holder_identity: Some("run-x@elsewhere/1/0123456789abcdef".into()),
            lease_duration_seconds: Some(seconds),
            acquire_time: Some(micro(renewed)),
            renew_time: Some(micro(renewed)),
            lease_transitions: Some(0),
            ..Default::default()
        }),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_holder_with_the_same_host_and_a_pid_not_seen_here_keeps_its_lease() {
    let w = world("15").await;
    // A runner in another PID namespace of a machine with the same host name: its pid does
    // not exist in this one.
    let other = Holder { pid: 4_000_000, ..Holder::me("run-a") };
    let a = LeaseLocks::open(w.settings.clone(), store(), other).unwrap();
    let taken = blocking(move || {
        let r = a.acquire(TARGET).map(|t| t.is_some());
        (a, r)
    })
    .await;
    assert!(matches!(taken.1, Ok(false)), "{:?}", taken.1.err().map(|e| e.to_string()));
    let b = LeaseLocks::open(w.settings.clone(), store(), Holder::me("run-b")).unwrap();
    let r = blocking(move || b.acquire(TARGET)).await;
    match r {
        Err(LockError::Held { holder, .. }) => assert_eq!(holder.run_id, "run-a"),
        other => panic!("the live lease was taken: {:?}", other.map(|t| t.map(|t| t.previous.run_id))),
    }
    drop(taken.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_live_holder_whose_clock_is_behind_keeps_its_lease() {
    let w = world("1").await;
    let behind = chrono::Utc::now() - chrono::TimeDelta::hours(1);
    w.leases.create(&PostParams::default(), &foreign(behind, 1)).await.unwrap();
    // The holder renews (by its slow clock) every 200 ms.
    let api = w.leases.clone();
    let renewing = tokio::spawn(async move {
        let mut n = 0;
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            n += 1;
            if let Ok(mut l) = api.get(&lease_name(TARGET)).await {
                if let Some(s) = l.spec.as_mut() {
                    s.renew_time = Some(micro(behind + chrono::TimeDelta::milliseconds(200 * n)));
                }
                let _ = api.replace(&lease_name(TARGET), &PostParams::default(), &l).await;
            }
        }
    });
    let b = LeaseLocks::open(w.settings.clone(), store(), Holder::me("run-b")).unwrap();
    let r = blocking(move || b.acquire(TARGET)).await;
    renewing.abort();
    match r {
        Err(LockError::Held { holder, .. }) => assert_eq!(holder.run_id, "run-x"),
        other => panic!("a live lease was taken: {:?}", other.map(|t| t.map(|t| t.previous.run_id))),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_holders_lease_is_taken_over_after_it_stayed_unchanged_for_its_duration() {
    let w = world("1").await;
    let old = chrono::Utc::now() - chrono::TimeDelta::hours(1);
    w.leases.create(&PostParams::default(), &foreign(old, 1)).await.unwrap();
    let b = LeaseLocks::open(w.settings.clone(), store(), Holder::me("run-b")).unwrap();
    let began = Instant::now();
    let (b, r) = blocking(move || {
        let r = b.acquire(TARGET);
        (b, r)
    })
    .await;
    let taken = r.map_err(|e| e.to_string()).unwrap();
    assert_eq!(taken.map(|t| t.previous.run_id).as_deref(), Some("run-x"));
    assert!(began.elapsed() >= Duration::from_secs(1), "watched the record for its whole duration first");
    let now = w.leases.get(&lease_name(TARGET)).await.unwrap();
    let holder = now.spec.and_then(|s| s.holder_identity).unwrap_or_default();
    assert!(holder.starts_with("run-b@"), "{holder}");
    assert!(b.lost().is_none());
    drop(b);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_lease_is_reported_and_stops_further_mutations() {
    let w = world("1").await;
    let dir = tempfile::tempdir().unwrap();
    let script = write(
        dir.path(),
        "twice.rhai",
        r#"
k8s::scale(#{ context: "prod", namespace: "shop", deployment: "web", replicas: 3 });
wait_until(#{ timeout: "30s", interval: "100ms" }, || k8s::get(#{ context: "prod", namespace: "shop", deployment: "web" }).replicas == 9);
k8s::scale(#{ context: "prod", namespace: "shop", deployment: "web", replicas: 5 });
"#,
    );
    let run = spawn_run_with_leases(&w, dir.path(), &script);

    // Once the run holds the lease, another runner takes it (as a thief would, or as one that
    // wrongly judged it expired), then the script is let go on.
    let began = Instant::now();
    let name = lease_name(TARGET);
    loop {
        assert!(began.elapsed() < Duration::from_secs(20), "the run never took the lease");
        if run.is_finished() {
            let report = run.await.unwrap().map(|r| (r.status, r.error));
            panic!("the run ended before the lease was seen: {report:?}");
        }
        if let Ok(Some(l)) = w.leases.get_opt(&name).await
            && l.spec.as_ref().and_then(|s| s.holder_identity.as_deref()).is_some_and(|h| !h.is_empty())
        {
            let mut stolen = l.clone();
            if let Some(s) = stolen.spec.as_mut() {
                s.holder_identity = Some("thief@elsewhere/1/ffff".into());
            }
            w.leases.replace(&name, &PostParams::default(), &stolen).await.unwrap();
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Give the run's renewal a chance to notice before the script goes on.
    let lost_seen = Instant::now();
    while lost_seen.elapsed() < Duration::from_secs(2) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let kubectl_scale = std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(w.settings.kubeconfig.as_ref().unwrap())
        .args(["--context", "prod", "-n", "shop", "scale", "deployment/web", "--replicas=9"])
        .output()
        .expect("kubectl");
    assert!(kubectl_scale.status.success(), "{}", String::from_utf8_lossy(&kubectl_scale.stderr));
    let report = run.await.unwrap().unwrap();
    assert_ne!(report.status, RunStatus::Succeeded, "{:?}", report.error);
    let error = report.error.unwrap_or_default();
    assert!(error.contains("taken by another runner"), "{error}");
    assert_eq!(w.sim.resource_state(TARGET).unwrap()["replicas"], 9, "the second scale was not sent");
}

/// On one CPU the runtime has one worker. Taking the run's lease blocked that worker while the
/// lease was asked for, so an in-process simulator on the same runtime could not answer: the
/// run failed after 5 s with "no answer". The lease is taken and released off the runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_run_holding_leases_works_on_a_runtime_with_one_worker() {
    let w = world("15").await;
    let dir = tempfile::tempdir().unwrap();
    let script = write(
        dir.path(),
        "scale.rhai",
        r#"k8s::scale(#{ context: "prod", namespace: "shop", deployment: "web", replicas: 3 });"#,
    );
    let began = Instant::now();
    let report = spawn_run_with_leases(&w, dir.path(), &script).await.unwrap().unwrap();
    assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.error);
    assert!(began.elapsed() < Duration::from_secs(5), "waited for an answer: {:?}", began.elapsed());
    assert_eq!(w.sim.resource_state(TARGET).unwrap()["replicas"], 3);
    // Released at the end: the target's lease has no holder any more.
    let lease = w.leases.get(&lease_name(TARGET)).await.unwrap();
    let holder = lease.spec.and_then(|s| s.holder_identity).unwrap_or_default();
    assert!(holder.is_empty(), "still held by {holder}");
}
