//! Removing secrets from URLs.
//!
//! Query parameters whose names are listed in `redact.query_params` (compared
//! case-insensitively, after %-decoding the name) keep their names but get
//! the value `REDACTED`. Only the query is touched; a URL without a listed
//! parameter is returned as it is, without allocating.

use std::borrow::Cow;

use crate::parse::decode;

/// What a secret value is replaced with.
pub const REDACTED: &str = "REDACTED";

/// Replaces the values of secret query parameters.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Lower-case parameter names; empty turns redaction off.
    names: Vec<String>,
}

impl Redactor {
    /// A redactor for `names` (any case).
    pub fn new(names: &[String]) -> Redactor {
        Redactor {
            names: names.iter().map(|n| n.to_ascii_lowercase()).collect(),
        }
    }

    /// Whether any parameter is redacted at all.
    pub fn is_enabled(&self) -> bool {
        !self.names.is_empty()
    }

    /// `url` with the values of secret parameters replaced.
    pub fn redact<'u>(&self, url: &'u str) -> Cow<'u, str> {
        if !self.is_enabled() {
            return Cow::Borrowed(url);
        }
        let Some(question) = url.find('?') else {
            return Cow::Borrowed(url);
        };
        let query_end = url[question..]
            .find('#')
            .map_or(url.len(), |at| question + at);
        let query = &url[question + 1..query_end];
        if !query
            .split(['&', ';'])
            .any(|pair| self.is_secret_pair(pair))
        {
            return Cow::Borrowed(url);
        }
        let mut out = String::with_capacity(url.len());
        out.push_str(&url[..=question]);
        self.push_redacted_query(query, &mut out);
        out.push_str(&url[query_end..]);
        Cow::Owned(out)
    }

    /// Whether `pair` is `name=value` with a listed name and a non-empty value.
    fn is_secret_pair(&self, pair: &str) -> bool {
        match pair.split_once('=') {
            Some((name, value)) => !value.is_empty() && self.is_secret_name(name),
            None => false,
        }
    }

    fn is_secret_name(&self, name: &str) -> bool {
        let decoded = decode::percent(name.as_bytes());
        self.names
            .iter()
            .any(|secret| secret.as_bytes().eq_ignore_ascii_case(&decoded))
    }

    fn push_redacted_query(&self, query: &str, out: &mut String) {
        let mut rest = query;
        loop {
            let end = rest.find(['&', ';']).unwrap_or(rest.len());
            let pair = &rest[..end];
            match pair.split_once('=') {
                Some((name, _)) if self.is_secret_pair(pair) => {
                    out.push_str(name);
                    out.push('=');
                    out.push_str(REDACTED);
                }
                _ => out.push_str(pair),
            }
            if end == rest.len() {
                return;
            }
            out.push_str(&rest[end..=end]);
            rest = &rest[end + 1..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redactor() -> Redactor {
        Redactor::new(&["api_key".into(), "Token".into(), "sig".into()])
    }

    #[test]
    fn listed_parameters_are_redacted_case_insensitively() {
        let cases = [
            (
                "http://a/x?api_key=s3cret&q=1",
                "http://a/x?api_key=REDACTED&q=1",
            ),
            ("http://a/x?q=1&TOKEN=abc", "http://a/x?q=1&TOKEN=REDACTED"),
            (
                "http://a/x?sig=1;api%5Fkey=2#frag",
                "http://a/x?sig=REDACTED;api%5Fkey=REDACTED#frag",
            ),
            ("http://a/x?token=&q=1", "http://a/x?token=&q=1"),
            ("http://a/x?tokens=1", "http://a/x?tokens=1"),
            ("http://a/x?", "http://a/x?"),
            ("http://a/x#token=1", "http://a/x#token=1"),
        ];
        for (url, want) in cases {
            assert_eq!(redactor().redact(url), want, "{url}");
        }
    }

    #[test]
    fn untouched_urls_are_borrowed() {
        assert!(matches!(
            redactor().redact("http://a/x?q=1"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn empty_list_turns_redaction_off() {
        let off = Redactor::new(&[]);
        assert_eq!(off.redact("http://a/?token=1"), "http://a/?token=1");
        assert!(!off.is_enabled());
    }
}
