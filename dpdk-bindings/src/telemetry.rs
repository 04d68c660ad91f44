//! DPDK telemetry: commands this process answers on its telemetry socket
//! (`<runtime dir>/dpdk_telemetry.v2`, what `dpdk-telemetry.py` talks to).
//!
//! A DPDK 22.11 telemetry callback gets the command, its parameters and an output object, but
//! no user argument, so it cannot carry a pointer to the state it reports. This module keeps
//! that state on the Rust side instead: [`register`] puts a handler (a plain Rust closure that
//! returns a [`Value`]) in a process-wide map under its command name, and registers one
//! `extern "C"` trampoline with DPDK for the name. The trampoline runs on DPDK's telemetry
//! thread (one per connected client), looks the handler up by the command it was called for,
//! calls it outside the map's lock and writes the returned [`Value`] into DPDK's output object.
//! A handler that returns `None`, panics or was [`unregister`]ed answers `{"<cmd>": null}`.
//!
//! DPDK's output format bounds what a value can hold: a dictionary holds numbers, strings and
//! arrays (of numbers or of strings), never another dictionary; at most
//! [`DICT_ENTRIES_MAX`] entries in a dictionary and [`ARRAY_ENTRIES_MAX`] in an array; names
//! and strings are cut at [`STRING_LEN_MAX`] - 1 bytes. Entries past a limit are left out.

use std::collections::HashMap;
use std::ffi::{c_char, c_int, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use crate::error::{c_name, check, Error, Result};
use crate::sys;

/// Longest command name DPDK accepts, NUL included (`MAX_CMD_LEN` in DPDK's telemetry.c).
pub const COMMAND_LEN_MAX: usize = 56;
/// Longest name or string in a value, NUL included.
pub const STRING_LEN_MAX: usize = sys::RTE_TEL_MAX_STRING_LEN as usize;
/// Most entries in a dictionary.
pub const DICT_ENTRIES_MAX: usize = sys::RTE_TEL_MAX_DICT_ENTRIES as usize;
/// Most entries in an array.
pub const ARRAY_ENTRIES_MAX: usize = sys::RTE_TEL_MAX_ARRAY_ENTRIES as usize;

/// What a command answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A JSON object.
    Dict(Dict),
    /// A JSON array.
    Array(Array),
    /// A JSON string.
    Text(String),
}

/// A JSON array of one element type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Array {
    /// Unsigned numbers.
    U64(Vec<u64>),
    /// Signed 32-bit numbers.
    Int(Vec<i32>),
    /// Strings.
    Text(Vec<String>),
}

/// One value in a [`Dict`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// An unsigned number.
    U64(u64),
    /// A signed 32-bit number.
    Int(i32),
    /// A string.
    Text(String),
    /// An array (of numbers or of strings).
    Array(Array),
}

/// A JSON object, its entries in the order they were added.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dict {
    entries: Vec<(String, Entry)>,
}

impl Dict {
    /// An empty dictionary.
    pub fn new() -> Dict {
        Dict::default()
    }

    /// Adds `name: entry`.
    pub fn entry(mut self, name: &str, entry: Entry) -> Dict {
        self.entries.push((name.to_string(), entry));
        self
    }

    /// Adds `name: value` (an unsigned number).
    pub fn u64(self, name: &str, value: u64) -> Dict {
        self.entry(name, Entry::U64(value))
    }

    /// Adds `name: value` (a string).
    pub fn text(self, name: &str, value: &str) -> Dict {
        self.entry(name, Entry::Text(value.to_string()))
    }

    /// Adds `name: array`.
    pub fn array(self, name: &str, array: Array) -> Dict {
        self.entry(name, Entry::Array(array))
    }

    /// The entries, in order.
    pub fn entries(&self) -> &[(String, Entry)] {
        &self.entries
    }
}

/// A command's handler: its parameters (the text after the first comma, empty if none) in,
/// the answer out.
pub type Handler = dyn Fn(&str) -> Option<Value> + Send + Sync;

