//! The API's Unix socket: an accept thread and one thread per connection, with limits on
//! everything a client controls (connections, request size, time to send a request, time to
//! take a response), so that no client can stall the daemon. Requests that read or change the
//! router are handed to the control thread on a bounded channel; the connection thread waits
//! for the answer, never the control thread for the client.

use std::fs;
use std::io::{self, BufRead, BufReader, ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam::channel::{bounded, RecvTimeoutError, SendTimeoutError, Sender};
use tracing::{debug, info, warn};

use super::view::{LogLevel, Reply, VersionInfo};
use super::{
    parse, response_line, ApiError, Call, ErrorCode, Outcome, Request, API_VERSION,
    CONNECTIONS_MAX, IDLE_TIMEOUT, QUEUE_TIMEOUT, REQUEST_BYTES_MAX, REQUEST_TIMEOUT,
    WRITE_TIMEOUT,
};

/// How often a connection thread waiting for a request looks at the stop flag.
const READ_POLL: Duration = Duration::from_millis(500);
/// Bytes read from the socket at a time.
const READ_BUFFER: usize = 64 * 1024;

/// Why the API socket could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("control socket {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("control socket {0} is in use by a running process (another dvrd?)")]
    InUse(PathBuf),
}

/// The running API server. Dropping it (or [`stop`](Self::stop)) closes the socket, removes
/// its file and ends the connection threads within about half a second.
#[derive(Debug)]
pub struct ApiServer {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl ApiServer {
    /// Binds `path` (mode 0600, parent directory created) and starts accepting clients, whose
    /// requests go to `calls`.
    pub fn start(path: &Path, calls: Sender<Call>) -> Result<ApiServer, ServerError> {
        let listener = bind(path)?;
        let stop = Arc::new(AtomicBool::new(false));
        let accept = std::thread::Builder::new()
            .name("dvr-api".into())
            .spawn({
                let stop = Arc::clone(&stop);
                move || accept_loop(&listener, &calls, &stop)
            })
            .map_err(|source| ServerError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        info!(socket = %path.display(), "control API listening");
        Ok(ApiServer {
            path: path.to_path_buf(),
            stop,
            accept: Some(accept),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops accepting, removes the socket file and waits for the accept thread.
    pub fn stop(&mut self) {
        let Some(accept) = self.accept.take() else {
            return;
        };
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept thread up; it sees the flag and returns.
        let _ = UnixStream::connect(&self.path);
        let _ = accept.join();
        let _ = fs::remove_file(&self.path);
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Binds the socket race-free with mode 0600: in a private directory next to `path` (mode
/// 0700), then renamed into place. A socket file left by a dead daemon is replaced; one a live
/// process answers on is not.
fn bind(path: &Path) -> Result<UnixListener, ServerError> {
    let err = |source| ServerError::Io {
        path: path.to_path_buf(),
        source,
    };
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(parent)
        .map_err(err)?;
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(ServerError::InUse(path.to_path_buf()));
        }
        fs::remove_file(path).map_err(err)?;
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "dvrd.sock".into());
    let private = parent.join(format!(".{name}.{}.tmp", std::process::id()));
    let _ = fs::remove_dir_all(&private);
    fs::DirBuilder::new()
        .mode(0o700)
        .create(&private)
        .map_err(err)?;
    let staged = private.join("s");
    let result = (|| {
        let listener = UnixListener::bind(&staged)?;
        fs::set_permissions(&staged, fs::Permissions::from_mode(0o600))?;
        fs::rename(&staged, path)?;
        Ok(listener)
    })();
    let _ = fs::remove_dir_all(&private);
    result.map_err(err)
}

fn accept_loop(listener: &UnixListener, calls: &Sender<Call>, stop: &Arc<AtomicBool>) {
    let active = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                warn!("control API accept: {e}");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        if active.load(Ordering::Relaxed) >= CONNECTIONS_MAX {
            refuse(
                stream,
                &ApiError::new(
                    ErrorCode::Busy,
                    format!("too many clients (at most {CONNECTIONS_MAX} at once)"),
                ),
            );
            continue;
        }
        active.fetch_add(1, Ordering::Relaxed);
        let conn = Connection {
            calls: calls.clone(),
            stop: Arc::clone(stop),
        };
        let guard = ActiveGuard(Arc::clone(&active));
        let spawned = std::thread::Builder::new()
            .name("dvr-api-conn".into())
            .spawn(move || {
                let _guard = guard;
                conn.serve(stream);
            });
        if let Err(e) = spawned {
            warn!("control API: cannot start a connection thread: {e}");
        }
    }
}

/// Counts a connection until its thread ends.
struct ActiveGuard(Arc<AtomicUsize>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn refuse(mut stream: UnixStream, error: &ApiError) {
    let _ = stream.set_write_timeout(Some(Duration::from_millis(100)));
    let _ = stream.write_all(&response_line(None, &Err(error.clone())));
}

/// What reading one request line gave.
enum Line {
    /// A whole line (without its newline).
    Complete,
    /// The client closed the connection (what it sent without a final newline is dropped).
    Closed,
    /// The line is over the size limit; the connection cannot be resynchronised.
    TooLarge(usize),
    /// The client stopped sending half-way through a request, or stayed silent too long.
    TimedOut { partial: bool },
    /// The daemon is stopping.
    Stopping,
}

struct Connection {
    calls: Sender<Call>,
    stop: Arc<AtomicBool>,
}

impl Connection {
    fn serve(&self, stream: UnixStream) {
        if stream.set_read_timeout(Some(READ_POLL)).is_err()
            || stream.set_write_timeout(Some(WRITE_TIMEOUT)).is_err()
        {
            return;
        }
        let Ok(write_half) = stream.try_clone() else {
            return;
        };
        let mut writer = write_half;
        let mut reader = BufReader::with_capacity(READ_BUFFER, stream);
        let mut line = Vec::new();
        loop {
            line.clear();
            let outcome = match read_line(&mut reader, &mut line, &self.stop) {
                Ok(Line::Complete) => None,
                Ok(Line::Closed | Line::Stopping | Line::TimedOut { partial: false }) | Err(_) => return,
                Ok(Line::TimedOut { partial: true }) => Some(ApiError::new(
                    ErrorCode::Malformed,
                    format!("the request was not completed within {}s", REQUEST_TIMEOUT.as_secs()),
                )),
                Ok(Line::TooLarge(n)) => Some(ApiError::new(
                    ErrorCode::TooLarge,
                    format!("the request is over {REQUEST_BYTES_MAX} bytes (read {n} so far): split a large batch"),
                )),
            };
            if let Some(error) = outcome {
                // The stream cannot be resynchronised: answer and close.
                let _ = writer.write_all(&response_line(None, &Err(error)));
                return;
            }
            let response = self.answer(&line);
            if writer.write_all(&response).is_err() {
                return;
            }
        }
    }

    /// The response line to one request line.
    fn answer(&self, line: &[u8]) -> Vec<u8> {
        let envelope = parse(strip_cr(line));
        let outcome = match envelope.request {
            Err(e) => Err(e),
            Ok(request) => self.execute(request),
        };
        if let Err(e) = &outcome {
            debug!(code = %e.code, "control API request refused: {}", e.message);
        }
        response_line(envelope.id, &outcome)
    }

    fn execute(&self, request: Request) -> Outcome {
        match request {
            Request::Version => Ok(Reply::Version(VersionInfo {
                api: API_VERSION,
                daemon: env!("CARGO_PKG_VERSION").to_string(),
            })),
            Request::LogShow => Ok(Reply::Log(LogLevel {
                level: crate::logging::level(),
            })),
            Request::LogSet { level } => crate::logging::set_level(&level)
                .map(|()| Reply::Log(LogLevel { level }))
                .map_err(|e| ApiError::new(ErrorCode::Internal, e)),
            request => self.call_control(request),
        }
    }

    /// Hands `request` to the control thread and waits for its answer.
    fn call_control(&self, request: Request) -> Outcome {
        let wait = request.reply_timeout();
        let (reply, answer) = bounded(1);
        let deadline = Instant::now() + QUEUE_TIMEOUT + wait;
        match self.calls.send_timeout(
            Call::Api {
                request,
                reply,
                deadline,
            },
            QUEUE_TIMEOUT,
        ) {
            Ok(()) => {}
            Err(SendTimeoutError::Timeout(_)) => {
                return Err(ApiError::new(
                    ErrorCode::Busy,
                    "the control thread's queue is full: try again",
                ))
            }
            Err(SendTimeoutError::Disconnected(_)) => {
                return Err(ApiError::new(
                    ErrorCode::ShuttingDown,
                    "the daemon is stopping",
                ))
            }
        }
        match answer.recv_timeout(wait + QUEUE_TIMEOUT) {
            Ok(outcome) => outcome,
            Err(RecvTimeoutError::Timeout) => Err(ApiError::new(
                ErrorCode::Timeout,
                format!("no answer from the control thread within {}s: the request may or may not have been applied", wait.as_secs()),
            )),
            Err(RecvTimeoutError::Disconnected) => Err(ApiError::new(ErrorCode::ShuttingDown, "the daemon is stopping")),
        }
    }
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Reads one line into `line` (newline dropped), at most [`REQUEST_BYTES_MAX`] bytes, within
/// the idle and request timeouts.
fn read_line(
    reader: &mut BufReader<UnixStream>,
    line: &mut Vec<u8>,
    stop: &AtomicBool,
) -> io::Result<Line> {
    let idle_deadline = Instant::now() + IDLE_TIMEOUT;
    let mut request_deadline: Option<Instant> = None;
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(Line::Stopping);
        }
        let available = match reader.fill_buf() {
            Ok(b) => b,
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                let now = Instant::now();
                match request_deadline {
                    Some(d) if now >= d => return Ok(Line::TimedOut { partial: true }),
                    None if now >= idle_deadline => return Ok(Line::TimedOut { partial: false }),
                    _ => continue,
                }
            }
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(Line::Closed);
        }
        request_deadline.get_or_insert_with(|| Instant::now() + REQUEST_TIMEOUT);
        let (chunk, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..i], Some(i + 1)),
            None => (available, None),
        };
        if line.len() + chunk.len() > REQUEST_BYTES_MAX {
            return Ok(Line::TooLarge(line.len() + chunk.len()));
        }
        line.extend_from_slice(chunk);
        match done {
            Some(n) => {
                reader.consume(n);
                return Ok(Line::Complete);
            }
            None => {
                let n = available.len();
                reader.consume(n);
                if request_deadline.is_some_and(|d| Instant::now() >= d) {
                    return Ok(Line::TimedOut { partial: true });
                }
            }
        }
    }
}
