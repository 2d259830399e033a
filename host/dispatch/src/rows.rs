//! What both stores read back the same way: rows into handoffs, decisions
//! and events, times from Unix milliseconds, and the event details the
//! stores record with each change. The two stores differ in their SQL,
//! never in what a stored value means.

use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;
use sqlx::Row;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;

use super::handoff::{Handoff, HandoffState, PriorHandoff, TransferPayload};
use super::store::{Breach, DecisionRow, Escalation, Event, NewHandoff, StoreError};
use handoff_model::{HandoffEvent, Tier};

/// A row of either database, read by column name. The stores keep the same
/// columns with the same meaning (times in Unix milliseconds, flags as
/// booleans), so one decoder serves both.
pub(crate) trait StoredRow {
    fn text(&self, column: &str) -> Result<String, sqlx::Error>;
    fn optional_text(&self, column: &str) -> Result<Option<String>, sqlx::Error>;
    fn int(&self, column: &str) -> Result<i64, sqlx::Error>;
    fn optional_int(&self, column: &str) -> Result<Option<i64>, sqlx::Error>;
    fn real(&self, column: &str) -> Result<f64, sqlx::Error>;
    fn flag(&self, column: &str) -> Result<bool, sqlx::Error>;
}

macro_rules! stored_row {
    ($row:ty) => {
        impl StoredRow for $row {
            fn text(&self, column: &str) -> Result<String, sqlx::Error> {
                self.try_get(column)
            }
            fn optional_text(&self, column: &str) -> Result<Option<String>, sqlx::Error> {
                self.try_get(column)
            }
            fn int(&self, column: &str) -> Result<i64, sqlx::Error> {
                self.try_get(column)
            }
            fn optional_int(&self, column: &str) -> Result<Option<i64>, sqlx::Error> {
                self.try_get(column)
            }
            fn real(&self, column: &str) -> Result<f64, sqlx::Error> {
                self.try_get(column)
            }
            fn flag(&self, column: &str) -> Result<bool, sqlx::Error> {
                self.try_get(column)
            }
        }
    };
}

stored_row!(SqliteRow);
stored_row!(PgRow);

pub(crate) fn millis(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

pub(crate) fn time(millis: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(millis)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// A count kept as a signed integer, as a `u32` (a negative or huge value,
/// which no store writes, reads as 0 or the largest count).
fn count(value: i64) -> u32 {
    u32::try_from(value.max(0)).unwrap_or(u32::MAX)
}

pub(crate) fn parse<T>(row: &impl StoredRow, column: &str) -> Result<T, StoreError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    let text = row.text(column)?;
    text.parse().map_err(|e: T::Err| StoreError::Corrupt {
        what: format!("handoffs.{column}"),
        detail: e.to_string(),
    })
}

/// A nullable column holding a name: `NULL` is none.
fn optional_parse<T>(row: &impl StoredRow, column: &str) -> Result<Option<T>, StoreError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    match row.optional_text(column)? {
        None => Ok(None),
        Some(_) => parse(row, column).map(Some),
    }
}

pub(crate) fn json_column<T: serde::de::DeserializeOwned>(
    row: &impl StoredRow,
    column: &str,
) -> Result<Option<T>, StoreError> {
    row.optional_text(column)?
        .map(|text| {
            serde_json::from_str(&text).map_err(|e| StoreError::Corrupt {
                what: format!("handoffs.{column}"),
                detail: e.to_string(),
            })
        })
        .transpose()
}

fn json_detail(text: &str, what: &str) -> Result<serde_json::Value, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        what: what.into(),
        detail: e.to_string(),
    })
}

pub(crate) fn handoff(row: &impl StoredRow) -> Result<Handoff, StoreError> {
    let optional_time = |column: &str| -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(row.optional_int(column)?.map(time))
    };
    let payload: TransferPayload =
        json_column(row, "payload")?.ok_or_else(|| StoreError::Corrupt {
            what: "handoffs.payload".into(),
            detail: "missing".into(),
        })?;
    Ok(Handoff {
        id: row.text("id")?,
        item_id: row.text("item_id")?,
        tier: parse(row, "tier")?,
        role: row.text("role")?,
        state: parse(row, "state")?,
        reason_code: row.text("reason_code")?,
        driver: row.optional_text("driver")?,
        confidence: row.real("confidence")?,
        created_at: time(row.int("created_at")?),
        ack_deadline: time(row.int("ack_deadline")?),
        resolve_deadline: time(row.int("resolve_deadline")?),
        lease_owner: row.optional_text("lease_owner")?,
        lease_expires: optional_time("lease_expires")?,
        claims: count(row.int("claims")?),
        acked_at: optional_time("acked_at")?,
        resolved_at: optional_time("resolved_at")?,
        resolution: json_column(row, "resolution")?,
        escalations: count(row.int("escalations")?),
        breached: row.flag("breached")?,
        payload,
    })
}

pub(crate) fn prior(row: &impl StoredRow) -> Result<PriorHandoff, StoreError> {
    Ok(PriorHandoff {
        id: row.text("id")?,
        tier: parse(row, "tier")?,
        state: parse(row, "state")?,
        reason_code: row.text("reason_code")?,
        resolution: json_column(row, "resolution")?,
        created_at: time(row.int("created_at")?),
    })
}

