//! `/version` and API discovery, aggregated (v2 / v2beta1) or legacy as the `Accept` header asks.

use serde_json::{Value, json};

/// What `/version` answers: minor 32, so the kubectl dispatcher runs kubectl v1.32.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "32",
        "gitVersion": "v1.32.4",
        "gitCommit": "59526cd4867447956156ae3a602fcbac10a2c335",
        "gitTreeState": "clean",
        "buildDate": "2025-04-22T16:02:27Z",
        "goVersion": "go1.23.6",
        "compiler": "gc",
        "platform": "linux/amd64"
    })
}

/// The aggregated discovery version a client accepts, read from its `Accept` header.
pub fn aggregated_version(accept: &str) -> Option<&'static str> {
    let mut best = None;
    for part in accept.split(',') {
        let params: Vec<&str> = part.split(';').map(str::trim).collect();
        let has = |p: &str| params.contains(&p);
        if has("g=apidiscovery.k8s.io") && has("as=APIGroupDiscoveryList") {
            if has("v=v2") {
                return Some("v2");
            }
            if has("v=v2beta1") {
                best = Some("v2beta1");
            }
        }
    }
    best
}

/// The `Content-Type` of an aggregated discovery answer.
pub fn aggregated_content_type(v: &str) -> String {
    format!("application/json;g=apidiscovery.k8s.io;v={v};as=APIGroupDiscoveryList")
}

struct Res {
    name: &'static str,
    singular: &'static str,
    kind: &'static str,
    short: &'static [&'static str],
    subresources: &'static [(&'static str, &'static str, &'static str, &'static str)],
}

const VERBS: &[&str] = &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];

fn groups() -> Vec<(&'static str, &'static str, Vec<Res>)> {
    let mut all = vec![
        (
            "apps",
            "v1",
            vec![
                Res {
                    name: "deployments",
                    singular: "deployment",
                    kind: "Deployment",
                    short: &["deploy"],
                    subresources: &[
                        ("scale", "autoscaling", "v1", "Scale"),
                        ("status", "apps", "v1", "Deployment"),
                    ],
                },
                Res {
                    name: "replicasets",
                    singular: "replicaset",
                    kind: "ReplicaSet",
                    short: &["rs"],
                    subresources: &[
                        ("scale", "autoscaling", "v1", "Scale"),
                        ("status", "apps", "v1", "ReplicaSet"),
                    ],
                },
            ],
        ),
        (
            "coordination.k8s.io",
            "v1",
            vec![Res { name: "leases", singular: "lease", kind: "Lease", short: &[], subresources: &[] }],
        ),
    ];
    // The GitOps tools' custom resources (see `super::gitops`).
    for g in super::gitops::GitopsKind::ALL {
        all.push((
            g.group(),
            g.version(),
            vec![Res {
                name: g.plural(),
                singular: g.singular(),
                kind: g.name(),
                short: g.short(),
                subresources: &[],
            }],
        ));
    }
    all
}

/// Legacy `/api`.
pub fn legacy_api() -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]})
}

