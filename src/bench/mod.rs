//! The benchmark core: plan, protocol, statistics, knee, records, runner.

pub mod knee;
pub mod plan;
pub mod protocol;
pub mod result;
pub mod runner;
pub mod search;
pub mod stats;