/// Command name -> handler. A name stays registered with DPDK for the life of the process
/// (DPDK 22.11 cannot take one back); what it answers is whatever this map holds for it.
fn handlers() -> MutexGuard<'static, HashMap<String, Arc<Handler>>> {
    static HANDLERS: OnceLock<Mutex<HashMap<String, Arc<Handler>>>> = OnceLock::new();
    // The map is replaced entry by entry: a panic elsewhere cannot leave it torn.
    HANDLERS
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

/// Makes this process answer `cmd` on its telemetry socket with what `handler` returns, with
/// `help` as the text of `/help,<cmd>`. Registering a name again replaces its handler.
///
/// `cmd` starts with `/`, is shorter than [`COMMAND_LEN_MAX`] and holds letters, digits, `_`
/// and `/`; `help` is shorter than [`STRING_LEN_MAX`]. Otherwise `EINVAL`. Works before and
/// after EAL init; without telemetry (`--no-telemetry`) nobody can ask.
pub fn register(
    cmd: &str,
    help: &str,
    handler: impl Fn(&str) -> Option<Value> + Send + Sync + 'static,
) -> Result<()> {
    const OP: &str = "rte_telemetry_register_cmd";
    let name_ok = cmd.starts_with('/')
        && cmd.len() < COMMAND_LEN_MAX
        && cmd
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'/');
    if !name_ok {
        return Err(Error::with_detail(
            OP,
            libc::EINVAL,
            format!(
                "`{cmd}` is not a command name (/[A-Za-z0-9_/]+, under {COMMAND_LEN_MAX} bytes)"
            ),
        ));
    }
    if help.len() >= STRING_LEN_MAX {
        return Err(Error::with_detail(
            OP,
            libc::EINVAL,
            format!(
                "the help of `{cmd}` is longer than {} bytes",
                STRING_LEN_MAX - 1
            ),
        ));
    }
    let mut map = handlers();
    if !map.contains_key(cmd) {
        let c_cmd = c_name(OP, cmd)?;
        let c_help = c_name(OP, help)?;
        // SAFETY: both strings are NUL-terminated and DPDK copies them; `dispatch` has the
        // telemetry_cb signature and stays valid for the life of the process.
        check(OP, unsafe {
            sys::rte_telemetry_register_cmd(c_cmd.as_ptr(), Some(dispatch), c_help.as_ptr())
        })
        .map_err(|e| e.detail(format!("command `{cmd}`")))?;
    }
    map.insert(cmd.to_string(), Arc::new(handler));
    Ok(())
}

/// Drops the handler of `cmd` (and whatever it owns): from now on the command answers `null`.
/// True if there was one.
pub fn unregister(cmd: &str) -> bool {
    handlers().remove(cmd).is_some()
}

/// The one callback DPDK knows: answers `cmd` with its handler's value.
///
/// # Safety
///
/// Called by DPDK's telemetry library only: `cmd` is a NUL-terminated string, `params` one
/// or NULL, and `data` a valid, empty output object that nothing else touches during the call.
unsafe extern "C" fn dispatch(
    cmd: *const c_char,
    params: *const c_char,
    data: *mut sys::rte_tel_data,
) -> c_int {
    // SAFETY: DPDK passes the command it matched, NUL-terminated (the contract above).
    let cmd = unsafe { CStr::from_ptr(cmd) }.to_string_lossy();
    let params = if params.is_null() {
        Default::default()
    } else {
        // SAFETY: non-NULL parameters are a NUL-terminated string (the contract above).
        unsafe { CStr::from_ptr(params) }.to_string_lossy()
    };
    // Called outside the lock: a handler may take its time, and others answer meanwhile.
    let Some(handler) = handlers().get(cmd.as_ref()).cloned() else {
        return -libc::ENOENT;
    };
    // A panic must not unwind into C: the client gets `null` instead.
    match catch_unwind(AssertUnwindSafe(|| handler(&params))) {
        Ok(Some(value)) => {
            let out = Output(data);
            out.value(&value);
            0
        }
        Ok(None) | Err(_) => -libc::EINVAL,
    }
}

/// A DPDK output object being filled in.
struct Output(*mut sys::rte_tel_data);

