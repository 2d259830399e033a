//! Per-plugin resource limits, set in the manifest's `[limits]` table.
//!
//! Defaults are generous for real policies (the reference policies use
//! 15,000–35,000 units of fuel and about 1.2 MiB of memory per evaluation)
//! and tight enough that a hostile plugin is stopped within milliseconds.

use serde::Deserialize;

/// What one evaluation of one plugin may consume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct Limits {
    /// Fuel (roughly, WebAssembly instructions) for the three stages of one
    /// evaluation together. Instantiation gets its own budget of the same size.
    pub fuel: u64,
    /// Wall-clock deadline for one evaluation, in milliseconds, enforced by
    /// epoch interruption at the runtime's tick.
    pub deadline_ms: u64,
    /// Maximum linear memory per instance, in MiB.
    pub memory_mib: u64,
    /// Maximum elements per table.
    pub table_elements: usize,
    /// Maximum core instances a component may create.
    pub instances: usize,
    /// Bytes of stdout, stderr and host-log output kept per evaluation;
    /// the rest is counted and dropped.
    pub log_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            fuel: 10_000_000,
            deadline_ms: 100,
            memory_mib: 32,
            table_elements: 10_000,
            instances: 32,
            log_bytes: 64 * 1024,
        }
    }
}

/// The most a manifest may ask for: a manifest is operator input, and an
/// operator typo must not disarm the sandbox.
const MAX_FUEL: u64 = 10_000_000_000;
const MAX_DEADLINE_MS: u64 = 60_000;
/// Ceiling for `memory-mib`; the engine sizes a memory slot in its instance
/// pool to it.
pub const MAX_MEMORY_MIB: u64 = 4096;
/// Ceiling for `table-elements`; the engine sizes a table slot in its
/// instance pool to it.
pub const MAX_TABLE_ELEMENTS: usize = 20_000;

impl Limits {
    /// Checks every limit is non-zero and within the host's ceilings,
    /// naming the key at fault.
    pub(crate) fn validate(&self) -> Result<(), (String, String)> {
        let check = |key: &str, value: u64, max: u64| {
            if value == 0 || value > max {
                Err((
                    format!("limits.{key}"),
                    format!("must be between 1 and {max}, got {value}"),
                ))
            } else {
                Ok(())
            }
        };
        check("fuel", self.fuel, MAX_FUEL)?;
        check("deadline-ms", self.deadline_ms, MAX_DEADLINE_MS)?;
        check("memory-mib", self.memory_mib, MAX_MEMORY_MIB)?;
        check(
            "table-elements",
            self.table_elements as u64,
            MAX_TABLE_ELEMENTS as u64,
        )?;
        check("instances", self.instances as u64, 10_000)?;
        check("log-bytes", self.log_bytes as u64, 64 * 1024 * 1024)?;
        Ok(())
    }

    /// Maximum linear memory in bytes.
    pub(crate) fn memory_bytes(&self) -> usize {
        usize::try_from(self.memory_mib * 1024 * 1024).unwrap_or(usize::MAX)
    }
}
