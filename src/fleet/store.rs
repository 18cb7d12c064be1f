//! Opening a fleet store by URL, the engine-independent interface, and reading records
//! back.
//!
//! URLs: `sqlite:PATH` (a file, created when missing; `sqlite::memory:` for a private
//! in-memory store) or `postgres://user:password@host:port/dbname` (also
//! `postgresql://`; any libpq key/value string after `postgres:` works too). Opening
//! applies the migrations this build knows; a store already at a newer schema version
//! is refused.
//!
//! ```no_run
//! let mut store = edgebench::fleet::open("sqlite:fleet.sqlite")?;
//! let filter = edgebench::fleet::Filter { model: Some("mobilenet_v2".into()), ..Default::default() };
//! for rec in store.results(&filter)? {
//!     println!("{} {}", rec["device_id"], rec["latency_ms_p50"]);
//! }
//! # anyhow::Ok(())
//! ```

use anyhow::{bail, Result};
use serde_json::Value;

use super::ingest::Row;
use super::schema::{self, Engine};
use crate::bench::result::{Record, ResultRecord, SummaryRecord};

/// Which rows of `results` / `summaries` to read; `None` fields do not filter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    pub device_id: Option<String>,
    pub model: Option<String>,
    pub sweep_id: Option<String>,
    /// Records with `ts` at or after this (Unix ms).
    pub since_ms: Option<i64>,
    /// Records with `ts` before this (Unix ms).
    pub until_ms: Option<i64>,
    /// At most this many rows (the oldest first).
    pub limit: Option<u64>,
}

/// Error of a store operation. `Unavailable` means the database could not be reached
/// (or went away): retry later with the same rows. `Rejected` means it was reached and
/// refused the statement (a value it cannot hold): retrying will not help.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("store refused the write: {0}")]
    Rejected(String),
}

/// A fleet store: one connection, owned by one writer.
pub trait Store: Send {
    /// The engine behind it.
    fn engine(&self) -> Engine;

    /// The URL, password hidden.
    fn describe(&self) -> String;

    /// The schema version of the store (the highest applied migration).
    fn schema_version(&mut self) -> Result<u32>;

    /// Writes `rows` in one transaction (all or nothing). For each row: `true` when it
    /// inserted or changed a row, `false` when the key was already there unchanged.
    fn apply(&mut self, rows: &[Row]) -> Result<Vec<bool>, StoreError>;

    /// Is the database reachable right now? (Reconnects when it was not.)
    fn ping(&mut self) -> Result<(), StoreError>;

    /// Deletes telemetry older than `telemetry_before_ms` (when given) and all but the
    /// newest `rejects_keep` rejects; returns the rows deleted from each.
    fn prune(
        &mut self,
        telemetry_before_ms: Option<i64>,
        rejects_keep: u64,
    ) -> Result<(u64, u64), StoreError>;

    /// Result records, oldest first: the typed columns that are not NULL plus the keys
    /// kept in `extra`, i.e. the record as it arrived.
    fn results(&mut self, filter: &Filter) -> Result<Vec<Value>> {
        collect(|each| self.each_result(filter, each))
    }

    /// [`Store::results`] one record at a time, as the database streams them (memory
    /// stays flat however many there are); an error from `f` stops the read.
    fn each_result(
        &mut self,
        filter: &Filter,
        f: &mut dyn FnMut(Value) -> Result<()>,
    ) -> Result<()>;

    /// Summary records, oldest first, as they arrived (gains from `extra`).
    fn summaries(&mut self, filter: &Filter) -> Result<Vec<Value>>;

    /// Number of rows in `table` (one of the schema's tables).
    fn count(&mut self, table: &str) -> Result<u64>;
}

/// The records a streaming read (`read(each)`) hands over, collected.
pub fn collect(
    read: impl FnOnce(&mut dyn FnMut(Value) -> Result<()>) -> Result<()>,
) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    read(&mut |v| {
        out.push(v);
        Ok(())
    })?;
    Ok(out)
}