impl Output {
    fn value(&self, value: &Value) {
        match value {
            Value::Dict(dict) => self.dict(dict),
            Value::Array(array) => self.array(array),
            Value::Text(s) => {
                let s = c_text(s);
                // SAFETY: self.0 is a valid output object (see `dispatch`); DPDK copies the
                // string (cutting it at its limit).
                unsafe { sys::rte_tel_data_string(self.0, s.as_ptr()) };
            }
        }
    }

    fn dict(&self, dict: &Dict) {
        // SAFETY: self.0 is a valid output object (see `dispatch`).
        unsafe { sys::rte_tel_data_start_dict(self.0) };
        for (name, entry) in dict.entries.iter().take(DICT_ENTRIES_MAX) {
            let name = c_text(name);
            let (d, n) = (self.0, name.as_ptr());
            // In every arm: d was started as a dictionary above, DPDK copies the name and the
            // strings, and refuses an entry past its limit without touching the object.
            match entry {
                // SAFETY: as above.
                Entry::U64(v) => unsafe { sys::rte_tel_data_add_dict_u64(d, n, *v) },
                // SAFETY: as above.
                Entry::Int(v) => unsafe { sys::rte_tel_data_add_dict_int(d, n, *v) },
                Entry::Text(s) => {
                    let s = c_text(s);
                    // SAFETY: as above.
                    unsafe { sys::rte_tel_data_add_dict_string(d, n, s.as_ptr()) }
                }
                Entry::Array(array) => add_container(d, n, array),
            };
        }
    }

    fn array(&self, array: &Array) {
        let d = self.0;
        let kind = match array {
            Array::U64(_) => sys::RTE_TEL_U64_VAL,
            Array::Int(_) => sys::RTE_TEL_INT_VAL,
            Array::Text(_) => sys::RTE_TEL_STRING_VAL,
        };
        // SAFETY: d is a valid output object not started yet (a fresh one from `dispatch` or
        // from rte_tel_data_alloc).
        unsafe { sys::rte_tel_data_start_array(d, kind) };
        // In every loop: d was started as an array of this element type above, DPDK copies
        // strings and refuses an entry past its limit.
        match array {
            Array::U64(values) => {
                for v in values.iter().take(ARRAY_ENTRIES_MAX) {
                    // SAFETY: as above.
                    unsafe { sys::rte_tel_data_add_array_u64(d, *v) };
                }
            }
            Array::Int(values) => {
                for v in values.iter().take(ARRAY_ENTRIES_MAX) {
                    // SAFETY: as above.
                    unsafe { sys::rte_tel_data_add_array_int(d, *v) };
                }
            }
            Array::Text(values) => {
                for s in values.iter().take(ARRAY_ENTRIES_MAX) {
                    let s = c_text(s);
                    // SAFETY: as above.
                    unsafe { sys::rte_tel_data_add_array_string(d, s.as_ptr()) };
                }
            }
        }
    }
}

/// Adds `array` to the dictionary `dict` under `name`, as a container DPDK frees with `dict`.
/// DPDK's answer comes back (negative: refused).
fn add_container(dict: *mut sys::rte_tel_data, name: *const c_char, array: &Array) -> c_int {
    // SAFETY: rte_tel_data_alloc has no precondition; it returns NULL when out of memory.
    let container = unsafe { sys::rte_tel_data_alloc() };
    if container.is_null() {
        return -libc::ENOMEM;
    }
    Output(container).array(array);
    // SAFETY: dict is a started dictionary and container a filled array; with keep = 0 DPDK
    // takes ownership of the container on success (a return >= 0) and frees it with dict.
    let ret = unsafe { sys::rte_tel_data_add_dict_container(dict, name, container, 0) };
    if ret < 0 {
        // SAFETY: refused (full dictionary): the container is still ours, and unused.
        unsafe { sys::rte_tel_data_free(container) };
    }
    ret
}

/// A client of a DPDK process's telemetry socket, as `dpdk-telemetry.py` is: it reads the
/// greeting the process sends on connection, then sends one command at a time and reads its
/// JSON answer (one message each, a `SOCK_SEQPACKET` socket).
#[derive(Debug)]
pub struct Client {
    socket: socket2::Socket,
    greeting: String,
    output_len_max: usize,
}

