//! PostgreSQL's binary COPY format for records.
//!
//! Binary COPY is measurably faster than text COPY (no escaping, no number
//! formatting, no server-side parsing) and cannot be broken by a stray tab or
//! backslash in a value. The layout: a fixed header, then per row a field
//! count and each field as a 32-bit length (-1 for NULL) followed by its
//! bytes, then a trailer of -1.

use chrono::{DateTime, Utc};

use crate::record::Record;

/// The columns a COPY of records fills, in the order [`encode_row`] writes them,
/// as a literal so that statements can be built with `concat!`.
macro_rules! columns {
    () => {
        "id, bot_name, group_name, destination_url, destination_host, http_method, \
         status_code, request_size_bytes, response_size_bytes, latency_ms, user_agent, \
         created_at, client_ip, proxy_user, squid_status, hierarchy, content_type, source"
    };
}
pub(crate) use columns;

const FIELD_COUNT: i16 = 18;

/// Microseconds between the Unix epoch and PostgreSQL's (2000-01-01 UTC).
const PG_EPOCH_OFFSET_MICROS: i64 = 946_684_800_000_000;

/// What a binary COPY stream starts with: the signature, no flags, no
/// header extension.
pub const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// What a binary COPY stream ends with: a field count of -1.
pub const TRAILER: &[u8] = &[0xff, 0xff];

/// Records encoded for COPY as they are made, so that a batch in flight
/// holds a few hundred contiguous bytes a row instead of a dozen small
/// allocations; any run of rows can be sent on its own.
#[derive(Debug, Default, Clone)]
pub struct EncodedRows {
    data: Vec<u8>,
    ends: Vec<u32>,
}

impl EncodedRows {
    /// Appends one record.
    pub fn push(&mut self, record: &Record) {
        encode_row(&mut self.data, record);
        // A batch is far below 4 GiB: rows are bounded by the line limit.
        self.ends.push(self.data.len() as u32);
    }

    /// How many rows.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Gives back spare capacity: a batch waiting in a queue holds only its
    /// bytes, not the doubling headroom it grew with.
    pub fn shrink_to_fit(&mut self) {
        self.data.shrink_to_fit();
        self.ends.shrink_to_fit();
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The encoded bytes of rows `range`.
    pub fn bytes(&self, range: std::ops::Range<usize>) -> &[u8] {
        let start = if range.start == 0 {
            0
        } else {
            self.ends[range.start - 1] as usize
        };
        let end = if range.end == 0 {
            0
        } else {
            self.ends[range.end - 1] as usize
        };
        &self.data[start..end]
    }
}

/// Rows encoded back to back, without header or trailer.
pub fn encode_rows(rows: &[Record]) -> Vec<u8> {
    let mut out = Vec::with_capacity(rows.len() * 256);
    for row in rows {
        encode_row(&mut out, row);
    }
    out
}

/// Appends one record as a COPY row.
pub fn encode_row(out: &mut Vec<u8>, r: &Record) {
    out.extend_from_slice(&FIELD_COUNT.to_be_bytes());
    bytes(out, r.id.as_bytes());
    text(out, Some(&r.bot_name));
    text(out, r.group_name.as_deref());
    text(out, Some(&r.destination_url));
    text(out, r.destination_host.as_deref());
    text(out, r.http_method.as_deref());
    int4(out, r.status_code);
    int8(out, r.request_size_bytes);
    int8(out, r.response_size_bytes);
    int8(out, r.latency_ms);
    text(out, r.user_agent.as_deref());
    time(out, r.created_at);
    text(out, r.client_ip.as_deref());
    text(out, r.proxy_user.as_deref());
    text(out, r.squid_status.as_deref());
    text(out, r.hierarchy.as_deref());
    text(out, r.content_type.as_deref());
    text(out, r.source.as_deref());
}

fn bytes(out: &mut Vec<u8>, value: &[u8]) {
    // Values are bounded by the line limit, far below i32::MAX.
    out.extend_from_slice(&(value.len() as i32).to_be_bytes());
    out.extend_from_slice(value);
}

fn null(out: &mut Vec<u8>) {
    out.extend_from_slice(&(-1i32).to_be_bytes());
}

fn text(out: &mut Vec<u8>, value: Option<&str>) {
    match value {
        Some(v) => bytes(out, v.as_bytes()),
        None => null(out),
    }
}

fn int4(out: &mut Vec<u8>, value: Option<i32>) {
    match value {
        Some(v) => bytes(out, &v.to_be_bytes()),
        None => null(out),
    }
}

fn int8(out: &mut Vec<u8>, value: Option<i64>) {
    match value {
        Some(v) => bytes(out, &v.to_be_bytes()),
        None => null(out),
    }
}

fn time(out: &mut Vec<u8>, value: DateTime<Utc>) {
    let micros = value.timestamp_micros() - PG_EPOCH_OFFSET_MICROS;
    bytes(out, &micros.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_column_list_matches_the_field_count() {
        assert_eq!(columns!().split(',').count(), FIELD_COUNT as usize);
    }

    #[test]
    fn pg_epoch_encodes_as_zero() {
        let mut out = Vec::new();
        time(&mut out, Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).unwrap());
        assert_eq!(out, [0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn header_is_the_signature_and_two_zero_words() {
        assert_eq!(&HEADER[..11], b"PGCOPY\n\xff\r\n\0");
        assert_eq!(HEADER.len(), 19);
        assert_eq!(TRAILER, (-1i16).to_be_bytes());
    }

    #[test]
    fn null_is_minus_one_length() {
        let mut out = Vec::new();
        text(&mut out, None);
        assert_eq!(out, (-1i32).to_be_bytes());
    }
}