pub(crate) fn decision(row: &impl StoredRow) -> Result<DecisionRow, StoreError> {
    Ok(DecisionRow {
        item_id: row.text("item_id")?,
        tier: parse(row, "tier")?,
        driver: row.optional_text("driver")?,
        reason_code: row.text("reason_code")?,
        trigger: optional_parse(row, "trigger")?,
        confidence: row.real("confidence")?,
        at: time(row.int("at")?),
        audit: Vec::new(),
    })
}

pub(crate) fn event(row: &impl StoredRow) -> Result<Event, StoreError> {
    Ok(Event {
        seq: row.int("seq")?,
        handoff: row.text("handoff")?,
        at: time(row.int("at")?),
        kind: row.text("kind")?,
        actor: row.text("actor")?,
        detail: json_detail(&row.text("detail")?, "events.detail")?,
    })
}

/// An event with its handoff's item (`item_id`, from a join), as the audit
/// trail records it.
pub(crate) fn handoff_event(row: &impl StoredRow) -> Result<HandoffEvent, StoreError> {
    Ok(HandoffEvent {
        store_seq: row.int("seq")?,
        handoff: row.text("handoff")?,
        item: row.optional_text("item_id")?.unwrap_or_default(),
        kind: row.text("kind")?,
        actor: row.text("actor")?,
        at: time(row.int("at")?),
        detail: json_detail(&row.text("detail")?, "events.detail")?,
    })
}

/// The breach a handoff returned by a `breached` query is in: the
/// acknowledge deadline first, while it is unacknowledged and unhandled.
pub(crate) fn breach_of(
    row: &impl StoredRow,
    now: DateTime<Utc>,
) -> Result<(Handoff, Breach), StoreError> {
    let handoff = handoff(row)?;
    let ack_handled = row.flag("ack_breach_handled")?;
    let breach = if handoff.acked_at.is_none() && handoff.ack_deadline <= now && !ack_handled {
        Breach::Acknowledge
    } else {
        Breach::Resolve
    };
    Ok((handoff, breach))
}

/// Checks that `worker` holds a live lease on `handoff`: what every change
/// only the holder may make starts with.
pub(crate) fn check_holder(
    handoff: &Handoff,
    worker: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    if handoff.state == HandoffState::Resolved {
        return Err(StoreError::Resolved(handoff.id.clone()));
    }
    let live = handoff.lease_expires.is_some_and(|until| until > now);
    if handoff.lease_owner.as_deref() != Some(worker) || !live {
        return Err(StoreError::NotClaimant {
            id: handoff.id.clone(),
            worker: worker.to_string(),
            holder: handoff.lease_owner.clone().filter(|_| live),
        });
    }
    Ok(())
}

/// A JSON column's text.
pub(crate) fn to_json_text<T: serde::Serialize>(
    value: &T,
    what: impl FnOnce() -> String,
) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt {
        what: what(),
        detail: e.to_string(),
    })
}

/// The detail of an `enqueued` event.
pub(crate) fn enqueued_detail(decision: &DecisionRow, handoff: &NewHandoff) -> serde_json::Value {
    let mut detail = json!({
        "tier": handoff.tier, "role": handoff.role,
        "ack_deadline": handoff.ack_deadline, "resolve_deadline": handoff.resolve_deadline,
        "reason_code": decision.reason_code,
    });
    if let Some(review) = &handoff.payload.review {
        detail["review"] = json!(review);
    }
    detail
}

fn missed(handoff: &Handoff, breach: Breach) -> DateTime<Utc> {
    match breach {
        Breach::Acknowledge => handoff.ack_deadline,
        Breach::Resolve => handoff.resolve_deadline,
    }
}

/// The detail of an `escalated` event, from the handoff as it was.
pub(crate) fn escalated_detail(
    before: &Handoff,
    from: Tier,
    breach: Breach,
    to: &Escalation,
) -> serde_json::Value {
    json!({
        "breach": breach, "from": from, "to": to.tier, "role": to.role,
        "missed_deadline": missed(before, breach),
        "held_by": before.lease_owner,
    })
}

/// The detail of an `alert` event.
pub(crate) fn alert_detail(handoff: &Handoff, breach: Breach) -> serde_json::Value {
    json!({
        "breach": breach, "tier": handoff.tier, "role": handoff.role,
        "missed_deadline": missed(handoff, breach),
    })
}

/// Whether resolving now is late: past the resolve deadline, or past the
/// acknowledge deadline without an acknowledgement (resolving implies
/// acknowledging: an operator who fixes the item at once has also seen it).
pub(crate) fn resolved_late(handoff: &Handoff, now: DateTime<Utc>) -> bool {
    now > handoff.resolve_deadline || (handoff.acked_at.is_none() && now > handoff.ack_deadline)
}

/// The attempt-history entry's text, read back.
pub(crate) fn attempt_entry<T: serde::de::DeserializeOwned>(entry: &str) -> Result<T, StoreError> {
    serde_json::from_str(entry).map_err(|e| StoreError::Corrupt {
        what: "attempt_history.entry".into(),
        detail: e.to_string(),
    })
}
