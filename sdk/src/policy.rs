//! The one trait a policy author implements, and the glue that exports it.

use crate::{Assessment, Classification, Config, ConfigError, PolicyInfo, Verdict, WorkItem};

/// A routing policy: three pure stages over a work item.
///
/// The host builds the policy once per sandbox instance with
/// [`Policy::configure`] and then calls the stages for every item. The stages
/// take references and return plain values, so they can be unit-tested and
/// benchmarked natively with no WebAssembly in sight.
///
/// Stages must be pure functions of the item and the configuration (no
/// hidden state carried between items), because the host reuses warm
/// instances and replays recorded decisions.
pub trait Policy: Sized + Send + Sync + 'static {
    /// Name, version, description and triggers, for reports and review.
    fn info() -> PolicyInfo;

    /// Builds the policy from the operator's configuration, refusing a bad
    /// value with the key that holds it.
    fn configure(config: &Config) -> Result<Self, ConfigError>;

    /// Stage 1: what kind of situation this is, and whether a mandated rule fired.
    fn classify(&self, item: &WorkItem) -> Classification;

    /// Stage 2: how risky the work is, and the signals that say why.
    fn score(&self, item: &WorkItem, classification: &Classification) -> Assessment;

    /// Stage 3: who must act.
    fn escalate(
        &self,
        item: &WorkItem,
        classification: &Classification,
        assessment: &Assessment,
    ) -> Verdict;

    /// Runs all three stages natively: what the host does across the sandbox
    /// boundary, for tests and the native baseline benchmark.
    fn evaluate(&self, item: &WorkItem) -> (Classification, Assessment, Verdict) {
        let classification = self.classify(item);
        let assessment = self.score(item, &classification);
        let verdict = self.escalate(item, &classification, &assessment);
        (classification, assessment, verdict)
    }
}

/// What [`export_policy!`](crate::export_policy) expands to, written as plain
/// generic functions so that the macro itself stays a few lines long.
pub mod exports {
    use super::*;
    use std::sync::OnceLock;

    /// Configures the instance's policy from the host, once.
    pub fn configure<P: Policy>(slot: &OnceLock<P>) -> Result<(), String> {
        if slot.get().is_some() {
            return Ok(());
        }
        let policy = P::configure(&host_config()).map_err(|e| e.to_string())?;
        // A second call finds the slot set; keeping the first is correct
        // because the configuration cannot change within an instance.
        let _ = slot.set(policy);
        begin_scratch();
        Ok(())
    }

    /// The policy is configured: from here on, with the scratch allocator
    /// installed, what a call allocates is reclaimed two calls later.
    fn begin_scratch() {
        // The standard output's buffer is created on first use and kept:
        // created now, a `print!` in a stage cannot put it in an arena.
        drop(std::io::stdout());
        crate::scratch::enter_scratch();
    }

    /// An export is returning: see [`crate::scratch::call_finished`].
    pub fn finished<T>(results: T) -> T {
        crate::scratch::call_finished();
        results
    }

    /// The configured policy. A stage reached without a successful
    /// `configure` is a host bug or a bad configuration; trapping with the
    /// reason is the only honest answer, and the host records it as a fault.
    pub fn policy<P: Policy>(slot: &OnceLock<P>) -> &P {
        slot.get().unwrap_or_else(|| {
            // Configured lazily, the policy must outlive this call: built
            // in ordinary memory, never in a scratch arena.
            let policy = crate::scratch::persistent(|| {
                slot.get_or_init(|| match P::configure(&host_config()) {
                    Ok(policy) => policy,
                    Err(error) => panic!("policy is not configured: {error}"),
                })
            });
            begin_scratch();
            policy
        })
    }

    #[cfg(target_family = "wasm")]
    fn host_config() -> Config {
        Config::from_host()
    }

    #[cfg(not(target_family = "wasm"))]
    fn host_config() -> Config {
        Config::default()
    }
}

/// Exports a [`Policy`] implementation as the `handoff:policy` component.
///
/// Use it once, at the top level of the policy crate. Natively it expands to
/// nothing, so several policies can link into one test or benchmark binary.
#[macro_export]
macro_rules! export_policy {
    ($policy:ty) => {
        #[cfg(target_family = "wasm")]
        const _: () = {
            static POLICY: ::std::sync::OnceLock<$policy> = ::std::sync::OnceLock::new();

            struct Exported;

            impl $crate::__private::Guest for Exported {
                fn metadata() -> $crate::PolicyInfo {
                    $crate::__private::exports::finished(<$policy as $crate::Policy>::info())
                }
                fn configure() -> ::std::result::Result<(), ::std::string::String> {
                    $crate::__private::exports::configure::<$policy>(&POLICY)
                }
                fn classify(item: $crate::__private::WireItem) -> $crate::Classification {
                    $crate::__private::exports::finished($crate::Policy::classify(
                        $crate::__private::exports::policy(&POLICY),
                        &$crate::WorkItem::from(item),
                    ))
                }
                fn score(
                    item: $crate::__private::WireItem,
                    classification: $crate::Classification,
                ) -> $crate::Assessment {
                    $crate::__private::exports::finished($crate::Policy::score(
                        $crate::__private::exports::policy(&POLICY),
                        &$crate::WorkItem::from(item),
                        &classification,
                    ))
                }
                fn escalate(
                    item: $crate::__private::WireItem,
                    classification: $crate::Classification,
                    assessment: $crate::Assessment,
                ) -> $crate::Verdict {
                    $crate::__private::exports::finished($crate::Policy::escalate(
                        $crate::__private::exports::policy(&POLICY),
                        &$crate::WorkItem::from(item),
                        &classification,
                        &assessment,
                    ))
                }
                fn evaluate(item: $crate::__private::WireItem) -> $crate::__private::Evaluation {
                    let (classification, assessment, verdict) = $crate::Policy::evaluate(
                        $crate::__private::exports::policy(&POLICY),
                        &$crate::WorkItem::from(item),
                    );
                    $crate::__private::exports::finished($crate::__private::Evaluation {
                        classification,
                        assessment,
                        verdict,
                    })
                }
            }

            $crate::__private::export_world!(Exported);
        };
    };
}
