"""Reads {"classes": {name: [rules]}, "texts": [text]} on stdin and prints,
as JSON, the classes the Python SDK's PhraseSet finds in each text: the
Python side of the text-rule conformance check (plugins/compliance-limits/
tests/corpus.rs runs it with the SDK on PYTHONPATH)."""

import json
import sys

from handoff_policy.text import PhraseSet

request = json.load(sys.stdin)
phrases = PhraseSet(request["classes"])
json.dump([phrases.matching_classes(text) for text in request["texts"]], sys.stdout)
