//! The HTTP baseline `benches/http-load` measures `handoff serve` against:
//! axum on the same tokio runtime, answering `POST /v1/evaluate` with the
//! request's own body, with nothing decided, stored or audited. What
//! `handoff serve` does beyond this is the price of the decision.
//!
//! Usage: `http-echo ADDRESS` (for example `127.0.0.1:0`); prints
//! `listening on ADDRESS` once it accepts connections.

use anyhow::Context;
use axum::Router;
use axum::body::Bytes;
use axum::routing::post;

fn main() -> anyhow::Result<()> {
    let address = std::env::args()
        .nth(1)
        .context("usage: http-echo ADDRESS")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(&address)
            .await
            .with_context(|| format!("cannot listen on {address}"))?;
        println!("listening on {}", listener.local_addr()?);
        let app = Router::new().route("/v1/evaluate", post(|body: Bytes| async move { body }));
        axum::serve(listener, app)
            .await
            .context("the echo server failed")
    })
}