/// Opens (creating when needed) the store at `url` and brings its schema to
/// [`schema::VERSION`].
pub fn open(url: &str) -> Result<Box<dyn Store>> {
    open_at(url, schema::VERSION)
}

/// Opens the store at `url` migrated to `version` at most (tests of upgrades from an
/// older schema; everything else uses [`open`]).
pub fn open_at(url: &str, version: u32) -> Result<Box<dyn Store>> {
    let version = version.min(schema::VERSION);
    match parse_url(url)? {
        Url::Sqlite(path) => Ok(Box::new(super::sqlite::SqliteStore::open(&path, version)?)),
        Url::Postgres(conn) => Ok(Box::new(super::postgres::PgStore::open(&conn, version)?)),
    }
}

/// A parsed store URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Url {
    /// A file path, or `:memory:`.
    Sqlite(String),
    /// A connection string for the PostgreSQL client.
    Postgres(String),
}

/// Parses a store URL (see the module documentation).
pub fn parse_url(url: &str) -> Result<Url> {
    if let Some(rest) = url.strip_prefix("sqlite:") {
        let path = rest.strip_prefix("//").unwrap_or(rest);
        if path.is_empty() {
            bail!("store URL `{url}`: no file after `sqlite:`");
        }
        return Ok(Url::Sqlite(path.to_string()));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Url::Postgres(url.to_string()));
    }
    if let Some(rest) = url.strip_prefix("postgres:") {
        return Ok(Url::Postgres(rest.trim().to_string()));
    }
    bail!("store URL `{url}` is neither `sqlite:PATH` nor `postgres://user@host/db`")
}

