//! Mistakes caught before the incident: `rollbook check` flags undeclared params, mutations that
//! can never be inside the declared scope, and (as a warning) mutations without a scope; `run`
//! refuses malformed or disjoint `--allow` patterns before anything happens.

use crate::support::{Rollbook, World};

fn check(script: &str) -> (Option<i32>, String) {
    let out = Rollbook::new().command(&["check"]).script_named("b.rhai", script).run();
    (out.code(), out.both())
}

#[test]
fn check_flags_an_undeclared_param_with_did_you_mean() {
    let (code, text) = check(
        r#"const RUNBOOK = #{ name: "x", params: #{ deployment: #{ type: "string" } }, scope: ["k8s/*/*/*"] };
let d = params.deploymnet;
"#,
    );
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("`params.deploymnet` is not a declared param"), "{text}");
    assert!(text.contains("did you mean `params.deployment`?"), "{text}");
}

#[test]
fn check_refuses_a_probe_that_is_not_a_read() {
    let (code, text) = check(
        r#"const RUNBOOK = #{ name: "x" };
let r = health::http(#{ url: "https://shop.example.com/admin", method: "DELETE" });
let ok = health::http(#{ url: "https://shop.example.com/healthz", method: "head" });
"#,
    );
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("probes with GET or HEAD only, not `DELETE`"), "{text}");
    assert!(!text.contains("not `head`"), "HEAD in any case is a read: {text}");
}

#[test]
fn check_accepts_declared_params_and_map_methods() {
    let (code, text) = check(
        r#"const RUNBOOK = #{ name: "x", params: #{ deployment: #{ type: "string" } } };
let d = params.deployment;
let n = params.keys();
"#,
    );
    assert_eq!(code, Some(0), "{text}");
}

#[test]
fn check_knows_rhais_own_functions_called_as_functions() {
    // `take(list)`, `max(a, b)`, `to_string(x)`: Rhai's own, and run as they are; `check` read
    // none of Rhai's signatures and called each of them unknown.
    let (code, text) = check(
        r#"const RUNBOOK = #{ name: "x" };
let list = [1, 2, 3];
for x in take(list) { info(to_string(max(x, 2))); }
let n = tak(list);
"#,
    );
    assert_eq!(code, Some(2), "{text}");
    for known in ["take", "max", "to_string"] {
        assert!(!text.contains(&format!("unknown function `{known}`")), "{text}");
    }
    assert!(text.contains("unknown function `tak`"), "a misspelling is still caught: {text}");
}

#[test]
fn check_flags_a_literal_target_that_can_never_be_in_scope() {
    let (code, text) = check(
        r#"const RUNBOOK = #{ name: "x", scope: ["k8s/prod/shop/*"] };
k8s::undo(#{ context: "staging", namespace: "shop", deployment: "web" });
"#,
    );
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("k8s/staging/shop/web"), "{text}");
    assert!(text.contains("can never be inside the runbook's scope"), "{text}");
}

#[test]
fn check_accepts_computed_targets_that_may_be_in_scope() {
    let (code, text) = check(
        r#"const RUNBOOK = #{ name: "x", params: #{ ns: #{ type: "string" } }, scope: ["k8s/prod/shop/*", "appservice/rg-shop/*"] };
k8s::undo(#{ context: "prod", namespace: params.ns, deployment: "web" });
k8s::scale(#{ namespace: "shop", deployment: "web", replicas: 3 });
appservice::swap(#{ group: "rg-shop", site: "shop-web", slot: "staging" });
"#,
    );
    assert_eq!(code, Some(0), "{text}");
}

#[test]
fn check_warns_when_a_runbook_mutates_without_a_scope() {
    let (code, text) = check(
        r#"const RUNBOOK = #{ name: "x" };
k8s::undo(#{ context: "prod", namespace: "shop", deployment: "web" });
"#,
    );
    assert_eq!(code, Some(0), "a warning is not a failure: {text}");
    assert!(text.contains("warning:"), "{text}");
    assert!(text.contains("declares no `scope`"), "{text}");
    // Through a stdlib module too.
    let (code, text) = check(
        r#"import "std/appservice" as slots;
slots::recover(#{ group: "g", site: "s", slot: "staging", health_url: "https://x" });
"#,
    );
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("declares no `scope`") && text.contains("appservice::swap"), "{text}");
}

const STUCK: &str = r#"
name = "web 1.5.0 is stuck"
[[k8s.deployments]]
context = "prod"
namespace = "shop"
name = "web"
replicas = 3
revisions = ["shop/web:1.4.0", "shop/web:1.5.0"]
broken = ["shop/web:1.5.0"]
"#;

fn run_with_allow(allow: &str) -> (Option<i32>, String, usize) {
    let out = Rollbook::new()
        .script_named(
            "b.rhai",
            r#"const RUNBOOK = #{ name: "x", scope: ["k8s/prod/*/*"] };
info("started");
let k = #{ context: "prod", namespace: "shop", deployment: "web" };
k8s::status(k + #{ timeout: "1s" });
stage("undo", || k8s::undo(k));
"#,
        )
        .world(World::toml(STUCK))
        .sandbox()
        .allow(allow)
        .run();
    // Sandbox runs keep their journals under `<state>/sandbox/runs`; both places are counted.
    (out.code(), out.both(), out.journals().len())
}

#[test]
fn a_malformed_allow_is_refused_before_anything_happens() {
    for bad in ["k8s/prod//web", "", "k8s/prod/web", "k9s/prod/shop/web", "k8s/prod/shop/web x"] {
        let (code, text, journals) = run_with_allow(bad);
        assert_eq!(code, Some(2), "--allow `{bad}`: {text}");
        assert!(text.contains("--allow"), "--allow `{bad}`: {text}");
        assert!(!text.contains("started"), "nothing ran: {text}");
        assert_eq!(journals, 0, "no run was started for --allow `{bad}`");
    }
}

#[test]
fn an_allow_disjoint_from_the_scope_is_refused_before_anything_happens() {
    let (code, text, journals) = run_with_allow("k8s/staging/shop/web");
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("can never match anything inside the runbook's scope"), "{text}");
    assert!(!text.contains("started"), "{text}");
    assert_eq!(journals, 0);
}

#[test]
fn an_allow_inside_the_scope_lets_the_run_go() {
    let (code, text, journals) = run_with_allow("k8s/prod/shop/*");
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(journals, 1);
}

#[test]
fn check_flags_unknown_option_keys_of_every_built_in_that_takes_options() {
    for (call, key, better) in [
        (r#"approve("go on?", #{ timout: "5m" })"#, "timout", "timeout"),
        (r#"retry(#{ atempts: 3 }, || 1)"#, "atempts", "attempts"),
        (r#"wait_until(#{ intervl: "1s" }, || true)"#, "intervl", "interval"),
        (r#"parallel([1, 2], |x| x, #{ concurency: 2 })"#, "concurency", "concurrency"),
    ] {
        let name = call.split('(').next().unwrap_or_default();
        let (code, text) = check(&format!("const RUNBOOK = #{{ name: \"x\" }};\nlet r = {call};\n"));
        assert_eq!(code, Some(2), "{call}: {text}");
        assert!(text.contains(&format!("`{name}` has no key `{key}`")), "{call}: {text}");
        assert!(text.contains(&format!("did you mean `{better}`?")), "{call}: {text}");
    }
}
