//! Log times: strftime patterns as Squid writes them, read back into UTC.
//!
//! `%tl` and `%tg` (and the built-in common/combined/useragent formats) print
//! times through strftime. A [`Pattern`] is compiled once from the strftime
//! text and then matches a time at the start of a line's remaining bytes,
//! which also tells the field parser where the time ends (the default `%tl`
//! holds a space). Everything here is allocation-free per line.

use chrono::{DateTime, Local, NaiveDate, TimeZone, Utc};

/// The default strftime text of `%tl`.
pub const DEFAULT_LOCAL: &str = "%d/%b/%Y:%H:%M:%S %z";

/// The default strftime text of `%tg` (Squid writes no zone here).
pub const DEFAULT_GMT: &str = "%d/%b/%Y:%H:%M:%S";

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// One piece of a strftime pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Item {
    Literal(u8),
    /// A zero-padded number of exactly `width` digits stored in `part`.
    Number {
        part: Part,
        width: u8,
    },
    /// `%e`: day of month padded with a space.
    SpacedDay,
    /// `%b`/`%h`: English month abbreviation (Squid never sets a locale).
    MonthAbbrev,
    /// `%B`, `%a`, `%A`, `%Z`: a run of letters, not used for the time.
    Letters,
    /// `%z`: `+hhmm`, also Squid's `-hh-mm` for negative half-hour zones.
    Offset,
    /// `%s`: seconds since the epoch.
    Epoch,
    /// `%p`: AM or PM.
    AmPm,
    /// Anything else: a run of non-space bytes, not used for the time.
    Opaque,
}

/// Which part of a date a number sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Year,
    ShortYear,
    Month,
    Day,
    Hour,
    Hour12,
    Minute,
    Second,
    Ignored,
}

/// A compiled strftime pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    items: Vec<Item>,
    /// Whether times without a zone are UTC (`%tg`) rather than local (`%tl`).
    utc: bool,
    /// Whether the pattern pins down a full date and time.
    complete: bool,
}

/// The parts of a time as read from a line.
#[derive(Debug, Default, Clone, Copy)]
struct Civil {
    year: Option<i32>,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    pm: Option<bool>,
    hour12: bool,
    offset_minutes: Option<i32>,
    epoch: Option<i64>,
}

impl Pattern {
    /// Compiles `spec`; `utc` says whether zone-less times are UTC.
    pub fn new(spec: &str, utc: bool) -> Pattern {
        let mut items = Vec::new();
        push_items(spec.as_bytes(), &mut items);
        let has = |wanted: &dyn Fn(&Item) -> bool| items.iter().any(wanted);
        let complete = has(&|i| *i == Item::Epoch)
            || (has(&|i| {
                matches!(
                    i,
                    Item::Number {
                        part: Part::Year | Part::ShortYear,
                        ..
                    }
                )
            }) && has(&|i| {
                matches!(
                    i,
                    Item::Number {
                        part: Part::Second,
                        ..
                    }
                )
            }));
        Pattern {
            items,
            utc,
            complete,
        }
    }

    /// Whether a match gives a full point in time (date and seconds, or epoch).
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// Matches a time at the start of `text`: the instant and the bytes used.
    pub fn read(&self, text: &[u8]) -> Option<(DateTime<Utc>, usize)> {
        let mut civil = Civil::default();
        let mut pos = 0;
        for item in &self.items {
            pos += read_item(*item, &text[pos..], &mut civil)?;
        }
        Some((self.instant(&civil)?, pos))
    }

