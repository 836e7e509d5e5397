//! Tracing set-up shared by every featdrop binary: `RUST_LOG` wins, else `-v`/`-q` pick the level.

use clap::Args;
use tracing_subscriber::EnvFilter;

/// `-v`/`-q` flags; add to a clap parser with `#[command(flatten)]`.
#[derive(Args, Clone, Copy, Debug, Default)]
pub struct Verbosity {
    /// More log output (-v: debug, -vv: trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only warnings and errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
}

impl Verbosity {
    /// The level these flags ask for.
    pub fn level(&self) -> &'static str {
        match (self.quiet, self.verbose) {
            (true, _) => "warn",
            (false, 0) => "info",
            (false, 1) => "debug",
            (false, _) => "trace",
        }
    }
}

/// Installs the global subscriber (logs go to stderr so stdout stays machine-readable).
/// Calling it twice is harmless.
pub fn init(v: &Verbosity) {
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(v.level()));
    // The audio decoder logs at `error` what it also returns as an error ("probe reach EOF" for a
    // file that is no audio), which featdrop then reports with the file's name: the log line would
    // only be a stray duplicate. RUST_LOG naming `symphonia` still shows it.
    if !std::env::var("RUST_LOG").is_ok_and(|r| r.contains("symphonia")) {
        filter = filter.add_directive("symphonia=off".parse().expect("a valid directive"));
    }
    let _ =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).try_init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        v: Verbosity,
    }

    #[test]
    fn flags_pick_levels() {
        assert_eq!(Cli::parse_from(["x"]).v.level(), "info");
        assert_eq!(Cli::parse_from(["x", "-vv"]).v.level(), "trace");
        assert_eq!(Cli::parse_from(["x", "-q"]).v.level(), "warn");
        assert!(Cli::try_parse_from(["x", "-q", "-v"]).is_err());
    }
}
