//! What is shipped, end to end: the Debian package `make deb` builds (its files, conffile,
//! unit and dependencies) and the container image that installs it in a clean Debian 12 with
//! apt, running dvrd on `net_af_packet` ports between two instance namespaces, pinged through
//! and stopped with `docker stop`.
//!
//! Run as root: `cargo test --release --test e2e_container -- --test-threads=1` (after
//! `cargo build --release --bins`: the package is made of the binaries under test). Needs
//! Debian's `docker.io` and `debootstrap` (`scripts/install-deps.sh`); the test starts
//! `dockerd` if none runs.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Instant;

use dvr_harness::checks::assert_routed_round_trip;
use dvr_harness::cmd::{run, run_ok};
use dvr_harness::container::{build_package, docker, source_root, Docker, DvrdContainer};
use dvr_harness::dvr::{BLUE_A, RED_A};
use dvr_harness::one_host::{instances, routed_config};
use dvr_harness::{scope, Dvrctl, PingOpts};

/// Every path the package must hold, and the only files under /usr/bin.
const PACKAGE_FILES: &[&str] = &[
    "/usr/bin/dvrd",
    "/usr/bin/dvrctl",
    "/etc/dvrd/dvrd.toml",
    "/lib/systemd/system/dvrd.service",
    "/usr/lib/dvrd/hugepages.sh",
    "/usr/share/doc/dvrd/copyright",
    "/usr/share/doc/dvrd/changelog.gz",
    "/usr/share/doc/dvrd/README.md",
    "/usr/share/doc/dvrd/operations.md",
    "/usr/share/doc/dvrd/examples/dvrd.example.toml",
];
const BINARIES: &[&str] = &["/usr/bin/dvrctl", "/usr/bin/dvrd"];
/// DPDK plugins EAL loads at run time (no link dependency): the pool's driver, the vdev bus
/// and the port every test and the example config use.
const PLUGIN_PACKAGES: &[&str] = &[
    "librte-mempool-ring23",
    "librte-bus-vdev23",
    "librte-net-af-packet23",
];
/// Lines of the unit an operator relies on.
const UNIT_LINES: &[&str] = &[
    "ExecStartPre=/usr/lib/dvrd/hugepages.sh ${HUGEPAGES}",
    "ExecStart=/usr/bin/dvrd --config /etc/dvrd/dvrd.toml",
    "ExecReload=/bin/kill -HUP $MAINPID",
    "Restart=on-failure",
    "RuntimeDirectory=dvrd",
    "WantedBy=multi-user.target",
];