    fn instant(&self, civil: &Civil) -> Option<DateTime<Utc>> {
        if let Some(epoch) = civil.epoch {
            return DateTime::from_timestamp(epoch, 0);
        }
        let mut hour = civil.hour;
        if civil.hour12 {
            hour %= 12;
        }
        if civil.pm == Some(true) {
            hour += 12;
        }
        let year = civil.year.unwrap_or(1970);
        let date = NaiveDate::from_ymd_opt(year, civil.month.max(1), civil.day.max(1))?;
        let naive = date.and_hms_opt(hour, civil.minute, civil.second)?;
        match civil.offset_minutes {
            Some(minutes) => {
                let seconds = naive.and_utc().timestamp() - i64::from(minutes) * 60;
                DateTime::from_timestamp(seconds, 0)
            }
            None if self.utc => Some(naive.and_utc()),
            None => Local
                .from_local_datetime(&naive)
                .earliest()
                .map(|t| t.with_timezone(&Utc)),
        }
    }
}

fn push_items(spec: &[u8], items: &mut Vec<Item>) {
    let mut i = 0;
    while i < spec.len() {
        if spec[i] != b'%' || i + 1 == spec.len() {
            items.push(Item::Literal(spec[i]));
            i += 1;
            continue;
        }
        match spec[i + 1] {
            b'T' => push_items(b"%H:%M:%S", items),
            b'F' => push_items(b"%Y-%m-%d", items),
            b'D' => push_items(b"%m/%d/%y", items),
            b'R' => push_items(b"%H:%M", items),
            b'n' => items.push(Item::Literal(b'\n')),
            b't' => items.push(Item::Literal(b'\t')),
            b'%' => items.push(Item::Literal(b'%')),
            other => items.push(conversion(other)),
        }
        i += 2;
    }
}

fn conversion(letter: u8) -> Item {
    let number = |part, width| Item::Number { part, width };
    match letter {
        b'Y' => number(Part::Year, 4),
        b'y' => number(Part::ShortYear, 2),
        b'm' => number(Part::Month, 2),
        b'd' => number(Part::Day, 2),
        b'H' => number(Part::Hour, 2),
        b'I' => number(Part::Hour12, 2),
        b'M' => number(Part::Minute, 2),
        b'S' => number(Part::Second, 2),
        b'j' => number(Part::Ignored, 3),
        b'C' | b'u' | b'w' | b'U' | b'W' | b'V' | b'g' | b'G' => Item::Opaque,
        b'e' => Item::SpacedDay,
        b'b' | b'h' => Item::MonthAbbrev,
        b'B' | b'a' | b'A' | b'Z' => Item::Letters,
        b'z' => Item::Offset,
        b's' => Item::Epoch,
        b'p' => Item::AmPm,
        _ => Item::Opaque,
    }
}

/// Reads `width` ASCII digits as a number.
fn digits(text: &[u8], width: usize) -> Option<u32> {
    let field = text.get(..width)?;
    field.iter().try_fold(0u32, |n, b| {
        b.is_ascii_digit().then(|| n * 10 + u32::from(b - b'0'))
    })
}

fn read_item(item: Item, text: &[u8], civil: &mut Civil) -> Option<usize> {
    match item {
        Item::Literal(byte) => (text.first() == Some(&byte)).then_some(1),
        Item::Number { part, width } => {
            let value = digits(text, usize::from(width))?;
            set_part(civil, part, value);
            Some(usize::from(width))
        }
        Item::SpacedDay => {
            let first = *text.first()?;
            let tens = if first == b' ' { 0 } else { digits(text, 1)? };
            civil.day = tens * 10 + digits(text.get(1..)?, 1)?;
            Some(2)
        }
        Item::MonthAbbrev => {
            let name = text.get(..3)?;
            let index = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(name))?;
            civil.month = u32::try_from(index).ok()? + 1;
            Some(3)
        }
        Item::Letters => nonzero(text.iter().take_while(|b| b.is_ascii_alphabetic()).count()),
        Item::Offset => read_offset(text, civil),
        Item::Epoch => read_epoch(text, civil),
        Item::AmPm => {
            let word = text.get(..2)?;
            civil.pm = Some(word.eq_ignore_ascii_case(b"PM"));
            (word.eq_ignore_ascii_case(b"AM") || word.eq_ignore_ascii_case(b"PM")).then_some(2)
        }
        Item::Opaque => nonzero(text.iter().take_while(|b| **b > b' ').count()),
    }
}

