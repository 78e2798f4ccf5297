#!/usr/bin/env bash
# Regenerates the Gateway API types in this folder from the standard-channel
# CRDs with kopium (crates.io, Apache-2.0). Do not edit the generated files
# by hand: change this script and run it again.
#
#   bash src/gateway/api/generate.sh [CRD_DIR]
#
# CRD_DIR defaults to ../shared/gateway-api beside the checkout (the CRDs of
# Gateway API v1.6.1's standard channel). ReferenceGrant is generated at
# v1beta1, the version every Gateway API release since v0.6 serves.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
crds="$(cd "${1:-$here/../../../../shared/gateway-api}" && pwd)"
command -v kopium >/dev/null 2>&1 || cargo install --locked kopium@0.24.1
cd "$crds"
gen() {
  local kind=$1
  shift
  kopium -f "gateway.networking.k8s.io_$kind.yaml" --docs --derive PartialEq "$@" > "$here/$kind.rs"
}
gen gatewayclasses
gen gateways
gen httproutes
gen grpcroutes
gen referencegrants --api-version v1beta1
cd "$here" && rustfmt --edition 2024 gatewayclasses.rs gateways.rs httproutes.rs grpcroutes.rs referencegrants.rs
