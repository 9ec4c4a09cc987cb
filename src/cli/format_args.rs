//! The format flags `parse` and `import` share: a built-in name, a logformat
//! specification, or a squid.conf to read it from (at most one).

use std::path::PathBuf;

use anyhow::bail;

use crate::config::{self, FormatSpec};

/// `--format NAME | --logformat SPEC | --squid-conf FILE`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct FormatArgs {
    /// Built-in format: squid, common, combined, referrer or useragent.
    #[arg(long, value_name = "NAME", group = "format_source")]
    pub format: Option<String>,

    /// A Squid logformat specification (the text after `logformat NAME`).
    #[arg(long, value_name = "SPEC", group = "format_source")]
    pub logformat: Option<String>,

    /// Use the format of the squid.conf access_log that writes the file.
    #[arg(long, value_name = "FILE", group = "format_source")]
    pub squid_conf: Option<PathBuf>,
}

impl FormatArgs {
    /// The format the flags name, `None` when no flag is given.
    pub fn spec(&self) -> anyhow::Result<Option<FormatSpec>> {
        if let Some(name) = &self.format {
            if !config::BUILTIN_FORMATS.contains(&name.as_str()) {
                bail!(
                    "--format {name:?} is not a built-in format; use one of {}, or --logformat",
                    config::BUILTIN_FORMATS.join(", ")
                );
            }
            return Ok(Some(FormatSpec::Builtin(name.clone())));
        }
        if let Some(text) = &self.logformat {
            return Ok(Some(FormatSpec::Logformat(text.clone())));
        }
        Ok(self.squid_conf.clone().map(FormatSpec::SquidConf))
    }
}
