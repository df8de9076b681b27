#!/usr/bin/env python3
"""Checks of deploy/ that no schema validator makes (scripts/check-deploy.sh runs them).

  check_deploy.py k8s RENDERED.yaml [SECRETS.yaml]
      Cross-object checks of one rendered overlay: MASTER_COUNT equals the master
      StatefulSet's replicas and every master id has a certificate mounted; every Service
      selector selects a workload; every probe and Service port names a container port;
      the ServiceMonitor (no schema here: a CRD) selects Services that have its port; every
      Secret the pods mount, with every key they name, exists in SECRETS.yaml (the output of
      deploy/kubernetes/make-secrets.sh) when given.
  check_deploy.py dashboard-rules DASHBOARD.json OUT.yml
      Every PromQL expression of the dashboard as a recording rule (Grafana variables
      replaced), for `promtool check rules` to parse.
  check_deploy.py metrics --source DIR... [--exported FILE] FILE...
      Every metric name in every PromQL expression of FILE (Prometheus rule files, Grafana
      dashboards) is one the binaries export: registered in the Rust sources under DIR (a
      histogram also as NAME_bucket/_sum/_count), and, with --exported, present in FILE (text
      scraped from /metrics). Prints the names used; fails on any unknown one.
"""
import json
import re
import sys

import yaml


def fail(msg):
    print(f"check_deploy: {msg}", file=sys.stderr)
    sys.exit(1)


# ---- Kubernetes -------------------------------------------------------------------------------


