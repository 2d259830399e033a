//! What loading starts from and what it reports: a plugin's files before
//! they are loaded, and a file that did not become a plugin.

/// A component and its manifest, before loading.
#[derive(Debug, Clone)]
pub struct PluginSource {
    /// The plugin's name: the component's file name without `.wasm`.
    pub name: String,
    /// The component bytes.
    pub wasm: Vec<u8>,
    /// The manifest text, when there is one.
    pub manifest: Option<String>,
    /// The signature file's text (`NAME.sig`), when there is one: what the
    /// trust gate checks before anything is compiled.
    pub signatures: Option<String>,
}

/// A file that did not become a plugin, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Rejection {
    /// The file at fault, as the operator named it.
    pub file: String,
    /// What is wrong, in words that say what to fix.
    pub reason: String,
}

impl From<handoff_trust::Refusal> for Rejection {
    fn from(refusal: handoff_trust::Refusal) -> Self {
        Rejection {
            file: refusal.file,
            reason: refusal.reason,
        }
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.file, self.reason)
    }
}

/// Every rejection, one after another: how a refusal of several files at
/// once is told.
pub fn describe_all(rejections: &[Rejection]) -> String {
    rejections
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
