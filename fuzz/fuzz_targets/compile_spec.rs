//! Fuzz target: the first line of the input as a logformat specification,
//! the rest as log lines for it. Compiling and parsing must never panic.

#![no_main]

use egress_audit::parse::LineFormat;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.split(|b| *b == b'\n');
    let spec = String::from_utf8_lossy(parts.next().unwrap_or_default());
    if let Ok(format) = LineFormat::logformat(&spec) {
        for line in parts {
            if let Ok(fields) = format.parse(line) {
                let _ = fields.created_at();
                let _ = fields.header("X-Bot-Name");
            }
        }
    }
});
