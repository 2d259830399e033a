"""Writes the items of the conformance vectors (confidence-gate.jsonl's
`item` fields): the sample items, then a grid over kinds, confidences and
amounts chosen for edges: band thresholds, rounding ties, out-of-range
confidences, anomaly factors, unknown currencies and the extremes of i64.

    python3 tests/conformance/make_items.py > /tmp/items.jsonl

`HANDOFF_BLESS=1 cargo test --release --test all conformance` then writes
the expected outputs from the Rust build.
"""

import itertools
import json
import pathlib

root = pathlib.Path(__file__).resolve().parents[2]
items = [json.loads(line) for line in (root / "examples/sample.jsonl").read_text().splitlines() if line.strip()]
kinds = ["reply", "refund", "credit", "payout", "tool-call", "wire-transfer", "Rückerstattung"]
confidences = [0.0, 0.125, 0.3, 0.375, 0.5, 0.5999999999999999, 0.6, 0.605, 0.625, 0.7, 0.745, 0.75,
               0.7500000000000001, 0.8, 0.875, 0.9, 0.995, 1.0]
amounts = [None, (6000, "USD"), (48000, "USD"), (48001, "USD"), (-48001, "USD"), (44000, "EUR"),
           (44001, "EUR"), (125, "JPY"), (1, "GBP"), (9223372036854775807, "USD"),
           (-9223372036854775808, "USD"), (2000, "USD"), (16001, "USD"), (200001, "USD")]
for n, (kind, confidence, amount) in enumerate(itertools.product(kinds, confidences, amounts)):
    # Every third combination, so the file stays readable; the stride walks all axes.
    if n % 3:
        continue
    item = {"id": f"v-{n}", "kind": kind, "agent": "conformance", "text": "", "confidence": confidence}
    if amount:
        item["amount"] = {"minor": amount[0], "currency": amount[1]}
    items.append(item)
for item in items:
    print(json.dumps({"item": item}, ensure_ascii=False))
