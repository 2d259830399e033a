//! The WASI interfaces the sandbox answers itself, because wasmtime-wasi's
//! own answers would let a plugin wait, or allocate, at the host's expense.
//!
//! - `wasi:clocks/monotonic-clock`: frozen at zero, and every timer a plugin
//!   subscribes to is ready at once. A pollable that waited would wait in
//!   host code, where epoch interruption cannot reach it, so a guest's
//!   `sleep` could outlast any deadline. Nothing a plugin can poll ever
//!   blocks.
//! - `wasi:random/*`: a deterministic sequence, reseeded from the item
//!   before every call, so the same item draws the same bytes whatever the
//!   instance decided before; a request is capped at [`MAX_RANDOM_BYTES`].

use wasmtime::component::Resource;
use wasmtime_wasi::p2::bindings::clocks::monotonic_clock;
use wasmtime_wasi::p2::bindings::random::{insecure, insecure_seed, random};
use wasmtime_wasi::p2::{DynPollable, Pollable, subscribe};

use super::PluginState;

/// The most bytes one `get-random-bytes` call may ask for; more traps.
pub(crate) const MAX_RANDOM_BYTES: u64 = 64 * 1024;

/// A pollable that is always ready.
struct Ready;

#[wasmtime_wasi::async_trait]
impl Pollable for Ready {
    async fn ready(&mut self) {}
}

impl monotonic_clock::Host for PluginState {
    fn now(&mut self) -> wasmtime::Result<monotonic_clock::Instant> {
        Ok(0)
    }

    fn resolution(&mut self) -> wasmtime::Result<monotonic_clock::Duration> {
        Ok(1)
    }

    fn subscribe_instant(
        &mut self,
        _when: monotonic_clock::Instant,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        self.ready_pollable()
    }

    fn subscribe_duration(
        &mut self,
        _duration: monotonic_clock::Duration,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        self.ready_pollable()
    }
}

impl PluginState {
    fn ready_pollable(&mut self) -> wasmtime::Result<Resource<DynPollable>> {
        let ready = self.table.push(Ready)?;
        subscribe(&mut self.table, ready)
    }
}

/// The sandbox's randomness: SplitMix64 over a 64-bit state, a fixed,
/// documented generator so that a replay draws what the original drew.
#[derive(Debug, Clone)]
pub(crate) struct Entropy {
    state: u64,
}

impl Entropy {
    /// The sequence for an item, from its seed (see [`seed_for`]).
    pub(crate) fn seeded(seed: u64) -> Self {
        Entropy { state: seed }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn bytes(&mut self, len: u64) -> wasmtime::Result<Vec<u8>> {
        if len > MAX_RANDOM_BYTES {
            wasmtime::bail!(
                "{len} random bytes requested in one call, over the sandbox's limit of {MAX_RANDOM_BYTES}"
            );
        }
        let mut out = Vec::with_capacity(len as usize);
        while out.len() < len as usize {
            let word = self.next_u64().to_le_bytes();
            let take = word.len().min(len as usize - out.len());
            out.extend_from_slice(&word[..take]);
        }
        Ok(out)
    }
}

/// The seed of an item's random sequence: from the item's id, so that the
/// same item draws the same bytes on any instance, in any order, on replay.
/// FNV-1a, a fixed and documented hash (cheap on the evaluation path), so a
/// replay by a later version draws what the original drew.
pub(crate) fn seed_for(item_id: &str) -> u64 {
    item_id
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325, |hash: u64, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
        })
}

impl random::Host for PluginState {
    fn get_random_bytes(&mut self, len: u64) -> wasmtime::Result<Vec<u8>> {
        self.entropy.bytes(len)
    }

    fn get_random_u64(&mut self) -> wasmtime::Result<u64> {
        Ok(self.entropy.next_u64())
    }
}

impl insecure::Host for PluginState {
    fn get_insecure_random_bytes(&mut self, len: u64) -> wasmtime::Result<Vec<u8>> {
        self.entropy.bytes(len)
    }

    fn get_insecure_random_u64(&mut self) -> wasmtime::Result<u64> {
        Ok(self.entropy.next_u64())
    }
}

impl insecure_seed::Host for PluginState {
    fn insecure_seed(&mut self) -> wasmtime::Result<(u64, u64)> {
        Ok((self.entropy.next_u64(), self.entropy.next_u64()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_draws_the_same_bytes_and_requests_are_capped() {
        let seed = seed_for("item-1");
        let a = Entropy::seeded(seed).bytes(37).unwrap();
        assert_eq!(a, Entropy::seeded(seed).bytes(37).unwrap());
        assert_ne!(a, Entropy::seeded(seed_for("item-2")).bytes(37).unwrap());
        assert!(Entropy::seeded(seed).bytes(MAX_RANDOM_BYTES + 1).is_err());
    }
}
