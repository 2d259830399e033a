//! Naming what went wrong when a plugin call fails: the wasmtime error, the
//! limiter's note and what the plugin wrote become one [`FaultKind`] and a
//! bounded detail.

use handoff_model::FaultKind;

/// Longest fault detail recorded; trap messages can carry long backtraces.
const MAX_DETAIL: usize = 600;

/// Classifies an error from a plugin call. `refused` is the limiter's note
/// when a growth was refused; `output` is what the plugin wrote.
pub(crate) fn classify(
    error: &wasmtime::Error,
    refused: Option<&str>,
    output: &str,
) -> (FaultKind, String) {
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
    if let Some(at) = output.find("panicked at") {
        let message: Vec<&str> = output[at..].lines().take(2).collect();
        return (FaultKind::Panic, truncate(&message.join(" ")));
    }
    // The trap itself ("call stack exhausted") says more than the wasm
    // backtrace wrapped around it, which goes to the debug log instead.
    tracing::debug!(error = format!("{error:?}"), "plugin trap");
    let message = match error.downcast_ref::<wasmtime::Trap>() {
        Some(trap) => trap.to_string(),
        None => error.root_cause().to_string(),
    };
    (FaultKind::Trap, truncate(&message))
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
