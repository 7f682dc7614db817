"""deploy/ checked statically: no Docker engine, Kubernetes cluster or AWS account is
available here, so these tests parse every file and check that it agrees with sealtrail's
Settings, CLI and metrics. External checkers run when installed: promtool (Prometheus
rules and config), terraform (fmt), kubectl (kustomize build)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from helpers.paths import REPO

from sealtrail.cli.main import build_parser
from sealtrail.config import Settings, load_settings

ROOT = REPO
DEPLOY = ROOT / "deploy"
FIELDS = set(Settings.__dataclass_fields__)
METRIC = re.compile(r"\bsealtrail_[a-z_]+\b")


def compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((DEPLOY / "compose" / "docker-compose.yml").read_text())
    return doc


def k8s_docs() -> list[dict[str, Any]]:
    docs = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def sealtrail_env(env: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in env.items() if k.startswith("SEALTRAIL_")}


def check_settings_env(env: dict[str, str], where: str) -> Settings:
    unknown = {k for k in env if k.removeprefix("SEALTRAIL_").lower() not in FIELDS}
    assert not unknown, f"{where}: {sorted(unknown)} are not sealtrail settings"
    return load_settings(env=env)


def documented_metrics() -> set[str]:
    return set(METRIC.findall((ROOT / "docs" / "operations.md").read_text()))


def test_compose_services_have_image_and_command() -> None:
    """Every compose service names an image and a command (or an entrypoint); sealtrail
    services run real subcommands of the CLI."""
    services = compose()["services"]
    assert {"kafka", "registry", "minio", "sealer", "archiver", "monitor", "prometheus",
            "grafana"} <= set(services)
    parser = build_parser()
    for name, svc in services.items():
        assert svc.get("image"), f"service {name} has no image"
        assert svc.get("command") or svc.get("entrypoint"), f"service {name} has no command"
        if svc["image"].startswith("sealtrail:") and "entrypoint" not in svc:
            parser.parse_args(svc["command"])  # exits on an unknown subcommand


def test_compose_env_and_ports_agree_with_settings() -> None:
    """SEALTRAIL_* variables in compose are real settings with valid values, and the
    bootstrap, registry, S3 and metrics ports they name are the ones the services use."""
    doc = compose()
    services = doc["services"]
    for name, svc in services.items():
        env = sealtrail_env(svc.get("environment") or {})
        if not env:
            continue
        s = check_settings_env(env, f"compose service {name}")
        host, port = s.bootstrap.split(":")
        kafka = services[host]["environment"]
        assert f"PLAINTEXT://{host}:{port}" in kafka["KAFKA_ADVERTISED_LISTENERS"]
        reg = urlsplit(s.registry_url)
        assert str(reg.port) == services[reg.hostname]["environment"]["KARAPACE_PORT"]
        s3 = urlsplit(s.s3_endpoint_url)
        assert any(p.startswith(f"{s3.port}:") for p in services[s3.hostname]["ports"])
        assert s.archive.startswith("s3://sealtrail-archive/")
        if svc.get("command", [""])[0] not in ("seal", "archive", "monitor"):
            continue  # a one-shot job (topic creation)
        assert str(s.metrics_port) in svc["expose"], f"{name} does not expose metrics"
        assert s.metrics_host == "0.0.0.0"
        health = svc.get("healthcheck", {}).get("test", [])
        if health:
            assert f":{s.metrics_port}/healthz" in " ".join(health)
    init = " ".join(services["minio-init"]["command"])
    assert "--with-lock" in init and "COMPLIANCE" in init


def test_prometheus_scrapes_the_metrics_port() -> None:
    """Prometheus scrapes each sealtrail process on the port compose gives it."""
    prom = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    services = compose()["services"]
    jobs = {j["job_name"]: j for j in prom["scrape_configs"]}
    for svc in ("sealer", "archiver", "monitor"):
        port = int(services[svc]["environment"]["SEALTRAIL_METRICS_PORT"])
        job = jobs[f"sealtrail-{svc}"]
        targets = [t for c in job.get("static_configs", []) for t in c["targets"]]
        ports = [c["port"] for c in job.get("dns_sd_configs", [])]
        assert f"{svc}:{port}" in targets or port in ports
    mounted = " ".join(services["prometheus"]["volumes"])
    for rule_file in prom["rule_files"]:
        assert f":{rule_file}" in mounted


def test_alert_rules_are_well_formed() -> None:
    """Alert rules have a name, an expression, labels and a summary, and use only metrics
    that docs/operations.md documents; promtool checks them when it is installed."""
    path = DEPLOY / "prometheus" / "alerts.yml"
    doc = yaml.safe_load(path.read_text())
    documented = documented_metrics()
    names = set()
    for group in doc["groups"]:
        assert group["name"] and group["rules"]
        for rule in group["rules"]:
            assert rule["alert"] not in names
            names.add(rule["alert"])
            assert rule["expr"] and rule["labels"]["severity"] in ("warning", "critical")
            assert rule["annotations"]["summary"]
            if "for" in rule:
                assert re.fullmatch(r"\d+[smhd]", rule["for"])
            assert rule["expr"].count("(") == rule["expr"].count(")")
            used = {m.removesuffix("_bucket") for m in METRIC.findall(rule["expr"])}
            assert used <= documented, f"{rule['alert']}: undocumented {used - documented}"
    promtool = os.environ.get("PROMTOOL") or shutil.which("promtool")
    if promtool:
        out = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True,
                             text=True)
        assert out.returncode == 0, out.stdout + out.stderr
        out = subprocess.run([promtool, "check", "config", "--syntax-only",
                              str(DEPLOY / "prometheus" / "prometheus.yml")],
                             capture_output=True, text=True)
        assert out.returncode == 0, out.stdout + out.stderr


def test_grafana_dashboard_queries_documented_metrics() -> None:
    """The provisioned dashboard parses and every panel queries documented metrics."""
    dash = json.loads((DEPLOY / "grafana" / "dashboards" / "sealtrail.json").read_text())
    documented = documented_metrics()
    assert dash["uid"] and dash["panels"]
    for panel in dash["panels"]:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            used = {m.removesuffix("_bucket") for m in METRIC.findall(target["expr"])}
            assert used and used <= documented, f"{panel['title']}: {used - documented}"
    provider = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "dashboards" / "sealtrail.yml").read_text())
    mounted = " ".join(compose()["services"]["grafana"]["volumes"])
    assert f":{provider['providers'][0]['options']['path']}:" in mounted


def test_documented_metrics_exist_in_code() -> None:
    """Every metric docs/operations.md lists is defined somewhere in sealtrail's code."""
    code = "\n".join(p.read_text() for p in (ROOT / "sealtrail").rglob("*.py"))
    missing = {m for m in documented_metrics()
               if m.removesuffix("_total") not in code and m not in code}
    assert not missing, f"documented but not defined: {sorted(missing)}"