def docs(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def pod_spec(obj):
    kind = obj["kind"]
    if kind in ("StatefulSet", "Deployment"):
        return obj["spec"]["template"]
    if kind == "Job":
        return obj["spec"]["template"]
    return None


def check_k8s(rendered, secrets_path=None):
    objs = docs(rendered)
    by_kind = {}
    for o in objs:
        by_kind.setdefault(o["kind"], []).append(o)
    problems = []
    cms = {o["metadata"]["name"]: o.get("data", {}) for o in by_kind.get("ConfigMap", [])}

    def cm_named(prefix):
        hits = [v for k, v in cms.items() if k == prefix or re.fullmatch(re.escape(prefix) + r"-[a-z0-9]{10}", k)]
        if len(hits) != 1:
            problems.append(f"expected one ConfigMap {prefix}, found {len(hits)}")
            return {}
        return hits[0]

    cluster = cm_named("anode-cluster")
    masters = [o for o in by_kind.get("StatefulSet", []) if o["metadata"]["name"] == "anode-master"]
    if len(masters) != 1:
        problems.append("no anode-master StatefulSet")
    else:
        m = masters[0]
        replicas = m["spec"]["replicas"]
        if str(replicas) != cluster.get("MASTER_COUNT"):
            problems.append(f"anode-master replicas {replicas} but MASTER_COUNT {cluster.get('MASTER_COUNT')}")
        tls = [v for v in m["spec"]["template"]["spec"]["volumes"] if v["name"] == "tls"][0]
        paths = {i["path"] for i in tls["secret"]["items"]}
        for i in range(1, replicas + 1):
            for f in ("ca.crt", "node.crt", "node.key"):
                if f"master-{i}/{f}" not in paths:
                    problems.append(f"master {i} has no {f} mounted (tls items)")
        if m["spec"].get("podManagementPolicy") != "Parallel":
            problems.append("anode-master must start its members in parallel")
    # Services select pods, and name container ports.
    workloads = [o for o in objs if pod_spec(o) and o["kind"] != "Job"]
    for svc in by_kind.get("Service", []):
        sel = svc["spec"].get("selector", {})
        hits = [w for w in workloads if sel.items() <= pod_spec(w)["metadata"]["labels"].items()]
        if not hits:
            problems.append(f"Service {svc['metadata']['name']} selects no workload")
        for w in hits:
            names = {p["name"] for c in pod_spec(w)["spec"]["containers"] for p in c.get("ports", [])}
            for p in svc["spec"]["ports"]:
                if p.get("targetPort") not in names:
                    problems.append(f"Service {svc['metadata']['name']} port {p['name']} targets {p.get('targetPort')}, not a port of {w['metadata']['name']}")
    for w in workloads + by_kind.get("Job", []):
        spec = pod_spec(w)["spec"]
        vols = {v["name"] for v in spec.get("volumes", [])}
        vols |= {t["metadata"]["name"] for t in w["spec"].get("volumeClaimTemplates", [])}
        for c in spec.get("initContainers", []) + spec["containers"]:
            names = {p["name"] for p in c.get("ports", [])}
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                pr = c.get(probe)
                if pr:
                    g = pr["httpGet"]
                    if g["path"] != "/health" or g["port"] not in names:
                        problems.append(f"{w['metadata']['name']}/{c['name']} {probe} is not /health on a named port")
            for vm in c.get("volumeMounts", []):
                if vm["name"] not in vols:
                    problems.append(f"{w['metadata']['name']}/{c['name']} mounts unknown volume {vm['name']}")
    for hpa in by_kind.get("HorizontalPodAutoscaler", []):
        ref = hpa["spec"]["scaleTargetRef"]
        if not any(o["kind"] == ref["kind"] and o["metadata"]["name"] == ref["name"] for o in objs):
            problems.append(f"HPA {hpa['metadata']['name']} scales a missing {ref['kind']} {ref['name']}")
    for pdb in by_kind.get("PodDisruptionBudget", []):
        sel = pdb["spec"]["selector"]["matchLabels"]
        if not any(sel.items() <= pod_spec(w)["metadata"]["labels"].items() for w in workloads):
            problems.append(f"PDB {pdb['metadata']['name']} selects no workload")
    for sm in by_kind.get("ServiceMonitor", []):
        if sm["apiVersion"] != "monitoring.coreos.com/v1":
            problems.append(f"ServiceMonitor apiVersion {sm['apiVersion']}")
        sel = sm["spec"]["selector"]["matchLabels"]
        svcs = [s for s in by_kind.get("Service", []) if sel.items() <= s["metadata"].get("labels", {}).items()]
        if len(svcs) < 3:
            problems.append(f"ServiceMonitor selects {len(svcs)} Services, want master, chunkserver, gateway")
        for ep in sm["spec"]["endpoints"]:
            if set(ep) - {"port", "path", "interval", "relabelings", "scrapeTimeout", "scheme"}:
                problems.append(f"ServiceMonitor endpoint has unexpected fields {sorted(set(ep))}")
            for s in svcs:
                if ep["port"] not in {p["name"] for p in s["spec"]["ports"]}:
                    problems.append(f"ServiceMonitor port {ep['port']} not on Service {s['metadata']['name']}")
    if secrets_path:
        secrets = {o["metadata"]["name"]: set(o.get("data", {})) for o in docs(secrets_path) if o["kind"] == "Secret"}
        for w in workloads + by_kind.get("Job", []):
            spec = pod_spec(w)["spec"]
            refs = [(v["secret"]["secretName"], [i["key"] for i in v["secret"].get("items", [])] or ["ca.crt", "node.crt", "node.key"])
                    for v in spec.get("volumes", []) if "secret" in v]
            for c in spec["containers"]:
                for e in c.get("envFrom", []):
                    if "secretRef" in e:
                        refs.append((e["secretRef"]["name"], ["ANODE_ACCESS_KEY", "ANODE_SECRET_KEY"]))
            for name, keys in refs:
                if name not in secrets:
                    problems.append(f"{w['metadata']['name']} mounts Secret {name}, which make-secrets.sh does not make")
                    continue
                for k in keys:
                    if k not in secrets[name]:
                        problems.append(f"{w['metadata']['name']} needs key {k} of Secret {name}, missing")
    if problems:
        fail(f"{rendered}:\n  " + "\n  ".join(problems))
    print(f"check_deploy: {rendered}: {len(objs)} objects consistent")


# ---- PromQL metric names ---------------------------------------------------------------------

KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "offset", "bool", "inf", "nan", "atan2",
    # Aggregation operators (also written `sum by (x) (...)`, so not always before a paren).
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile",
}
# Series Prometheus makes itself (scrape health, alert state), not the binaries.
PROMETHEUS_OWN = {"up", "ALERTS", "ALERTS_FOR_STATE", "scrape_duration_seconds"}


def registered_names(dirs):
    import pathlib

    names, histograms = set(), set()
    for d in dirs:
        for p in pathlib.Path(d).rglob("*.rs"):
            text = p.read_text()
            for m in re.finditer(r'"(anode_[a-z0-9_]+)"', text):
                names.add(m.group(1))
            for m in re.finditer(r'register_histogram(?:_vec)?!\(\s*"(anode_[a-z0-9_]+)"', text):
                histograms.add(m.group(1))
    for h in histograms:
        names |= {h + "_bucket", h + "_sum", h + "_count"}
    return names


