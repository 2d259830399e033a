"""The component's entry point: componentize-py exports this module's `WitWorld`."""

from handoff_policy import component

from confidence_gate import ConfidenceGate

WitWorld = component(ConfidenceGate)
