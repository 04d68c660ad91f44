//! Logs through `tracing`, to stderr. The level comes from the configuration, overridden by
//! `DVR_LOG` (a tracing filter such as `debug` or `dvr_router=debug,info`). Nothing on the
//! data path logs per packet.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the subscriber; a second call is ignored.
pub fn init(level: &str) {
    let filter = std::env::var("DVR_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok());
    let filter = filter
        .unwrap_or_else(|| EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info")));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}
