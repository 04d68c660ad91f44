//! Queues that a virtual device is created with, for several workers.
//!
//! Each worker receives from one RX queue of every port it lists and sends through its own TX
//! queue on every port, so a port needs as many RX queues as workers poll it and as many TX
//! queues as there are workers. Most devices take their queue counts from
//! `rte_eth_dev_configure`; `net_af_packet` fixes them when it is created: its `qpairs=N`
//! opens N `AF_PACKET` sockets (one per RX/TX queue pair) joined in one kernel fanout group
//! that hashes each flow to one socket, and without it the device has one queue pair, which
//! the port setup of a second worker cannot get. An operator should not have to count queues:
//! a device string without `qpairs` gets the number the workers need, and one that names too
//! few is refused here, before EAL starts, with the key and the port.

use super::{invalid, Config, ConfigError};

/// The vdev drivers whose queue pairs are a creation argument (DPDK matches a vdev to its
/// driver by the start of its name; `eth_af_packet` is the old alias).
const AF_PACKET_DRIVERS: [&str; 2] = ["net_af_packet", "eth_af_packet"];

/// The device argument that sets `net_af_packet`'s queue pairs.
const QPAIRS_ARG: &str = "qpairs";

/// The device name of a `--vdev` string: what comes before the first comma.
fn device_name(vdev: &str) -> &str {
    vdev.split(',').next().unwrap_or(vdev)
}

fn is_af_packet(vdev: &str) -> bool {
    AF_PACKET_DRIVERS
        .iter()
        .any(|d| device_name(vdev).starts_with(d))
}

/// The value of `qpairs=` in a `--vdev` string, if it names one.
fn qpairs_value(vdev: &str) -> Option<&str> {
    vdev.split(',')
        .skip(1)
        .find_map(|arg| arg.strip_prefix(QPAIRS_ARG)?.strip_prefix('='))
}

impl Config {
    /// The queue pairs port `name` needs: its RX queues (one per worker polling it) or its TX
    /// queues (one per worker), whichever is more.
    pub fn queue_pairs_needed(&self, name: &str) -> u16 {
        self.rx_queues_of(name).max(self.workers.len() as u16)
    }

    /// The port of an af_packet vdev and the queue pairs it needs; None for other devices
    /// and for a vdev no port uses.
    fn af_packet_port(&self, vdev: &str) -> Option<(&str, u16)> {
        if !is_af_packet(vdev) {
            return None;
        }
        let port = self.ports.iter().find(|p| p.device == device_name(vdev))?;
        Some((&port.name, self.queue_pairs_needed(&port.name)))
    }