/// Where a DPDK process run as root with `--file-prefix=PREFIX` listens.
pub fn socket_path(file_prefix: &str) -> std::path::PathBuf {
    std::path::Path::new("/var/run/dpdk")
        .join(file_prefix)
        .join("dpdk_telemetry.v2")
}

impl Client {
    /// Connects to the socket at `path` and reads the greeting.
    pub fn connect(path: &std::path::Path) -> std::io::Result<Client> {
        use socket2::{Domain, SockAddr, Socket, Type};
        let socket = Socket::new(Domain::UNIX, Type::SEQPACKET, None)?;
        socket.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
        socket.connect(&SockAddr::unix(path)?)?;
        let mut client = Client {
            socket,
            greeting: String::new(),
            // The greeting says how long an answer may be; read it with room to spare.
            output_len_max: 16 * 1024,
        };
        client.greeting = client.receive()?;
        if let Some(len) = greeting_output_len(&client.greeting) {
            client.output_len_max = len;
        }
        Ok(client)
    }

    /// The greeting (`{"version": ..., "pid": ..., "max_output_len": ...}`).
    pub fn greeting(&self) -> &str {
        &self.greeting
    }

    /// Sends `command` (`/ethdev/stats,0`) and returns the JSON text of its answer.
    pub fn query(&mut self, command: &str) -> std::io::Result<String> {
        use std::io::Write;
        (&self.socket).write_all(command.as_bytes())?;
        self.receive()
    }

    fn receive(&mut self) -> std::io::Result<String> {
        use std::io::Read;
        let mut buf = vec![0u8; self.output_len_max + 1];
        let n = (&self.socket).read(&mut buf)?;
        buf.truncate(n);
        String::from_utf8(buf).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }
}

/// `max_output_len` of a greeting, read without a JSON parser (the only number this needs).
fn greeting_output_len(greeting: &str) -> Option<usize> {
    let rest = &greeting[greeting.find("\"max_output_len\"")? + 16..];
    let digits: String = rest
        .trim_start_matches([':', ' '])
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// `s` as a C string; a NUL byte inside (never in the names this crate's users write) is left
/// out rather than cutting the text.
fn c_text(s: &str) -> CString {
    CString::new(s.replace('\0', "")).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_names_and_help_are_checked_before_dpdk_sees_them() {
        for bad in [
            "stats",
            "/dvrd/stats,x",
            "/dvrd stats",
            &format!("/{}", "a".repeat(60)),
        ] {
            let err = register(bad, "help", |_| None).expect_err(bad);
            assert_eq!(err.errno(), libc::EINVAL, "{bad}: {err}");
            assert!(err.to_string().contains("not a command name"), "{err}");
        }
        let err = register("/test/help", &"h".repeat(200), |_| None).unwrap_err();
        assert_eq!(err.errno(), libc::EINVAL);
    }

    #[test]
    fn a_handler_can_be_replaced_and_removed() {
        register("/test/replace", "a test command", |_| None).unwrap();
        register("/test/replace", "a test command", |_| {
            Some(Value::Text("second".into()))
        })
        .unwrap();
        let handler = handlers().get("/test/replace").cloned().unwrap();
        assert_eq!(handler(""), Some(Value::Text("second".into())));
        assert!(unregister("/test/replace"));
        assert!(!unregister("/test/replace"));
    }

    #[test]
    fn dict_keeps_entries_in_order() {
        let d = Dict::new()
            .u64("rx_packets", 3)
            .text("name", "blue")
            .array("ports", Array::Text(vec!["blue".into()]));
        let names: Vec<&str> = d.entries().iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["rx_packets", "name", "ports"]);
    }

    #[test]
    fn greeting_gives_the_longest_answer() {
        let greeting = r#"{"version": "DPDK 22.11.11", "pid": 7, "max_output_len": 16384}"#;
        assert_eq!(greeting_output_len(greeting), Some(16384));
        assert_eq!(greeting_output_len("{}"), None);
    }

    #[test]
    fn c_text_drops_nul_bytes() {
        assert_eq!(c_text("a\0b").as_bytes(), b"ab");
    }
}
