//! The fleet as a host knows it: every routing record of the store, parsed, at one revision,
//! and every record that could not be parsed, by key.
//!
//! A host holds all records (they are small: a port is about 100 bytes) because what it needs
//! depends on where every port is; what it programs is decided from them by `sync`.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use router_core::lpm::Prefix;
use serde::{Deserialize, Serialize};

use crate::schema::{Key, Record, RecordError};

/// One change of the store, relative to `<prefix>config/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Put { key: String, value: Vec<u8> },
    Delete { key: String },
}

impl Event {
    pub fn key(&self) -> &str {
        match self {
            Event::Put { key, .. } | Event::Delete { key } => key,
        }
    }
}

/// What one event did to a record: as it was and as it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delta {
    pub key: Key,
    pub before: Option<Record>,
    pub after: Option<Record>,
}

/// Every record, and every key whose value is not a record (with why).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FleetState {
    /// The store revision this state is at.
    pub revision: i64,
    pub records: BTreeMap<Key, Record>,
    /// Keys (relative to `<prefix>config/`) whose last value was refused, with the reason. A
    /// refused value leaves the record as it was: a bad write never tears an object down.
    pub invalid: BTreeMap<String, RecordError>,
}

impl FleetState {
    /// Applies one event; returns what it changed, if anything.
    pub fn apply(&mut self, event: &Event) -> Option<Delta> {
        self.invalid.remove(event.key());
        let key = match Key::parse(event.key()) {
            Ok(key) => key,
            Err(e) => {
                if matches!(event, Event::Put { .. }) {
                    self.invalid.insert(event.key().to_string(), e);
                }
                return None;
            }
        };
        let after = match event {
            Event::Put { value, .. } => match Record::parse(&key, value) {
                Ok(rec) => Some(rec),
                Err(e) => {
                    self.invalid.insert(event.key().to_string(), e);
                    return None;
                }
            },
            Event::Delete { .. } => None,
        };
        let before = match &after {
            Some(rec) => self.records.insert(key.clone(), rec.clone()),
            None => self.records.remove(&key),
        };
        (before != after).then_some(Delta { key, before, after })
    }

    /// A state holding exactly what `list` holds (every key and value under
    /// `<prefix>config/`) at `revision`. A value that is not a record keeps this state's record
    /// for its key, as a watched put would.
    pub fn relisted(&self, revision: i64, list: &[(String, Vec<u8>)]) -> FleetState {
        let mut next = FleetState {
            revision,
            ..FleetState::default()
        };
        for (key, value) in list {
            let event = Event::Put {
                key: key.clone(),
                value: value.clone(),
            };
            if next.apply(&event).is_none() && next.invalid.contains_key(key) {
                if let Some((k, rec)) = Key::parse(key)
                    .ok()
                    .and_then(|k| self.records.get_key_value(&k))
                {
                    next.records.insert(k.clone(), rec.clone());
                }
            }
        }
        next
    }

    /// The deltas that turn this state into `next`: only the records that differ.
    pub fn diff(&self, next: &FleetState) -> Vec<Delta> {
        let mut out = Vec::new();
        for (key, rec) in &self.records {
            match next.records.get(key) {
                Some(n) if n == rec => {}
                other => out.push(Delta {
                    key: key.clone(),
                    before: Some(rec.clone()),
                    after: other.cloned(),
                }),
            }
        }
        for (key, rec) in &next.records {
            if !self.records.contains_key(key) {
                out.push(Delta {
                    key: key.clone(),
                    before: None,
                    after: Some(rec.clone()),
                });
            }
        }
        out
    }

    /// The ports of `network`.
    pub fn ports_of<'a>(&'a self, network: &str) -> impl Iterator<Item = &'a Key> + 'a {
        let from = Key::Port((network.to_string(), Ipv4Addr::UNSPECIFIED));
        let network = network.to_string();
        self.records
            .range(from..)
            .map(|(k, _)| k)
            .take_while(move |k| matches!(k, Key::Port((n, _)) if *n == network))
    }

    /// The routes of `router`.
    pub fn routes_of<'a>(&'a self, router: &str) -> impl Iterator<Item = &'a Key> + 'a {
        let default = Prefix::from_bits(0, 0).unwrap_or_else(|_| unreachable!("0.0.0.0/0"));
        let from = Key::Route((router.to_string(), default));
        let router = router.to_string();
        self.records
            .range(from..)
            .map(|(k, _)| k)
            .take_while(move |k| matches!(k, Key::Route((r, _)) if *r == router))
    }

    /// The state as a list of keys and values (what a snapshot stores).
    pub fn to_list(&self) -> Vec<(String, String)> {
        self.records
            .iter()
            .map(|(k, r)| (k.path(), r.value()))
            .collect()
    }
}

