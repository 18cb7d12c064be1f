//! The PostgreSQL engine: the synchronous `postgres` client (no TLS: reach the server
//! on a private network, a Unix socket or a tunnel), statements prepared once per
//! connection, migrations under an advisory lock so collectors starting together do
//! not race.

use std::collections::HashMap;
use std::error::Error as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::{IsNull, ToSql, Type};
use postgres::{Client, NoTls, Statement};
use serde_json::{Map, Value};

use super::ingest::{OnConflict, Row, Val};
use super::schema::{self, ColType, Engine, RESULT_COLUMNS, SUMMARY_COLUMNS};
use super::store::{self, Filter, FilterVal, Store, StoreError};

/// Arbitrary key of the advisory lock held while migrating.
const MIGRATION_LOCK: i64 = 0x6564_6765_6265_6e63; // "edgebenc"

pub(crate) struct PgStore {
    client: Client,
    conn: String,
    statements: HashMap<String, Statement>,
}

fn ph(i: usize) -> String {
    format!("${i}")
}

fn connect(conn: &str) -> Result<Client, postgres::Error> {
    let mut cfg: postgres::Config = conn.parse()?;
    cfg.connect_timeout(Duration::from_secs(10));
    cfg.application_name("edgebench");
    cfg.connect(NoTls)
}

impl PgStore {
    pub(crate) fn open(conn: &str, version: u32) -> Result<PgStore> {
        let client =
            connect(conn).with_context(|| format!("connecting to {}", store::redact(conn)))?;
        let mut s = PgStore {
            client,
            conn: conn.to_string(),
            statements: HashMap::new(),
        };
        s.migrate(version)
            .with_context(|| format!("{}: schema migration", store::redact(conn)))?;
        Ok(s)
    }

    fn migrate(&mut self, target: u32) -> Result<()> {
        let c = &mut self.client;
        c.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])?;
        let r = (|| -> Result<()> {
            let mut tx = c.transaction()?;
            tx.batch_execute(schema::VERSION_TABLE_SQL)?;
            let current: Option<i64> = tx
                .query_one("SELECT MAX(version) FROM edgebench_schema", &[])?
                .get(0);
            let current = current.unwrap_or(0) as u32;
            if current > schema::VERSION {
                bail!(
                    "the store is at schema version {current}, newer than this edgebench \
                     knows ({}): upgrade edgebench",
                    schema::VERSION
                );
            }
            for m in schema::MIGRATIONS
                .iter()
                .filter(|m| m.version > current && m.version <= target)
            {
                tx.batch_execute(&schema::render(m.sql, Engine::Postgres))
                    .with_context(|| format!("migration {}", m.name))?;
                tx.execute(
                    "INSERT INTO edgebench_schema (version, name, applied_at) VALUES ($1, $2, $3)",
                    &[
                        &(m.version as i64),
                        &m.name,
                        &schema::rfc3339_ms(crate::bench::result::now_ms()),
                    ],
                )?;
            }
            tx.commit()?;
            Ok(())
        })();
        let _ = c.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]);
        r
    }

    fn reconnect(&mut self) -> Result<(), StoreError> {
        self.statements.clear();
        self.client = connect(&self.conn).map_err(|e| StoreError::Unavailable(describe(&e)))?;
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

    /// Rows of `table` as records, handed to `each` as the server streams them.
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
        let params: Vec<Box<dyn ToSql + Sync>> = vals
            .into_iter()
            .map(|v| -> Box<dyn ToSql + Sync> {
                match v {
                    FilterVal::Text(s) => Box::new(s),
                    FilterVal::Int(i) => Box::new(i),
                }
            })
            .collect();
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|b| b.as_ref()).collect();
        let mut rows = self.client.query_raw(&sql, refs)?;
        while let Some(r) = rows.next()? {
            let mut obj = Map::new();
            for (i, (name, ty)) in cols.iter().enumerate() {
                let v: Option<Value> = match ty {
                    ColType::Text => r.try_get::<_, Option<String>>(i)?.map(Value::from),
                    ColType::Int => r.try_get::<_, Option<i64>>(i)?.map(Value::from),
                    ColType::Real => r.try_get::<_, Option<f64>>(i)?.map(Value::from),
                    ColType::Bool => r.try_get::<_, Option<bool>>(i)?.map(Value::from),
                };
                if let Some(v) = v {
                    obj.insert((*name).to_string(), v);
                }
            }
            let extra: Option<Value> = r.try_get(cols.len())?;
            each(store::merge_extra(obj, extra))?;
        }
        Ok(())
    }
}