/// The package names in a Depends field: `libc6 (>= 2.34), librte-eal23 (>= 22.11)` gives
/// libc6 and librte-eal23.
fn depends_names(field: &str) -> BTreeSet<String> {
    field
        .split(',')
        .filter_map(|d| d.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// The Debian package holding each shared library `binary` links directly (its `NEEDED`
/// entries, found where the loader finds them, asked of `dpkg -S`).
fn packages_of_needed_libraries(binary: &Path) -> BTreeSet<String> {
    let binary = binary.to_string_lossy();
    let ldd = run_ok("ldd", &[&binary]);
    let dump = run_ok("objdump", &["-p", &binary]);
    let needed = dump
        .lines()
        .filter_map(|l| l.trim().strip_prefix("NEEDED"))
        .map(str::trim);
    needed
        .map(|soname| {
            // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)` or
            // `/lib64/ld-linux-x86-64.so.2 (0x...)`.
            let path = ldd
                .lines()
                .filter_map(|l| l.split_whitespace().find(|w| w.starts_with('/')))
                .find(|p| p.ends_with(&format!("/{soname}")))
                .unwrap_or_else(|| panic!("ldd does not resolve {soname}:\n{ldd}"));
            // dpkg knows each file by one of its two names on a merged-/usr system.
            let other = match path.strip_prefix("/usr") {
                Some(p) => p.to_string(),
                None => format!("/usr{path}"),
            };
            let owner = [path, other.as_str()]
                .iter()
                .map(|p| run("dpkg", &["-S", p]))
                .find(|o| o.success())
                .unwrap_or_else(|| panic!("no package holds {path}"));
            // `libc6:amd64: /lib/x86_64-linux-gnu/libc.so.6`
            let name = owner.stdout.split(':').next().unwrap_or_default();
            name.trim().to_string()
        })
        .collect()
}

#[test]
fn the_package_holds_the_binaries_the_config_the_unit_and_their_dependencies() {
    let s = scope!();
    let deb = build_package(&s, s.dir());
    let deb = deb.to_string_lossy();

    // `-rwxr-xr-x root/root 6942624 2026-12-01 18:12 ./usr/bin/dvrd`
    let listing = run_ok("dpkg-deb", &["-c", &deb]);
    let files: BTreeSet<&str> = listing
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .map(|p| p.trim_start_matches('.'))
        .collect();
    for f in PACKAGE_FILES {
        assert!(files.contains(f), "the package has no {f}:\n{listing}");
    }
    let bins: Vec<&str> = files
        .iter()
        .copied()
        .filter(|f| f.starts_with("/usr/bin/") && f.len() > "/usr/bin/".len())
        .collect();
    assert_eq!(bins, BINARIES, "binaries shipped:\n{listing}");
    assert!(
        listing.lines().all(|l| l.contains(" root/root ")),
        "every file belongs to root:\n{listing}"
    );

    let conffiles = run_ok(
        "sh",
        &[
            "-c",
            &format!("dpkg-deb --ctrl-tarfile {deb} | tar -xO ./conffiles"),
        ],
    );
    assert_eq!(conffiles, "/etc/dvrd/dvrd.toml\n");
    let extract = |path: &str| {
        run_ok(
            "sh",
            &[
                "-c",
                &format!("dpkg-deb --fsys-tarfile {deb} | tar -xO .{path}"),
            ],
        )
    };
    let example = std::fs::read_to_string(source_root().join("dvrd.example.toml")).unwrap();
    assert_eq!(
        extract("/etc/dvrd/dvrd.toml"),
        example,
        "the conffile is the example config"
    );
    let unit = extract("/lib/systemd/system/dvrd.service");
    for line in UNIT_LINES {
        assert!(
            unit.lines().any(|l| l == *line),
            "the unit has no `{line}`:\n{unit}"
        );
    }

    // Depends names the package of every library the binaries link, and the plugins.
    let depends = run_ok("dpkg-deb", &["-f", &deb, "Depends"]);
    let named = depends_names(&depends);
    let mut wanted = packages_of_needed_libraries(&s.dvrd_binary());
    wanted.extend(packages_of_needed_libraries(&s.dvrctl_binary()));
    assert!(
        wanted.contains("librte-eal23"),
        "dvrd links no EAL? {wanted:?}"
    );
    wanted.extend(PLUGIN_PACKAGES.iter().map(|p| p.to_string()));
    let missing: Vec<&String> = wanted.difference(&named).collect();
    assert!(missing.is_empty(), "Depends lacks {missing:?}: {depends}");
    eprintln!("[e2e] Depends: {}", depends.trim());
}

#[test]
fn the_image_installs_the_package_and_dvrd_in_it_routes_and_stops_clean() {
    let s = scope!();
    let started = Instant::now();
    let docker_daemon = Docker::up(&s);
    // The image installs the package in target/debian/, made of the binaries under test.
    build_package(&s, &source_root().join("target/debian"));
    let image = docker_daemon.build_runtime_image(&s);
    let size_bytes = docker_daemon.image_size_bytes(&image);
    let built = started.elapsed();

    // apt resolved every library: both binaries start in a fresh container.
    let version = run_ok(&s.dvrd_binary().to_string_lossy(), &["--version"]);
    assert_eq!(
        docker(&["run", "--rm", &image, "--version"]).ok().stdout,
        version
    );
    let help = docker(&["run", "--rm", "--entrypoint", "dvrctl", &image, "--help"]).ok();
    assert!(help.stdout.contains("Usage: dvrctl"), "{help}");
    // Installed, not enabled: the shipped config is the example, for no real host.
    let wants = "/etc/systemd/system/multi-user.target.wants/dvrd.service";
    let enabled = docker(&["run", "--rm", "--entrypoint", "test", &image, "-e", wants]);
    assert_eq!(
        enabled.code,
        Some(1),
        "the package enabled dvrd.service: {enabled}"
    );

    let (blue, red) = instances(&s, None);
    let dvrd = DvrdContainer::start(&s, "dvrd", &image, &routed_config(&blue, &red));
    let at_red = red.capture("icmp");
    let at_blue = blue.capture("icmp");
    blue.ping(RED_A.ip, &PingOpts::count(5))
        .assert_all_answered();
    assert_routed_round_trip((at_blue.stop(), at_red.stop()), &BLUE_A, &RED_A, 5);
    // The host's dvrctl reaches the containerised dvrd's API through the mounted socket.
    let stats = Dvrctl::at(&s, dvrd.control_socket()).json("stats");
    let blue_rx = stats["snapshot"]["ports"]
        .as_array()
        .and_then(|ports| ports.iter().find(|p| p["name"] == "blue"))
        .and_then(|p| p["rx_packets"].as_u64());
    assert!(
        blue_rx >= Some(5),
        "dvrctl stats: blue rx {blue_rx:?}\n{stats}"
    );

    let exit = dvrd.stop();
    let summary = exit.assert_clean();
    assert_eq!(summary.mempool_in_use(), Some(0), "{summary}");
    for (port, dir) in [("blue", "rx_packets"), ("red", "tx_packets")] {
        let n = summary.port_counter(port, dir);
        assert!(n >= 5, "port {port} {dir} = {n}\n{summary}");
    }
    assert!(
        exit.stderr.contains("stopping") && exit.stdout.contains("mempool: 0 in use"),
        "docker logs show no clean stop\n--- stdout\n{}--- stderr\n{}",
        exit.stdout,
        exit.stderr
    );
    eprintln!(
        "[e2e] image {image}: {size_bytes} bytes ({:.0} MB); package and image built in {built:?}, \
         whole test {:?}",
        size_bytes as f64 / 1e6,
        started.elapsed()
    );
}
