//! The fleet: every `dvrd` host follows one key space in etcd v3 and programs from it what it
//! needs.
//!
//! - `schema`: the keys and their JSON values, parsed into the model's specs;
//! - `state`: every record of the store as a host knows it, at one revision;
//! - `sync`: the scheduling rule (what this host programs) and the changes of each revision;
//! - `store`: the etcd client (list, watch, transactions, leases);
//! - `member`: a host's loop (snapshot, list, watch, reconnect, status), on its own thread;
//! - `status`: what a host publishes under its lease;
//! - `writer`: the operator's side: validate against the whole fleet, write one transaction.
//!
//! `docs/fleet.md` describes the key space and the behaviour.

pub mod schema;
pub mod state;
pub mod sync;
pub mod writer;

pub use schema::{Key, Record, RecordError, DEFAULT_PREFIX};
pub use state::{Event, FleetState};
pub use sync::{HostSync, Plan};
pub mod member;
pub mod status;
pub mod store;

pub use member::{Apply, Member, MemberConfig, SharedReport};
pub use status::{HostStatus, KeyError, LinkState, MemberReport};
pub use store::{Store, StoreConfig, StoreError};