/// The core resources served: (resource, singular, kind, namespaced, verbs, short names).
type CoreRes =
    (&'static str, &'static str, &'static str, bool, &'static [&'static str], &'static [&'static str]);

const READ: &[&str] = &["get", "list"];
const STORED: &[&str] = &["create", "delete", "get", "list"];

fn core_resources() -> Vec<CoreRes> {
    vec![
        ("configmaps", "configmap", "ConfigMap", true, STORED, &["cm"]),
        ("events", "event", "Event", true, READ, &["ev"]),
        ("namespaces", "namespace", "Namespace", false, STORED, &["ns"]),
        ("pods", "pod", "Pod", true, READ, &["po"]),
        ("secrets", "secret", "Secret", true, STORED, &[]),
        ("services", "service", "Service", true, STORED, &["svc"]),
    ]
}

/// Legacy `/api/v1`: the core resources the simulator serves.
pub fn legacy_core_v1() -> Value {
    let mut resources = Vec::new();
    for (name, singular, kind, namespaced, verbs, short) in core_resources() {
        let mut r = json!({"name": name, "singularName": singular, "namespaced": namespaced, "kind": kind,
            "verbs": verbs, "shortNames": short});
        if matches!(name, "pods" | "services") {
            r["categories"] = json!(["all"]);
        }
        resources.push(r);
        if name == "pods" {
            resources.push(json!({"name": "pods/log", "singularName": "", "namespaced": true,
                "kind": "Pod", "verbs": ["get"]}));
        }
    }
    json!({"kind": "APIResourceList", "groupVersion": "v1", "resources": resources})
}

/// Legacy `/apis`.
pub fn legacy_apis() -> Value {
    let groups: Vec<Value> = groups()
        .iter()
        .map(|(g, v, _)| {
            let gv = json!({"groupVersion": format!("{g}/{v}"), "version": v});
            json!({"name": g, "versions": [gv.clone()], "preferredVersion": gv})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// Legacy `/apis/<group>`.
pub fn legacy_group(group: &str) -> Option<Value> {
    groups().into_iter().find(|(g, _, _)| *g == group).map(|(g, v, _)| {
        let gv = json!({"groupVersion": format!("{g}/{v}"), "version": v});
        json!({"kind": "APIGroup", "apiVersion": "v1", "name": g, "versions": [gv.clone()], "preferredVersion": gv})
    })
}

/// Legacy `/apis/<group>/<version>`.
pub fn legacy_group_version(group: &str, version: &str) -> Option<Value> {
    let (g, v, res) = groups().into_iter().find(|(g, v, _)| *g == group && *v == version)?;
    let mut resources = Vec::new();
    for r in &res {
        resources.push(json!({"name": r.name, "singularName": r.singular, "namespaced": true,
            "kind": r.kind, "verbs": VERBS, "shortNames": r.short, "categories": ["all"]}));
        for (sub, sg, sv, sk) in r.subresources {
            resources.push(json!({"name": format!("{}/{sub}", r.name), "singularName": "",
                "namespaced": true, "group": sg, "version": sv, "kind": sk,
                "verbs": ["get", "patch", "update"]}));
        }
    }
    Some(json!({"kind": "APIResourceList", "apiVersion": "v1",
        "groupVersion": format!("{g}/{v}"), "resources": resources}))
}

/// Aggregated `/api` (core group, empty name).
pub fn aggregated_api(v: &str) -> Value {
    let resources: Vec<Value> = core_resources()
        .into_iter()
        .map(|(name, singular, kind, namespaced, verbs, short)| {
            let mut r = json!({"resource": name, "responseKind": {"group": "", "version": "v1", "kind": kind},
                "scope": if namespaced { "Namespaced" } else { "Cluster" }, "singularResource": singular,
                "shortNames": short, "verbs": verbs});
            if matches!(name, "pods" | "services") {
                r["categories"] = json!(["all"]);
            }
            if name == "pods" {
                r["subresources"] = json!([{"subresource": "log",
                    "responseKind": {"group": "", "version": "v1", "kind": "Pod"}, "verbs": ["get"]}]);
            }
            r
        })
        .collect();
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": format!("apidiscovery.k8s.io/{v}"),
        "metadata": {}, "items": [{"metadata": {"name": ""},
            "versions": [{"version": "v1", "freshness": "Current", "resources": resources}]}]})
}

/// Aggregated `/apis`.
pub fn aggregated_apis(v: &str) -> Value {
    let items: Vec<Value> = groups()
        .iter()
        .map(|(g, ver, res)| {
            let resources: Vec<Value> = res
                .iter()
                .map(|r| {
                    let subs: Vec<Value> = r
                        .subresources
                        .iter()
                        .map(|(sub, sg, sv, sk)| {
                            json!({"subresource": sub,
                                "responseKind": {"group": sg, "version": sv, "kind": sk},
                                "verbs": ["get", "patch", "update"]})
                        })
                        .collect();
                    json!({"resource": r.name,
                        "responseKind": {"group": "", "version": "", "kind": r.kind},
                        "scope": "Namespaced", "singularResource": r.singular,
                        "shortNames": r.short, "categories": ["all"], "verbs": VERBS,
                        "subresources": subs})
                })
                .collect();
            json!({"metadata": {"name": g}, "versions": [{"version": ver,
                "resources": resources, "freshness": "Current"}]})
        })
        .collect();
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": format!("apidiscovery.k8s.io/{v}"),
        "metadata": {}, "items": items})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_header_picks_the_discovery_format() {
        let kubectl_132 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(aggregated_version(kubectl_132), Some("v2"));
        let kubectl_129 =
            "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(aggregated_version(kubectl_129), Some("v2beta1"));
        assert_eq!(aggregated_version("application/json, */*"), None);
    }
}