fn nonzero(len: usize) -> Option<usize> {
    (len > 0).then_some(len)
}

fn set_part(civil: &mut Civil, part: Part, value: u32) {
    match part {
        Part::Year => civil.year = i32::try_from(value).ok(),
        Part::ShortYear => civil.year = i32::try_from(value).ok().map(|y| y + 2000),
        Part::Month => civil.month = value,
        Part::Day => civil.day = value,
        Part::Hour => civil.hour = value,
        Part::Hour12 => {
            civil.hour = value;
            civil.hour12 = true;
        }
        Part::Minute => civil.minute = value,
        Part::Second => civil.second = value,
        Part::Ignored => {}
    }
}

/// `+hhmm`, `-hhmm`, or Squid's `-hh-mm` for negative half-hour zones.
fn read_offset(text: &[u8], civil: &mut Civil) -> Option<usize> {
    let sign = match text.first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let hours = digits(&text[1..], 2)?;
    let (minutes, used) = match text.get(3) {
        Some(b'-') => (digits(&text[4..], 2)?, 6),
        _ => (digits(&text[3..], 2)?, 5),
    };
    let total = i32::try_from(hours * 60 + minutes).ok()?;
    civil.offset_minutes = Some(sign * total);
    Some(used)
}

fn read_epoch(text: &[u8], civil: &mut Civil) -> Option<usize> {
    let negative = text.first() == Some(&b'-');
    let start = usize::from(negative);
    let len = text[start..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    let digits = std::str::from_utf8(text.get(start..start + len)?).ok()?;
    let value: i64 = digits.parse().ok()?;
    civil.epoch = Some(if negative { -value } else { value });
    Some(start + len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(spec: &str, utc: bool, text: &str) -> Option<(String, usize)> {
        Pattern::new(spec, utc)
            .read(text.as_bytes())
            .map(|(t, used)| (t.to_rfc3339(), used))
    }

    #[test]
    fn default_local_time_with_offset() {
        let got = read(DEFAULT_LOCAL, false, "05/Mar/2024:15:03:07 +0100]");
        assert_eq!(got, Some(("2024-03-05T14:03:07+00:00".into(), 26)));
    }

    #[test]
    fn negative_half_hour_zone_quirk_is_accepted() {
        let got = read(DEFAULT_LOCAL, false, "05/Mar/2024:10:33:07 -03-30");
        assert_eq!(got, Some(("2024-03-05T14:03:07+00:00".into(), 27)));
    }

    #[test]
    fn gmt_time_has_no_zone() {
        let got = read(DEFAULT_GMT, true, "05/Mar/2024:14:03:07 x");
        assert_eq!(got, Some(("2024-03-05T14:03:07+00:00".into(), 20)));
    }

    #[test]
    fn iso_pattern_and_epoch_pattern() {
        let got = read("%Y-%m-%dT%H:%M:%S", true, "2024-03-05T14:03:07.123");
        assert_eq!(got, Some(("2024-03-05T14:03:07+00:00".into(), 19)));
        let got = read("%s", false, "1709647387|");
        assert_eq!(got, Some(("2024-03-05T14:03:07+00:00".into(), 10)));
        let got = read("%F %T", true, "2024-03-05 14:03:07");
        assert_eq!(got.map(|g| g.1), Some(19));
    }

    #[test]
    fn impossible_dates_do_not_match() {
        assert_eq!(read(DEFAULT_GMT, true, "31/Feb/2024:14:03:07"), None);
        assert_eq!(read(DEFAULT_GMT, true, "05/Foo/2024:14:03:07"), None);
        assert_eq!(read(DEFAULT_GMT, true, "05/Mar/2024"), None);
    }

    #[test]
    fn completeness_is_known() {
        assert!(Pattern::new(DEFAULT_LOCAL, false).is_complete());
        assert!(Pattern::new("%s", false).is_complete());
        assert!(!Pattern::new("%H:%M", false).is_complete());
    }
}
