// Write Handoff routing policies in JavaScript or TypeScript: the same
// experience as the Rust `handoff-sdk`, testable natively with `node --test`
// before the policy is compiled to a component.

export { Config, ConfigError } from './config.js';
export { Band, ConfidenceBands } from './confidence.js';
export { display, fixed } from './format.js';
export { log } from './log.js';
export { TierLimits, formatMoney } from './money.js';
export { Policy, component } from './policy.js';
export { PhraseError, PhraseSet, Rule, RuleError, words } from './text.js';
export { Tier, TriggerKind, Verdict, attribute, hasLabel, signal, tierLevel } from './types.js';
