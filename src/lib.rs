//! edgebench: how fast does a neural network really run on this board?
//!
//! The crate is a library with a thin binary (`src/main.rs`). Decision-making parts
//! (statistics, knee, stop rules, record building) are pure and tested next to the
//! code; IO (runtimes, sysfs, MQTT, disk) lives at the edges.

pub mod backend;
pub mod bench;
pub mod collect;
pub mod config;
pub mod daemon;
pub mod docs;
pub mod fleet;
pub mod models;
pub mod mqtt;
pub mod report;
pub mod store;
pub mod telemetry;

/// Version of this build, recorded in every result.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