/// Rows per multi-row INSERT at most.
const BULK_ROWS: usize = 500;
/// Bind parameters per statement at most (the protocol's limit is 65535).
const MAX_PARAMS: usize = 60_000;

fn same_shape(a: &Row, b: &Row) -> bool {
    a.table == b.table
        && a.cols.len() == b.cols.len()
        && a.cols.iter().zip(&b.cols).all(|((x, _), (y, _))| x == y)
}

/// The key of a row as text (key columns joined), as `RETURNING` gives it back.
fn key_text(row: &Row) -> String {
    row.key
        .iter()
        .map(|k| match row.get(k) {
            Some(Val::Text(s)) => s.clone(),
            Some(Val::Int(i)) => i.to_string(),
            _ => String::new(),
        })
        .collect::<Vec<_>>()
        .join("\u{1}")
}

/// `INSERT ... VALUES (..), (..) ON CONFLICT (key) DO NOTHING RETURNING key`: marks
/// in `out` the rows that were new (the first of equal keys within the chunk).
fn bulk_insert(
    tx: &mut postgres::Transaction<'_>,
    rows: &[Row],
    chunk: &[usize],
    out: &mut [bool],
) -> Result<(), StoreError> {
    let first = &rows[chunk[0]];
    let ncols = first.cols.len();
    let cols: Vec<&str> = first.cols.iter().map(|(c, _)| *c).collect();
    let mut values = Vec::with_capacity(chunk.len());
    for r in 0..chunk.len() {
        let phs: Vec<String> = (1..=ncols).map(|c| ph(r * ncols + c)).collect();
        values.push(format!("({})", phs.join(", ")));
    }
    let returning: Vec<String> = first.key.iter().map(|k| format!("{k}::text")).collect();
    let sql = format!(
        "INSERT INTO {} ({}) VALUES {} ON CONFLICT ({}) DO NOTHING RETURNING {}",
        first.table,
        cols.join(", "),
        values.join(", "),
        first.key.join(", "),
        returning.join(", ")
    );
    let binds: Vec<Bind> = chunk
        .iter()
        .flat_map(|&i| rows[i].cols.iter().map(|(_, v)| Bind(v)))
        .collect();
    let refs: Vec<&(dyn ToSql + Sync)> = binds.iter().map(|b| b as &(dyn ToSql + Sync)).collect();
    let got = tx.query(&sql, &refs).map_err(|e| match classify(&e) {
        StoreError::Rejected(m) => StoreError::Rejected(format!("{}: {m}", first.table)),
        u => u,
    })?;
    let mut inserted: std::collections::HashSet<String> = got
        .iter()
        .map(|r| {
            (0..first.key.len())
                .map(|i| r.get::<_, String>(i))
                .collect::<Vec<_>>()
                .join("\u{1}")
        })
        .collect();
    for &i in chunk {
        out[i] = inserted.remove(&key_text(&rows[i]));
    }
    Ok(())
}

/// A value bound to whatever type the statement's column has.
#[derive(Debug)]
struct Bind<'a>(&'a Val);

impl ToSql for Bind<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self.0 {
            Val::Null => Ok(IsNull::Yes),
            Val::Int(i) if *ty == Type::FLOAT8 => (*i as f64).to_sql(ty, out),
            Val::Int(i) => i.to_sql(ty, out),
            Val::Real(f) => f.to_sql(ty, out),
            // PostgreSQL text cannot hold NUL; keep the rest of the string.
            Val::Text(s) if s.contains('\0') => s.replace('\0', "\u{FFFD}").to_sql(ty, out),
            Val::Text(s) => s.to_sql(ty, out),
            Val::Bool(b) => b.to_sql(ty, out),
            Val::Time(ms) => {
                let t = if *ms >= 0 {
                    UNIX_EPOCH + Duration::from_millis(*ms as u64)
                } else {
                    UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
                };
                SystemTime::to_sql(&t, ty, out)
            }
            Val::Json(j) => j.to_sql(ty, out),
        }
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }

    fn to_sql_checked(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        let ok = match self.0 {
            Val::Null => true,
            Val::Int(_) => matches!(*ty, Type::INT8 | Type::FLOAT8),
            Val::Real(_) => *ty == Type::FLOAT8,
            Val::Text(_) => matches!(*ty, Type::TEXT | Type::VARCHAR),
            Val::Bool(_) => *ty == Type::BOOL,
            Val::Time(_) => matches!(*ty, Type::TIMESTAMPTZ | Type::TIMESTAMP),
            Val::Json(_) => matches!(*ty, Type::JSONB | Type::JSON),
        };
        if !ok {
            return Err(format!("cannot write {:?} into a {ty} column", self.0).into());
        }
        self.to_sql(ty, out)
    }
}

