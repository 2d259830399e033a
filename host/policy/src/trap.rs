//! Naming what went wrong when a plugin call fails: the wasmtime error, the
//! limiter's note and what the plugin wrote become one [`FaultKind`] and a
//! bounded detail.

use handoff_model::FaultKind;

/// Longest fault detail recorded; trap messages can carry long backtraces.
const MAX_DETAIL: usize = 600;

/// The message of a panic caught around work that must never take the host
/// down with it (a snapshot of a hostile component, an evaluation on an
/// evaluator thread): what it says, when it says anything.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string())
}

/// Classifies an error from a plugin call. `refused` is the limiter's note
/// when a growth was refused.
///
/// Only structured signals count: the trap code, the limiter's note, the
/// host's own refusal of an oversized output, and the functions on the
/// trap's backtrace. What the plugin wrote never decides the kind (a plugin
/// could print anything) and never reaches the detail shown to people; it
/// goes to the host's debug log.
pub(crate) fn classify(error: &wasmtime::Error, refused: Option<&str>) -> (FaultKind, String) {
    match error.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::OutOfFuel) => {
            return (
                FaultKind::FuelExhausted,
                "the evaluation used up its fuel".into(),
            );
        }
        Some(wasmtime::Trap::Interrupt) => {
            return (
                FaultKind::DeadlineExceeded,
                "the evaluation ran past its deadline".into(),
            );
        }
        _ => {}
    }
    if let Some(why) = refused {
        return (FaultKind::MemoryLimit, truncate(why));
    }
    // The trap itself ("call stack exhausted") says more than the wasm
    // backtrace wrapped around it, which goes to the debug log instead.
    tracing::debug!(error = format!("{error:?}"), "plugin trap");
    let message = match error.downcast_ref::<wasmtime::Trap>() {
        Some(trap) => trap.to_string(),
        None => error.root_cause().to_string(),
    };
    if let Some(function) = panicking_function(error) {
        return (
            FaultKind::Panic,
            truncate(&format!("the plugin panicked ({message}, in {function})")),
        );
    }
    (FaultKind::Trap, truncate(&escape(&message)))
}

/// A Rust guest that panics aborts with `unreachable` from inside the
/// standard library's panic machinery: when the trap's backtrace passes
/// through it, the fault is a panic. Names come from the component's name
/// section; a guest without one reports a plain trap.
fn panicking_function(error: &wasmtime::Error) -> Option<String> {
    if error.downcast_ref::<wasmtime::Trap>() != Some(&wasmtime::Trap::UnreachableCodeReached) {
        return None;
    }
    let backtrace = error.downcast_ref::<wasmtime::WasmBacktrace>()?;
    backtrace
        .frames()
        .iter()
        .filter_map(|frame| frame.func_name())
        .find(|name| name.contains("rust_panic") || name.contains("panic_fmt"))
        .map(|_| "the Rust panic handler".to_string())
}

/// `text` with control characters escaped, for a detail people read.
fn escape(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

fn truncate(text: &str) -> String {
    if text.len() <= MAX_DETAIL {
        return text.to_string();
    }
    let mut end = MAX_DETAIL;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}
