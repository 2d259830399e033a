// The contract's values, as jco's bindings give them to a JavaScript policy:
// records are plain objects with camelCase fields, enums are their WIT
// names as strings, options are a value or `undefined`, and money is a
// BigInt of minor units, so that no float ever touches money.

/** Who must act, lowest to highest. */
export const Tier = Object.freeze({
  NONE: 'none',
  SELF_CORRECT: 'self-correct',
  OPERATOR: 'operator',
  EXECUTIVE: 'executive',
});

const LEVELS = { none: 0, 'self-correct': 1, operator: 2, executive: 3 };

/** The escalation level of a tier, 0 to 3. Higher wins when policies disagree. */
export function tierLevel(tier) {
  const level = LEVELS[tier];
  if (level === undefined) throw new TypeError(`unknown tier ${JSON.stringify(tier)}`);
  return level;
}

/** A mandated rule is never tuned away; a probabilistic judgement is calibrated. */
export const TriggerKind = Object.freeze({ RULE: 'rule', PROBABILISTIC: 'probabilistic' });

/** The value of attribute `key`, if the caller sent one. */
export function attribute(item, key) {
  for (const [k, v] of item.attributes ?? []) if (k === key) return v;
  return undefined;
}

/** Whether `label` was attached. */
export function hasLabel(classification, label) {
  return classification.labels.includes(label);
}

function verdict(tier, reasonCode, reason, trigger, extra = {}) {
  return {
    tier,
    reasonCode,
    reason,
    role: undefined,
    ackSlaSecs: undefined,
    resolveSlaSecs: undefined,
    guidance: undefined,
    trigger,
    ...extra,
  };
}

/** Verdict builders, the same as the Rust SDK's `Verdict::proceed` and friends. */
export const Verdict = Object.freeze({
  proceed: (reasonCode, reason, trigger) => verdict(Tier.NONE, reasonCode, reason, trigger),
  selfCorrect: (reasonCode, reason, guidance, trigger) =>
    verdict(Tier.SELF_CORRECT, reasonCode, reason, trigger, { guidance }),
  escalate: (tier, reasonCode, reason, trigger) => verdict(tier, reasonCode, reason, trigger),
  withRole: (v, role) => ({ ...v, role }),
  withSla: (v, ackSlaSecs, resolveSlaSecs) => ({ ...v, ackSlaSecs, resolveSlaSecs }),
});

/** A signal: one piece of evidence behind a score. */
export function signal(name, weight, detail) {
  return { name, weight, detail };
}
