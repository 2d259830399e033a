// Types for `handoff-policy`: the contract (wit/policy.wit) as jco's
// bindings give it to JavaScript, and the SDK's helpers. A TypeScript
// policy gets its stages checked against the contract before it is built.

/** Who must act, lowest to highest. */
export type Tier = 'none' | 'self-correct' | 'operator' | 'executive';
export declare const Tier: {
  readonly NONE: 'none';
  readonly SELF_CORRECT: 'self-correct';
  readonly OPERATOR: 'operator';
  readonly EXECUTIVE: 'executive';
};
/** The escalation level of a tier, 0 to 3. */
export declare function tierLevel(tier: Tier): 0 | 1 | 2 | 3;

/** A mandated rule is never tuned away; a probabilistic judgement is calibrated. */
export type TriggerKind = 'rule' | 'probabilistic';
export declare const TriggerKind: { readonly RULE: 'rule'; readonly PROBABILISTIC: 'probabilistic' };

/**
 * Money in the currency's minor units. The QuickJS build passes a number
 * (exact up to 2^53); natively, tests may pass a BigInt. The SDK's money
 * helpers accept both and compare as BigInt.
 */
export interface Money {
  minor: number | bigint;
  currency: string;
}

export interface WorkItem {
  id: string;
  kind: string;
  agent: string;
  text: string;
  confidence: number;
  amount?: Money;
  segment?: string;
  attempts: number;
  attributes: Array<[string, string]>;
}

export interface TriggerInfo {
  code: string;
  kind: TriggerKind;
  description: string;
}

export interface PolicyInfo {
  name: string;
  version: string;
  description: string;
  triggers: TriggerInfo[];
}

export interface Classification {
  labels: string[];
  rulesFired: string[];
}

export interface Signal {
  name: string;
  weight: number;
  detail: string;
}

export interface Assessment {
  risk: number;
  confidence: number;
  signals: Signal[];
}

export interface Verdict {
  tier: Tier;
  reasonCode: string;
  reason: string;
  role?: string;
  ackSlaSecs?: number;
  resolveSlaSecs?: number;
  guidance?: string;
  trigger: TriggerKind;
}

export interface Evaluation {
  classification: Classification;
  assessment: Assessment;
  verdict: Verdict;
}

export declare const Verdict: {
  proceed(reasonCode: string, reason: string, trigger: TriggerKind): Verdict;
  selfCorrect(reasonCode: string, reason: string, guidance: string, trigger: TriggerKind): Verdict;
  escalate(tier: Tier, reasonCode: string, reason: string, trigger: TriggerKind): Verdict;
  withRole(verdict: Verdict, role: string): Verdict;
  withSla(verdict: Verdict, ackSlaSecs?: number, resolveSlaSecs?: number): Verdict;
};

export declare function signal(name: string, weight: number, detail: string): Signal;
export declare function attribute(item: WorkItem, key: string): string | undefined;
export declare function hasLabel(classification: Classification, label: string): boolean;

/** A bad configuration value, named by its key. */
export declare class ConfigError extends Error {
  constructor(key: string, reason: string);
  readonly key: string;
  readonly reason: string;
}

/** One plugin's configuration: dotted keys, string values. */
export declare class Config {
  constructor(values?: Map<string, string> | Record<string, string>);
  static fromPairs(pairs: Array<[string, string]> | Record<string, string>): Config;
  get(key: string): string | undefined;
  keys(): string[];
  bigint(key: string, fallback?: bigint, options?: { minimum?: bigint }): bigint | undefined;
  number(key: string, fallback?: number): number | undefined;
  boolean(key: string, fallback?: boolean): boolean | undefined;
  unitInterval(key: string, fallback: number): number;
  string(key: string, fallback: string): string;
  list(key: string): string[];
  children(prefix: string): string[];
}

export type LimitCheck =
  | { within: number }
  | { exceeded: 'operator' | 'executive'; limit: bigint }
  | { unknownCurrency: true };

export declare class TierLimits {
  static fromConfig(config: Config, prefix: string): TierLimits;
  isEmpty(): boolean;
  check(amount: Money): LimitCheck;
}
export declare function formatMoney(amount: Money): string;

export type Band = 'escalate' | 'self-correct' | 'proceed';
export declare const Band: { readonly ESCALATE: 'escalate'; readonly SELF_CORRECT: 'self-correct'; readonly PROCEED: 'proceed' };
export declare class ConfidenceBands {
  constructor(escalateBelow: number, selfCorrectBelow: number);
  readonly escalateBelow: number;
  readonly selfCorrectBelow: number;
  static fromConfig(config: Config, escalateKey: string, selfCorrectKey: string, defaults: ConfidenceBands): ConfidenceBands;
  band(confidence: number): Band;
  margin(confidence: number): number;
}

/** A number as Rust's `{}` writes it. */
export declare function display(value: number): string;
/** A number as Rust's `{:.N}` writes it (an exact tie rounds to even). */
export declare function fixed(value: number, digits: number): string;

export declare const log: {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
};

export declare const MAX_NEAR: 50;
export declare const MIN_PREFIX: 3;
export declare function words(text: string): string[];
export declare class RuleError extends Error {
  readonly rule: string;
  readonly reason: string;
}
export declare class Rule {
  static parse(source: string): Rule;
  readonly source: string;
  matches(text: string | string[]): boolean;
}
export declare class PhraseError extends Error {
  readonly cls: string;
  readonly index: number;
  readonly error: RuleError;
}
export declare class PhraseSet {
  constructor(classes: Record<string, string[]> | Map<string, string[]> | Array<[string, string[]]>);
  matchingClasses(text: string): string[];
  matchingRule(cls: string, text: string): Rule | undefined;
  isEmpty(): boolean;
}

/** The base class of a policy: static `info` and `configure`, three stages. */
export declare abstract class Policy {
  static info(): PolicyInfo;
  static configure(config: Config): Policy;
  abstract classify(item: WorkItem): Classification;
  abstract score(item: WorkItem, classification: Classification): Assessment;
  abstract escalate(item: WorkItem, classification: Classification, assessment: Assessment): Verdict;
  evaluate(item: WorkItem): Evaluation;
}

/** The `handoff:policy/host` import, as jco gives it. */
export interface Host {
  log(level: 'trace' | 'debug' | 'info' | 'warn' | 'error', message: string): void;
  configGet(key: string): string | undefined;
  configKeys(): string[];
}

export interface PolicyExports {
  metadata(): PolicyInfo;
  configure(): void;
  classify(item: WorkItem): Classification;
  score(item: WorkItem, classification: Classification): Assessment;
  escalate(item: WorkItem, classification: Classification, assessment: Assessment): Verdict;
  evaluate(item: WorkItem): Evaluation;
}

/** The world's exports for a policy class. */
export declare function component(policy: { info(): PolicyInfo; configure(config: Config): Policy }, host: Host): PolicyExports;
