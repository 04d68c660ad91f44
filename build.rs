//! Link-time settings for the appliance binaries.
fn main() {}