def exported_names(path):
    names = set()
    for line in open(path):
        if line.startswith("#") or not line.strip():
            continue
        names.add(re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0))
    return names


def metric_names(expr):
    """Metric names of a PromQL expression: identifiers that are not functions, keywords,
    label names (inside {...} or the parentheses after by/without/on/ignoring/group_*), or in
    strings, durations or numbers."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)
    s = re.sub(r"\[[^\]]*\]", "", s)  # range and subquery durations
    s = re.sub(r"\{[^}]*\}", "{}", s)  # label matchers
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", r"\1()", s)
    s = re.sub(r"\boffset\s+\w+", "", s)
    s = re.sub(r"\$\{?\w+\}?", "", s)  # Grafana variables ($__rate_interval, ${datasource})
    out = set()
    for m in re.finditer(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?", s):
        word, call = m.group(1), m.group(2)
        if call or word in KEYWORDS or re.fullmatch(r"\d.*", word):
            continue
        if re.fullmatch(r"[0-9]+(ms|s|m|h|d|w|y)", word):
            continue
        out.add(word)
    return out


def exprs_of(path):
    text = open(path).read()
    if path.endswith(".json"):
        found = []

        def walk(x):
            if isinstance(x, dict):
                for k, v in x.items():
                    if k == "expr" and isinstance(v, str):
                        found.append(v)
                    else:
                        walk(v)
            elif isinstance(x, list):
                for v in x:
                    walk(v)

        dash = json.loads(text)
        walk(dash.get("panels", []))
        # Query variables: `label_values(SELECTOR, label)` names a metric in SELECTOR.
        for v in dash.get("templating", {}).get("list", []):
            if v.get("type") == "query":
                q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
                m = re.fullmatch(r"\s*label_values\((.*),\s*\w+\s*\)\s*", q)
                found.append(m.group(1) if m else q)
        return found
    doc = yaml.safe_load(text)
    return [r["expr"] for g in doc["groups"] for r in g["rules"]]


def check_metrics(files, sources, exported=None):
    known = registered_names(sources)
    live = exported_names(exported) if exported else None
    used, problems = set(), []
    for f in files:
        exprs = exprs_of(f)
        if not exprs:
            problems.append(f"{f}: no PromQL expressions found")
        for e in exprs:
            names = metric_names(e)
            if not names:
                problems.append(f"{f}: no metric in {e!r}")
            for n in names:
                used.add(n)
                if n in PROMETHEUS_OWN:
                    continue
                if n not in known:
                    problems.append(f"{f}: {n} is not a metric the binaries register (in {e!r})")
                elif live is not None and n not in live:
                    problems.append(f"{f}: {n} is registered but not in the scraped {exported}")
    if problems:
        fail("\n  ".join(["unknown metrics:"] + problems))
    print(f"check_deploy: {len(files)} files use {len(used)} metric names, all exported: {' '.join(sorted(used))}")


def dashboard_rules(dashboard, out):
    rules = []
    for i, e in enumerate(exprs_of(dashboard)):
        e = e.replace("$__rate_interval", "1m").replace("${op}", ".*").replace("$op", ".*")
        if "$" in e:
            fail(f"{dashboard}: unknown Grafana variable in {e!r}")
        rules.append({"record": f"anode:dashboard_expr_{i}", "expr": e})
    with open(out, "w") as f:
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, f)
    print(f"check_deploy: {len(rules)} dashboard expressions in {out}")


def main(argv):
    if len(argv) == 3 and argv[0] == "dashboard-rules":
        dashboard_rules(argv[1], argv[2])
    elif len(argv) >= 2 and argv[0] == "k8s":
        check_k8s(argv[1], argv[2] if len(argv) > 2 else None)
    elif argv and argv[0] == "metrics":
        args, sources, exported, files = argv[1:], [], None, []
        i = 0
        while i < len(args):
            if args[i] == "--source":
                sources.append(args[i + 1]); i += 2
            elif args[i] == "--exported":
                exported = args[i + 1]; i += 2
            else:
                files.append(args[i]); i += 1
        if not sources or not files:
            fail("metrics needs --source DIR and files")
        check_metrics(files, sources, exported)
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main(sys.argv[1:])
