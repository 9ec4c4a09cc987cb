//! Finding a source's format in squid.conf.
//!
//! Reads the `logformat` and `access_log` directives of a squid.conf, as
//! Squid does: comments skipped, lines ending in `\` joined to the next,
//! `include` files (with globs) followed. Picks the `access_log` whose file is
//! the source's path and compiles the format it names. Everything else in
//! the file is ignored; this module does not validate Squid's configuration.

use std::path::{Path, PathBuf};

use super::{FormatError, LineFormat};

/// Deepest chain of `include` files followed; Squid itself stops at 16.
const MAX_INCLUDE_DEPTH: usize = 16;

/// The access log Squid writes when squid.conf has no `access_log` line
/// (Debian's path).
const DEFAULT_ACCESS_LOG: &str = "/var/log/squid/access.log";

/// Names squid.conf cannot redefine with `logformat`.
const RESERVED: &[&str] = &["squid", "common", "combined", "referrer", "useragent"];

/// One `access_log` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLog {
    /// The file it writes (module prefix removed), or the place for network modules.
    pub path: String,
    /// The format it names (`squid` when it names none).
    pub format: String,
    /// Where the line is, for messages.
    pub origin: String,
}

/// The parts of a squid.conf that describe access logs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SquidConf {
    /// `logformat` definitions: name and specification, first definition kept.
    pub formats: Vec<(String, String)>,
    /// `access_log` lines in order (`none` lines left out).
    pub access_logs: Vec<AccessLog>,
}

/// Reads `path` and the files it includes.
pub fn read(path: &Path) -> Result<SquidConf, FormatError> {
    let mut conf = SquidConf::default();
    read_into(path, 0, &mut conf)?;
    if conf.access_logs.is_empty() {
        conf.access_logs.push(AccessLog {
            path: DEFAULT_ACCESS_LOG.into(),
            format: "squid".into(),
            origin: "Squid's default access_log".into(),
        });
    }
    Ok(conf)
}

/// The format of the `access_log` in `conf_path` that writes to `log_path`.
pub fn format_for(conf_path: &Path, log_path: &Path) -> Result<LineFormat, FormatError> {
    let conf = read(conf_path)?;
    let log = conf
        .access_logs
        .iter()
        .find(|log| same_file(&log.path, log_path))
        .ok_or_else(|| FormatError::NoAccessLog {
            conf: conf_path.to_path_buf(),
            path: log_path.to_path_buf(),
            candidates: conf
                .access_logs
                .iter()
                .map(|l| l.path.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })?;
    if let Some((_, spec)) = conf.formats.iter().find(|(name, _)| *name == log.format) {
        return LineFormat::logformat(spec);
    }
    LineFormat::builtin(&log.format).map_err(|_| FormatError::UndefinedFormat {
        conf: conf_path.to_path_buf(),
        path: log_path.to_path_buf(),
        name: log.format.clone(),
    })
}

/// Whether the access log at `logged` is the file `wanted`: the same text,
/// the same file on disk, or a match when either side is a pattern (a glob in
/// the source, a `${process_number}`-style macro in squid.conf).
fn same_file(logged: &str, wanted: &Path) -> bool {
    let wanted_text = wanted.to_string_lossy();
    if logged == wanted_text {
        return true;
    }
    if let (Ok(a), Ok(b)) = (Path::new(logged).canonicalize(), wanted.canonicalize())
        && a == b
    {
        return true;
    }
    let as_pattern = macro_free(logged);
    let matches =
        |pattern: &str, text: &str| glob::Pattern::new(pattern).is_ok_and(|p| p.matches(text));
    matches(&wanted_text, logged) || matches(&as_pattern, &wanted_text)
}

/// `logged` with each `${…}` macro replaced by `*`.
fn macro_free(logged: &str) -> String {
    let mut out = String::with_capacity(logged.len());
    let mut rest = logged;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        match rest[start..].find('}') {
            Some(end) => {
                out.push('*');
                rest = &rest[start + end + 1..];
            }
            None => {
                rest = &rest[start..];
                break;
            }
        }
    }
    out.push_str(rest);
    out
}

