// The one class a policy author writes, and the glue that exports it. The
// stages are plain methods over plain values, so node's test runner runs
// them natively; `component` turns the class into the module exports
// componentize-js turns into a component. Stages must be pure functions of
// the item and the configuration: the host reuses warm instances and
// replays recorded decisions.

import { Config, ConfigError } from './config.js';
import { bindHost, log } from './log.js';

export class Policy {
  /** Name, version, description and triggers, for reports and review. */
  static info() {
    throw new Error(`${this.name}.info is not written`);
  }

  /** Builds the policy from the operator's configuration; throws ConfigError naming a bad key. */
  static configure(_config) {
    return new this();
  }

  /** All three stages, as the host runs them across the sandbox boundary. */
  evaluate(item) {
    const classification = this.classify(item);
    const assessment = this.score(item, classification);
    return { classification, assessment, verdict: this.escalate(item, classification, assessment) };
  }
}

/**
 * The world's exports for `PolicyClass`, given the `handoff:policy/host`
 * import: `export const { metadata, configure, classify, score, escalate,
 * evaluate } = component(MyPolicy, host);`
 */
export function component(PolicyClass, host) {
  bindHost(host);
  // The QuickJS runtime has no `console`; give it one that writes to the
  // plugin log, so `console.log` debugging works as it does natively.
  if (typeof globalThis.console === 'undefined') {
    const line = (write) => (...parts) => write(parts.map(String).join(' '));
    globalThis.console = {
      log: line(log.info),
      info: line(log.info),
      debug: line(log.debug),
      warn: line(log.warn),
      error: line(log.error),
    };
  }
  let configured;
  const hostConfig = () => {
    const values = new Map();
    for (const key of host.configKeys()) {
      const value = host.configGet(key);
      if (value !== undefined && value !== null) values.set(key, value);
    }
    return new Config(values);
  };
  // The host always configures first; a stage reached without it configures
  // now, so a bad configuration throws here, with its key.
  const policy = () => (configured ??= PolicyClass.configure(hostConfig()));
  return {
    metadata: () => PolicyClass.info(),
    configure: () => {
      if (configured) return;
      try {
        configured = PolicyClass.configure(hostConfig());
      } catch (error) {
        // A thrown string becomes the result's error.
        throw error instanceof ConfigError ? error.message : String(error?.stack ?? error);
      }
    },
    classify: (item) => policy().classify(item),
    score: (item, classification) => policy().score(item, classification),
    escalate: (item, classification, assessment) => policy().escalate(item, classification, assessment),
    evaluate: (item) => policy().evaluate(item),
  };
}
