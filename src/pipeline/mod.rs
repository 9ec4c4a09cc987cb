//! The pipeline from log lines to stored rows: batching, writing with
//! retries, dead letters and acknowledgements.

pub mod acker;
pub mod shutdown;
pub mod writer;
