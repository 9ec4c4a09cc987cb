//! Store (being built).
