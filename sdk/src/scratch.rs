//! A per-evaluation allocator for policies that opt in with
//! [`scratch_allocator!`](crate::scratch_allocator).
//!
//! A warm instance answers thousands of items, and every one of them
//! allocates the same way: the host copies the item's strings in through
//! `cabi_realloc`, the stages build labels, signals and reasons, and the
//! results are freed again after the host has read them. Measured under
//! callgrind, the general-purpose allocator was a third to two fifths of a
//! reference policy's instructions. Everything an evaluation allocates dies
//! when the next evaluation starts, so it can come from a bump arena that
//! is reset instead of freed piece by piece.
//!
//! **The contract a policy accepts by opting in:** nothing allocated while
//! a stage runs is kept after it returns. The [`Policy`](crate::Policy)
//! trait already asks for pure stages over `&self`; what this rules out
//! besides is state created lazily inside a stage (a `LazyLock` first
//! touched by `classify`, a cache filled during `score`). State built in
//! `configure` is safe: the policy is configured before scratch mode
//! begins and keeps its ordinary allocations, and an allocation made
//! before scratch mode that grows during a stage stays in the ordinary
//! allocator.
//!
//! **How allocations are reclaimed.** Two arenas take turns. The arguments
//! of a call are lowered into the current arena before the export runs, and
//! its results are read by the host after the export returns, so neither
//! can be reset at the boundary of its own call. When an export returns,
//! the arena switches, and the arena switched to is reset: it holds the
//! call before this one (its arguments, its work, its results), all of
//! which the host has read and released by now. So memory in use is at
//! most two calls' worth, and an evaluation never pays for a `free`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;
use std::ptr;

/// The smallest block an arena asks the ordinary allocator for. One
/// evaluation of the reference policies allocates a few kilobytes.
const MIN_BLOCK: usize = 64 * 1024;

/// The global allocator a policy opts into with
/// [`scratch_allocator!`](crate::scratch_allocator): scratch-mode
/// allocations come from two alternating bump arenas, everything else from
/// [`System`]. The glue [`export_policy!`](crate::export_policy) generates
/// turns scratch mode on once the policy is configured and tells the
/// arenas when each call ends; without this allocator installed those
/// calls change nothing.
pub struct ScratchAllocator;

/// The arenas behind [`ScratchAllocator`].
static ARENAS: Arenas = Arenas::new();

/// Starts serving new allocations from the arenas: the policy is
/// configured, and what it allocates from here on dies with the call.
pub fn enter_scratch() {
    ARENAS.enter_scratch();
}

/// Runs `f` with scratch mode off: for allocations that must outlive the
/// call, such as a policy configured lazily by its first stage.
pub fn persistent<T>(f: impl FnOnce() -> T) -> T {
    ARENAS.persistent(f)
}

/// An export is returning its results: switch arenas, and reset the one
/// switched to, whose contents belong to the call before this one.
pub fn call_finished() {
    ARENAS.call_finished();
}

/// Two bump arenas, a flag saying whether new allocations go to them, and
/// which one is current.
pub(crate) struct Arenas {
    state: UnsafeCell<State>,
}

// SAFETY: a policy component runs on one thread (`wasm32-wasip2` has no
// threads), so the one static instance is only touched from the thread
// running the component; natively, tests use instances of their own.
unsafe impl Sync for Arenas {}

struct State {
    scratch: bool,
    arenas: [Arena; 2],
    current: usize,
}

/// Blocks obtained from [`System`] and a bump offset into one of them.
struct Arena {
    blocks: Vec<Block>,
    /// Index in `blocks` of the block being bumped.
    active: usize,
    /// Offset of the next free byte in the active block.
    used: usize,
    /// Start of the most recent allocation, so that growing it (a `Vec`
    /// being pushed to, a `String` being formatted) extends it in place.
    last: *mut u8,
}

#[derive(Clone, Copy)]
struct Block {
    start: *mut u8,
    size: usize,
}