/// The error's text with its server detail (the plain Display says only "db error").
fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => match e.source() {
            Some(s) => format!("{e}: {s}"),
            None => e.to_string(),
        },
    }
}

/// Connection-level problems (lost connection, server shutting down or starting,
/// out of resources, serialisation failures) pass with time; others do not.
fn classify(e: &postgres::Error) -> StoreError {
    let msg = describe(e);
    match e.code() {
        None => StoreError::Unavailable(msg),
        Some(c) => {
            let c = c.code();
            if c.starts_with("08")
                || c.starts_with("53")
                || c.starts_with("57")
                || c.starts_with("40")
                || c.starts_with("58")
            {
                StoreError::Unavailable(msg)
            } else {
                StoreError::Rejected(msg)
            }
        }
    }
}

impl Store for PgStore {
    fn engine(&self) -> Engine {
        Engine::Postgres
    }

    fn describe(&self) -> String {
        store::redact(&self.conn)
    }

    fn schema_version(&mut self) -> Result<u32> {
        let v: Option<i64> = self
            .client
            .query_one("SELECT MAX(version) FROM edgebench_schema", &[])?
            .get(0);
        Ok(v.unwrap_or(0) as u32)
    }

    fn apply(&mut self, rows: &[Row]) -> Result<Vec<bool>, StoreError> {
        if self.client.is_closed() {
            self.reconnect()?;
        }
        // Records (insert-only rows) go as multi-row INSERTs, one round trip per
        // chunk; the few state rows (devices, sweeps, rejects) one by one.
        let (bulk, single): (Vec<usize>, Vec<usize>) = (0..rows.len())
            .partition(|&i| !rows[i].key.is_empty() && rows[i].on_conflict == OnConflict::Nothing);
        // Prepare outside the transaction, once per statement text per connection.
        for &i in &single {
            let sql = store::upsert_sql(&rows[i], ph);
            if !self.statements.contains_key(&sql) {
                let st = self.client.prepare(&sql).map_err(|e| classify(&e))?;
                self.statements.insert(sql, st);
            }
        }
        let mut out = vec![false; rows.len()];
        let mut tx = self.client.transaction().map_err(|e| classify(&e))?;
        // Group by table and column list, keeping the rows' order within a group.
        let mut groups: Vec<Vec<usize>> = Vec::new();
        for &i in &bulk {
            match groups
                .iter_mut()
                .find(|g| same_shape(&rows[g[0]], &rows[i]))
            {
                Some(g) => g.push(i),
                None => groups.push(vec![i]),
            }
        }
        for g in groups {
            let per_chunk = (MAX_PARAMS / rows[g[0]].cols.len()).clamp(1, BULK_ROWS);
            for chunk in g.chunks(per_chunk) {
                bulk_insert(&mut tx, rows, chunk, &mut out)?;
            }
        }
        for &i in &single {
            let row = &rows[i];
            let sql = store::upsert_sql(row, ph);
            let st = &self.statements[&sql];
            let binds: Vec<Bind> = row.cols.iter().map(|(_, v)| Bind(v)).collect();
            let refs: Vec<&(dyn ToSql + Sync)> =
                binds.iter().map(|b| b as &(dyn ToSql + Sync)).collect();
            let n = tx.execute(st, &refs).map_err(|e| match classify(&e) {
                StoreError::Rejected(m) => StoreError::Rejected(format!("{}: {m}", row.table)),
                u => u,
            })?;
            out[i] = n > 0;
        }
        tx.commit().map_err(|e| classify(&e))?;
        Ok(out)
    }

    fn ping(&mut self) -> Result<(), StoreError> {
        if self.client.is_closed() || self.client.simple_query("SELECT 1").is_err() {
            self.reconnect()?;
            self.client
                .simple_query("SELECT 1")
                .map_err(|e| classify(&e))?;
        }
        Ok(())
    }

    fn prune(&mut self, before: Option<i64>, keep: u64) -> Result<(u64, u64), StoreError> {
        let t = match before {
            Some(ms) => {
                let v = Val::Time(ms);
                self.client
                    .execute("DELETE FROM telemetry WHERE time < $1", &[&Bind(&v)])
                    .map_err(|e| classify(&e))?
            }
            None => 0,
        };
        let r = self
            .client
            .execute(
                "DELETE FROM rejects WHERE id <= (SELECT MAX(id) FROM rejects) - $1",
                &[&(keep as i64)],
            )
            .map_err(|e| classify(&e))?;
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
            .client
            .query_one(&format!("SELECT COUNT(*) FROM {table}"), &[])?
            .get(0);
        Ok(n as u64)
    }
}
