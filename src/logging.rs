//! Logs through `tracing`, to stderr. The level comes from the configuration, overridden by
//! `DVR_LOG` (a tracing filter such as `debug` or `dvr_router=debug,info`), and can be changed
//! at run time through the control API (`log.set`). Nothing on the data path logs per packet.

use std::io::IsTerminal;
use std::sync::{Mutex, OnceLock, PoisonError};

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

/// The handle that swaps the filter, and the filter's text.
struct Level {
    handle: reload::Handle<EnvFilter, Registry>,
    text: Mutex<String>,
}

static LEVEL: OnceLock<Level> = OnceLock::new();

/// Installs the subscriber; a second call is ignored.
pub fn init(level: &str) {
    let from_env = std::env::var("DVR_LOG")
        .ok()
        .filter(|f| EnvFilter::try_new(f).is_ok());
    let text = from_env.unwrap_or_else(|| {
        if EnvFilter::try_new(level).is_ok() {
            level.to_string()
        } else {
            "info".into()
        }
    });
    let filter = EnvFilter::try_new(&text).unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    if tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .try_init()
        .is_ok()
    {
        let _ = LEVEL.set(Level {
            handle,
            text: Mutex::new(text),
        });
    }
}

/// Replaces the filter (`info`, `debug`, `dvr_router=debug,info`, ...).
pub fn set_level(level: &str) -> Result<(), String> {
    let filter =
        EnvFilter::try_new(level).map_err(|e| format!("`{level}` is not a log filter: {e}"))?;
    let l = LEVEL
        .get()
        .ok_or("logging is not initialised in this process")?;
    l.handle
        .reload(filter)
        .map_err(|e| format!("cannot change the log filter: {e}"))?;
    *l.text.lock().unwrap_or_else(PoisonError::into_inner) = level.to_string();
    tracing::info!(level, "log filter changed");
    Ok(())
}

/// The filter in force (empty when logging was never initialised).
pub fn level() -> String {
    LEVEL
        .get()
        .map(|l| {
            l.text
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
        })
        .unwrap_or_default()
}
