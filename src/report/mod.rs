//! Reports: terminal table.
