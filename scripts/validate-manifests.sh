#!/usr/bin/env bash
# Validate deploy/**/*.yaml against the Kubernetes schemas, offline, as
# `kubectl apply --dry-run=client` would (scripts/validate-manifests.py).
# Installs its tools into a virtualenv on first use (pip, from PyPI):
# kubernetes-validate bundles the Kubernetes OpenAPI schemas and brings
# jsonschema and PyYAML.
#
#   bash scripts/validate-manifests.sh [FILE...]   (default: deploy/**/*.yaml)
#
# KUBERNETES_VERSION picks the schemas (default 1.33.0);
# LIFEBOAT_VALIDATE_VENV the virtualenv (default ~/.cache/lifeboat-validate-venv).
set -euo pipefail
cd "$(dirname "$0")/.."

version=${KUBERNETES_VERSION:-1.33.0}
venv=${LIFEBOAT_VALIDATE_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/lifeboat-validate-venv}
pinned=kubernetes-validate==1.37.0

if ! "$venv/bin/python" -c 'import kubernetes_validate, jsonschema, yaml' 2>/dev/null; then
    echo "==> installing $pinned into $venv" >&2
    python3 -m venv "$venv" || {
        echo "validate-manifests: python3 -m venv failed (apt-get install python3-venv)" >&2
        exit 1
    }
    "$venv/bin/pip" install --quiet --disable-pip-version-check "$pinned" >&2
fi

if (($#)); then
    files=("$@")
else
    mapfile -t files < <(find deploy -name '*.yaml' -o -name '*.yml' | sort)
fi
((${#files[@]})) || { echo "validate-manifests: no manifests found" >&2; exit 1; }
exec "$venv/bin/python" scripts/validate-manifests.py "$version" "${files[@]}"
