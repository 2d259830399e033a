// The component's entry point: componentize-js exports what this module exports.
import * as host from 'handoff:policy/host';
import { component } from 'handoff-policy';
import ConfidenceGate from './policy.js';

export const { metadata, configure, classify, score, escalate, evaluate } = component(ConfidenceGate, host);
