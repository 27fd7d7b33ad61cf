"""The Python peer of the fleet benchmark: `kubectl rollout undo` of many Deployments across
many clusters with the official `kubernetes` client, in a thread pool, one ApiClient per
cluster (kubeconfig context). The same requests kubectl's rollbacker makes: GET the
Deployment, LIST its ReplicaSets by selector, PATCH the previous revision's template back.

    python bench/py_undo.py KUBECONFIG TARGETS_FILE WORKERS

TARGETS_FILE: one `context namespace deployment` per line. Exits 1 when any undo failed.
"""

import sys
from concurrent.futures import ThreadPoolExecutor

from kubernetes import client, config

REV = "deployment.kubernetes.io/revision"
SKIP = {"kubectl.kubernetes.io/last-applied-configuration", REV,
        "deployment.kubernetes.io/revision-history", "deployment.kubernetes.io/desired-replicas",
        "deployment.kubernetes.io/max-replicas", "deprecated.deployment.rollback.to"}


def undo(apps, ns, name):
    d = apps.read_namespaced_deployment(name, ns)
    sel = ",".join(f"{k}={v}" for k, v in sorted((d.spec.selector.match_labels or {}).items()))
    rss = apps.list_namespaced_replica_set(ns, label_selector=sel).items
    owned = [rs for rs in rss if any(o.uid == d.metadata.uid and o.controller
                                     for o in (rs.metadata.owner_references or []))]
    revs = sorted(owned, key=lambda rs: int((rs.metadata.annotations or {}).get(REV, "0")))
    if len(revs) < 2:
        raise RuntimeError(f"{ns}/{name}: no rollout history")
    prev = revs[-2]
    tmpl = apps.api_client.sanitize_for_serialization(prev.spec.template)
    tmpl.get("metadata", {}).get("labels", {}).pop("pod-template-hash", None)
    keep = {k: v for k, v in (d.metadata.annotations or {}).items() if k in SKIP}
    ann = {k: v for k, v in (prev.metadata.annotations or {}).items() if k not in SKIP}
    ann.update(keep)
    patch = [{"op": "replace", "path": "/spec/template", "value": tmpl},
             {"op": "replace", "path": "/metadata/annotations", "value": ann}]
    # A list body is sent as a JSON patch (application/json-patch+json), as kubectl sends it.
    apps.patch_namespaced_deployment(name, ns, patch)


def main():
    kubeconfig, targets_file, workers = sys.argv[1], sys.argv[2], int(sys.argv[3])
    targets = [line.split() for line in open(targets_file) if line.strip()]
    apis = {}
    for ctx in sorted({t[0] for t in targets}):
        cfg = client.Configuration()
        config.load_kube_config(config_file=kubeconfig, context=ctx, client_configuration=cfg)
        cfg.connection_pool_maxsize = workers  # urllib3 keeps 4 connections per host otherwise
        apis[ctx] = client.AppsV1Api(client.ApiClient(cfg))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(undo, apis[c], ns, d) for c, ns, d in targets]
        failed = [f.exception() for f in futures if f.exception() is not None]
    if failed:
        print(f"{len(failed)} of {len(targets)} undos failed; first: {failed[0]}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
