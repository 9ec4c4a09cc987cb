//! Writing a query's answer for people and for programs: an aligned table
//! that fits in 100 columns (with bars for time series), JSON lines, or CSV.

use std::io::{self, Write};

use chrono::{DateTime, Local, SecondsFormat, Utc};

use super::{Kind, Table, Value};

/// Width an aligned table is fitted into.
pub const TABLE_WIDTH: usize = 100;

/// Narrowest a text column is squeezed to when a table is too wide.
const MIN_TEXT_WIDTH: usize = 12;

/// Space between table columns.
const GAP: &str = "  ";

/// How an answer is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns for a terminal.
    Table,
    /// One JSON object per row.
    Json,
    /// Comma-separated values with a header row.
    Csv,
}

/// How times are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimeZoneChoice {
    /// UTC, RFC 3339 with a `Z`.
    #[default]
    Utc,
    /// The machine's local zone, RFC 3339 with its offset.
    Local,
}

/// Writes `table` to `out` in `format`.
pub fn write(
    out: &mut dyn Write,
    table: &Table,
    format: OutputFormat,
    zone: TimeZoneChoice,
) -> io::Result<()> {
    match format {
        OutputFormat::Table => write_table(out, table, zone),
        OutputFormat::Json => write_json(out, table, zone),
        OutputFormat::Csv => write_csv(out, table, zone),
    }
}

fn time_text(time: &DateTime<Utc>, zone: TimeZoneChoice) -> String {
    match zone {
        TimeZoneChoice::Utc => time.to_rfc3339_opts(SecondsFormat::Millis, true),
        TimeZoneChoice::Local => time
            .with_timezone(&Local)
            .to_rfc3339_opts(SecondsFormat::Millis, false),
    }
}

/// A value as plain text (JSON strings and CSV cells); empty for `NULL`.
fn plain(value: &Value, zone: TimeZoneChoice) -> String {
    match value {
        Value::Null => String::new(),
        Value::Int(v) => v.to_string(),
        Value::Float(v) => format!("{v:.1}"),
        Value::Text(v) => v.clone(),
        Value::Time(t) => time_text(t, zone),
    }
}

/// A value for an aligned table: bytes with units, control characters shown.
fn cell(value: &Value, kind: Kind, zone: TimeZoneChoice) -> String {
    match (value, kind) {
        (Value::Null, _) => "-".into(),
        (Value::Int(v), Kind::Bytes) => human_bytes(*v),
        (Value::Time(t), Kind::Minute) => match zone {
            TimeZoneChoice::Utc => t.format("%m-%d %H:%M").to_string(),
            TimeZoneChoice::Local => t.with_timezone(&Local).format("%m-%d %H:%M").to_string(),
        },
        (Value::Text(v), _) => v
            .chars()
            .map(|c| if c.is_control() { '�' } else { c })
            .collect(),
        (other, _) => plain(other, zone),
    }
}

/// `1536` as `1.5K`, `10485760` as `10.0M`: short enough for a narrow column.
pub fn human_bytes(bytes: i64) -> String {
    const UNITS: [&str; 6] = ["", "K", "M", "G", "T", "P"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value.abs() >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        bytes.to_string()
    } else {
        format!("{value:.1}{}", UNITS[unit])
    }
}

fn write_table(out: &mut dyn Write, table: &Table, zone: TimeZoneChoice) -> io::Result<()> {
    let shown: Vec<usize> = (0..table.columns.len())
        .filter(|i| table.columns[*i].in_table)
        .collect();
    let header: Vec<String> = shown
        .iter()
        .map(|i| table.columns[*i].label.to_string())
        .collect();
    let cells: Vec<Vec<String>> = table
        .rows
        .iter()
        .map(|row| {
            shown
                .iter()
                .map(|i| cell(&row[*i], table.columns[*i].kind, zone))
                .collect()
        })
        .collect();

    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let kinds: Vec<Kind> = shown.iter().map(|i| table.columns[*i].kind).collect();
    fit(&mut widths, &kinds);

    write_row(out, &header, &widths, &kinds, None)?;
    let bar_room = bar_room(&widths, table.bars);
    let calls = table.columns.iter().position(|c| c.name == "calls");
    let max_calls = calls.map_or(0, |c| {
        table.rows.iter().map(|r| r[c].as_int()).max().unwrap_or(0)
    });
    for (row, values) in cells.iter().zip(&table.rows) {
        let bar = calls.filter(|_| table.bars && bar_room > 0).map(|c| {
            let len = (values[c].as_int() * bar_room as i64) / max_calls.max(1);
            "█".repeat(len.max(i64::from(values[c].as_int() > 0)) as usize)
        });
        write_row(out, row, &widths, &kinds, bar.as_deref())?;
    }
    Ok(())
}

/// Narrows the widest text columns until the table fits in [`TABLE_WIDTH`].
fn fit(widths: &mut [usize], kinds: &[Kind]) {
    let total = |w: &[usize]| w.iter().sum::<usize>() + GAP.len() * w.len().saturating_sub(1);
    while total(widths) > TABLE_WIDTH {
        let widest = (0..widths.len())
            .filter(|i| kinds[*i] == Kind::Text && widths[*i] > MIN_TEXT_WIDTH)
            .max_by_key(|i| widths[*i]);
        match widest {
            Some(i) => widths[i] -= 1,
            None => break,
        }
    }
}

