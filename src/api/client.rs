//! A client of the control API: one connection, one request at a time. `dvrctl` is built on
//! it; so are tests and agents written in Rust.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{ApiError, Response, API_VERSION, REQUEST_BYTES_MAX};

/// How long the client waits for an answer unless told otherwise.
pub const CLIENT_TIMEOUT_DEFAULT: Duration = Duration::from_secs(60);

/// Why a call did not give a result.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The daemon could not be reached or the connection broke.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The daemon answered something that is not a response.
    #[error("bad response from the daemon: {0}")]
    Protocol(String),
    /// The daemon refused the request.
    #[error("{0}")]
    Api(ApiError),
}

/// A connection to the daemon.
#[derive(Debug)]
pub struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    next_id: u64,
}

impl Client {
    /// Connects to the socket at `path`; `timeout` bounds every read and write.
    pub fn connect(path: &Path, timeout: Duration) -> io::Result<Client> {
        let stream = UnixStream::connect(path).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot connect to {}: {e}", path.display()),
            )
        })?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        let writer = stream.try_clone()?;
        Ok(Client {
            reader: BufReader::new(stream),
            writer,
            next_id: 1,
        })
    }

    /// Changes the time limit of the next reads and writes.
    pub fn set_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        self.writer.set_read_timeout(Some(timeout))?;
        self.writer.set_write_timeout(Some(timeout))
    }

    /// Sends `op` with `args` (`Value::Null` for none) and returns the result, or the
    /// daemon's error as [`ClientError::Api`].
    pub fn call(&mut self, op: &str, args: Value) -> Result<Value, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        let mut request = serde_json::json!({ "v": API_VERSION, "id": id, "op": op });
        if !args.is_null() {
            request["args"] = args;
        }
        let line =
            serde_json::to_string(&request).map_err(|e| ClientError::Protocol(e.to_string()))?;
        let response = self.call_line(&line)?;
        if response.id != Some(id) {
            return Err(ClientError::Protocol(format!(
                "response to request {:?}, expected {id}",
                response.id
            )));
        }
        into_result(response)
    }

    /// [`call`](Self::call), with the result read as `T`.
    pub fn call_as<T: DeserializeOwned>(
        &mut self,
        op: &str,
        args: Value,
    ) -> Result<T, ClientError> {
        let value = self.call(op, args)?;
        serde_json::from_value(value)
            .map_err(|e| ClientError::Protocol(format!("unexpected result of {op}: {e}")))
    }

    /// Sends one raw request line (a newline is added) and reads one response line.
    pub fn call_line(&mut self, line: &str) -> Result<Response, ClientError> {
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        self.writer.write_all(&bytes)?;
        self.read_response()
    }

    /// Reads one response line.
    pub fn read_response(&mut self) -> Result<Response, ClientError> {
        let mut buf = Vec::new();
        let n = (&mut self.reader)
            .take(REQUEST_BYTES_MAX as u64 * 8)
            .read_until(b'\n', &mut buf)?;
        if n == 0 {
            return Err(ClientError::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the daemon closed the connection",
            )));
        }
        serde_json::from_slice(&buf).map_err(|e| {
            ClientError::Protocol(format!("{e}: {}", String::from_utf8_lossy(&buf).trim_end()))
        })
    }
}

/// The result of a response, or its error.
pub fn into_result(response: Response) -> Result<Value, ClientError> {
    match (response.ok, response.result, response.error) {
        (true, result, None) => Ok(result.unwrap_or(Value::Null)),
        (false, _, Some(e)) => Err(ClientError::Api(e)),
        _ => Err(ClientError::Protocol(
            "a response must have either a result or an error".into(),
        )),
    }
}