impl Arenas {
    pub(crate) const fn new() -> Arenas {
        Arenas {
            state: UnsafeCell::new(State {
                scratch: false,
                arenas: [Arena::new(), Arena::new()],
                current: 0,
            }),
        }
    }

    /// The state, for the length of one method. Every method takes it once
    /// and calls nothing that takes it again while holding it.
    #[allow(clippy::mut_from_ref)]
    fn state(&self) -> &mut State {
        // SAFETY: single-threaded (see the `Sync` impl), and no caller
        // holds two of these at once.
        unsafe { &mut *self.state.get() }
    }

    pub(crate) fn enter_scratch(&self) {
        self.state().scratch = true;
    }

    pub(crate) fn persistent<T>(&self, f: impl FnOnce() -> T) -> T {
        let was = std::mem::replace(&mut self.state().scratch, false);
        let value = f();
        self.state().scratch = was;
        value
    }

    pub(crate) fn call_finished(&self) {
        let state = self.state();
        if !state.scratch {
            return;
        }
        state.current ^= 1;
        // Rebuilding blocks goes to `System`, not to the arena being reset.
        state.scratch = false;
        let current = state.current;
        state.arenas[current].reset();
        state.scratch = true;
    }

    /// Bytes the arenas hold from the ordinary allocator: what opting in
    /// costs in memory.
    #[cfg(test)]
    pub(crate) fn reserved(&self) -> usize {
        let state = self.state();
        state
            .arenas
            .iter()
            .flat_map(|a| a.blocks.iter())
            .map(|b| b.size)
            .sum()
    }

    /// # Safety
    /// As [`GlobalAlloc::alloc`].
    pub(crate) unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let state = self.state();
        if !state.scratch {
            // SAFETY: forwarded unchanged.
            return unsafe { System.alloc(layout) };
        }
        // The arena's own bookkeeping (its list of blocks) must not come
        // from the arena it describes.
        state.scratch = false;
        let current = state.current;
        let ptr = state.arenas[current].alloc(layout);
        state.scratch = true;
        ptr
    }

    /// # Safety
    /// As [`GlobalAlloc::dealloc`].
    pub(crate) unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if !self.owns(ptr) {
            // SAFETY: not an arena pointer, so `System` gave it out.
            unsafe { System.dealloc(ptr, layout) }
        }
        // Arena memory is reclaimed all at once, on reset.
    }

    /// # Safety
    /// As [`GlobalAlloc::realloc`].
    pub(crate) unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !self.owns(ptr) {
            // Ordinary memory stays ordinary, even when it grows during a
            // stage: a configured policy's buffers must never move into an
            // arena that will be reset.
            // SAFETY: `System` gave out `ptr` with `layout`.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        {
            let state = self.state();
            let current = state.current;
            if state.scratch && state.arenas[current].resize_last(ptr, new_size) {
                return ptr;
            }
        }
        let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else {
            return ptr::null_mut();
        };
        // SAFETY: as `GlobalAlloc::realloc` asks of its caller.
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both regions are valid for the smaller size, and the
            // new one does not overlap the old (it was bumped past it, or
            // came from `System`).
            unsafe { ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size)) };
        }
        new
    }

    /// Whether `ptr` lies in one of the arenas' blocks.
    fn owns(&self, ptr: *mut u8) -> bool {
        self.state().arenas.iter().any(|arena| arena.owns(ptr))
    }
}

impl Drop for Arenas {
    fn drop(&mut self) {
        for arena in &mut self.state.get_mut().arenas {
            for block in arena.blocks.drain(..) {
                // SAFETY: every block came from `System` with this layout.
                unsafe { System.dealloc(block.start, block_layout(block.size)) };
            }
        }
    }
}

impl Arena {
    const fn new() -> Arena {
        Arena {
            blocks: Vec::new(),
            active: 0,
            used: 0,
            last: ptr::null_mut(),
        }
    }

    fn owns(&self, ptr: *mut u8) -> bool {
        self.blocks.iter().any(|block| {
            let start = block.start as usize;
            (start..start + block.size).contains(&(ptr as usize))
        })
    }