    /// Refuses an af_packet vdev whose `qpairs` is not a number or is fewer than its port
    /// needs (DPDK would refuse the port's second worker only when it sets the port up).
    pub(super) fn validate_vdev_queues(&self) -> Result<(), ConfigError> {
        for vdev in &self.eal.vdevs {
            let (Some((port, needed)), Some(value)) =
                (self.af_packet_port(vdev), qpairs_value(vdev))
            else {
                continue;
            };
            let named: u16 = value.parse().map_err(|_| {
                invalid(
                    "eal.vdevs",
                    format!("`{vdev}`: qpairs={value} is not a number of queue pairs"),
                )
            })?;
            if named < needed {
                return Err(invalid(
                    "eal.vdevs",
                    format!(
                        "`{vdev}`: qpairs={named}, but port `{port}` needs {needed} queue \
                         pairs ({} RX queues, one per worker polling it; {} TX queues, one \
                         per worker): raise qpairs, or leave it out and dvrd sets it",
                        self.rx_queues_of(port),
                        self.workers.len()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The `--vdev` strings EAL is given: the file's, with `qpairs=` added to an af_packet
    /// device that needs more than one queue pair and names none (logged, so that the
    /// operator sees the device string DPDK was really given).
    pub fn vdevs_with_queues(&self) -> Vec<String> {
        let complete = |vdev: &String| match self.af_packet_port(vdev) {
            Some((port, needed)) if needed > 1 && qpairs_value(vdev).is_none() => {
                let with = format!("{vdev},{QPAIRS_ARG}={needed}");
                tracing::info!(port, vdev = %with, "af_packet device given one queue pair per worker");
                with
            }
            _ => vdev.clone(),
        };
        self.eal.vdevs.iter().map(complete).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two af_packet ports, two workers that both poll `a` and only the first polls `b`.
    fn two_workers(vdev_a: &str) -> String {
        format!(
            r#"
[eal]
hugepages = false
vdevs = ["{vdev_a}", "net_af_packet1,iface=veth-b"]

[[ports]]
name = "a"
device = "net_af_packet0"

[[ports]]
name = "b"
device = "net_af_packet1"

[[workers]]
core = 0
rx = ["a", "b"]

[[workers]]
core = 1
rx = ["a"]
"#
        )
    }

    /// The file parsed and its vdevs checked (without the CPU checks: the machine running
    /// the tests may have a single CPU).
    fn parsed(vdev_a: &str) -> Result<Config, ConfigError> {
        let cfg: Config = config::Config::builder()
            .add_source(config::File::from_str(
                &two_workers(vdev_a),
                config::FileFormat::Toml,
            ))
            .build()
            .and_then(|c| c.try_deserialize())
            .unwrap();
        cfg.validate_vdev_queues().map(|()| cfg)
    }

    #[test]
    fn the_device_name_and_the_qpairs_argument_are_read_from_the_vdev_string() {
        assert_eq!(device_name("net_af_packet0,iface=x"), "net_af_packet0");
        assert_eq!(qpairs_value("net_af_packet0,iface=x,qpairs=4"), Some("4"));
        assert_eq!(qpairs_value("net_af_packet0,iface=qpairs"), None);
        assert!(is_af_packet("eth_af_packet3,iface=x"));
        assert!(!is_af_packet("net_memif0,role=server"));
    }

    #[test]
    fn an_af_packet_device_without_qpairs_gets_one_pair_per_worker() {
        let cfg = parsed("net_af_packet0,iface=veth-a").unwrap();
        assert_eq!(cfg.queue_pairs_needed("a"), 2);
        // `b` is polled by one worker but sent to by both: it needs two pairs as well.
        assert_eq!(cfg.queue_pairs_needed("b"), 2);
        assert_eq!(
            cfg.vdevs_with_queues(),
            [
                "net_af_packet0,iface=veth-a,qpairs=2",
                "net_af_packet1,iface=veth-b,qpairs=2"
            ]
        );
    }

    #[test]
    fn a_device_that_names_enough_qpairs_is_left_as_it_is() {
        let cfg = parsed("net_af_packet0,iface=veth-a,qpairs=4").unwrap();
        assert_eq!(
            cfg.vdevs_with_queues()[0],
            "net_af_packet0,iface=veth-a,qpairs=4"
        );
    }

    #[test]
    fn too_few_qpairs_are_refused_with_the_key_and_the_port() {
        let e = parsed("net_af_packet0,iface=veth-a,qpairs=1")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("eal.vdevs") && e.contains("port `a`") && e.contains("needs 2"),
            "{e}"
        );
        let e = parsed("net_af_packet0,iface=veth-a,qpairs=two")
            .unwrap_err()
            .to_string();
        assert!(e.contains("eal.vdevs") && e.contains("not a number"), "{e}");
    }

    #[test]
    fn one_worker_leaves_the_device_strings_alone() {
        let text = crate::config::tests::MINIMAL
            .replace("[\"net_null0\"]", "[\"net_af_packet0,iface=veth-a\"]")
            .replace("device = \"net_null0\"", "device = \"net_af_packet0\"");
        let cfg = Config::from_toml(&text).unwrap();
        assert_eq!(cfg.vdevs_with_queues(), ["net_af_packet0,iface=veth-a"]);
    }
}
