//! Logs to stderr as text or one JSON object per line, filtered by an `EnvFilter` string.

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, event fields flattened, for log collectors.
    Json,
}

/// A binary's logging settings, from its own flags.
#[derive(Debug, Clone)]
pub struct Logging {
    pub format: LogFormat,
    /// `tracing_subscriber::EnvFilter` directives, e.g. `info` or `info,kube=warn`.
    pub filter: String,
}

/// A log filter that does not parse: the process refuses to start rather than log at a
/// level nobody asked for.
#[derive(Debug, thiserror::Error)]
#[error("invalid log filter {filter:?}: {source}")]
pub struct LoggingError {
    filter: String,
    source: tracing_subscriber::filter::ParseError,
}

impl Logging {
    /// The filter, parsed.
    pub fn env_filter(&self) -> Result<EnvFilter, LoggingError> {
        EnvFilter::try_new(&self.filter).map_err(|source| LoggingError { filter: self.filter.clone(), source })
    }

    /// Installs the global subscriber. Call once, before anything logs.
    pub(crate) fn install(&self) -> Result<(), LoggingError> {
        let builder = tracing_subscriber::fmt().with_env_filter(self.env_filter()?).with_writer(std::io::stderr);
        match self.format {
            LogFormat::Text => builder.init(),
            LogFormat::Json => builder.json().flatten_event(true).init(),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_or_name_what_is_wrong() {
        let good = Logging { format: LogFormat::Text, filter: "info,kube=warn".into() };
        assert!(good.env_filter().is_ok());
        let bad = Logging { format: LogFormat::Json, filter: "info,kube=loud".into() };
        let error = bad.env_filter().unwrap_err().to_string();
        assert!(error.contains("\"info,kube=loud\""), "{error}");
    }

    #[test]
    fn formats_are_flag_values() {
        use clap::ValueEnum;
        assert_eq!(LogFormat::from_str("json", false), Ok(LogFormat::Json));
        assert_eq!(LogFormat::from_str("text", false), Ok(LogFormat::Text));
        assert!(LogFormat::from_str("xml", false).is_err());
    }
}
