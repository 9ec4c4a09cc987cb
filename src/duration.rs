//! Durations written by people: query windows and buckets such as `"6 hours"`,
//! `"15 minutes"`, `6h`, `15m` or `1d`, and config intervals such as `"1s"`.
//!
//! Parsing is left to `humantime`, which accepts both the long and the short
//! forms; this module adds an error that says what was wrong and what is
//! allowed, and rejects zero where a window or bucket must be positive.

use std::time::Duration;

/// A duration that could not be understood.
#[derive(Debug, thiserror::Error)]
#[error(
    "invalid duration {input:?}: {reason}; use a number and a unit, like 15m, 6h, 1d or \"6 hours\""
)]
pub struct DurationError {
    /// What was given.
    pub input: String,
    /// Why it was refused.
    pub reason: String,
}

/// Parses `"6 hours"`, `"15 minutes"`, `6h`, `90s`, `1d`, `2w` and combinations
/// such as `"1h 30m"`. Zero is refused.
pub fn parse_positive(input: &str) -> Result<Duration, DurationError> {
    let trimmed = input.trim();
    let duration = humantime::parse_duration(&normalise(trimmed)).map_err(|e| DurationError {
        input: input.to_string(),
        reason: e.to_string(),
    })?;
    if duration.is_zero() {
        return Err(DurationError {
            input: input.to_string(),
            reason: "it is zero".into(),
        });
    }
    Ok(duration)
}

/// Joins a number and its unit when a space stands between them (`"6 hours"`
/// becomes `"6hours"`), which is the one form `humantime` does not take.
fn normalise(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    let mut chars = input.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if c.is_ascii_digit() {
            while chars.peek() == Some(&' ') {
                chars.next();
            }
        }
    }
    out
}

/// Renders a duration as people write it and [`parse_positive`] reads back:
/// hours and smaller in the short form (`1h 30m`, `15m`), days and longer
/// spelt out (`2 days`, `1 day 6h`).
pub fn render(duration: Duration) -> String {
    humantime::format_duration(duration)
        .to_string()
        .split(' ')
        .map(|part| {
            let digits = part.len() - part.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            let (number, unit) = part.split_at(digits);
            if unit.len() > 2 {
                format!("{number} {unit}")
            } else {
                part.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_and_short_forms_agree() {
        let cases = [
            ("6 hours", 6 * 3600),
            ("6h", 6 * 3600),
            ("15 minutes", 15 * 60),
            ("15m", 15 * 60),
            ("1d", 86_400),
            ("1 day", 86_400),
            ("24 hours", 86_400),
            ("1h 30m", 5400),
            ("90s", 90),
        ];
        for (input, secs) in cases {
            assert_eq!(
                parse_positive(input).unwrap(),
                Duration::from_secs(secs),
                "{input}"
            );
        }
    }

    #[test]
    fn misspelt_unit_is_refused_with_the_input_named() {
        let err = parse_positive("6 hourz").unwrap_err();
        assert!(err.to_string().contains("\"6 hourz\""), "{err}");
    }

    #[test]
    fn zero_is_refused() {
        assert!(parse_positive("0s").is_err());
    }

    #[test]
    fn rendered_durations_parse_back() {
        for d in [
            Duration::from_millis(1500),
            Duration::from_secs(2 * 86_400),
            Duration::from_secs(86_400 + 6 * 3600),
        ] {
            assert_eq!(parse_positive(&render(d)).unwrap(), d);
        }
    }

    #[test]
    fn days_are_spelt_out_and_hours_kept_short() {
        assert_eq!(render(Duration::from_secs(2 * 86_400)), "2 days");
        assert_eq!(render(Duration::from_secs(86_400)), "1 day");
        assert_eq!(render(Duration::from_secs(86_400 + 6 * 3600)), "1 day 6h");
        assert_eq!(render(Duration::from_secs(900)), "15m");
        assert_eq!(render(Duration::from_secs(5400)), "1h 30m");
    }
}
