//! The board-side daemon (`edgebench daemon`).

pub mod scheduler;
