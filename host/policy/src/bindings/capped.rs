//! Strings and lists lifted out of a plugin only after their length is
//! checked against the host's cap, so that a plugin cannot make the host
//! allocate more than the cap allows, whatever its own memory limit.
//!
//! `Capped<T, F>` lifts exactly as `T` does (`String` or `Vec<_>`), but
//! reads the length first and, when it is over `F::MAX`, lifts nothing and
//! only remembers the length: [`Capped::checked`] then refuses it, naming
//! the field (`F::WHAT`) and the stage that returned it. The rest of the
//! result is lifted as usual, so the stages before the one at fault are
//! kept. The result records of each contract version are built from these.
//!
//! This implements wasmtime's `ComponentType` and `Lift` by hand, through
//! `wasmtime::component::__internal`, which is not covered by wasmtime's
//! API stability: the workspace pins wasmtime, and the tests in
//! `tests/all/sandbox.rs` exercise every capped field.

use std::marker::PhantomData;

use wasmtime::ValRaw;
use wasmtime::component::__internal::{CanonicalAbiInfo, InstanceType, InterfaceType, LiftContext};
use wasmtime::component::{ComponentType, Lift};

/// A capped field: what it is called, which stage returns it, and its cap
/// (bytes for a string, entries for a list).
pub(crate) trait Cap: Send + Sync + 'static {
    const WHAT: &'static str;
    const STAGE: &'static str;
    const MAX: usize;
}

/// A value of a capped field: lifted, or left in the plugin because it was
/// over the cap.
pub(crate) struct Capped<T, F> {
    value: Option<T>,
    len: usize,
    field: PhantomData<F>,
}

impl<T, F: Cap> Capped<T, F> {
    fn kept(value: T) -> Self {
        Capped {
            value: Some(value),
            len: 0,
            field: PhantomData,
        }
    }

    fn over(len: usize) -> Self {
        Capped {
            value: None,
            len,
            field: PhantomData,
        }
    }

    /// The value, or the refusal of a value over the cap.
    pub(crate) fn checked(self) -> Result<T, OverCap> {
        self.value.ok_or(OverCap {
            what: F::WHAT,
            stage: F::STAGE,
            len: self.len,
            cap: F::MAX,
        })
    }
}

/// A field over its cap: the plugin's output is refused, never lifted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} is {len} long, over the cap of {cap}")]
pub(crate) struct OverCap {
    /// The field.
    pub(crate) what: &'static str,
    /// The stage that returned it.
    pub(crate) stage: &'static str,
    /// Its length, in bytes (or code units) or entries.
    pub(crate) len: usize,
    /// The cap.
    pub(crate) cap: usize,
}

/// Strings whose encoding sets this bit in the length are UTF-16; the rest
/// of the length counts code units.
const UTF16_TAG: usize = 1 << 31;

fn over<F: Cap>(len: usize) -> bool {
    len > F::MAX
}

/// The length a flat or in-memory string or list carries, before lifting.
fn flat_len(src: &[ValRaw; 2]) -> usize {
    src[1].get_u32() as usize
}

fn memory_len(bytes: &[u8]) -> usize {
    bytes
        .get(4..8)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map_or(usize::MAX, |b| u32::from_le_bytes(b) as usize)
}

/// A lifted string, held to the cap in UTF-8 bytes (a UTF-16 string can
/// grow when transcoded).
fn string<F: Cap>(text: String) -> wasmtime::Result<Capped<String, F>> {
    Ok(if over::<F>(text.len()) {
        Capped::over(text.len())
    } else {
        Capped::kept(text)
    })
}

unsafe impl<F: Cap> ComponentType for Capped<String, F> {
    type Lower = [ValRaw; 2];
    const ABI: CanonicalAbiInfo = <String as ComponentType>::ABI;

    fn typecheck(ty: &InterfaceType, types: &InstanceType<'_>) -> wasmtime::Result<()> {
        <String as ComponentType>::typecheck(ty, types)
    }
}

unsafe impl<F: Cap> Lift for Capped<String, F> {
    fn linear_lift_from_flat(
        cx: &mut LiftContext<'_>,
        ty: InterfaceType,
        src: &Self::Lower,
    ) -> wasmtime::Result<Self> {
        // Code units first (an upper bound on what lifting allocates), then
        // the exact UTF-8 length.
        let units = flat_len(src) & !UTF16_TAG;
        if over::<F>(units) {
            return Ok(Capped::over(units));
        }
        string::<F>(String::linear_lift_from_flat(cx, ty, src)?)
    }

    fn linear_lift_from_memory(
        cx: &mut LiftContext<'_>,
        ty: InterfaceType,
        bytes: &[u8],
    ) -> wasmtime::Result<Self> {
        let units = memory_len(bytes) & !UTF16_TAG;
        if over::<F>(units) {
            return Ok(Capped::over(units));
        }
        string::<F>(String::linear_lift_from_memory(cx, ty, bytes)?)
    }
}

unsafe impl<T: ComponentType, F: Cap> ComponentType for Capped<Vec<T>, F> {
    type Lower = [ValRaw; 2];
    const ABI: CanonicalAbiInfo = <Vec<T> as ComponentType>::ABI;

    fn typecheck(ty: &InterfaceType, types: &InstanceType<'_>) -> wasmtime::Result<()> {
        <Vec<T> as ComponentType>::typecheck(ty, types)
    }
}

unsafe impl<T: Lift, F: Cap> Lift for Capped<Vec<T>, F> {
    fn linear_lift_from_flat(
        cx: &mut LiftContext<'_>,
        ty: InterfaceType,
        src: &Self::Lower,
    ) -> wasmtime::Result<Self> {
        let len = flat_len(src);
        if over::<F>(len) {
            return Ok(Capped::over(len));
        }
        Ok(Capped::kept(Vec::linear_lift_from_flat(cx, ty, src)?))
    }

    fn linear_lift_from_memory(
        cx: &mut LiftContext<'_>,
        ty: InterfaceType,
        bytes: &[u8],
    ) -> wasmtime::Result<Self> {
        let len = memory_len(bytes);
        if over::<F>(len) {
            return Ok(Capped::over(len));
        }
        Ok(Capped::kept(Vec::linear_lift_from_memory(cx, ty, bytes)?))
    }
}

/// Declares the caps of a contract version's fields: a unit type per field
/// with its name, stage and cap.
macro_rules! caps {
    ($($name:ident: $what:literal in $stage:literal, at most $max:expr;)*) => {
        $(
            pub(crate) struct $name;
            impl $crate::bindings::capped::Cap for $name {
                const WHAT: &'static str = $what;
                const STAGE: &'static str = $stage;
                const MAX: usize = $max;
            }
        )*
    };
}

pub(crate) use caps;
