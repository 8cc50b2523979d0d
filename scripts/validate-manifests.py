#!/usr/bin/env python3
"""Validate the Kubernetes manifests under deploy/ the way
`kubectl apply --dry-run=client` would judge them, offline:

- every document parses as YAML and has apiVersion, kind and metadata.name;
- built-in kinds are checked against the Kubernetes OpenAPI schemas that
  the kubernetes-validate package bundles (strict: unknown fields fail);
- PrometheusRule (a prometheus-operator CRD, not in those schemas) is
  checked against the CRD's schema for what these manifests use;
- any other kind fails, so nothing goes unchecked;
- each deploy/mover file that runs the mover (CronJob or Job) also holds
  its Secret and a PrometheusRule alerting on a stale last-success time.

Usage: validate-manifests.py KUBERNETES_VERSION FILE...
"""

import sys

import jsonschema
import kubernetes_validate
import yaml

# prometheus-operator's PrometheusRule CRD (monitoring.coreos.com/v1),
# the parts of its OpenAPI schema that matter here.
PROMETHEUS_RULE = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "PrometheusRule"},
        "metadata": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"},
                "namespace": {"type": "string"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "groups": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["name", "rules"],
                        "additionalProperties": False,
                        "properties": {
                            "name": {"type": "string", "minLength": 1},
                            "interval": {"type": "string", "pattern": "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"},
                            "limit": {"type": "integer"},
                            "partial_response_strategy": {"type": "string"},
                            "rules": {
                                "type": "array",
                                "minItems": 1,
                                "items": {
                                    "type": "object",
                                    "required": ["expr"],
                                    "additionalProperties": False,
                                    "oneOf": [{"required": ["alert"]}, {"required": ["record"]}],
                                    "properties": {
                                        "alert": {"type": "string", "minLength": 1},
                                        "record": {"type": "string", "minLength": 1},
                                        "expr": {"type": ["string", "integer"]},
                                        "for": {"type": "string", "pattern": "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"},
                                        "keep_firing_for": {"type": "string"},
                                        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                                        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
                                    },
                                },
                            },
                        },
                    },
                }
            },
        },
    },
}


def check_doc(version, path, doc):
    for key in ("apiVersion", "kind"):
        if not isinstance(doc.get(key), str):
            return [f"{path}: a document has no {key}"]
    name = (doc.get("metadata") or {}).get("name")
    what = f"{path}: {doc['kind']}/{name}"
    if not name:
        return [f"{what}: no metadata.name"]
    if doc["kind"] == "PrometheusRule":
        errors = sorted(jsonschema.Draft7Validator(PROMETHEUS_RULE).iter_errors(doc), key=str)
        return [f"{what}: {'/'.join(map(str, e.path))}: {e.message}" for e in errors]
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.SchemaNotFoundError as e:
        return [f"{what}: no schema for this kind ({e}); nothing may go unchecked"]
    except kubernetes_validate.ValidationError as e:
        return [f"{what}: {'/'.join(map(str, e.path))}: {e.message}"]
    return []


def check_set(path, docs):
    """A file that runs the mover holds its Secret and a stale-success alert."""
    kinds = [d["kind"] for d in docs]
    if not any(k in ("CronJob", "Job") for k in kinds):
        return []
    errors = []
    if "Secret" not in kinds:
        errors.append(f"{path}: runs the mover but holds no Secret")
    stale = [
        r
        for d in docs
        if d["kind"] == "PrometheusRule"
        for g in d["spec"]["groups"]
        for r in g["rules"]
        if "mover_last_success_timestamp_seconds" in str(r.get("expr", ""))
    ]
    if not stale:
        errors.append(f"{path}: no PrometheusRule alerts on mover_last_success_timestamp_seconds")
    secrets = {d["metadata"]["name"] for d in docs if d["kind"] == "Secret"}
    for d in docs:
        if d["kind"] not in ("CronJob", "Job"):
            continue
        spec = d["spec"]["jobTemplate"]["spec"] if d["kind"] == "CronJob" else d["spec"]
        for c in spec["template"]["spec"]["containers"]:
            for ref in c.get("envFrom", []):
                n = ref.get("secretRef", {}).get("name")
                if n and n not in secrets:
                    errors.append(f"{path}: {d['metadata']['name']} uses Secret {n}, not in the file")
    return errors


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    version, files = sys.argv[1], sys.argv[2:]
    errors, count = [], 0
    for path in files:
        with open(path, encoding="utf-8") as f:
            try:
                docs = [d for d in yaml.safe_load_all(f) if d is not None]
            except yaml.YAMLError as e:
                errors.append(f"{path}: not valid YAML: {e}")
                continue
        file_errors = []
        for doc in docs:
            if not isinstance(doc, dict):
                file_errors.append(f"{path}: a document is not a mapping")
                continue
            file_errors += check_doc(version, path, doc)
            count += 1
        if not file_errors:
            file_errors += check_set(path, docs)
        errors += file_errors
    for e in errors:
        print(f"validate-manifests: {e}", file=sys.stderr)
    print(f"validate-manifests: {count} documents in {len(files)} files, {len(errors)} errors")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
