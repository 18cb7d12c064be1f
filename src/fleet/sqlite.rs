//! The SQLite engine: one file, WAL journal, `synchronous=FULL` (a commit is on disk
//! before the collector acknowledges the message), statements cached per table.

use anyhow::{bail, Context, Result};
use rusqlite::types::{ToSqlOutput, Value as SqlValue};
use rusqlite::{params_from_iter, Connection, OptionalExtension, TransactionBehavior};
use serde_json::{Map, Value};

use super::ingest::{Row, Val};
use super::schema::{self, ColType, Engine, RESULT_COLUMNS, SUMMARY_COLUMNS};
use super::store::{self, Filter, FilterVal, Store, StoreError};

pub(crate) struct SqliteStore {
    conn: Connection,
    path: String,
}

fn ph(i: usize) -> String {
    format!("?{i}")
}

impl SqliteStore {
    pub(crate) fn open(path: &str, version: u32) -> Result<SqliteStore> {
        if path != ":memory:" {
            if let Some(dir) = std::path::Path::new(path).parent() {
                if !dir.as_os_str().is_empty() && !dir.is_dir() {
                    bail!("sqlite:{path}: directory {} does not exist", dir.display());
                }
            }
        }
        let conn = Connection::open(path).with_context(|| format!("opening sqlite:{path}"))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        // WAL: readers (report, Grafana) never block the collector's writes.
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        if path != ":memory:" && !mode.eq_ignore_ascii_case("wal") {
            bail!("sqlite:{path}: cannot switch to WAL (journal_mode is {mode})");
        }
        conn.execute_batch("PRAGMA synchronous=FULL;")?;
        conn.set_prepared_statement_cache_capacity(32);
        let mut s = SqliteStore {
            conn,
            path: path.to_string(),
        };
        s.migrate(version)
            .with_context(|| format!("sqlite:{path}: schema migration"))?;
        Ok(s)
    }

