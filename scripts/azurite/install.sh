#!/usr/bin/env bash
# Installs Azurite (pinned) from npm into a project-local folder
# (default .azurite/, ignored by git). Idempotent: does nothing when the
# pinned version is already there.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

for tool in node npm; do
	command -v "$tool" >/dev/null || { echo "azurite install: $tool is not installed (Azurite needs Node.js 18+ and npm)" >&2; exit 1; }
done

have=$(azurite_installed_version)
if [ "$have" = "$AZURITE_VERSION" ] && [ -x "$AZURITE_DIR/node_modules/.bin/azurite" ]; then
	echo "azurite $AZURITE_VERSION already installed in $AZURITE_DIR" >&2
	exit 0
fi
if [ -n "$have" ]; then
	echo "azurite $have found in $AZURITE_DIR; installing the pinned $AZURITE_VERSION" >&2
fi

mkdir -p "$AZURITE_DIR"
if [ ! -f "$AZURITE_DIR/package.json" ]; then
	echo '{"name": "netherite-azurite", "private": true, "description": "Azurite for the netherite tests (scripts/azurite)"}' >"$AZURITE_DIR/package.json"
fi
npm install --prefix "$AZURITE_DIR" --no-audit --no-fund --save-exact --loglevel=error "azurite@$AZURITE_VERSION" >&2

have=$(azurite_installed_version)
if [ "$have" != "$AZURITE_VERSION" ]; then
	echo "azurite install: expected version $AZURITE_VERSION in $AZURITE_DIR, found '${have:-nothing}'" >&2
	exit 1
fi
echo "azurite $AZURITE_VERSION installed in $AZURITE_DIR" >&2