fn bar_room(widths: &[usize], bars: bool) -> usize {
    if !bars {
        return 0;
    }
    let used = widths.iter().sum::<usize>() + GAP.len() * widths.len();
    TABLE_WIDTH.saturating_sub(used)
}

fn write_row(
    out: &mut dyn Write,
    row: &[String],
    widths: &[usize],
    kinds: &[Kind],
    bar: Option<&str>,
) -> io::Result<()> {
    let mut line = String::new();
    for (i, (text, width)) in row.iter().zip(widths).enumerate() {
        if i > 0 {
            line.push_str(GAP);
        }
        let text = shorten(text, *width);
        let numeric = matches!(kinds[i], Kind::Int | Kind::Bytes | Kind::Float);
        if numeric {
            line.push_str(&format!("{text:>width$}"));
        } else {
            line.push_str(&format!("{text:<width$}"));
        }
    }
    if let Some(bar) = bar {
        line.push_str(GAP);
        line.push_str(bar);
    }
    writeln!(out, "{}", line.trim_end())
}

/// Cuts `text` to `width` characters, marking the cut with `…`.
fn shorten(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

fn write_json(out: &mut dyn Write, table: &Table, zone: TimeZoneChoice) -> io::Result<()> {
    for row in &table.rows {
        let mut object = serde_json::Map::new();
        for (column, value) in table.columns.iter().zip(row) {
            let json = match value {
                Value::Null => serde_json::Value::Null,
                Value::Int(v) => (*v).into(),
                Value::Float(v) => (*v).into(),
                Value::Text(v) => v.clone().into(),
                Value::Time(t) => time_text(t, zone).into(),
            };
            object.insert(column.name.to_string(), json);
        }
        serde_json::to_writer(&mut *out, &object)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

fn write_csv(out: &mut dyn Write, table: &Table, zone: TimeZoneChoice) -> io::Result<()> {
    let mut writer = csv::Writer::from_writer(out);
    writer.write_record(table.columns.iter().map(|c| c.name))?;
    for row in &table.rows {
        writer.write_record(row.iter().map(|v| plain(v, zone)))?;
    }
    writer.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::Column;

    fn table(rows: Vec<Vec<Value>>, bars: bool) -> Table {
        Table {
            columns: vec![
                Column {
                    name: "destination_url",
                    label: "url",
                    kind: Kind::Text,
                    in_table: true,
                },
                Column {
                    name: "calls",
                    label: "calls",
                    kind: Kind::Int,
                    in_table: true,
                },
            ],
            rows,
            bars,
        }
    }

    fn render(table: &Table, format: OutputFormat) -> String {
        let mut out = Vec::new();
        write(&mut out, table, format, TimeZoneChoice::Utc).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn long_text_is_cut_to_fit_the_width() {
        let url = format!("https://example.com/{}", "a".repeat(300));
        let shown = render(
            &table(vec![vec![Value::Text(url), Value::Int(3)]], false),
            OutputFormat::Table,
        );
        for line in shown.lines() {
            assert!(line.chars().count() <= TABLE_WIDTH, "{line}");
        }
        assert!(shown.contains('…'));
    }

    #[test]
    fn bars_are_proportional_to_calls() {
        let rows = vec![
            vec![Value::Text("a".into()), Value::Int(10)],
            vec![Value::Text("b".into()), Value::Int(5)],
        ];
        let shown = render(&table(rows, true), OutputFormat::Table);
        let bars: Vec<usize> = shown
            .lines()
            .skip(1)
            .map(|l| l.matches('█').count())
            .collect();
        assert_eq!(bars[0], 2 * bars[1]);
    }

    #[test]
    fn json_lines_keep_nulls_and_column_order() {
        let shown = render(
            &table(vec![vec![Value::Null, Value::Int(1)]], false),
            OutputFormat::Json,
        );
        assert_eq!(shown, "{\"destination_url\":null,\"calls\":1}\n");
    }

    #[test]
    fn csv_quotes_commas() {
        let rows = vec![vec![Value::Text("a,b".into()), Value::Int(1)]];
        assert_eq!(
            render(&table(rows, false), OutputFormat::Csv),
            "destination_url,calls\n\"a,b\",1\n"
        );
    }

    #[test]
    fn minute_columns_are_short_in_tables_and_whole_elsewhere() {
        let at = DateTime::parse_from_rfc3339("2026-02-26T10:07:59.5Z")
            .unwrap()
            .with_timezone(&Utc);
        let table = Table {
            columns: vec![Column {
                name: "last_seen",
                label: "last seen",
                kind: Kind::Minute,
                in_table: true,
            }],
            rows: vec![vec![Value::Time(at)]],
            bars: false,
        };
        assert_eq!(
            render(&table, OutputFormat::Table),
            "last seen\n02-26 10:07\n"
        );
        assert_eq!(
            render(&table, OutputFormat::Csv),
            "last_seen\n2026-02-26T10:07:59.500Z\n"
        );
    }

    #[test]
    fn bytes_get_units() {
        assert_eq!(human_bytes(512), "512");
        assert_eq!(human_bytes(1536), "1.5K");
        assert_eq!(human_bytes(10 * 1024 * 1024), "10.0M");
    }
}
