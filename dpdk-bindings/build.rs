//! Generates the DPDK bindings and builds the C side of them.
//!
//! 1. Asks the `pkg-config` CLI for `libdpdk`'s cflags and libs. The CLI, not the `pkg-config`
//!    crate: its cflags carry `-include rte_config.h` and `-march=corei7`, which DPDK's inline
//!    functions need.
//! 2. Runs bindgen over `csrc/wrapper.h` with a tight allowlist. `wrap_static_fns` writes a C file
//!    of wrappers for the static inline functions we use (`rte_eth_rx_burst`, `rte_pktmbuf_alloc`,
//!    ...); Rust calls those wrappers under the original names.
//! 3. Compiles that file and `csrc/shim.c` (thread-local accessors, constant checks) with `cc`
//!    and the same cflags into a static library.
//! 4. Emits the link directives of `pkg-config --libs libdpdk` (shared linkage). Debian's EAL
//!    loads the PMDs, the mempool drivers and the vdev bus as plugins at init, so nothing else
//!    has to be kept by the linker.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Real (exported) DPDK functions the safe layer calls.
const FUNCTIONS: &[&str] = &[
    // EAL
    "rte_eal_init",
    "rte_eal_cleanup",
    "rte_version",
    "rte_strerror",
    "rte_get_tsc_hz",
    "rte_get_main_lcore",
    "rte_lcore_count",
    "rte_thread_register",
    "rte_thread_unregister",
    "rte_eal_get_runtime_dir",
    // mempool and mbuf
    "rte_pktmbuf_pool_create",
    "rte_mempool_free",
    "rte_mempool_avail_count",
    "rte_mempool_in_use_count",
    "rte_pktmbuf_free_bulk",
    "rte_pktmbuf_copy",
    // ethdev
    "rte_eth_dev_get_port_by_name",
    "rte_eth_dev_get_name_by_port",
    "rte_eth_dev_info_get",
    "rte_eth_dev_socket_id",
    "rte_eth_dev_configure",
    "rte_eth_dev_adjust_nb_rx_tx_desc",
    "rte_eth_rx_queue_setup",
    "rte_eth_tx_queue_setup",
    "rte_eth_dev_start",
    "rte_eth_dev_stop",
    "rte_eth_dev_close",
    "rte_eth_promiscuous_enable",
    "rte_eth_link_get_nowait",
    "rte_eth_stats_get",
    "rte_eth_stats_reset",
    "rte_eth_xstats_get_names",
    "rte_eth_xstats_get",
    "rte_eth_macaddr_get",
    "rte_eth_dev_set_mtu",
    // lpm and fib
    "rte_lpm_create",
    "rte_lpm_free",
    "rte_lpm_add",
    "rte_lpm_delete",
    "rte_fib_create",
    "rte_fib_free",
    "rte_fib_add",
    "rte_fib_delete",
    "rte_fib_lookup_bulk",
    // telemetry
    "rte_telemetry_register_cmd",
    "rte_tel_data_start_dict",
    "rte_tel_data_start_array",
    "rte_tel_data_string",
    "rte_tel_data_add_dict_u64",
    "rte_tel_data_add_dict_int",
    "rte_tel_data_add_dict_string",
    "rte_tel_data_add_dict_container",
    "rte_tel_data_add_array_u64",
    "rte_tel_data_add_array_int",
    "rte_tel_data_add_array_string",
    "rte_tel_data_alloc",
    "rte_tel_data_free",
    // packet capture
    "rte_pdump_init",
    "rte_pdump_uninit",
    // csrc/shim.c
    "dvrb_errno",
    "dvrb_set_errno",
];

/// DPDK's static inline functions we call: bindgen generates a C wrapper for each.
const STATIC_INLINE_FUNCTIONS: &[&str] = &[
    "rte_lcore_id",
    "rte_rdtsc",
    "rte_eth_rx_burst",
    "rte_eth_tx_burst",
    "rte_pktmbuf_alloc",
    "rte_pktmbuf_alloc_bulk",
    "rte_pktmbuf_free",
    "rte_pktmbuf_prepend",
    "rte_pktmbuf_append",
    "rte_pktmbuf_adj",
    "rte_pktmbuf_trim",
    "rte_lpm_lookup",
    "rte_lpm_lookup_bulk_func",
];

/// Types used by value or field by field from Rust.
const TYPES: &[&str] = &[
    "rte_mbuf",
    "rte_mbuf_ext_shared_info",
    "rte_eth_conf",
    "rte_eth_dev_info",
    "rte_eth_link",
    "rte_eth_stats",
    "rte_eth_xstat",
    "rte_eth_xstat_name",
    "rte_ether_addr",
    "rte_lpm_config",
    "rte_fib_conf",
    "rte_fib_type",
    "rte_fib_dir24_8_nh_sz",
    "rte_tel_value_type",
];

/// Types only ever handled through pointers: no layout is generated for them.
const OPAQUE_TYPES: &[&str] = &[
    "rte_mempool",
    "rte_lpm",
    "rte_fib",
    "rte_rib",
    "rte_tel_data",
];

