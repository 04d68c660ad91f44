//! The benchmark's own etcd: one member on loopback, on free ports, its data on `/dev/shm` (so
//! that fsync costs nothing and the figures are the fleet code's, not the disk's). Dropping the
//! guard kills it and removes its data, on a normal end, an error, a panic or Ctrl-C.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running etcd; killed and cleaned up on drop.
#[derive(Debug)]
pub struct EtcdGuard {
    child: Child,
    dir: PathBuf,
    client_port: u16,
}

/// A port nobody listens on now (the kernel's pick).
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl EtcdGuard {
    /// Starts `binary` with its data under `/dev/shm` (or the temp dir when there is none).
    pub fn start(binary: &Path) -> Result<EtcdGuard, String> {
        let base = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!("dvr-fleet-bench-etcd-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let client_port = free_port().map_err(|e| e.to_string())?;
        let mut peer_port = free_port().map_err(|e| e.to_string())?;
        while peer_port == client_port {
            peer_port = free_port().map_err(|e| e.to_string())?;
        }
        let client = format!("http://127.0.0.1:{client_port}");
        let peer = format!("http://127.0.0.1:{peer_port}");
        let log = std::fs::File::create(dir.join("etcd.log")).map_err(|e| e.to_string())?;
        let child = Command::new(binary)
            .args(["--name", "bench", "--data-dir"])
            .arg(dir.join("data"))
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("bench={peer}")])
            .args(["--initial-cluster-state", "new"])
            .args(["--max-txn-ops", "10000"])
            .args(["--max-request-bytes", "10485760"])
            .args(["--quota-backend-bytes", "4294967296"])
            .args(["--logger", "zap", "--log-outputs", "stderr"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("{}: {e}", binary.display()))?;
        Ok(EtcdGuard {
            child,
            dir,
            client_port,
        })
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until a client can connect (`probe` tries once), or fails with the log's tail.
    pub fn wait_ready(
        &mut self,
        timeout: Duration,
        mut probe: impl FnMut() -> bool,
    ) -> Result<(), String> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("etcd exited ({status}):\n{}", self.log_tail()));
            }
            if probe() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!(
            "etcd not ready in {timeout:?}:\n{}",
            self.log_tail()
        ))
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("etcd.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for EtcdGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
