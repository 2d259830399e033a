//! `--store`: which handoff store a command works on, for every command
//! that opens one (`serve`, `watch`, `queue`, `report`).

use std::path::Path;

use handoff_dispatch::StoreLocation;

/// Which handoff store to use.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreArg {
    /// The handoff store: `sqlite` (the embedded default, `handoffs.db` in
    /// the data directory) or a PostgreSQL URL,
    /// `postgres://user@host:port/database`, that several hosts share. The
    /// environment variable keeps a password out of the process list.
    #[arg(
        long = "store",
        value_name = "STORE",
        env = "HANDOFF_STORE",
        default_value = "sqlite",
        global = true
    )]
    pub spec: String,
}

impl StoreArg {
    /// Where the store is, the embedded one being in `data`.
    pub fn location(&self, data: &Path) -> anyhow::Result<StoreLocation> {
        StoreLocation::parse(&self.spec, data)
            .map_err(|reason| anyhow::anyhow!("--store: {reason}"))
    }
}