    /// Forgets every allocation. An arena that needed several blocks is
    /// rebuilt as one block of their total size, so that the next call of
    /// the same shape bumps through a single block.
    fn reset(&mut self) {
        if self.blocks.len() > 1 {
            let total: usize = self.blocks.iter().map(|b| b.size).sum();
            for block in self.blocks.drain(..) {
                // SAFETY: every block came from `System` with this layout.
                unsafe { System.dealloc(block.start, block_layout(block.size)) };
            }
            // SAFETY: a non-zero size. On failure the arena stays empty
            // and the next allocation asks again.
            let start = unsafe { System.alloc(block_layout(total)) };
            if !start.is_null() {
                self.blocks.push(Block { start, size: total });
            }
        }
        self.active = 0;
        self.used = 0;
        self.last = ptr::null_mut();
    }

    /// Bump-allocates `layout`, taking a new block when the active one is
    /// full. Null when the ordinary allocator refuses a block.
    fn alloc(&mut self, layout: Layout) -> *mut u8 {
        loop {
            if let Some(block) = self.blocks.get(self.active).copied() {
                let base = block.start as usize;
                let at = (base + self.used).next_multiple_of(layout.align());
                if let Some(end) = at.checked_add(layout.size())
                    && end <= base + block.size
                {
                    self.used = end - base;
                    self.last = at as *mut u8;
                    return self.last;
                }
                if self.active + 1 < self.blocks.len() {
                    self.active += 1;
                    self.used = 0;
                    continue;
                }
            }
            let wanted = layout.size().saturating_add(layout.align()).max(MIN_BLOCK);
            // SAFETY: a non-zero size.
            let start = unsafe { System.alloc(block_layout(wanted)) };
            if start.is_null() {
                return ptr::null_mut();
            }
            self.blocks.push(Block {
                start,
                size: wanted,
            });
            self.active = self.blocks.len() - 1;
            self.used = 0;
        }
    }

    /// Grows or shrinks the most recent allocation where it lies, when the
    /// active block has room.
    fn resize_last(&mut self, ptr: *mut u8, new_size: usize) -> bool {
        if ptr != self.last || ptr.is_null() {
            return false;
        }
        let Some(block) = self.blocks.get(self.active) else {
            return false;
        };
        let offset = ptr as usize - block.start as usize;
        match offset.checked_add(new_size) {
            Some(end) if end <= block.size => {
                self.used = end;
                true
            }
            _ => false,
        }
    }
}

fn block_layout(size: usize) -> Layout {
    // Allocations align themselves inside a block; 16 covers what the
    // ordinary allocator guarantees. A size this large is refused anyway.
    Layout::from_size_align(size, 16).unwrap_or(Layout::new::<[u8; 16]>())
}

// SAFETY: every pointer handed out is either from `System` (and given back
// to it) or inside an arena block, valid and aligned for its layout until
// that arena is reset, which happens only once the call that allocated it
// is over and the host has released its results (module documentation).
unsafe impl GlobalAlloc for ScratchAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { ARENAS.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { ARENAS.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { ARENAS.realloc(ptr, layout, new_size) }
    }
}