/// Constants the safe layer reads.
const VARS: &[&str] = &[
    "RTE_MAX_ETHPORTS",
    "RTE_MAX_LCORE",
    "RTE_PKTMBUF_HEADROOM",
    "RTE_MBUF_DEFAULT_BUF_SIZE",
    "RTE_ETH_MQ_RX_NONE",
    "RTE_ETH_MQ_RX_RSS",
    "RTE_ETH_LINK_UP",
    "RTE_ETH_LINK_FULL_DUPLEX",
    "RTE_ETH_SPEED_NUM_UNKNOWN",
    "RTE_ETH_XSTATS_NAME_SIZE",
    "RTE_LPM_LOOKUP_SUCCESS",
    "RTE_LPM_MAX_DEPTH",
    "RTE_TEL_MAX_STRING_LEN",
    "RTE_TEL_MAX_DICT_ENTRIES",
    "RTE_TEL_MAX_ARRAY_ENTRIES",
    "RTE_MEMPOOL_NAMESIZE",
    "LCORE_ID_ANY",
    "SOCKET_ID_ANY",
];

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    let csrc = manifest_dir.join("csrc");
    let wrapper = csrc.join("wrapper.h");

    for file in ["wrapper.h", "shim.h", "shim.c"] {
        println!("cargo:rerun-if-changed={}", csrc.join(file).display());
    }
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_LIBDIR");

    let version = pkg_config(&["--modversion", "libdpdk"]).join("");
    if !version.starts_with("22.11") {
        println!(
            "cargo:warning=these bindings are written for DPDK 22.11; pkg-config found {version}"
        );
    }
    let cflags = pkg_config(&["--cflags", "libdpdk"]);
    let libs = pkg_config(&["--libs", "libdpdk"]);

    generate_bindings(&wrapper, &cflags, &out_dir);
    compile_c(&csrc, &cflags, &out_dir);
    emit_link_directives(&libs);

    // Offered to the build scripts of dependents as DEP_RTE_EAL_CFLAGS.
    println!("cargo:cflags={}", cflags.join(" "));
}

/// Runs `pkg-config ARGS` and splits its output into arguments.
fn pkg_config(args: &[&str]) -> Vec<String> {
    let hint = "DPDK 22.11 development files are needed: install them with \
                scripts/install-deps.sh (apt-get install dpdk-dev libdpdk-dev pkg-config)";
    let output = match Command::new("pkg-config").args(args).output() {
        Ok(output) => output,
        Err(err) => panic!("cannot run pkg-config ({err}); {hint}"),
    };
    if !output.status.success() {
        panic!(
            "pkg-config {} failed: {}; {hint}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

fn generate_bindings(wrapper: &Path, cflags: &[String], out_dir: &Path) {
    let mut builder = bindgen::Builder::default()
        .header(wrapper.to_str().expect("UTF-8 path"))
        .clang_args(cflags)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .use_core()
        .generate_comments(false)
        .derive_default(true)
        .derive_debug(true)
        .prepend_enum_name(false)
        .wrap_static_fns(true)
        .wrap_static_fns_path(out_dir.join("static_fns"))
        // Passes an SSE vector by value: no stable Rust ABI for it, and we do not need it.
        .blocklist_function("rte_lpm_lookupx4");
    for name in FUNCTIONS.iter().chain(STATIC_INLINE_FUNCTIONS) {
        builder = builder.allowlist_function(name);
    }
    for name in TYPES {
        builder = builder.allowlist_type(name);
    }
    for name in OPAQUE_TYPES {
        builder = builder.opaque_type(name);
    }
    for name in VARS {
        builder = builder.allowlist_var(name);
    }
    let bindings = builder
        .generate()
        .unwrap_or_else(|err| panic!("bindgen failed on {}: {err}", wrapper.display()));
    bindings
        .write_to_file(out_dir.join("bindings.rs"))
        .expect("write bindings.rs");
}

fn compile_c(csrc: &Path, cflags: &[String], out_dir: &Path) {
    let mut build = cc::Build::new();
    build
        .file(out_dir.join("static_fns.c"))
        .file(csrc.join("shim.c"))
        // The generated wrapper file includes wrapper.h by absolute path, and wrapper.h
        // includes shim.h next to it.
        .include(csrc)
        // The wrappers only forward to DPDK's inline functions: optimise them in every profile.
        .opt_level(2)
        .flag("-Wno-deprecated-declarations");
    for flag in cflags {
        build.flag(flag);
    }
    build.compile("dpdk_bindings_c");
}

/// Turns `pkg-config --libs` output into cargo link directives. `-l` libraries are shared
/// (`.so`); rustc already links with `--as-needed`, so the flag itself is dropped.
fn emit_link_directives(libs: &[String]) {
    for arg in libs {
        if let Some(dir) = arg.strip_prefix("-L") {
            println!("cargo:rustc-link-search=native={dir}");
        } else if let Some(lib) = arg.strip_prefix("-l") {
            println!("cargo:rustc-link-lib=dylib={lib}");
        } else if arg == "-Wl,--as-needed" || arg == "-pthread" {
            // rustc passes --as-needed itself and links libpthread through std.
        } else {
            println!("cargo:warning=ignoring pkg-config link flag {arg}");
        }
    }
}
