#!/usr/bin/env python3
"""Turns the last `cargo bench -p xipsec-benches --bench esp` run into the markdown table of
docs/benchmarks.md: per-packet medians (batches of 32) and the ESP/AEAD ratios of that run."""
import json
import pathlib
import sys

ROOT = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target/criterion")
BATCH = 32
SIZES = [64, 128, 512, 1420, 9000]


def per_packet_ns(group, function, size):
    path = ROOT / group / function / str(size) / "new" / "estimates.json"
    estimates = json.loads(path.read_text())
    return estimates["median"]["point_estimate"] / BATCH


rows = []
for size in SIZES:
    seal_aws = per_packet_ns("aead_seal", "aws-lc-rs", size)
    seal_ring = per_packet_ns("aead_seal", "ring", size)
    open_aws = per_packet_ns("decap", "aead-open", size)
    encap = per_packet_ns("esp_encap", "tunnel-v4", size)
    decap = per_packet_ns("decap", "esp", size)
    rows.append((size, seal_ring, seal_aws, encap, open_aws, decap))

print("| bytes | ring seal | aws-lc-rs seal | ESP encap | encap − seal | seal/encap "
      "| aws-lc-rs open | ESP decap | decap − open | open/decap |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for size, seal_ring, seal_aws, encap, open_aws, decap in rows:
    print(f"| {size} | {seal_ring:.0f} | {seal_aws:.0f} | {encap:.0f} | {encap - seal_aws:+.0f} "
          f"| {seal_aws / encap:.0%} | {open_aws:.0f} | {decap:.0f} | {decap - open_aws:+.0f} "
          f"| {open_aws / decap:.0%} |")
