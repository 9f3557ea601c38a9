// Starts Azurite (all three services, the same arguments as its `azurite`
// command) with the blob service's extent garbage collector slowed to once
// every ~24.8 days, i.e. off for a test run.
//
// Why: Azurite 3.37.0's blob GC runs a mark-and-sweep over every extent
// 10 minutes after start and every 10 minutes after that. With the few
// hundred thousand small page writes the test suite leaves behind (lease
// renewals, commit-log and metadata rewrites), one sweep blocks Node's event
// loop for minutes: every request times out, leases expire and CI fails
// (measured: the blob port stopped answering at exactly start + 10 min).
// Without GC, the space of overwritten and deleted data is never reclaimed,
// which is fine for a process that lives for one run; start.sh keeps GC on
// unless asked (--no-gc), so a long-lived developer Azurite does not grow
// without bound.
//
// Usage: node launch.js AZURITE_PACKAGE_DIR [azurite arguments...]
"use strict";
const path = require("path");

const pkg = process.argv[2];
if (!pkg) {
  console.error("launch.js: usage: node launch.js AZURITE_PACKAGE_DIR [azurite arguments...]");
  process.exit(2);
}
// Azurite parses process.argv itself (skipping the first two entries).
process.argv.splice(2, 1);

const constants = require(path.join(pkg, "dist/src/blob/utils/constants.js"));
if (typeof constants.DEFAULT_GC_INTERVAL_MS !== "number") {
  console.error("launch.js: this Azurite has no blob DEFAULT_GC_INTERVAL_MS; update launch.js for it");
  process.exit(1);
}
// setTimeout's largest delay; anything larger wraps to 1 ms.
constants.DEFAULT_GC_INTERVAL_MS = 2147483647;
require(path.join(pkg, "dist/src/azurite.js"));