fn read_into(path: &Path, depth: usize, conf: &mut SquidConf) -> Result<(), FormatError> {
    let bytes = std::fs::read(path).map_err(|e| FormatError::ConfRead {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let text = String::from_utf8_lossy(&bytes);
    for (number, line) in logical_lines(&text) {
        directive(path, number, &line, depth, conf)?;
    }
    Ok(())
}

/// The file's lines with continuations joined and comments and blanks
/// dropped, each with the number of its first physical line.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut lines = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (index, physical) in text.lines().enumerate() {
        let piece = match &pending {
            Some(_) => physical.trim_start(),
            None => physical,
        };
        let (mut joined, first) = match pending.take() {
            Some((first, so_far)) => (so_far, first),
            None => (String::new(), index + 1),
        };
        match piece.strip_suffix('\\') {
            Some(body) => {
                joined.push_str(body);
                pending = Some((first, joined));
            }
            None => {
                joined.push_str(piece);
                lines.push((first, joined));
            }
        }
    }
    lines.extend(pending);
    lines
        .into_iter()
        .map(|(n, l)| (n, l.trim().to_string()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

fn directive(
    path: &Path,
    number: usize,
    line: &str,
    depth: usize,
    conf: &mut SquidConf,
) -> Result<(), FormatError> {
    let (name, rest) = split_word(line);
    match name {
        "include" => include(path, number, rest, depth, conf),
        "logformat" => {
            logformat(path, number, rest, conf);
            Ok(())
        }
        "access_log" | "cache_access_log" => {
            access_log(path, number, rest, conf);
            Ok(())
        }
        _ => Ok(()),
    }
}

fn split_word(text: &str) -> (&str, &str) {
    let text = text.trim_start();
    match text.find(char::is_whitespace) {
        Some(end) => (&text[..end], text[end..].trim_start()),
        None => (text, ""),
    }
}

fn include(
    path: &Path,
    number: usize,
    patterns: &str,
    depth: usize,
    conf: &mut SquidConf,
) -> Result<(), FormatError> {
    if depth >= MAX_INCLUDE_DEPTH {
        return Err(FormatError::ConfSyntax {
            path: path.to_path_buf(),
            line: number,
            reason: format!("include nested deeper than {MAX_INCLUDE_DEPTH} files"),
        });
    }
    let base = path.parent().unwrap_or(Path::new("."));
    for pattern in patterns.split_whitespace() {
        let full = base.join(pattern);
        let text = full.to_string_lossy();
        let files = glob::glob(&text).map_err(|e| FormatError::ConfSyntax {
            path: path.to_path_buf(),
            line: number,
            reason: format!("include {pattern}: {e}"),
        })?;
        let mut files: Vec<PathBuf> = files.filter_map(Result::ok).collect();
        files.sort();
        for file in files {
            read_into(&file, depth + 1, conf)?;
        }
    }
    Ok(())
}

fn logformat(path: &Path, number: usize, rest: &str, conf: &mut SquidConf) {
    let (name, spec) = split_word(rest);
    let origin = format!("{}:{number}", path.display());
    if name.is_empty() || spec.is_empty() {
        tracing::warn!(%origin, "logformat without a name and specification ignored");
    } else if RESERVED.contains(&name) {
        tracing::warn!(%origin, name, "logformat with a built-in name ignored, as Squid does");
    } else if conf.formats.iter().any(|(known, _)| known == name) {
        tracing::warn!(%origin, name, "second logformat of the same name ignored, as Squid does");
    } else {
        conf.formats.push((name.to_string(), spec.to_string()));
    }
}

fn access_log(path: &Path, number: usize, rest: &str, conf: &mut SquidConf) {
    let mut words = rest.split_whitespace();
    let Some(place) = words.next() else {
        return;
    };
    if place == "none" {
        return;
    }
    let mut format = None;
    let mut saw_option = false;
    for (position, word) in words.enumerate() {
        if let Some(name) = word.strip_prefix("logformat=") {
            format = Some(name.to_string());
        } else if word.contains('=') {
            saw_option = true;
        } else if position == 0 && !saw_option && format.is_none() {
            format = Some(word.to_string());
        }
    }
    let format = match format.as_deref() {
        None | Some("auto") => "squid".to_string(),
        Some(name) => name.to_string(),
    };
    conf.access_logs.push(AccessLog {
        path: strip_module(place).to_string(),
        format,
        origin: format!("{}:{number}", path.display()),
    });
}

/// The file of `stdio:/path` or `daemon:/path`; other places as written.
fn strip_module(place: &str) -> &str {
    place
        .strip_prefix("stdio:")
        .or_else(|| place.strip_prefix("daemon:"))
        .unwrap_or(place)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn continuation_lines_are_joined_without_leading_space() {
        let lines = logical_lines("logformat a %ts \\\n    %tr\n# comment\n\n  x y\n");
        assert_eq!(
            lines,
            vec![(1, "logformat a %ts %tr".into()), (5, "x y".into())]
        );
    }

    #[test]
    fn access_log_picks_its_named_format() {
        let dir = tempfile::tempdir().unwrap();
        let conf = write(
            dir.path(),
            "squid.conf",
            "logformat bots %ts.%03tu %>a \"%{X-Bot-Name}>h\"\n\
             access_log daemon:/var/log/squid/access.log squid\n\
             access_log stdio:/var/log/squid/bots.log logformat=bots buffer-size=1KB localnet\n",
        );
        let format = format_for(&conf, Path::new("/var/log/squid/bots.log")).unwrap();
        assert_eq!(format.info().headers, ["X-Bot-Name"]);
        let format = format_for(&conf, Path::new("/var/log/squid/access.log")).unwrap();
        assert_eq!(format.info().name, "squid");
    }

    #[test]
    fn includes_are_followed_with_globs() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("conf.d")).unwrap();
        write(dir.path(), "conf.d/10-log.conf", "logformat mine %ts %>a\n");
        write(
            dir.path(),
            "conf.d/20-log.conf",
            "access_log /tmp/x.log mine\n",
        );
        let conf = write(dir.path(), "squid.conf", "include conf.d/*.conf\n");
        let format = format_for(&conf, Path::new("/tmp/x.log")).unwrap();
        assert_eq!(format.info().spec.as_deref(), Some("%ts %>a"));
    }

    #[test]
    fn no_access_log_means_squids_default() {
        let dir = tempfile::tempdir().unwrap();
        let conf = write(dir.path(), "squid.conf", "http_port 3128\n");
        let format = format_for(&conf, Path::new(DEFAULT_ACCESS_LOG)).unwrap();
        assert_eq!(format.info().name, "squid");
    }

    #[test]
    fn unmatched_path_lists_the_logged_files() {
        let dir = tempfile::tempdir().unwrap();
        let conf = write(
            dir.path(),
            "squid.conf",
            "access_log /a.log\naccess_log none\n",
        );
        let err = format_for(&conf, Path::new("/b.log"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/b.log") && err.contains("/a.log"), "{err}");
    }

    #[test]
    fn first_definition_wins_and_reserved_names_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let conf = write(
            dir.path(),
            "squid.conf",
            "logformat squid %ts\nlogformat x %ts %tr\nlogformat x %ts\naccess_log /l x\n",
        );
        let parsed = read(&conf).unwrap();
        assert_eq!(
            parsed.formats,
            vec![("x".to_string(), "%ts %tr".to_string())]
        );
    }

    #[test]
    fn undefined_format_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let conf = write(dir.path(), "squid.conf", "access_log /l nosuch\n");
        let err = format_for(&conf, Path::new("/l")).unwrap_err().to_string();
        assert!(err.contains("nosuch"), "{err}");
    }

    #[test]
    fn glob_source_and_macro_paths_match() {
        assert!(same_file(
            "/var/log/squid/access.log",
            Path::new("/var/log/squid/*.log")
        ));
        assert!(same_file(
            "/var/log/squid/a-${process_number}.log",
            Path::new("/var/log/squid/a-1.log")
        ));
        assert!(!same_file(
            "/var/log/squid/a.log",
            Path::new("/var/log/squid/b.log")
        ));
    }

    #[test]
    fn missing_include_depth_and_file_errors_are_reported() {
        let err = read(Path::new("/nonexistent/squid.conf"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/squid.conf"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let conf = write(dir.path(), "loop.conf", "include loop.conf\n");
        let err = read(&conf).unwrap_err().to_string();
        assert!(err.contains("nested"), "{err}");
    }
}