/// `url` with any password replaced by `***`.
pub fn redact(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        if let Some((auth, host)) = rest.split_once('@') {
            if let Some((user, _)) = auth.split_once(':') {
                return format!("{scheme}://{user}:***@{host}");
            }
        }
        return url.to_string();
    }
    // key=value form
    url.split_whitespace()
        .map(|kv| {
            if kv.starts_with("password=") {
                "password=***"
            } else {
                kv
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The stored results as typed records. Rows that are not valid result records for
/// this build (e.g. written by a newer one, or missing keys it requires) are returned
/// as errors naming their `run_id`, so a caller can report and skip them.
pub fn result_records(
    store: &mut dyn Store,
    filter: &Filter,
) -> Result<Vec<Result<ResultRecord, String>>> {
    Ok(store
        .results(filter)?
        .into_iter()
        .map(|v| {
            let id = v["run_id"].as_str().unwrap_or("?").to_string();
            serde_json::from_value::<ResultRecord>(v).map_err(|e| format!("run_id {id}: {e}"))
        })
        .collect())
}

/// The stored summaries as typed records (errors as in [`result_records`]).
pub fn summary_records(
    store: &mut dyn Store,
    filter: &Filter,
) -> Result<Vec<Result<SummaryRecord, String>>> {
    Ok(store
        .summaries(filter)?
        .into_iter()
        .map(|v| {
            let id = v["summary_id"].as_str().unwrap_or("?").to_string();
            serde_json::from_value::<SummaryRecord>(v).map_err(|e| format!("summary_id {id}: {e}"))
        })
        .collect())
}

/// Results then summaries as [`Record`]s, skipping rows that do not parse (returned
/// separately as messages), e.g. for `edgebench report --db`.
pub fn records(store: &mut dyn Store, filter: &Filter) -> Result<(Vec<Record>, Vec<String>)> {
    let mut out = Vec::new();
    let mut bad = Vec::new();
    for r in result_records(store, filter)? {
        match r {
            Ok(r) => out.push(Record::Result(Box::new(r))),
            Err(e) => bad.push(e),
        }
    }
    for s in summary_records(store, filter)? {
        match s {
            Ok(s) => out.push(Record::Summary(Box::new(s))),
            Err(e) => bad.push(e),
        }
    }
    Ok((out, bad))
}

/// The WHERE clause (with a leading space) and its values for `filter`; `ph(i)` is the
/// engine's placeholder for the i-th (1-based) parameter.
pub(crate) fn where_clause(
    filter: &Filter,
    ph: impl Fn(usize) -> String,
) -> (String, Vec<FilterVal>) {
    let mut conds = Vec::new();
    let mut vals = Vec::new();
    let mut add = |cond: &str, v: FilterVal| {
        vals.push(v);
        conds.push(format!("{cond} {}", ph(vals.len())));
    };
    if let Some(d) = &filter.device_id {
        add("device_id =", FilterVal::Text(d.clone()));
    }
    if let Some(m) = &filter.model {
        add("model =", FilterVal::Text(m.clone()));
    }
    if let Some(s) = &filter.sweep_id {
        add("sweep_id =", FilterVal::Text(s.clone()));
    }
    if let Some(t) = filter.since_ms {
        add("ts >=", FilterVal::Int(t));
    }
    if let Some(t) = filter.until_ms {
        add("ts <", FilterVal::Int(t));
    }
    let mut sql = String::new();
    if !conds.is_empty() {
        sql = format!(" WHERE {}", conds.join(" AND "));
    }
    (sql, vals)
}

/// A filter parameter.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum FilterVal {
    Text(String),
    Int(i64),
}

/// The upsert statement for `row` (same column order as `row.cols`).
pub(crate) fn upsert_sql(row: &Row, ph: impl Fn(usize) -> String) -> String {
    use super::ingest::OnConflict;
    let cols: Vec<&str> = row.cols.iter().map(|(c, _)| *c).collect();
    let phs: Vec<String> = (1..=cols.len()).map(&ph).collect();
    let mut sql = format!(
        "INSERT INTO {} ({}) VALUES ({})",
        row.table,
        cols.join(", "),
        phs.join(", ")
    );
    if row.key.is_empty() {
        return sql;
    }
    match row.on_conflict {
        OnConflict::Nothing => {
            sql.push_str(&format!(" ON CONFLICT ({}) DO NOTHING", row.key.join(", ")));
        }
        OnConflict::Update { keep, newer } => {
            let sets: Vec<String> = cols
                .iter()
                .filter(|c| !row.key.contains(c) && !keep.contains(c))
                .map(|c| format!("{c} = excluded.{c}"))
                .collect();
            sql.push_str(&format!(
                " ON CONFLICT ({}) DO UPDATE SET {} WHERE {}.{newer} <= excluded.{newer}",
                row.key.join(", "),
                sets.join(", "),
                row.table
            ));
        }
    }
    sql
}

/// Merges a row read back (typed columns, NULLs left out) with its `extra` object.
pub(crate) fn merge_extra(mut obj: serde_json::Map<String, Value>, extra: Option<Value>) -> Value {
    if let Some(Value::Object(e)) = extra {
        for (k, v) in e {
            obj.entry(k).or_insert(v);
        }
    }
    Value::Object(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("sqlite:./f.sqlite").unwrap(),
            Url::Sqlite("./f.sqlite".into())
        );
        assert_eq!(
            parse_url("sqlite:///var/lib/x.sqlite").unwrap(),
            Url::Sqlite("/var/lib/x.sqlite".into())
        );
        assert_eq!(
            parse_url("postgres://u:p@h:5/db").unwrap(),
            Url::Postgres("postgres://u:p@h:5/db".into())
        );
        assert_eq!(
            parse_url("postgres:host=h port=5").unwrap(),
            Url::Postgres("host=h port=5".into())
        );
        let e = parse_url("mysql://x").unwrap_err().to_string();
        assert!(e.contains("mysql://x"), "{e}");
        assert!(parse_url("sqlite:").is_err());
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("host=h password=secret"), "host=h password=***");
    }
}
