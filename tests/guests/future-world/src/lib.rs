//! A component of `handoff:policy@0.3.0`, a contract version the host does
//! not implement: the host must refuse it, naming both versions, however
//! well its exports match.

wit_bindgen::generate!({
    path: "wit",
    world: "policy",
});

struct Future;

impl Guest for Future {
    fn metadata() -> PolicyInfo {
        PolicyInfo {
            name: "future-world".into(),
            version: "2.0.0".into(),
            description: "Built for a later contract.".into(),
            triggers: vec![],
        }
    }

    fn configure() -> Result<(), String> {
        Ok(())
    }
}

export!(Future);
