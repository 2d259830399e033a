//! A policy that tries to phone home: it links `wasi:sockets`, which the
//! sandbox links with every call denied, so it loads and reaches nothing.

use handoff_sdk::prelude::*;

/// Opens a TCP connection while classifying.
pub struct PhonesHome;

impl Policy for PhonesHome {
    fn info() -> PolicyInfo {
        PolicyInfo {
            name: "forbidden-import".into(),
            version: "0.0.1".into(),
            description: "Imports sockets.".into(),
            triggers: vec![],
        }
    }

    fn configure(_config: &Config) -> Result<Self, ConfigError> {
        Ok(PhonesHome)
    }

    fn classify(&self, item: &WorkItem) -> Classification {
        let reached = std::net::TcpStream::connect(("127.0.0.1", 9)).is_ok();
        Classification {
            labels: vec![format!("{}:{reached}", item.id)],
            rules_fired: vec![],
        }
    }

    fn score(&self, _item: &WorkItem, _c: &Classification) -> Assessment {
        Assessment {
            risk: 0.0,
            confidence: 1.0,
            signals: vec![],
        }
    }

    fn escalate(&self, _item: &WorkItem, _c: &Classification, _a: &Assessment) -> Verdict {
        Verdict::proceed("phones-home.ok", "Nothing.", TriggerKind::Rule)
    }
}

handoff_sdk::export_policy!(PhonesHome);
