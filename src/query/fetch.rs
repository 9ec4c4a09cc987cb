//! Running a query's SQL on either database and reading rows into [`Value`]s.
//!
//! Queries are written in the SQL both databases share. What differs is kept
//! here: placeholders (`$1` or `?`), how times are bound and read (PostgreSQL
//! `timestamptz`, SQLite text in [`crate::store`]'s time format), and the
//! expression that cuts time into buckets. Only integers, text and times come
//! back from the database.

use chrono::{DateTime, NaiveDateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{AssertSqlSafe, Row};

use super::{Column, Filters, QueryError};
use crate::store::{SQLITE_TIME_FORMAT as SQLITE_TIME, Store};

/// What a column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A whole number.
    Int,
    /// A whole number of bytes (tables show it with a unit).
    Bytes,
    /// A number with a fraction (computed, never fetched).
    Float,
    /// Text.
    Text,
    /// A point in time, UTC.
    Time,
    /// A point in time that an aligned table shows to the minute, without
    /// the year (`MM-DD HH:MM`), to save room; JSON and CSV show it whole.
    Minute,
}

/// One value of a result.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL `NULL`.
    Null,
    /// A whole number.
    Int(i64),
    /// A number with a fraction, rounded to one decimal.
    Float(f64),
    /// Text.
    Text(String),
    /// A point in time.
    Time(DateTime<Utc>),
}

impl Value {
    /// The integer, or 0 for anything else.
    pub fn as_int(&self) -> i64 {
        match self {
            Value::Int(v) => *v,
            _ => 0,
        }
    }

    /// The text, or an empty string for `NULL`.
    pub fn as_text(&self) -> String {
        match self {
            Value::Text(v) => v.clone(),
            Value::Null => String::new(),
            other => format!("{other:?}"),
        }
    }

    /// Orders two values by their text, `NULL` first.
    pub fn cmp_text(&self, other: &Value) -> std::cmp::Ordering {
        self.as_text().cmp(&other.as_text())
    }

    /// `part` as a percentage of `whole`, to one decimal; `NULL` when `whole` is 0.
    pub fn percent(part: i64, whole: i64) -> Value {
        if whole == 0 {
            return Value::Null;
        }
        let tenths = (part as i128 * 1000 + whole as i128 / 2) / whole as i128;
        Value::Float(tenths as f64 / 10.0)
    }

    /// `sum / count` rounded to the nearest integer; `NULL` when `count` is 0.
    pub fn average(sum: i64, count: i64) -> Value {
        if count == 0 {
            return Value::Null;
        }
        Value::Int(((sum as i128 * 2 + count as i128) / (count as i128 * 2)) as i64)
    }
}

/// A value bound to a placeholder.
#[derive(Debug, Clone)]
enum Bind {
    Text(String),
    Time(DateTime<Utc>),
}

/// SQL being assembled for one database, with its bound values.
pub(super) struct Sql<'s> {
    store: &'s Store,
    text: String,
    binds: Vec<Bind>,
}

