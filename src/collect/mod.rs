//! `edgebench collect`.
