//! Telemetry against the real DPDK: commands registered as Rust closures answer on the
//! process's own telemetry socket, read back as `dpdk-telemetry.py` reads them; DPDK's own
//! commands answer beside them; the capture server refuses a process without a shared
//! configuration.
//!
//! EAL can be initialised once per process, so this file has a single test. No hugepages and
//! no shared files; telemetry on (unlike the other tests here).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use dpdk_bindings::telemetry::{self, Array, Client, Dict, Value};
use dpdk_bindings::{Eal, Pdump};
use serde_json::{json, Value as Json};

const PREFIX: &str = "dpdk_bindings_telemetry";

fn ask(client: &mut Client, command: &str) -> Json {
    let text = client.query(command).expect(command);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{command}: {e}: {text}"))
}

#[test]
fn telemetry_end_to_end() {
    let args = [
        "-l",
        "0",
        "--no-huge",
        "-m",
        "128",
        "--no-pci",
        "--no-shconf",
    ]
    .map(String::from)
    .into_iter()
    .chain([format!("--file-prefix={PREFIX}")])
    .collect::<Vec<_>>();
    let eal = Eal::init(&args).expect("EAL init");
    assert!(!eal.shares_config());

    // A handler owns its state: here a counter of the questions it was asked.
    let asked = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&asked);
    telemetry::register("/test/values", "Values of every kind.", move |params| {
        let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
        Some(Value::Dict(
            Dict::new()
                .u64("asked", n)
                .text("params", params)
                .entry("signed", telemetry::Entry::Int(-3))
                .array("ports", Array::Text(vec!["blue".into(), "red".into()]))
                .array("rx_packets", Array::U64(vec![1, u64::MAX])),
        ))
    })
    .expect("register");
    telemetry::register("/test/none", "Answers nothing.", |_| None).unwrap();
    telemetry::register("/test/panics", "Panics.", |_| panic!("a handler bug")).unwrap();
    telemetry::register("/test/list", "An array.", |_| {
        Some(Value::Array(Array::U64(vec![4, 5])))
    })
    .unwrap();

    let socket = telemetry::socket_path(PREFIX);
    assert_eq!(eal.runtime_dir().join("dpdk_telemetry.v2"), socket);
    let mut client = Client::connect(&socket).expect("connect");
    let greeting: Json = serde_json::from_str(client.greeting()).unwrap();
    assert_eq!(greeting["pid"], json!(std::process::id()), "{greeting}");

    let values = ask(&mut client, "/test/values,blue");
    assert_eq!(
        values,
        json!({"/test/values": {"asked": 1, "params": "blue", "signed": -3,
            "ports": ["blue", "red"], "rx_packets": [1, u64::MAX]}})
    );
    let again = ask(&mut client, "/test/values");
    assert_eq!(again["/test/values"]["asked"], json!(2));
    assert_eq!(again["/test/values"]["params"], json!(""));
    assert_eq!(
        ask(&mut client, "/test/list"),
        json!({"/test/list": [4, 5]})
    );
    assert_eq!(ask(&mut client, "/test/none"), json!({"/test/none": null}));
    assert_eq!(
        ask(&mut client, "/test/panics"),
        json!({"/test/panics": null})
    );

    // DPDK lists ours with its own, and still answers its own.
    let commands = ask(&mut client, "/");
    let commands = commands["/"].as_array().unwrap();
    for c in ["/test/values", "/ethdev/list", "/eal/params"] {
        assert!(
            commands.contains(&json!(c)),
            "{c} missing from {commands:?}"
        );
    }
    let help = ask(&mut client, "/help,/test/values");
    assert_eq!(
        help["/help"]["/test/values"],
        json!("Values of every kind.")
    );

    // Unregistered: the state it owned is dropped, and the command answers null.
    assert!(telemetry::unregister("/test/values"));
    assert_eq!(Arc::strong_count(&asked), 1);
    assert_eq!(
        ask(&mut client, "/test/values"),
        json!({"/test/values": null})
    );
    drop(client);

    let err = Pdump::init(&eal).expect_err("no shared configuration");
    assert_eq!(err.errno(), libc::ENOTSUP, "{err}");
    eal.cleanup().expect("EAL cleanup");
}
