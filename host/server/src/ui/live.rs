//! The queue's live feed: a server-sent event stream that says `changed`
//! whenever the handoff store's newest event moves, whoever moved it (this
//! server, another host, `handoff queue` on the command line). The page
//! then fetches its rows again; the stream itself carries no work, so it
//! shows nothing a person could not already load.
//!
//! Each stream reads one indexed number per tick (and when the store
//! announces a change), ends when the server
//! shuts down (so that it never holds up the drain), and sends a comment
//! every few seconds so that proxies and the idle timeout keep it open.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream};

use crate::app::App;

/// How often a stream looks at the store.
const TICK: Duration = Duration::from_millis(400);

/// `GET /ui/events`.
pub async fn events(
    State(app): State<Arc<App>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let start = app.dispatcher.newest_event().await.unwrap_or(0);
    let closing = app.closing.subscribe();
    let stream = stream::unfold(
        (app, start, closing),
        |(app, mut seen, mut closing)| async move {
            loop {
                if *closing.borrow() {
                    return None;
                }
                // A change this server made, or on PostgreSQL any node,
                // is looked at at once; the tick finds the others.
                tokio::select! {
                    _ = closing.changed() => return None,
                    () = app.changed.notified() => {}
                    () = tokio::time::sleep(TICK) => {}
                }
                // A store that fails to answer is not a change; the page keeps
                // what it shows, and readiness reports the store.
                let Ok(newest) = app.dispatcher.newest_event().await else {
                    continue;
                };
                if newest != seen {
                    seen = newest;
                    let event = Event::default().event("changed").data(newest.to_string());
                    return Some((Ok(event), (app, seen, closing)));
                }
            }
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(10)))
}
