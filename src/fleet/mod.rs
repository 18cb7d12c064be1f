//! The fleet store (DESIGN.md section 14): what boards publish and what `edgebench run`
//! writes, kept in SQLite (default) or PostgreSQL, for `edgebench report --db` and
//! Grafana.
//!
//! - [`schema`]: numbered migrations (one SQL text for both engines) and the typed
//!   columns of each table;
//! - [`ingest`]: pure mapping from a message or a JSON Lines line to rows;
//! - [`store`]: [`store::open`] a store by URL, write rows idempotently, read records
//!   back; engines in `sqlite.rs` and `postgres.rs`;
//! - [`import`]: `edgebench import FILE.jsonl...`.

pub mod import;
pub mod ingest;
mod postgres;
pub mod schema;
mod sqlite;
pub mod store;

pub use store::{open, Filter, Store};
