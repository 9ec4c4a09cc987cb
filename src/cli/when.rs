//! Times typed on the command line: `2026-02-26T10:00:00Z`, `2026-02-26 10:00`,
//! `2026-02-26` (all UTC unless they carry an offset), `now`, or a duration
//! meaning that long ago (`2h`, `"30 minutes"`).

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

use crate::duration;

/// Reads a time as described in the module docs, relative to `now`.
pub fn parse_time(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("now") {
        return Ok(now);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    for format in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Ok(t.and_utc());
        }
    }
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(date.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc());
    }
    if let Ok(ago) = duration::parse_positive(text) {
        let ago = chrono::Duration::from_std(ago).map_err(|e| e.to_string())?;
        return now
            .checked_sub_signed(ago)
            .ok_or_else(|| format!("{text:?} is too far back"));
    }
    Err(format!(
        "invalid time {text:?}: use RFC 3339 (2026-02-26T10:00:00Z), \"2026-02-26 10:00\" (UTC), \
         2026-02-26, now, or a duration ago such as 2h"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn accepts_the_documented_forms() {
        let now = Utc.with_ymd_and_hms(2026, 2, 26, 12, 0, 0).unwrap();
        let ten = Utc.with_ymd_and_hms(2026, 2, 26, 10, 0, 0).unwrap();
        for text in [
            "2026-02-26T10:00:00Z",
            "2026-02-26T11:00:00+01:00",
            "2026-02-26 10:00",
            "2h",
        ] {
            assert_eq!(parse_time(text, now).unwrap(), ten, "{text}");
        }
        let midnight = Utc.with_ymd_and_hms(2026, 2, 26, 0, 0, 0).unwrap();
        assert_eq!(parse_time("2026-02-26", now).unwrap(), midnight);
        assert_eq!(parse_time("now", now).unwrap(), now);
    }

    #[test]
    fn refuses_nonsense_with_the_forms_listed() {
        let err = parse_time("yesterday-ish", Utc::now()).unwrap_err();
        assert!(err.contains("RFC 3339"), "{err}");
    }
}