    fn migrate(&mut self, target: u32) -> Result<()> {
        // IMMEDIATE: a second collector starting at the same moment waits here.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute_batch(schema::VERSION_TABLE_SQL)?;
        let current: u32 = tx
            .query_row("SELECT MAX(version) FROM edgebench_schema", [], |r| {
                r.get::<_, Option<i64>>(0)
            })?
            .unwrap_or(0) as u32;
        if current > schema::VERSION {
            bail!(
                "the store is at schema version {current}, newer than this edgebench knows \
                 ({}): upgrade edgebench",
                schema::VERSION
            );
        }
        for m in schema::MIGRATIONS
            .iter()
            .filter(|m| m.version > current && m.version <= target)
        {
            tx.execute_batch(&schema::render(m.sql, Engine::Sqlite))
                .with_context(|| format!("migration {}", m.name))?;
            tx.execute(
                "INSERT INTO edgebench_schema (version, name, applied_at) VALUES (?1, ?2, ?3)",
                rusqlite::params![
                    m.version,
                    m.name,
                    schema::rfc3339_ms(crate::bench::result::now_ms())
                ],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    fn read(
        &mut self,
        table: &str,
        cols: &[(&str, ColType)],
        order: &str,
        f: &Filter,
    ) -> Result<Vec<Value>> {
        store::collect(|each| self.read_each(table, cols, order, f, each))
    }

    /// Rows of `table` as records, handed to `each` as they are read.
    fn read_each(
        &mut self,
        table: &str,
        cols: &[(&str, ColType)],
        order: &str,
        f: &Filter,
        each: &mut dyn FnMut(Value) -> Result<()>,
    ) -> Result<()> {
        let (wh, vals) = store::where_clause(f, ph);
        let names: Vec<&str> = cols.iter().map(|(c, _)| *c).collect();
        let mut sql = format!(
            "SELECT {}, extra FROM {table}{wh} ORDER BY {order}",
            names.join(", ")
        );
        if let Some(l) = f.limit {
            sql.push_str(&format!(" LIMIT {l}"));
        }
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let params: Vec<SqlValue> = vals
            .into_iter()
            .map(|v| match v {
                FilterVal::Text(s) => SqlValue::Text(s),
                FilterVal::Int(i) => SqlValue::Integer(i),
            })
            .collect();
        let mut rows = stmt.query(params_from_iter(params))?;
        while let Some(r) = rows.next()? {
            let mut obj = Map::new();
            for (i, (name, ty)) in cols.iter().enumerate() {
                let v: Option<Value> = match ty {
                    ColType::Text => r.get::<_, Option<String>>(i)?.map(Value::from),
                    ColType::Int => r.get::<_, Option<i64>>(i)?.map(Value::from),
                    ColType::Real => r.get::<_, Option<f64>>(i)?.map(Value::from),
                    ColType::Bool => r.get::<_, Option<i64>>(i)?.map(|b| Value::from(b != 0)),
                };
                if let Some(v) = v {
                    obj.insert((*name).to_string(), v);
                }
            }
            let extra: Option<String> = r.get(cols.len())?;
            let extra = match extra {
                Some(t) => Some(
                    serde_json::from_str(&t)
                        .with_context(|| format!("{table}: `extra` is not JSON: {t}"))?,
                ),
                None => None,
            };
            each(store::merge_extra(obj, extra))?;
        }
        Ok(())
    }
}

fn bind(v: &Val) -> ToSqlOutput<'_> {
    use rusqlite::types::ValueRef;
    match v {
        Val::Null => ToSqlOutput::Borrowed(ValueRef::Null),
        Val::Int(i) => ToSqlOutput::Owned(SqlValue::Integer(*i)),
        Val::Real(f) => ToSqlOutput::Owned(SqlValue::Real(*f)),
        Val::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
        Val::Bool(b) => ToSqlOutput::Owned(SqlValue::Integer(*b as i64)),
        Val::Time(ms) => ToSqlOutput::Owned(SqlValue::Text(schema::rfc3339_ms(*ms))),
        Val::Json(j) => ToSqlOutput::Owned(SqlValue::Text(j.to_string())),
    }
}

/// Busy / locked / I/O problems can pass; anything else is the statement's fault.
fn classify(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode as C;
    match e.sqlite_error_code() {
        Some(
            C::DatabaseBusy
            | C::DatabaseLocked
            | C::SystemIoFailure
            | C::DiskFull
            | C::CannotOpen
            | C::OutOfMemory
            | C::FileLockingProtocolFailed,
        ) => StoreError::Unavailable(e.to_string()),
        _ => StoreError::Rejected(e.to_string()),
    }
}

impl Store for SqliteStore {
    fn engine(&self) -> Engine {
        Engine::Sqlite
    }

    fn describe(&self) -> String {
        format!("sqlite:{}", self.path)
    }

    fn schema_version(&mut self) -> Result<u32> {
        let v: Option<i64> = self
            .conn
            .query_row("SELECT MAX(version) FROM edgebench_schema", [], |r| {
                r.get(0)
            })
            .optional()?
            .flatten();
        Ok(v.unwrap_or(0) as u32)
    }

    fn apply(&mut self, rows: &[Row]) -> Result<Vec<bool>, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(classify)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let sql = store::upsert_sql(row, ph);
            let mut stmt = tx.prepare_cached(&sql).map_err(classify)?;
            let n = stmt
                .execute(params_from_iter(row.cols.iter().map(|(_, v)| bind(v))))
                .map_err(|e| match classify(e) {
                    StoreError::Rejected(m) => StoreError::Rejected(format!("{}: {m}", row.table)),
                    u => u,
                })?;
            out.push(n > 0);
        }
        tx.commit().map_err(classify)?;
        Ok(out)
    }

    fn ping(&mut self) -> Result<(), StoreError> {
        self.conn
            .query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
            .map(|_| ())
            .map_err(|e| StoreError::Unavailable(e.to_string()))
    }

    fn prune(&mut self, before: Option<i64>, keep: u64) -> Result<(u64, u64), StoreError> {
        let t = match before {
            Some(ms) => self
                .conn
                .execute(
                    "DELETE FROM telemetry WHERE time < ?1",
                    [schema::rfc3339_ms(ms)],
                )
                .map_err(classify)? as u64,
            None => 0,
        };
        let r = self
            .conn
            .execute(
                "DELETE FROM rejects WHERE id <= (SELECT MAX(id) FROM rejects) - ?1",
                [keep as i64],
            )
            .map_err(classify)? as u64;
        Ok((t, r))
    }

    fn each_result(&mut self, f: &Filter, each: &mut dyn FnMut(Value) -> Result<()>) -> Result<()> {
        self.read_each("results", RESULT_COLUMNS, "ts, run_id", f, each)
    }

    fn summaries(&mut self, f: &Filter) -> Result<Vec<Value>> {
        self.read("summaries", SUMMARY_COLUMNS, "ts, summary_id", f)
    }

    fn count(&mut self, table: &str) -> Result<u64> {
        if !table.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
            bail!("not a table name: {table}");
        }
        let n: i64 = self
            .conn
            .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))?;
        Ok(n as u64)
    }
}