/// Installs [`ScratchAllocator`] as the policy component's global
/// allocator. Use it once, beside [`export_policy!`](crate::export_policy),
/// after reading the contract in the [module documentation](crate::scratch).
/// Natively it expands to nothing, so tests and benchmarks keep the
/// ordinary allocator.
#[macro_export]
macro_rules! scratch_allocator {
    () => {
        #[cfg(target_family = "wasm")]
        #[global_allocator]
        static HANDOFF_SCRATCH_ALLOCATOR: $crate::scratch::ScratchAllocator =
            $crate::scratch::ScratchAllocator;
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(n: usize) -> Layout {
        Layout::from_size_align(n, 8).unwrap()
    }

    #[test]
    fn ordinary_mode_is_the_system_allocator() {
        let arenas = Arenas::new();
        unsafe {
            let p = arenas.alloc(bytes(32));
            assert!(!p.is_null());
            assert!(!arenas.owns(p), "before scratch mode nothing is bumped");
            arenas.dealloc(p, bytes(32));
        }
        assert_eq!(arenas.reserved(), 0);
    }

    /// The memory of a call is reused two calls later, never sooner: the
    /// host may still be reading the previous call's results.
    #[test]
    fn a_call_is_reclaimed_two_calls_later() {
        let arenas = Arenas::new();
        arenas.enter_scratch();
        unsafe {
            let first = arenas.alloc(bytes(100));
            first.write_bytes(7, 100);
            arenas.call_finished();
            let second = arenas.alloc(bytes(100));
            assert!(arenas.owns(first) && arenas.owns(second));
            assert_ne!(first, second, "the previous call's memory is kept");
            assert_eq!(*first, 7, "and untouched");
            arenas.call_finished();
            let third = arenas.alloc(bytes(100));
            assert_eq!(third, first, "two calls later it is reused");
        }
        assert_eq!(arenas.reserved(), 2 * MIN_BLOCK);
    }

    #[test]
    fn the_last_allocation_grows_in_place_and_others_move() {
        let arenas = Arenas::new();
        arenas.enter_scratch();
        unsafe {
            let a = arenas.alloc(bytes(16));
            a.write_bytes(1, 16);
            let grown = arenas.realloc(a, bytes(16), 64);
            assert_eq!(grown, a, "the last allocation extends in place");
            let b = arenas.alloc(bytes(16));
            let moved = arenas.realloc(grown, bytes(64), 128);
            assert_ne!(moved, grown, "not the last any more: copied");
            assert_eq!(*moved.add(15), 1, "contents copied");
            assert!(moved as usize >= b as usize + 16, "past what was live");
        }
    }

    /// Memory from before scratch mode (a configured policy's buffers)
    /// never moves into an arena, even when it grows during a call.
    #[test]
    fn ordinary_memory_stays_ordinary_when_it_grows() {
        let arenas = Arenas::new();
        let kept = unsafe { arenas.alloc(bytes(16)) };
        arenas.enter_scratch();
        unsafe {
            let grown = arenas.realloc(kept, bytes(16), 4096);
            assert!(!grown.is_null());
            assert!(!arenas.owns(grown), "grown in the system allocator");
            arenas.call_finished();
            arenas.call_finished();
            arenas.dealloc(grown, bytes(4096));
        }
    }

    #[test]
    fn persistent_allocations_bypass_the_arena() {
        let arenas = Arenas::new();
        arenas.enter_scratch();
        let p = arenas.persistent(|| unsafe { arenas.alloc(bytes(24)) });
        assert!(!arenas.owns(p));
        let q = unsafe { arenas.alloc(bytes(24)) };
        assert!(arenas.owns(q), "scratch mode is back after the closure");
        unsafe { arenas.dealloc(p, bytes(24)) };
    }

    /// A call larger than a block spreads over several; the arena is then
    /// rebuilt as one block big enough for a call of that size.
    #[test]
    fn big_calls_take_more_blocks_then_one() {
        let arenas = Arenas::new();
        arenas.enter_scratch();
        unsafe {
            for _ in 0..3 {
                let p = arenas.alloc(bytes(MIN_BLOCK - 64));
                assert!(!p.is_null());
                p.write_bytes(0, MIN_BLOCK - 64);
            }
            let huge = arenas.alloc(bytes(4 * MIN_BLOCK));
            assert!(!huge.is_null());
            huge.add(4 * MIN_BLOCK - 1).write(9);
            let before = arenas.reserved();
            arenas.call_finished();
            arenas.call_finished();
            assert_eq!(arenas.reserved(), before, "rebuilt, not shrunk or grown");
            let state = arenas.state();
            assert_eq!(state.arenas[state.current].blocks.len(), 1);
        }
    }
}