impl<'s> Sql<'s> {
    pub(super) fn new(store: &'s Store) -> Sql<'s> {
        Sql {
            store,
            text: String::new(),
            binds: Vec::new(),
        }
    }

    /// Appends SQL text. Only fixed SQL and integers are ever pushed; values
    /// from users go through placeholders.
    pub(super) fn push(&mut self, text: &str) {
        self.text.push_str(text);
    }

    /// Appends `WHERE …` for the filters and an extra fixed condition.
    pub(super) fn filters(&mut self, filters: &Filters, extra: &str) {
        let mut conditions = Vec::new();
        if let Some(bot) = &filters.bot {
            conditions.push(format!("bot_name = {}", self.bind(Bind::Text(bot.clone()))));
        }
        if let Some(group) = &filters.group {
            conditions.push(format!(
                "group_name = {}",
                self.bind(Bind::Text(group.clone()))
            ));
        }
        if let Some(since) = filters.since {
            conditions.push(format!("created_at >= {}", self.bind(Bind::Time(since))));
        }
        if let Some(until) = filters.until {
            conditions.push(format!("created_at < {}", self.bind(Bind::Time(until))));
        }
        if !extra.is_empty() {
            conditions.push(extra.to_string());
        }
        if !conditions.is_empty() {
            self.text.push_str(" WHERE ");
            self.text.push_str(&conditions.join(" AND "));
        }
    }

    /// An expression giving the start of `column`'s bucket in Unix seconds.
    pub(super) fn epoch_bucket(&self, column: &str, seconds: u64) -> String {
        match self.store {
            Store::Postgres(_) => format!(
                "CAST(FLOOR(EXTRACT(EPOCH FROM {column}) / {seconds}) * {seconds} AS BIGINT)"
            ),
            Store::Sqlite(_) => {
                format!("(CAST(strftime('%s', {column}) AS INTEGER) / {seconds}) * {seconds}")
            }
        }
    }

    fn bind(&mut self, value: Bind) -> String {
        self.binds.push(value);
        match self.store {
            Store::Postgres(_) => format!("${}", self.binds.len()),
            Store::Sqlite(_) => "?".to_string(),
        }
    }

    /// Runs the SQL and reads each row's columns as `columns` says.
    pub(super) async fn fetch(self, columns: &[Column]) -> Result<Vec<Vec<Value>>, QueryError> {
        match self.store {
            Store::Postgres(pool) => {
                let mut query = sqlx::query(AssertSqlSafe(self.text));
                for bind in self.binds {
                    query = match bind {
                        Bind::Text(v) => query.bind(v),
                        Bind::Time(v) => query.bind(v),
                    };
                }
                let rows = query.fetch_all(pool).await?;
                rows.iter().map(|r| pg_row(r, columns)).collect()
            }
            Store::Sqlite(pool) => {
                let mut query = sqlx::query(AssertSqlSafe(self.text));
                for bind in self.binds {
                    query = match bind {
                        Bind::Text(v) => query.bind(v),
                        Bind::Time(v) => query.bind(v.format(SQLITE_TIME).to_string()),
                    };
                }
                let rows = query.fetch_all(pool).await?;
                rows.iter().map(|r| sqlite_row(r, columns)).collect()
            }
        }
    }
}

fn pg_row(row: &PgRow, columns: &[Column]) -> Result<Vec<Value>, QueryError> {
    columns
        .iter()
        .enumerate()
        .map(|(i, column)| {
            Ok(match column.kind {
                Kind::Int | Kind::Bytes | Kind::Float => match row.try_get::<Option<i64>, _>(i) {
                    Ok(v) => v.map_or(Value::Null, Value::Int),
                    Err(_) => row
                        .try_get::<Option<i32>, _>(i)?
                        .map_or(Value::Null, |v| Value::Int(i64::from(v))),
                },
                Kind::Text => match row.try_get::<Option<String>, _>(i) {
                    Ok(v) => v.map_or(Value::Null, Value::Text),
                    Err(_) => row
                        .try_get::<Option<uuid::Uuid>, _>(i)?
                        .map_or(Value::Null, |v| Value::Text(v.to_string())),
                },
                Kind::Time | Kind::Minute => row
                    .try_get::<Option<DateTime<Utc>>, _>(i)?
                    .map_or(Value::Null, Value::Time),
            })
        })
        .collect()
}

fn sqlite_row(row: &SqliteRow, columns: &[Column]) -> Result<Vec<Value>, QueryError> {
    columns
        .iter()
        .enumerate()
        .map(|(i, column)| {
            Ok(match column.kind {
                Kind::Int | Kind::Bytes | Kind::Float => row
                    .try_get::<Option<i64>, _>(i)?
                    .map_or(Value::Null, Value::Int),
                Kind::Text => row
                    .try_get::<Option<String>, _>(i)?
                    .map_or(Value::Null, Value::Text),
                Kind::Time | Kind::Minute => match row.try_get::<Option<String>, _>(i)? {
                    Some(text) => Value::Time(parse_sqlite_time(&text)?),
                    None => Value::Null,
                },
            })
        })
        .collect()
}

fn parse_sqlite_time(text: &str) -> Result<DateTime<Utc>, QueryError> {
    NaiveDateTime::parse_from_str(text, SQLITE_TIME)
        .map(|t| t.and_utc())
        .map_err(|e| QueryError::Invalid(format!("stored time {text:?} is not readable: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_rounds_to_one_decimal() {
        assert_eq!(Value::percent(1, 3), Value::Float(33.3));
        assert_eq!(Value::percent(2, 3), Value::Float(66.7));
        assert_eq!(Value::percent(0, 0), Value::Null);
    }

    #[test]
    fn average_rounds_half_up() {
        assert_eq!(Value::average(5, 2), Value::Int(3));
        assert_eq!(Value::average(4, 3), Value::Int(1));
        assert_eq!(Value::average(1, 0), Value::Null);
    }
}
