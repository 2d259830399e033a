//! SQLite's decision-row writer for [`GroupCommit`](super::group_commit):
//! one connection of its own rather than one borrowed from the pool per
//! group, since a pooled connection is pinged by sqlx on every return (a
//! second round trip to its worker thread) and returned by a spawned task,
//! which together cost more than the insert.

use handoff_model::Named;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Connection, QueryBuilder, Sqlite, SqlitePool};

use super::group_commit::GroupWriter;
use super::rows::millis;
use super::store::{DecisionRow, StoreError};

/// Rows per `INSERT` statement: 7 parameters each, well under SQLite's
/// 32766-parameter limit.
const ROWS_PER_STATEMENT: usize = 500;

/// The writer task's state: its connection, opened when first needed and
/// opened again after a failure.
pub(crate) struct SqliteWriter {
    pool: SqlitePool,
    options: SqliteConnectOptions,
    connection: Option<SqliteConnection>,
}

impl SqliteWriter {
    /// A writer whose connection is made from `options` (the pool's), with
    /// the pool as its fallback.
    pub(crate) fn new(pool: &SqlitePool, options: SqliteConnectOptions) -> Self {
        SqliteWriter {
            pool: pool.clone(),
            options,
            connection: None,
        }
    }
}

impl GroupWriter for SqliteWriter {
    /// Inserts on the writer's connection, opening it first if needed. A
    /// connection that fails is dropped, to be opened afresh next time; one
    /// that cannot be opened leaves the insert to the pool.
    async fn insert(&mut self, rows: &[&DecisionRow]) -> Result<(), StoreError> {
        if self.connection.is_none() {
            match self.options.connect().await {
                Ok(connection) => self.connection = Some(connection),
                Err(error) => {
                    tracing::warn!(%error, "the decision writer cannot open its connection; using the pool");
                    let mut pooled = self.pool.acquire().await?;
                    return insert_refs(&mut pooled, rows).await;
                }
            }
        }
        let Some(connection) = self.connection.as_mut() else {
            return Err(StoreError::Database(sqlx::Error::PoolClosed));
        };
        let result = insert_refs(connection, rows).await;
        if result.is_err() {
            self.connection = None;
        }
        result
    }

    async fn close(&mut self) {
        if let Some(connection) = self.connection.take()
            && let Err(error) = connection.close().await
        {
            tracing::debug!(%error, "cannot close the decision writer's connection");
        }
    }
}

/// Inserts `rows` in one transaction through a connection of the pool.
pub(crate) async fn insert_pooled(
    pool: &SqlitePool,
    rows: &[DecisionRow],
) -> Result<(), StoreError> {
    let rows: Vec<&DecisionRow> = rows.iter().collect();
    let mut pooled = pool.acquire().await?;
    insert_refs(&mut pooled, &rows).await
}

/// Inserts `rows` in one transaction: all of them or none. A single
/// statement needs no transaction of its own, being atomic.
async fn insert_refs(
    connection: &mut SqliteConnection,
    rows: &[&DecisionRow],
) -> Result<(), StoreError> {
    if rows.len() <= ROWS_PER_STATEMENT {
        return Ok(insert_statement(rows)
            .build()
            .execute(&mut *connection)
            .await
            .map(drop)?);
    }
    let mut tx = connection.begin_with("BEGIN IMMEDIATE").await?;
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        insert_statement(chunk).build().execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// One multi-row `INSERT` of `rows` (the one way a decision row is
/// written, a handoff's included).
pub(crate) fn insert_statement<'a>(rows: &'a [&'a DecisionRow]) -> QueryBuilder<'a, Sqlite> {
    let mut insert = QueryBuilder::new(
        "INSERT INTO decisions (item_id, tier, driver, reason_code, trigger, confidence, at) ",
    );
    insert.push_values(rows, |mut values, row| {
        values
            .push_bind(&row.item_id)
            .push_bind(row.tier.as_str())
            .push_bind(&row.driver)
            .push_bind(&row.reason_code)
            .push_bind(row.trigger.map(|t| t.as_str()))
            .push_bind(row.confidence)
            .push_bind(millis(row.at));
    });
    insert
}