def test_kubernetes_deployments_mount_config_and_probe_health() -> None:
    """Sealer, archiver and monitor Deployments take config and secrets, run real
    subcommands, and point liveness/readiness probes at /healthz and /readyz on the
    metrics port that the ConfigMap sets."""
    docs = k8s_docs()
    config = next(d for d in docs if d["kind"] == "ConfigMap")["data"]
    s = check_settings_env(sealtrail_env(config), "ConfigMap")
    secret = next(d for d in docs if d["kind"] == "Secret")
    check_settings_env(sealtrail_env(secret["stringData"]), "Secret")
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    assert set(deployments) == {"sealtrail-sealer", "sealtrail-archiver", "sealtrail-monitor"}
    parser = build_parser()
    for dep in deployments.values():
        pod = dep["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["image"] and container["args"]
        parser.parse_args(container["args"])
        refs = {next(iter(ref.values()))["name"] for ref in container["envFrom"]}
        assert refs == {"sealtrail-config", "sealtrail-registry"}
        port = next(p for p in container["ports"] if p["name"] == "metrics")
        assert port["containerPort"] == s.metrics_port
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert str(s.keys) in mounts
        assert pod["securityContext"]["runAsNonRoot"] is True
        annotations = dep["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/port"] == str(s.metrics_port)
    kubectl = shutil.which("kubectl")
    if kubectl:
        out = subprocess.run([kubectl, "kustomize", str(DEPLOY / "k8s")], capture_output=True,
                             text=True)
        assert out.returncode == 0, out.stderr
        assert out.stdout.count("kind: Deployment") == 3


def test_the_witness_runs_on_a_schedule_with_its_own_state() -> None:
    """deploy/ runs `sealtrail witness` on a schedule: a Kubernetes CronJob (one run at a
    time, no retry of a refusal) and a compose service, each with a real command line, the
    public keyring only, and a state volume of its own."""
    docs = k8s_docs()
    [job] = [d for d in docs if d["kind"] == "CronJob"]
    assert job["spec"]["concurrencyPolicy"] == "Forbid" and job["spec"]["schedule"]
    spec = job["spec"]["jobTemplate"]["spec"]
    assert spec["backoffLimit"] == 0
    (container,) = spec["template"]["spec"]["containers"]
    args = build_parser().parse_args(container["args"])
    assert args.command == "witness" and args.state == "/var/lib/sealtrail-witness"
    assert args.keys.endswith("public.json") and "/etc/sealtrail/keys" not in args.keys
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["state"] == args.state
    volumes = {v["name"]: v for v in spec["template"]["spec"]["volumes"]}
    assert "persistentVolumeClaim" in volumes["state"]
    assert any(d["kind"] == "PersistentVolumeClaim" for d in docs)
    witness = compose()["services"]["witness"]
    line = witness["command"][0]
    assert "sealtrail witness" in line and "--state /var/lib/sealtrail-witness" in line
    assert "witness-state:/var/lib/sealtrail-witness" in witness["volumes"]
    cli = line[line.index("sealtrail witness") + len("sealtrail "):line.index("||")]
    parsed = build_parser().parse_args(cli.replace('"$$SEALTRAIL_ARCHIVE_URL"', "s3://b/a")
                                       .split())
    assert parsed.command == "witness"


def test_terraform_bucket_is_locked_and_policed() -> None:
    """The Terraform bucket has Object Lock with a default retention, versioning, a policy
    denying deletes and insecure transport; `terraform fmt -check` passes if installed."""
    tf = (DEPLOY / "terraform" / "bucket.tf").read_text()
    for needle in ("object_lock_enabled = true", "aws_s3_bucket_versioning",
                   "default_retention", '"aws:SecureTransport"', '"s3:DeleteObjectVersion"',
                   '"s3:BypassGovernanceRetention"', "prevent_destroy = true",
                   "sealtrail_cold_storage_class"):
        assert needle in tf, needle
    assert tf.count("{") == tf.count("}")
    declared = set(re.findall(r'variable "([a-z_]+)"', "\n".join(
        p.read_text() for p in (DEPLOY / "terraform").glob("*.tf"))))
    used = set(re.findall(r"var\.([a-z_]+)", tf))
    assert used <= declared, used - declared
    terraform = shutil.which("terraform")
    if terraform is None:
        pytest.skip("terraform not installed: only the structural check ran")
    out = subprocess.run([terraform, "fmt", "-check", "-diff", str(DEPLOY / "terraform")],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_deploy_acls_are_what_sealtrail_kafka_acls_prints() -> None:
    """deploy/kafka/acls.txt lists exactly the bindings `sealtrail kafka acls --print`
    derives from the default settings: shipped ACLs never drift from the code."""
    from sealtrail.kafka.principals import acls_for

    shipped = [line for line in (DEPLOY / "kafka" / "acls.txt").read_text().splitlines()
               if line and not line.startswith("#")]
    assert shipped == [str(a) for a in acls_for(Settings())]


def test_compose_runs_the_kafka_version_and_settings_the_tests_run() -> None:
    """The compose broker is the Apache Kafka release the suite fetches, with every broker
    setting of the test broker (sealtrail.kafka.broker.BROKER_SETTINGS) at the same value,
    and compose and Kubernetes use classic groups (cooperative-sticky) with, on Kubernetes,
    static membership from the pod name: what the recovery figures were measured with."""
    from sealtrail.kafka._fetch import KAFKA_VERSION
    from sealtrail.kafka.broker import BROKER_SETTINGS

    kafka = compose()["services"]["kafka"]
    assert kafka["image"] == f"apache/kafka:{KAFKA_VERSION}"
    env = kafka["environment"]
    for key, value in BROKER_SETTINGS.items():
        name = "KAFKA_" + key.upper().replace(".", "_")
        assert str(env.get(name)) == value, f"{name}: compose {env.get(name)!r}, tests {value!r}"
    config = next(d for d in k8s_docs() if d["kind"] == "ConfigMap")["data"]
    for where, values in (("compose", compose()["x-sealtrail-env"]), ("k8s", config)):
        assert values["SEALTRAIL_KAFKA_GROUP_PROTOCOL"] == "classic", where
    k8s_config = (DEPLOY / "k8s" / "config.yaml").read_text()
    assert f"Tested against Apache Kafka {KAFKA_VERSION}" in k8s_config
    sealer = next(d for d in k8s_docs() if d["kind"] == "Deployment"
                  and d["metadata"]["name"] == "sealtrail-sealer")
    env_list = sealer["spec"]["template"]["spec"]["containers"][0]["env"]
    instance = next(e for e in env_list if e["name"] == "SEALTRAIL_KAFKA_GROUP_INSTANCE_ID")
    assert instance["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
