// A node process whose V8 heap holds objects of several sizes, for procmap's V8 rules.
//
// Prints V8's own figures, process.memoryUsage() and v8.getHeapSpaceStatistics(),
// as JSON on one line ("figures {...}"); run with --allow-natives-syntax, it also
// has V8 print the addresses of a few objects (%DebugPrint), each after a line
// "address NAME"; then "ready".  Each line read from stdin prints the figures and
// "ready" again, so that a test can check they did not change while it looked;
// it exits when stdin closes.
"use strict";
const v8 = require("v8");

// Small objects: new space, and old space for those that survive the GCs the rest causes.
const small = [];
for (let i = 0; i < 200000; i++) small.push({ i, name: "o" + i });
// An array of 100000 doubles (800 KB, over V8's 256 KiB page): a large-object page.
const large = new Array(100000).fill(1.5);
// A flat one-byte string of 1 MiB, in large-object space too.
const big = "x".repeat(1 << 20).split("").join("");
// An array of 1000 small integers, on an ordinary page.
const medium = new Array(1000).fill(0).map((_, i) => i);
globalThis.keep = { small, large, big, medium };

function figures() {
  const spaces = v8.getHeapSpaceStatistics();
  console.log("figures " + JSON.stringify({ memoryUsage: process.memoryUsage(), spaces }));
}

// %DebugPrint is V8's syntax, allowed only with --allow-natives-syntax: compiled
// through new Function, so that the script parses without the flag.  It writes to
// stdout (and flushes) through V8's own stream; the string is not printed, it would
// print all its megabyte.
let debugPrint = null;
try {
  debugPrint = new Function("o", "%DebugPrint(o)");
} catch (e) {
  debugPrint = null;
}
if (debugPrint) {
  for (const [name, obj] of [["small", small[12345]], ["medium", medium], ["large", large]]) {
    console.log("address " + name);
    debugPrint(obj);
  }
}
figures();
console.log("ready");

let pending = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => {
  pending += chunk;
  while (pending.includes("\n")) {
    pending = pending.slice(pending.indexOf("\n") + 1);
    figures();
    console.log("ready");
  }
});
process.stdin.on("end", () => process.exit(0));
