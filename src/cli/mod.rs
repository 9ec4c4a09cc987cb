//! Command line (being built).

pub mod parse_cmd;