/// What a host writes to its local snapshot: the records it followed and their revision.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotFile {
    /// The snapshot format.
    pub version: u32,
    pub host: String,
    pub revision: i64,
    pub records: Vec<(String, String)>,
}

impl SnapshotFile {
    pub const VERSION: u32 = 1;

    pub fn of(host: &str, state: &FleetState) -> Self {
        SnapshotFile {
            version: Self::VERSION,
            host: host.to_string(),
            revision: state.revision,
            records: state.to_list(),
        }
    }

    /// The state the snapshot holds.
    pub fn state(&self) -> FleetState {
        let list: Vec<(String, Vec<u8>)> = self
            .records
            .iter()
            .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
            .collect();
        FleetState::default().relisted(self.revision, &list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, value: &str) -> Event {
        Event::Put {
            key: key.into(),
            value: value.as_bytes().to_vec(),
        }
    }

    const PORT: &str = r#"{"mac": "fa:16:3e:aa:01:05", "host": "host-a"}"#;

    #[test]
    fn a_bad_write_is_reported_by_key_and_keeps_the_record() {
        let mut s = FleetState::default();
        assert!(s.apply(&put("ports/blue/10.0.1.5", PORT)).is_some());
        assert!(s.apply(&put("ports/blue/10.0.1.5", "{")).is_none());
        assert_eq!(s.records.len(), 1);
        assert!(s.invalid.contains_key("ports/blue/10.0.1.5"));
        assert!(s.apply(&put("bogus/x", "1")).is_none());
        assert!(s.invalid.contains_key("bogus/x"));
        // A good write clears the error; a delete removes the record.
        assert!(s.apply(&put("ports/blue/10.0.1.5", PORT)).is_none());
        assert!(!s.invalid.contains_key("ports/blue/10.0.1.5"));
        let d = s
            .apply(&Event::Delete {
                key: "ports/blue/10.0.1.5".into(),
            })
            .unwrap();
        assert!(d.before.is_some() && d.after.is_none());
        assert!(s.records.is_empty());
    }

    #[test]
    fn a_relist_differs_only_where_the_store_changed() {
        let mut s = FleetState::default();
        s.apply(&put("ports/blue/10.0.1.5", PORT));
        s.apply(&put("ports/blue/10.0.1.6", PORT));
        let list = vec![
            ("ports/blue/10.0.1.5".to_string(), PORT.as_bytes().to_vec()),
            ("ports/blue/10.0.1.7".to_string(), PORT.as_bytes().to_vec()),
        ];
        let next = s.relisted(9, &list);
        let d = s.diff(&next);
        let keys: Vec<String> = d.iter().map(|d| d.key.path()).collect();
        assert_eq!(keys, ["ports/blue/10.0.1.6", "ports/blue/10.0.1.7"]);
        let snap = SnapshotFile::of("host-a", &next);
        assert_eq!(snap.state(), next);
    }

    #[test]
    fn ports_and_routes_are_found_by_their_owner() {
        let mut s = FleetState::default();
        s.apply(&put("ports/blue/10.0.1.5", PORT));
        s.apply(&put("ports/blue2/10.0.1.5", PORT));
        s.apply(&put("routes/t1/0.0.0.0/0", r#"{"via": "10.0.1.254"}"#));
        s.apply(&put("routes/t1/10.9.0.0/16", r#"{"via": "10.0.1.254"}"#));
        s.apply(&put("routes/t2/10.9.0.0/16", r#"{"via": "10.0.1.254"}"#));
        assert_eq!(s.ports_of("blue").count(), 1);
        assert_eq!(s.routes_of("t1").count(), 2);
        assert_eq!(s.routes_of("t").count(), 0);
    }
}
