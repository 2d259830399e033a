// The port's logic, natively: the same cases as the Rust crate's unit tests.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Config, ConfigError, Tier } from 'handoff-policy';
import ConfidenceGate from '../policy.js';

const policy = () =>
  ConfidenceGate.configure(
    Config.fromPairs({ 'known-kinds.0': 'refund', 'typical.refund.USD': '100', 'anomaly-factor': '4' }),
  );
const item = (kind, confidence, minor) => ({
  id: '1', kind, agent: 'a', text: 't', confidence, attempts: 0, attributes: [],
  amount: minor === undefined ? undefined : { minor: BigInt(minor), currency: 'USD' },
});

test('bands and anomalies', () => {
  const p = policy();
  assert.equal(p.evaluate(item('refund', 0.5)).verdict.tier, Tier.OPERATOR);
  const marginal = p.evaluate(item('refund', 0.7)).verdict;
  assert.equal(marginal.tier, Tier.SELF_CORRECT);
  assert.ok(marginal.guidance);
  assert.equal(p.evaluate(item('refund', 0.9, 400)).verdict.tier, Tier.NONE);
  assert.equal(p.evaluate(item('refund', 0.9, 401)).verdict.reasonCode, 'anomaly.amount');
  assert.equal(p.evaluate(item('payout', 0.9)).verdict.reasonCode, 'anomaly.unknown-kind');
});

test('own confidence is lowest on a boundary', () => {
  const p = policy();
  const onEdge = p.evaluate(item('refund', 0.6)).assessment.confidence;
  const clear = p.evaluate(item('refund', 0.95)).assessment.confidence;
  assert.equal(onEdge, 0.5);
  assert.ok(onEdge < clear);
});

test('bad configuration names the key', () => {
  for (const [key, value] of [['anomaly-factor', '0.5'], ['typical.refund.USD', '0']]) {
    assert.throws(() => ConfidenceGate.configure(Config.fromPairs({ [key]: value })), (e) => e instanceof ConfigError && e.key === key);
  }
});
