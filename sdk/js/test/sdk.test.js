// The SDK's helpers, natively: the cases the Rust SDK's unit tests check.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  Band, ConfidenceBands, Config, ConfigError, PhraseError, PhraseSet, Rule, RuleError, Tier,
  TierLimits, TriggerKind, Verdict, display, fixed, formatMoney, tierLevel, words,
} from '../src/index.js';

const SAMPLE = Config.fromPairs({
  'limits.refund.USD.operator': '50000',
  'limits.refund.EUR.operator': '40000',
  'limits.payout.USD.operator': '1000',
  'phrases.legal.match.0': 'lawyer',
  'phrases.legal.match.1': 'sue',
  threshold: '0.6',
  bad: '1.5',
});

test('typed values name the key on error', () => {
  assert.equal(SAMPLE.bigint('limits.refund.USD.operator'), 50000n);
  assert.equal(SAMPLE.bigint('missing'), undefined);
  assert.throws(() => SAMPLE.bigint('threshold'), (e) =>
    e instanceof ConfigError && e.key === 'threshold' && e.message === 'config key `threshold`: expected an integer, got "0.6"');
  assert.throws(() => Config.fromPairs({ n: '1_000' }).number('n'), ConfigError);
  assert.equal(Config.fromPairs({ n: ' 1e3 ' }).number('n'), 1000);
});

test('unit interval rejects out of range', () => {
  assert.equal(SAMPLE.unitInterval('threshold', 0.1), 0.6);
  assert.equal(SAMPLE.unitInterval('unset', 0.1), 0.1);
  assert.throws(() => SAMPLE.unitInterval('bad', 0.1), ConfigError);
});

test('lists and children follow the flattening rules', () => {
  assert.deepEqual(SAMPLE.list('phrases.legal.match'), ['lawyer', 'sue']);
  assert.deepEqual(SAMPLE.list('threshold'), ['0.6']);
  assert.deepEqual(SAMPLE.list('nothing'), []);
  assert.deepEqual(SAMPLE.children('limits'), ['payout', 'refund']);
  assert.deepEqual(SAMPLE.children('limits.refund'), ['EUR', 'USD']);
});

test('limits per currency, in BigInt minor units', () => {
  const limits = TierLimits.fromConfig(Config.fromPairs({ 'l.USD.operator': '50000', 'l.USD.executive': '500000' }), 'l');
  assert.deepEqual(limits.check({ minor: 50000n, currency: 'USD' }), { within: 1 });
  assert.deepEqual(limits.check({ minor: 50001n, currency: 'USD' }), { exceeded: Tier.OPERATOR, limit: 50000n });
  assert.deepEqual(limits.check({ minor: -500001n, currency: 'USD' }), { exceeded: Tier.EXECUTIVE, limit: 500000n });
  assert.deepEqual(limits.check({ minor: 1n, currency: 'EUR' }), { unknownCurrency: true });
  for (const [pairs, key] of [
    [{ 'l.usd.operator': '1' }, 'l.usd'],
    [{ 'l.USD.operator': '5', 'l.USD.executive': '5' }, 'l.USD.executive'],
    [{ 'l.USD.operator': '-1' }, 'l.USD.operator'],
  ]) {
    assert.throws(() => TierLimits.fromConfig(Config.fromPairs(pairs), 'l'), (e) => e.key === key);
  }
  assert.equal(formatMoney({ minor: 125000n, currency: 'USD' }), '1250.00 USD');
  assert.equal(formatMoney({ minor: -9223372036854775808n, currency: 'EUR' }), '-92233720368547758.08 EUR');
});

test('bands split at the thresholds', () => {
  const bands = new ConfidenceBands(0.6, 0.75);
  assert.deepEqual([0.59, 0.6, 0.74, 0.75, NaN].map((c) => bands.band(c)), [
    Band.ESCALATE, Band.SELF_CORRECT, Band.SELF_CORRECT, Band.PROCEED, Band.ESCALATE,
  ]);
  assert.throws(
    () => ConfidenceBands.fromConfig(Config.fromPairs({ low: '0.8', high: '0.7' }), 'low', 'high', bands),
    (e) => e.key === 'high',
  );
});

test('numbers read as Rust writes them', () => {
  assert.deepEqual([0.125, 0.375, 2.5, -0, 1e21].map((x) => fixed(x, 2)), ['0.12', '0.38', '2.50', '-0.00', '1000000000000000000000.00']);
  assert.deepEqual([8, 0.1, 1e21, 1e-7, -0].map(display), ['8', '0.1', '1000000000000000000000', '0.0000001', '-0']);
});

test('verdict builders', () => {
  const v = Verdict.withSla(Verdict.withRole(Verdict.escalate(Tier.OPERATOR, 'c', 'r', TriggerKind.RULE), 'lead'), 60, undefined);
  assert.deepEqual([v.role, v.ackSlaSecs, v.resolveSlaSecs, v.guidance], ['lead', 60, undefined, undefined]);
  assert.equal(tierLevel(Verdict.selfCorrect('c', 'r', 'g', TriggerKind.PROBABILISTIC).tier), 1);
});

test('words are normalised', () => {
  assert.deepEqual(words('DON’T lö\u0301schen su\u200be, ﬁne'), ['dont', 'loschen', 'sue', 'fine']);
  assert.deepEqual(words('don`t'), ['dont']);
});

test('rules match real phrasings', () => {
  const hits = (rule, text) => Rule.parse(rule).matches(text);
  assert.ok(hits('delete my data', 'Please, DELETE my data.'));
  assert.ok(!hits('delete my data', 'undelete my database'));
  assert.ok(hits('delet* NEAR/6 data', 'Under GDPR I demand that you delete all of my personal data'));
  assert.ok(hits('going to BEFORE/3 regulator', 'I am going to the regulator'));
  assert.ok(!hits('going to BEFORE/3 regulator', 'the regulator is not going to'));
  assert.ok(hits('lawyer EXCEPT no lawyer', 'my lawyer will call'));
  assert.ok(!hits('lawyer EXCEPT no lawyer', 'no lawyer needed'));
  assert.ok(hits('refund AND NOT test', 'refund please'));
});

test('bad rules say why', () => {
  for (const bad of ['NOT x', 'a*', '(a', '{a}', 'NEAR/99 x', 'a NEAR/2 (b AND c)', 'x)', 'NOT '.repeat(40) + 'x']) {
    assert.throws(() => Rule.parse(bad), RuleError, bad);
  }
  assert.throws(() => new PhraseSet({ legal: ['lawyer', 'a*'] }), (e) => e instanceof PhraseError && e.cls === 'legal' && e.index === 1);
  const phrases = new PhraseSet({ legal: ['lawyer', ''], harm: ['hurt myself'] });
  assert.deepEqual(phrases.matchingClasses('My lawyer says I might hurt myself'), ['legal', 'harm']);
  assert.equal(phrases.matchingRule('legal', 'my LAWYER').source, 'lawyer');
});
